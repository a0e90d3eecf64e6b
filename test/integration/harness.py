"""Integration harness for smtpgate: real programs on loopback, bounded waits, no sleeps.

What it offers (see README.md):
  free_port, wait_port, wait_listening, port_refuses, wait_for   -- ports and bounded waiting
  SmtpClient, Reply, wire_body                                  -- a raw SMTP client
  RecordingBackend                                              -- aiosmtpd, records everything
  ScriptedBackend                                               -- hand-driven failure injection
  SmtpSink                                                      -- Postfix's smtp-sink
  Proxy                                                         -- the smtpgate binary under test
  PostfixInstance                                               -- a private, real Postfix
  IntegrationCase                                               -- TestCase with cleanups wired in

Every wait has a deadline that only guards against hangs (HANG_GUARD); no test passes or fails
on elapsed time. Everything a test starts is stopped by addCleanup, also when the test fails.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import logging
import os
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

# aiosmtpd warns about every unknown verb; the suite sends them on purpose.
logging.getLogger("mail.log").setLevel(logging.ERROR)

# Only guards against hangs; generous so a loaded 2-core CI machine never trips it.
HANG_GUARD = 20.0
POLL_INTERVAL = 0.01
# How long smtpgate may take to exit after SIGTERM beyond its shutdown_grace.
STOP_MARGIN = 15.0
LOCALHOST = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# Ports and bounded waiting
# --------------------------------------------------------------------------------------------

def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def format_address(host: str, port: int) -> str:
    """'127.0.0.1:25' or '[::1]:25', the form smtpgate's config and logs use."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that was free a moment ago (bind port 0, read it back, close)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = HANG_GUARD, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value and returns that value.

    Raises AssertionError naming `what` when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = HANG_GUARD) -> None:
    """Waits until host:port accepts a TCP connection (this opens and closes one)."""
    wait_for(lambda: _accepts(host, port), timeout, f"{format_address(host, port)} to accept connections")


def _listening_sockets() -> dict[int, set[int]]:
    """Listening TCP ports (IPv4 and IPv6) and the socket inodes listening on each."""
    ports: dict[int, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for row in f:
                    cols = row.split()
                    if cols[3] == "0A":  # TCP_LISTEN
                        port = int(cols[1].rsplit(":", 1)[1], 16)
                        ports.setdefault(port, set()).add(int(cols[9]))
        except FileNotFoundError:
            pass
    return ports


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def is_listening(port: int, pid: int | None = None) -> bool:
    """True when a socket listens on `port` (owned by process `pid`, if given). Read from
    /proc, so no connection is opened and no session created."""
    inodes = _listening_sockets().get(port, set())
    if pid is None:
        return bool(inodes)
    return bool(inodes & _socket_inodes(pid))


def wait_listening(port: int, timeout: float = HANG_GUARD, what: str = "",
                   proc: subprocess.Popen | None = None) -> None:
    """Waits for a listening socket on `port` without connecting to it. With `proc`, the
    socket must be that process's own, and a process that exits first fails at once."""
    def ready():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what or 'server'} exited (status {proc.returncode}) "
                                 f"before it listened on port {port}")
        return is_listening(port, proc.pid if proc is not None else None)
    wait_for(ready, timeout, f"{what or 'a server'} to listen on port {port}")


def port_refuses(host: str, port: int) -> bool:
    """True when a connection attempt to host:port is refused."""
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


# --------------------------------------------------------------------------------------------
# A raw SMTP client
# --------------------------------------------------------------------------------------------

_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -])(.*)$", re.S)
_ENHANCED = re.compile(r"^[245]\.[0-9]{1,3}\.[0-9]{1,3}$")


@dataclass
class Reply:
    """One complete SMTP reply: `lines` are the full lines without CRLF ("250-PIPELINING")."""

    code: int
    lines: list[str]
    raw: bytes

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> str:
        """The RFC 3463 enhanced status code of the first line, or ''."""
        first = self.lines[0][4:].split(" ", 1)[0] if self.lines else ""
        return first if _ENHANCED.match(first) else ""

    @property
    def texts(self) -> list[str]:
        """Each line without its code and separator (EHLO keywords, for instance)."""
        return [line[4:] for line in self.lines]

    def startswith(self, prefix: str) -> bool:
        return self.lines[0].startswith(prefix)

    def __str__(self) -> str:
        return " | ".join(self.lines)


class ConnectionClosed(AssertionError):
    """The server closed the connection while a reply was expected."""


class SmtpClient:
    """A byte-exact SMTP client on a plain socket. It sends what it is told and reads complete
    (multi-line) replies with a deadline; nothing is rewritten."""

    def __init__(self, host: str, port: int, timeout: float = HANG_GUARD,
                 source: str | None = None):
        # `source` binds a loopback address of our own (127.0.0.2, ...) so per-client limits
        # can tell test clients apart.
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.received = bytearray()  # every byte read, for byte counts in the logs
        self.sent = 0
        local = self.sock.getsockname()
        self.local_address = format_address(local[0], local[1])

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending -------------------------------------------------------------------------------
    def send(self, data: bytes | str, tolerate_reset: bool = False) -> None:
        """Sends raw bytes. With `tolerate_reset`, a peer that already closed is not an error
        (the reply it sent before closing can still be read)."""
        if isinstance(data, str):
            data = data.encode("ascii")
        try:
            self.sock.sendall(data)
            self.sent += len(data)
        except (BrokenPipeError, ConnectionResetError):
            if not tolerate_reset:
                raise

    def start_tls(self, context: ssl.SSLContext | None = None,
                  server_hostname: str | None = None) -> None:
        """Switches the connection to TLS (after the server's 220 to STARTTLS). Certificates
        are not verified unless `context` says so: test certificates are self-signed."""
        if context is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        assert not self.buf, f"plaintext left unread before TLS: {bytes(self.buf)!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def send_line(self, line: bytes | str) -> None:
        if isinstance(line, str):
            line = line.encode("ascii")
        self.send(line + b"\r\n")

    def command(self, line: bytes | str, timeout: float = HANG_GUARD) -> Reply:
        """Sends one command line and reads its reply."""
        self.send_line(line)
        return self.read_reply(timeout)

    # -- receiving -----------------------------------------------------------------------------
    def _fill(self, deadline: float) -> bool:
        """Reads more bytes into the buffer; False on EOF. Raises on the deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            self.reset = True
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        self.received += chunk
        return True

    def _read_line(self, deadline: float) -> Optional[bytes]:
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[: nl + 1])
                del self.buf[: nl + 1]
                return line
            if not self._fill(deadline):
                return None

    def read_reply(self, timeout: float = HANG_GUARD) -> Reply:
        """Reads one complete reply. Raises ConnectionClosed on EOF and AssertionError when
        no complete reply arrives within `timeout` (a hang guard, not a pass/fail timer)."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        raw = bytearray()
        try:
            while True:
                line = self._read_line(deadline)
                if line is None:
                    got = f"; partial reply {bytes(raw)!r}" if raw else ""
                    raise ConnectionClosed(f"connection closed while a reply was expected{got}")
                raw += line
                if not line.endswith(b"\r\n"):
                    raise AssertionError(f"reply line without CRLF: {line!r}")
                m = _REPLY_LINE.match(line[:-2])
                if not m:
                    raise AssertionError(f"malformed reply line {line!r} (reply so far {bytes(raw)!r})")
                if lines and int(m.group(1)) != int(lines[0][:3]):
                    raise AssertionError(f"reply code changed inside a multi-line reply: {bytes(raw)!r}")
                lines.append(line[:-2].decode("latin-1"))
                if m.group(2) == b" ":
                    return Reply(int(m.group(1)), lines, bytes(raw))
        except socket.timeout:
            raise AssertionError(
                f"no complete reply within {timeout:g}s (got so far {bytes(raw)!r})") from None

    def read_replies(self, n: int, timeout: float = HANG_GUARD) -> list[Reply]:
        return [self.read_reply(timeout) for _ in range(n)]

    def readable(self, timeout: float) -> bool:
        """True when bytes (or EOF) are waiting; used to pace a client, never to pass a test."""
        if self.buf or self.eof:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def wait_closed(self, timeout: float = HANG_GUARD) -> bytes:
        """Waits for the server to close the connection, then closes this end too (as a real
        client does); returns any bytes that came first. Raises AssertionError when the
        connection is still open at the deadline."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            raise AssertionError(
                f"connection still open after {timeout:g}s, want it closed "
                f"(unread bytes {bytes(self.buf)!r})") from None
        self.close()
        rest = bytes(self.buf)
        self.buf.clear()
        return rest

    # -- conveniences --------------------------------------------------------------------------
    def greet(self, helo: str = "client.test") -> tuple[Reply, Reply]:
        """Reads the banner and sends EHLO; returns both replies."""
        banner = self.read_reply()
        return banner, self.command(f"EHLO {helo}")

    def send_message(self, mail_from: str, rcpts: Iterable[str], body: bytes) -> Reply:
        """MAIL, RCPT..., DATA, the dot-stuffed body; asserts the 2xx/354 steps and returns the
        final reply to end-of-data."""
        for line, want in [(f"MAIL FROM:<{mail_from}>", 2)] + [(f"RCPT TO:<{r}>", 2) for r in rcpts] + [("DATA", 3)]:
            reply = self.command(line)
            if reply.code // 100 != want:
                raise AssertionError(f"{line}: got {reply}, want {want}xx")
        self.send(wire_body(body))
        return self.read_reply()


def dot_stuff(body: bytes) -> bytes:
    """RFC 5321 4.5.2: a line that starts with '.' gets one more '.' on the wire."""
    return re.sub(rb"(\A|\r\n)\.", rb"\1..", body)


def wire_body(body: bytes) -> bytes:
    """The bytes a client sends after 354 for `body` (which is empty or ends with CRLF)."""
    if body and not body.endswith(b"\r\n"):
        raise ValueError("a message body ends with CRLF")
    return dot_stuff(body) + b".\r\n"


def has_bare_newline(data: bytes) -> bool:
    """True when `data` holds a CR not followed by LF or an LF not preceded by CR."""
    return re.search(rb"\r(?!\n)|(?<!\r)\n", data) is not None


# --------------------------------------------------------------------------------------------
# RecordingBackend: aiosmtpd in its own thread, recording everything it receives
# --------------------------------------------------------------------------------------------

@dataclass
class Transaction:
    """One message as the backend accepted it."""

    session: int
    mail_from: str
    rcpt_tos: list[str]
    content: bytes   # after dot-unstuffing: what an MTA would queue
    wire: bytes      # the DATA bytes exactly as received, final '.' line included
    reply: str       # what the backend answered to end-of-data


class _TapReader:
    """Wraps aiosmtpd's StreamReader: every command line (read up to LF) and every DATA line
    (read up to CRLF) is reported before aiosmtpd parses it, so unknown verbs are recorded too."""

    def __init__(self, reader: asyncio.StreamReader, protocol: "_RecordingSMTP"):
        self._reader = reader
        self._protocol = protocol

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        line = await self._reader.readuntil(separator)
        if separator == b"\n":
            self._protocol.backend._on_command(self._protocol.sid, line)
        else:
            self._protocol.data_wire += line
        return line

    def __getattr__(self, name):
        return getattr(self._reader, name)


class _RecordingSMTP(SMTP):
    # Long lines (5000 bytes and more) and 10 MB bodies must pass unchanged.
    line_length_limit = 16 * 1024 * 1024

    def __init__(self, backend: "RecordingBackend", handler, **kwargs):
        self.backend = backend
        self.sid = 0
        self.data_wire = bytearray()
        super().__init__(handler, **kwargs)

    def connection_made(self, transport):
        if self.sid == 0:
            self.sid = self.backend._on_connect()
        super().connection_made(transport)

    def connection_lost(self, error):
        try:
            super().connection_lost(error)
        finally:
            self.backend._on_disconnect(self.sid)

    def _client_connected_cb(self, reader, writer):
        super()._client_connected_cb(_TapReader(reader, self), writer)

    async def smtp_DATA(self, arg):
        self.data_wire = bytearray()
        await super().smtp_DATA(arg)


class _RecordingHandler:
    def __init__(self, backend: "RecordingBackend"):
        self.backend = backend

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # aiosmtpd handles pipelined input but does not say so; smtpgate and swaks look for it.
        return responses[:-1] + ["250-PIPELINING"] + responses[-1:]

    async def handle_DATA(self, server, session, envelope):
        return self.backend._on_message(server, envelope)


class _RecordingController(Controller):
    def __init__(self, backend: "RecordingBackend", **kwargs):
        self._backend = backend
        super().__init__(_RecordingHandler(backend), **kwargs)

    def factory(self):
        return _RecordingSMTP(self._backend, self.handler, **self.SMTP_kwargs)


class RecordingBackend:
    """An aiosmtpd server on 127.0.0.1 that records every command line (unknown verbs too),
    every transaction (envelope, unstuffed content, wire bytes) and every connection.

    It advertises PIPELINING and 8BITMIME, keeps content as bytes (decode_data=False) and takes
    messages up to 10 MB. End-of-data is answered `250 2.0.0 Ok: queued as RB<n>`, or
    `554 5.7.1 Rejected by recording backend` when the content holds `reject_marker`.
    """

    REJECT_REPLY = "554 5.7.1 Rejected by recording backend"

    def __init__(self, port: int | None = None, hostname: str = "backend.test",
                 reject_marker: bytes = b"X-Reject-Me"):
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.hostname = hostname
        self.reject_marker = reject_marker
        self._lock = threading.Lock()
        self._next_sid = 0
        self._commands: list[tuple[int, bytes]] = []
        self._transactions: list[Transaction] = []
        self._open: set[int] = set()
        self._opened = 0
        self._controller = self._make_controller()
        self._started = False

    def _make_controller(self) -> _RecordingController:
        return _RecordingController(
            self, hostname=LOCALHOST, port=self.port, server_hostname=self.hostname,
            decode_data=False, data_size_limit=10 * 1024 * 1024 + 65536, ready_timeout=HANG_GUARD)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "RecordingBackend":
        for attempt in range(3):
            try:
                self._controller.start()
                break
            except OSError as e:
                # Another test process may have taken the free port first (ctest -j).
                if self._fixed_port or e.errno != errno.EADDRINUSE or attempt == 2:
                    raise
                self.port = free_port()
                self._controller = self._make_controller()
        self._started = True
        self.clear()  # forget the controller's own readiness probe
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self) -> str:
        return format_address(LOCALHOST, self.port)

    def clear(self) -> None:
        with self._lock:
            self._commands.clear()
            self._transactions.clear()
            self._opened = 0

    # -- what was recorded ---------------------------------------------------------------------
    @property
    def transactions(self) -> list[Transaction]:
        with self._lock:
            return list(self._transactions)

    def commands(self) -> list[bytes]:
        """Every command line received (CRLF stripped), in arrival order, all sessions."""
        with self._lock:
            return [line for _, line in self._commands]

    def commands_of(self, session: int) -> list[bytes]:
        with self._lock:
            return [line for sid, line in self._commands if sid == session]

    def saw_verb(self, verb: bytes) -> list[bytes]:
        """The command lines whose first word is `verb` (case-insensitive)."""
        v = verb.upper()
        return [c for c in self.commands() if c.split(b" ", 1)[0].upper() == v]

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._opened

    @property
    def connections_open(self) -> int:
        with self._lock:
            return len(self._open)

    def wait_idle(self, timeout: float = HANG_GUARD) -> None:
        """Waits until no connection to the backend is open: after that, everything the
        backend will ever receive from those sessions is recorded."""
        wait_for(lambda: self.connections_open == 0, timeout, "the backend's connections to close")

    def wait_transactions(self, n: int, timeout: float = HANG_GUARD) -> list[Transaction]:
        wait_for(lambda: len(self.transactions) >= n, timeout,
                 f"{n} transactions at the backend (have {len(self.transactions)})")
        return self.transactions

    # -- callbacks from the server thread ------------------------------------------------------
    def _on_connect(self) -> int:
        with self._lock:
            self._next_sid += 1
            self._opened += 1
            self._open.add(self._next_sid)
            return self._next_sid

    def _on_disconnect(self, sid: int) -> None:
        with self._lock:
            self._open.discard(sid)

    def _on_command(self, sid: int, line: bytes) -> None:
        with self._lock:
            self._commands.append((sid, line.rstrip(b"\r\n")))

    def _on_message(self, server: _RecordingSMTP, envelope) -> str:
        content = bytes(envelope.original_content or b"")
        with self._lock:
            n = len(self._transactions) + 1
            reply = (self.REJECT_REPLY if self.reject_marker in content
                     else f"250 2.0.0 Ok: queued as RB{n:05d}")
            self._transactions.append(Transaction(
                server.sid, envelope.mail_from, list(envelope.rcpt_tos), content,
                bytes(server.data_wire), reply))
        return reply


# --------------------------------------------------------------------------------------------
# ScriptedBackend: a hand-driven SMTP server for failure injection
# --------------------------------------------------------------------------------------------

ORDINARY_EHLO = ["scripted.test", "PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"]
# Every extension smtpgate must hide, mixed with ones it must pass; the last line is hidden too,
# so the proxy has to re-terminate the multi-line reply.
EVERYTHING_EHLO = ["scripted.test", "PIPELINING", "XCLIENT NAME ADDR PROTO HELO", "SIZE 10240000",
                   "XFORWARD NAME ADDR PROTO HELO", "8BITMIME", "CHUNKING", "BINARYMIME",
                   "ENHANCEDSTATUSCODES", "STARTTLS"]


@dataclass
class ScriptedConnection:
    number: int
    raw: bytearray = field(default_factory=bytearray)      # every byte received
    proxy_header: bytes = b""                               # a PROXY v1/v2 header, if one came first
    lines: list[bytes] = field(default_factory=list)       # command lines, CRLF stripped
    closed: threading.Event = field(default_factory=threading.Event)


class ScriptedBackend:
    """A small threaded SMTP server whose misbehaviour is chosen by the test. It logs every byte
    and command line it receives. Its replies name the command they answer
    (`250 2.0.0 scripted: NOOP 7`), so a test can tell a relayed reply from a local one.

    Named modes: banner_554(), silent_after_banner(), closes_in_data(), advertises_everything(),
    lenient(). `refused_port()` gives a port where nothing listens.
    """

    def __init__(self, *, banner: bytes = b"220 scripted.test ESMTP scripted\r\n",
                 ehlo: list[str] = ORDINARY_EHLO, answers: bool = True,
                 close_in_data: bool = False, lenient_end_of_data: bool = False,
                 port: int | None = None, unknown_users: str | None = None,
                 xclient_reply: str | None = None, out_of_turn: bytes = b""):
        # Sent with the banner in one write: what a backend answers to a PROXY header it was
        # not told to expect.
        self.out_of_turn = out_of_turn
        # Recipients whose local part starts with `unknown_users` get an MTA's unknown-user
        # rejection (550 5.1.1), as Postfix answers for a missing mailbox.
        self.unknown_users = unknown_users
        # When the EHLO lines offer XCLIENT: the reply to it (default: a fresh 220 banner
        # naming the XCLIENT line, as Postfix answers).
        self.xclient_reply = xclient_reply
        self.banner = banner
        self.ehlo = ehlo
        self.answers = answers
        self.close_in_data = close_in_data
        self.lenient_end_of_data = lenient_end_of_data
        self._lock = threading.Lock()
        self.connections: list[ScriptedConnection] = []
        self.transactions: list[Transaction] = []
        self.closed_in_data = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, port or 0))
        self.port = self._listener.getsockname()[1]
        self._listener.listen(128)
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    # -- named modes ---------------------------------------------------------------------------
    @classmethod
    def banner_554(cls) -> "ScriptedBackend":
        """Greets with 554: the backend refuses the session."""
        return cls(banner=b"554 5.3.2 scripted.test not accepting mail\r\n")

    @classmethod
    def silent_after_banner(cls) -> "ScriptedBackend":
        """Sends a 220 banner and then never answers anything (records what it receives)."""
        return cls(answers=False)

    @classmethod
    def closes_in_data(cls) -> "ScriptedBackend":
        """Answers normally, but closes the connection as soon as message content arrives."""
        return cls(close_in_data=True)

    @classmethod
    def advertises_everything(cls) -> "ScriptedBackend":
        """EHLO lists XCLIENT, XFORWARD, CHUNKING, BINARYMIME, STARTTLS among ordinary ones."""
        return cls(ehlo=EVERYTHING_EHLO)

    @classmethod
    def lenient(cls) -> "ScriptedBackend":
        """A deliberately vulnerable MTA (CVE-2023-51764 class): it takes a bare CR or LF as a
        line ending, so `<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CR><LF>`... end its DATA."""
        return cls(lenient_end_of_data=True)

    @staticmethod
    def refused_port() -> int:
        """A loopback port where nothing listens: connections to it are refused."""
        return free_port()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "ScriptedBackend":
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept_thread.is_alive():
            self._accept_thread.join(HANG_GUARD)
        for t in list(self._threads):
            t.join(HANG_GUARD)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self) -> str:
        return format_address(LOCALHOST, self.port)

    def lines(self) -> list[bytes]:
        """Every command line received, all connections, in order."""
        with self._lock:
            return [line for c in self.connections for line in c.lines]

    def wait_connection(self, n: int = 1, timeout: float = HANG_GUARD) -> ScriptedConnection:
        wait_for(lambda: len(self.connections) >= n, timeout, f"backend connection #{n}")
        return self.connections[n - 1]

    def wait_line(self, predicate: Callable[[bytes], bool], timeout: float = HANG_GUARD,
                  what: str = "a line") -> bytes:
        return wait_for(lambda: next((l for l in self.lines() if predicate(l)), None), timeout,
                        f"the backend to receive {what}")

    # -- server --------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                conn = ScriptedConnection(len(self.connections) + 1)
                self.connections.append(conn)
                self._socks.append(sock)
            t = threading.Thread(target=self._serve, args=(sock, conn), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket, conn: ScriptedConnection) -> None:
        try:
            _ScriptedSession(self, sock, conn).run()
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass
            conn.closed.set()


class _ScriptedSession:
    def __init__(self, backend: ScriptedBackend, sock: socket.socket, conn: ScriptedConnection):
        self.b = backend
        self.sock = sock
        self.conn = conn
        self.buf = bytearray()
        self.mail_from: Optional[str] = None
        self.rcpts: list[str] = []

    def recv(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        with self.b._lock:
            self.conn.raw += chunk
        self.buf += chunk
        return True

    def reply(self, text: str) -> None:
        self.sock.sendall(text.encode("latin-1"))

    def read_line(self) -> Optional[bytes]:
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[: nl + 1])
                del self.buf[: nl + 1]
                line = line.rstrip(b"\r\n")
                with self.b._lock:
                    self.conn.lines.append(line)
                return line
            if not self.recv():
                return None

    def take_proxy_header(self) -> bool:
        """Consumes a PROXY v1 line or v2 header at the start of the connection (HAProxy's
        spec), as a backend with `smtpd_upstream_proxy_protocol` would; False on EOF."""
        v1, v2 = b"PROXY ", b"\r\n\r\n\x00\r\nQUIT\n"
        while True:
            head = bytes(self.buf[:16])
            if head.startswith(v1):
                nl = self.buf.find(b"\n")
                if nl >= 0:
                    self.conn.proxy_header = bytes(self.buf[: nl + 1])
                    del self.buf[: nl + 1]
                    return True
            elif head.startswith(v2) and len(head) == 16:
                end = 16 + int.from_bytes(head[14:16], "big")
                if len(self.buf) >= end:
                    self.conn.proxy_header = bytes(self.buf[:end])
                    del self.buf[:end]
                    return True
            elif not (v1.startswith(head) or v2.startswith(head) or head.startswith(v2)):
                return True  # plain SMTP
            if not self.recv():
                return False

    def run(self) -> None:
        self.sock.sendall(self.b.banner + self.b.out_of_turn)
        if not self.take_proxy_header():
            return
        refused = self.b.banner.startswith(b"5")
        auth_steps = 0
        while True:
            line = self.read_line()
            if line is None:
                return
            if not self.b.answers:
                continue
            text = line.decode("latin-1")
            if auth_steps:
                auth_steps -= 1
                self.reply("334 UGFzc3dvcmQ6\r\n" if auth_steps else "235 2.7.0 scripted: AUTH LOGIN ok\r\n")
                continue
            verb = text.split(" ", 1)[0].upper()
            tag = f"scripted: {text}"
            if verb == "QUIT":
                self.reply("221 2.0.0 scripted: QUIT bye\r\n")
                return
            if refused:
                self.reply("503 5.5.1 scripted: session refused\r\n")
            elif verb == "EHLO":
                lines = self.b.ehlo
                self.reply("".join(f"250{'-' if i < len(lines) - 1 else ' '}{l}\r\n" for i, l in enumerate(lines)))
            elif verb == "HELO":
                self.reply("250 scripted.test\r\n")
            elif verb == "MAIL":
                self.mail_from, self.rcpts = text[10:].strip("<>"), []
                self.reply(f"250 2.1.0 {tag}\r\n")
            elif verb == "RCPT":
                address = text[8:].strip("<>")
                if self.b.unknown_users and address.startswith(self.b.unknown_users):
                    self.reply(f"550 5.1.1 <{address}>: Recipient address rejected: User unknown {tag}\r\n")
                    continue
                self.rcpts.append(address)
                self.reply(f"250 2.1.5 {tag}\r\n")
            elif verb == "DATA":
                if not self.rcpts:
                    self.reply("503 5.5.1 scripted: need RCPT\r\n")
                    continue
                self.reply("354 2.0.0 scripted: send data, end with <CRLF>.<CRLF>\r\n")
                if not self.data():
                    return
            elif verb in ("RSET", "NOOP"):
                self.mail_from, self.rcpts = (None, []) if verb == "RSET" else (self.mail_from, self.rcpts)
                self.reply(f"250 2.0.0 {tag}\r\n")
            elif verb in ("VRFY", "EXPN"):
                self.reply(f"252 2.0.0 {tag}\r\n")
            elif verb == "HELP":
                self.reply(f"214-2.0.0 {tag}\r\n214 2.0.0 scripted: end of HELP\r\n")
            elif verb == "XCLIENT" and any(l.startswith("XCLIENT") for l in self.b.ehlo):
                self.reply(self.b.xclient_reply or f"220 scripted.test ESMTP {tag}\r\n")
            elif verb == "ETRN":
                self.reply(f"250 2.0.0 {tag}\r\n")
            elif verb == "AUTH":
                if text.upper() == "AUTH LOGIN":
                    auth_steps = 2
                    self.reply("334 VXNlcm5hbWU6\r\n")
                else:
                    self.reply(f"235 2.7.0 {tag}\r\n")
            else:
                self.reply(f"502 5.5.2 {tag} not recognized\r\n")

    def data(self) -> bool:
        """Reads one message; False when the connection ended (or was ended) inside it."""
        if self.b.close_in_data:
            while not self.buf:
                if not self.recv():
                    return False
            self.b.closed_in_data.set()
            self.sock.shutdown(socket.SHUT_RDWR)
            return False
        start = len(self.conn.raw) - len(self.buf)
        content = bytearray()
        while True:
            line = self._data_line()
            if line is None:
                return False
            if line == b".":
                break
            content += (line[1:] if line.startswith(b".") else line) + b"\r\n"
        with self.b._lock:
            n = len(self.b.transactions) + 1
            reply = f"250 2.0.0 Ok: queued as SB{n:05d}"
            end = len(self.conn.raw) - len(self.buf)
            self.b.transactions.append(Transaction(
                self.conn.number, self.mail_from or "", list(self.rcpts), bytes(content),
                bytes(self.conn.raw[start:end]), reply))
        self.mail_from, self.rcpts = None, []
        self.reply(reply + "\r\n")
        return True

    def _data_line(self) -> Optional[bytes]:
        """One content line without its ending. Strict: lines end at CRLF only (RFC 5321).
        Lenient: CRLF, bare LF or bare CR all end a line, as in vulnerable MTAs."""
        while True:
            if self.b.lenient_end_of_data:
                m = re.search(rb"\r\n|\n|\r(?=[^\n])", self.buf)
            else:
                m = re.search(rb"\r\n", self.buf)
            if m:
                line = bytes(self.buf[: m.start()])
                del self.buf[: m.end()]
                return line
            if not self.recv():
                return None


# --------------------------------------------------------------------------------------------
# Child processes: Postfix's tools, certificates, process groups
# --------------------------------------------------------------------------------------------

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if the test process dies (a ctest timeout, say), so
    no server outlives the suite even though each runs in its own process group."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def make_certificate(directory: Path, common_name: str, name: str = "server",
                     alt_names: str | None = None) -> tuple[Path, Path]:
    """A self-signed EC certificate and its key, made with openssl, as PEM files in
    `directory` (`<name>.crt`, `<name>.key`). `alt_names` is a subjectAltName value such as
    "IP:127.0.0.1"; a self-signed certificate is its own CA file for verification."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    extra = ["-addext", f"subjectAltName={alt_names}"] if alt_names else []
    run_tool(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
              f"/CN={common_name}", *extra, "-keyout", str(key), "-out", str(cert)], check=True)
    return cert, key


def run_tool(cmd: list[str], timeout: float = HANG_GUARD * 3, **kwargs) -> subprocess.CompletedProcess:
    """Runs a client program (swaks, smtp-source, curl) to completion, bounded by `timeout`."""
    return subprocess.run(cmd, capture_output=True, timeout=timeout, preexec_fn=die_with_parent, **kwargs)


def _stop_group(proc: subprocess.Popen, sig: int, timeout: float) -> Optional[int]:
    """Signals the process group (unless `sig` is 0), waits up to `timeout`, then SIGKILLs it.
    Returns the exit status when it exited on its own, None when it had to be killed."""
    if sig:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(HANG_GUARD)
        return None


# --------------------------------------------------------------------------------------------
# Proxy: the smtpgate binary under test
# --------------------------------------------------------------------------------------------

def smtpgate_binary() -> str:
    path = os.environ.get("SMTPGATE_BIN")
    if not path:
        source = os.environ.get("SMTPGATE_SOURCE_DIR", str(Path(__file__).resolve().parents[2]))
        path = os.path.join(source, "build", "smtpgate")
    return path


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string for our values
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {v!r}")


def to_toml(config: dict) -> str:
    """Tables from dicts; a list of dicts (`"rule": [{...}, ...]`) becomes [[rule]] entries."""
    out = []
    for section, values in config.items():
        entries = values if isinstance(values, list) else [values]
        for entry in entries:
            out.append(f"[[{section}]]" if isinstance(values, list) else f"[{section}]")
            out.extend(f"{k} = {_toml_value(v)}" for k, v in entry.items())
            out.append("")
    return "\n".join(out)


def _merge(base: dict, overrides: dict) -> dict:
    merged = {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in base.items()}
    for section, values in overrides.items():
        if isinstance(values, list):
            merged[section] = list(values)
        else:
            merged.setdefault(section, {}).update(values)
    return merged


_TEXT_LOG_LINE = re.compile(
    r'^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (?P<level>debug|info|warning|error) '
    r'(?P<event>[a-z][a-z0-9_.]*)(?P<pairs>(?: [a-z][a-z0-9_.]*=(?:"(?:[^"\\]|\\.)*"|[^\s"]*))*)$')
_TEXT_LOG_PAIR = re.compile(r' ([a-z][a-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def parse_text_log_line(line: str) -> Optional[dict]:
    """`<ts> <level> <event> key=value key="a value"...` as a dict, or None if malformed."""
    m = _TEXT_LOG_LINE.match(line)
    if not m:
        return None
    entry = {"ts": m.group("ts"), "level": m.group("level"), "event": m.group("event")}
    for key, value in _TEXT_LOG_PAIR.findall(m.group("pairs")):
        if value.startswith('"'):
            value = re.sub(r'\\(.)', r'\1', value[1:-1])
        entry[key] = value
    return entry


class Proxy:
    """smtpgate with a generated TOML config, its stderr (the log) captured to a file.

    `overrides` is a nested dict merged over the defaults below, e.g.
    {"timeouts": {"command": "1s"}}. The default shutdown_grace is 5s (not 30s) so a cleanup
    with a session still open cannot stall the suite.
    """

    def __init__(self, backend_address: str, overrides: dict | None = None,
                 listen_host: str = LOCALHOST, max_open_files: int | None = None):
        # `max_open_files` lowers RLIMIT_NOFILE for the proxy, to test descriptor exhaustion.
        self.max_open_files = max_open_files
        self.host = listen_host
        self.port = free_port(listen_host)
        self.admin_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="smtpgate-proxy-"))
        self.config = _merge({
            "server": {"listen": [format_address(listen_host, self.port)], "hostname": "gate.test",
                       "max_connections": 2000, "shutdown_grace": "5s"},
            "admin": {"listen": f"{LOCALHOST}:{self.admin_port}"},
            "backend": {"address": backend_address, "identity": "none", "connect_timeout": "10s"},
            "log": {"format": "text", "target": "stderr", "level": "info"},
        }, overrides or {})
        self.config_path = self.dir / "smtpgate.toml"
        self.log_path = self.dir / "stderr.log"
        self.stdout_path = self.dir / "stdout.log"
        self.proc: Optional[subprocess.Popen] = None
        self.exit_status: Optional[int] = None
        self.terminated = False  # SIGTERM already sent: stop() then only waits

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Proxy":
        binary = smtpgate_binary()
        if not os.access(binary, os.X_OK):
            raise AssertionError(f"smtpgate binary not found or not executable: {binary} (SMTPGATE_BIN)")
        for attempt in range(3):
            self.config_path.write_text(to_toml(self.config))
            with open(self.log_path, "wb") as err, open(self.stdout_path, "wb") as out:
                limit = self.max_open_files

                def prepare_child() -> None:
                    die_with_parent()
                    if limit is not None:
                        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

                self.proc = subprocess.Popen([binary, "--config", str(self.config_path)],
                                             stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                             start_new_session=True, preexec_fn=prepare_child)
            try:
                wait_listening(self.port, what="smtpgate", proc=self.proc)
                return self
            except AssertionError as e:
                lost_race = self.proc.poll() is not None and "in use" in self.log_text().lower()
                if not lost_race or attempt == 2:
                    if self.proc.poll() is None:
                        _stop_group(self.proc, signal.SIGKILL, HANG_GUARD)
                    self.proc = None
                    raise AssertionError(f"{e}\nconfig:\n{self.config_path.read_text()}\n"
                                         f"log:\n{self.log_text()}") from None
                # Another test process took the free port first (ctest -j): pick another.
                self.port = free_port(self.host)
                self.config["server"]["listen"] = [format_address(self.host, self.port)]
                if self.config["admin"].get("listen"):
                    self.admin_port = free_port()
                    self.config["admin"]["listen"] = f"{LOCALHOST}:{self.admin_port}"
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def terminate(self) -> None:
        """Sends SIGTERM (the drain signal) without waiting."""
        self.terminated = True
        self.signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = HANG_GUARD) -> int:
        """Waits for the process to exit on its own and returns its status."""
        try:
            self.exit_status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"smtpgate still running {timeout:g}s after it was told to stop\n"
                                 f"log tail:\n{self.log_tail()}") from None
        return self.exit_status

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM, then a bounded wait (grace + STOP_MARGIN); SIGKILL and fail if it does not exit."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            self.exit_status = self.proc.returncode
            return self.exit_status
        grace = _seconds(self.config["server"].get("shutdown_grace", "30s"))
        # A second SIGTERM may legitimately mean "exit now"; a draining proxy is only awaited.
        sig = 0 if self.terminated else signal.SIGTERM
        self.terminated = True
        status = _stop_group(self.proc, sig, timeout or grace + STOP_MARGIN)
        if status is None:
            raise AssertionError(f"smtpgate did not exit after SIGTERM; killed\nlog tail:\n{self.log_tail()}")
        self.exit_status = status
        return status

    def close(self) -> None:
        """Cleanup: stops the proxy and asserts it ended well (exit 0 on SIGTERM, no crash)."""
        if self.proc is None:
            return
        was_running = self.proc.poll() is None
        status = self.stop()
        if status != 0:
            raise AssertionError(
                f"smtpgate exit status {status} ({'after SIGTERM' if was_running else 'died during the test'}), "
                f"want 0\nlog tail:\n{self.log_tail()}")

    def cleanup_files(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the log -------------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_lines(self) -> list[str]:
        """Complete log lines written so far (a line still being written is left out)."""
        text = self.log_text()
        lines = text.split("\n")
        return [l for l in lines[:-1] if l]  # the last element is '' or a partial line

    def wait_log(self, pattern: str, timeout: float = HANG_GUARD) -> str:
        """Waits for a log line matching the regex `pattern`; returns the line."""
        rx = re.compile(pattern)
        return wait_for(lambda: next((l for l in self.log_lines() if rx.search(l)), None), timeout,
                        f"a log line matching /{pattern}/\nlog tail:\n{self.log_tail()}")

    def events(self) -> list[dict]:
        """The log as a list of dicts (JSON lines, or text lines parsed by the text grammar).
        Lines that do not parse are returned as {'unparsed': line}."""
        entries = []
        for line in self.log_lines():
            if self.config["log"].get("format") == "json":
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = None
            else:
                entry = parse_text_log_line(line)
            entries.append(entry if isinstance(entry, dict) else {"unparsed": line})
        return entries

    def find_events(self, event: str, **match: Any) -> list[dict]:
        return [e for e in self.events()
                if e.get("event") == event and all(str(e.get(k)) == str(v) for k, v in match.items())]

    def wait_event(self, event: str, timeout: float = HANG_GUARD, **match: Any) -> dict:
        """Waits for a log event with the given name and key values; returns it."""
        desc = " ".join([event] + [f"{k}={v}" for k, v in match.items()])
        return wait_for(lambda: next(iter(self.find_events(event, **match)), None), timeout,
                        f"log event '{desc}'\nlog tail:\n{self.log_tail()}")

    def session_of(self, client: SmtpClient) -> str:
        """The session id the proxy logged in the `connect` event of `client`."""
        return str(self.wait_event("connect", client=client.local_address)["session"])

    # -- clients -------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def admin_url(self) -> str:
        return f"http://{LOCALHOST}:{self.admin_port}"

    def connect(self) -> SmtpClient:
        return SmtpClient(self.host, self.port)


_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")


def _seconds(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"bad duration {text!r}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


# --------------------------------------------------------------------------------------------
# IntegrationCase: a TestCase that stops whatever it started
# --------------------------------------------------------------------------------------------

class IntegrationCase(unittest.TestCase):
    """Start helpers register their cleanups, so servers stop also when a test fails.
    Cleanups run in reverse: clients close first, then the proxy, then the backends."""

    maxDiff = None

    def recording_backend(self, **kwargs) -> RecordingBackend:
        backend = RecordingBackend(**kwargs).start()
        self.addCleanup(backend.stop)
        return backend

    def scripted_backend(self, backend: ScriptedBackend | None = None) -> ScriptedBackend:
        backend = (backend or ScriptedBackend()).start()
        self.addCleanup(backend.stop)
        return backend

    def smtp_sink(self, **kwargs) -> SmtpSink:
        sink = SmtpSink(**kwargs)
        self.addCleanup(sink.stop)
        return sink.start()

    def proxy(self, backend_address: str, overrides: dict | None = None, **kwargs) -> Proxy:
        proxy = Proxy(backend_address, overrides, **kwargs)
        self.addCleanup(proxy.cleanup_files)
        self.addCleanup(proxy.close)
        self.addCleanup(self._dump_log_on_failure, proxy)
        return proxy.start()

    def connect(self, proxy: Proxy) -> SmtpClient:
        client = proxy.connect()
        self.addCleanup(client.close)
        return client

    def postfix(self, **kwargs) -> "PostfixInstance":
        """A started PostfixInstance (arguments as its constructor's), stopped and removed by a
        cleanup; its maillog tail is printed when the test fails."""
        instance = PostfixInstance(**kwargs)
        self.addCleanup(instance.stop)
        self.addCleanup(self._dump_postfix_log_on_failure, instance)
        return instance.start()

    def _dump_postfix_log_on_failure(self, instance: "PostfixInstance") -> None:
        if self._failed() or os.environ.get("SMTPGATE_SHOW_LOG"):
            print(f"\n--- Postfix maillog for {self.id()} ---\n{instance.maillog_tail(60)}\n--- end of maillog ---")

    def _failed(self) -> bool:
        """True when this test (or one of its subtests) has failed so far."""
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        return result is not None and any(
            test is self or getattr(test, "test_case", None) is self
            for test, _ in (result.failures + result.errors))

    def _dump_log_on_failure(self, proxy: Proxy) -> None:
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = result is not None and any(
            test is self for test, _ in (result.failures + result.errors))
        if failed or os.environ.get("SMTPGATE_SHOW_LOG"):
            print(f"\n--- smtpgate log for {self.id()} ---\n{proxy.log_tail(60)}\n--- end of log ---")

    # -- assertions with got/want messages -----------------------------------------------------
    def assertReply(self, reply: Reply, want: str, what: str = "") -> None:
        """`want` is a prefix of the reply's first line: '250', '421 4.4.2', ..."""
        if not reply.lines[0].startswith(want):
            self.fail(f"{what + ': ' if what else ''}got reply {str(reply)!r}, want one starting {want!r}")

    def assertClosed(self, client: SmtpClient, what: str = "") -> None:
        rest = client.wait_closed()
        if rest:
            self.fail(f"{what + ': ' if what else ''}got {rest!r} before the close, want nothing more")

    def assertBytesEqual(self, got: bytes, want: bytes, what: str) -> None:
        if got == want:
            return
        i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        self.fail(f"{what}: got {len(got)} bytes, want {len(want)}; first difference at offset {i}: "
                  f"got {got[max(0, i - 20):i + 20]!r}, want {want[max(0, i - 20):i + 20]!r}")


# --------------------------------------------------------------------------------------------
# PostfixInstance: a private, real Postfix started by the test
# --------------------------------------------------------------------------------------------

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"


def postfix_installed() -> bool:
    return os.access(POSTFIX, os.X_OK)


class DaemonInstance:
    """What the private MTA fixtures (PostfixInstance, EximInstance in exim.py) share: a daemon
    in its own process group under one temp directory (`self.dir`), started on a free port
    with retries when a parallel test takes the port first, a watchdog that kills the group
    and removes the directory if the test process dies without stop() (the daemons change
    their credentials, which clears PR_SET_PDEATHSIG, so `die_with_parent` cannot reach them),
    and a stop that sweeps whatever of the group lingers.

    Subclasses set `self.dir`, `self.port`, `self._fixed_port`, and call `_init_daemon()`;
    they implement `_fail_start(why)` (raise with their logs) and `_probe()` (ready means a 220).
    """

    # Reads until the test process says "stopped" or dies (EOF); on EOF it cleans up.
    _WATCHDOG = ("import os, shutil, signal, sys\n"
                 "if sys.stdin.readline().strip() != 'stopped':\n"
                 "    try:\n"
                 "        os.killpg(int(sys.argv[1]), signal.SIGKILL)\n"
                 "    except OSError:\n"
                 "        pass\n"
                 "    shutil.rmtree(sys.argv[2], ignore_errors=True)\n")

    def _init_daemon(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.pgid: Optional[int] = None
        self._watchdog: Optional[subprocess.Popen] = None

    def _run_daemon(self, spawn: Callable[[], subprocess.Popen], what: str,
                    new_port: Callable[[], None] = lambda: None) -> None:
        """Starts the daemon with `spawn()` until it listens on self.port; a port lost to
        another test is replaced by a free one (`new_port()` rewrites the configuration);
        anything else fails the start. Then waits for the 220."""
        for attempt in range(3):
            self.proc = spawn()
            self.pgid = self.proc.pid
            self._start_watchdog()
            try:
                wait_listening(self.port, what=what, proc=self.proc)
                break
            except AssertionError as e:
                # Daemons report a failed bind to syslog, which a container usually lacks, so
                # the port is checked here.
                taken = self.proc.poll() is not None and _port_taken(self.port)
                if not taken or self._fixed_port or attempt == 2:
                    self._fail_start(f"{e}{f'; {self.address} is in use by another socket' if taken else ''}")
                # Another test process took the free port first (ctest -j): pick another.
                self.port = free_port()
                new_port()
        self._probe()

    def _start_watchdog(self) -> None:
        self._release_watchdog()
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", self._WATCHDOG, str(self.pgid), str(self.dir)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def _release_watchdog(self) -> None:
        """Tells the watchdog that stop() did its job, and waits for it to exit."""
        if self._watchdog is None:
            return
        try:
            self._watchdog.stdin.write(b"stopped\n")
            self._watchdog.stdin.close()
        except OSError:
            pass
        try:
            self._watchdog.wait(HANG_GUARD)
        except subprocess.TimeoutExpired:
            self._watchdog.kill()
            self._watchdog.wait(HANG_GUARD)
        self._watchdog = None

    def _finish_stop(self, what: str) -> None:
        """After the daemon itself has stopped (or been killed): waits for the rest of its
        process group (a delivery still finishing, say), SIGKILLs what is left, removes the
        directory and releases the watchdog. (A Linux pid stays reserved while it names a live
        process group.)"""
        if self.proc is not None:
            try:
                wait_for(lambda: not self.processes(), HANG_GUARD, f"{what}'s processes to exit")
            except AssertionError:
                try:
                    os.killpg(self.pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        self._release_watchdog()

    def processes(self) -> list[int]:
        """Live processes of this instance (the daemon's process group), read from /proc."""
        return _group_members(self.pgid) if self.pgid is not None else []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self) -> str:
        return format_address(LOCALHOST, self.port)


# --------------------------------------------------------------------------------------------
# SmtpSink: Postfix's smtp-sink
# --------------------------------------------------------------------------------------------

class SmtpSink(DaemonInstance):
    """/usr/sbin/smtp-sink on 127.0.0.1:<free port>, each message dumped to its own file.

    smtp-sink advertises XCLIENT and XFORWARD (which smtpgate must hide) and PIPELINING. As
    root it runs as nobody, which clears PR_SET_PDEATHSIG: the DaemonInstance watchdog is what
    removes it if the test process dies."""

    def __init__(self, port: int | None = None, extra_args: Iterable[str] = ()):
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.dir = Path(tempfile.mkdtemp(prefix="smtpgate-sink-"))
        self.dump_dir = self.dir / "dump"
        self.dump_dir.mkdir()
        self._out = None
        self._init_daemon()

    def start(self) -> "SmtpSink":
        # smtp-sink drops privileges when started as root and then writes the dumps as that user.
        os.chmod(self.dir, 0o755)
        os.chmod(self.dump_dir, 0o777)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self._out = open(self.dir / "smtp-sink.out", "wb")

        def spawn() -> subprocess.Popen:
            cmd = [SMTP_SINK, *user, "-d", f"{self.dump_dir}/msg.", *self.extra_args,
                   f"{LOCALHOST}:{self.port}", "100"]
            return subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=die_with_parent)

        self._run_daemon(spawn, "smtp-sink")
        return self

    def _probe(self) -> None:
        """smtp-sink answers as soon as it listens; a probe session would only add noise."""

    def _fail_start(self, why: str):
        out = (self.dir / "smtp-sink.out").read_bytes().decode(errors="replace")
        self.stop()
        raise AssertionError(f"smtp-sink did not start: {why}\n{out}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc, signal.SIGTERM, HANG_GUARD)
        if self._out is not None:
            self._out.close()
            self._out = None
        self._finish_stop("smtp-sink")

    def messages(self) -> list[bytes]:
        """The dumped messages (smtp-sink headers included), in file-name order."""
        return [p.read_bytes() for p in sorted(self.dump_dir.iterdir())]

    def clear(self) -> None:
        for p in self.dump_dir.iterdir():
            p.unlink()

    def message_count(self) -> int:
        return sum(1 for _ in self.dump_dir.iterdir())


class PostfixInstance(DaemonInstance):
    """A private Postfix (Debian's 3.7 package) that lives in one temp directory: its own
    config_directory (etc/), queue_directory (queue/), data_directory (data/), maillog_file
    (maillog) and virtual mailboxes (mail/). The system instance is never touched.

    master.cf runs `smtpd` on 127.0.0.1:<free port> and only the services a delivery needs
    (cleanup, qmgr, trivial-rewrite, bounce/defer/trace, virtual, discard, anvil, tlsmgr, postlog).
    Mail for `domain` (example.net) goes to Maildir mailboxes for the listed `users`; any other
    address there gets Postfix's own `550 5.1.1 <x@example.net>: Recipient address rejected:
    User unknown in virtual mailbox table`. Mail for any other domain is discarded: nothing
    leaves the machine, nothing uses DNS.

    `main` adds or replaces main.cf settings; `smtpd` adds `-o name=value` overrides to the
    smtpd service line (e.g. {"smtpd_upstream_proxy_protocol": "haproxy"}).

    Start-up: `postfix -c etc check` creates the queue and data directories with the ownership
    Postfix wants (user `postfix`, group `postdrop`) and validates the setup; then the master
    daemon runs in the foreground as our child, in its own process group (what
    `postfix start-fg` runs, minus the shell in between). Ready means: the master listens on
    the port and an smtpd answers 220 (a probe session, logged as a connect from 127.0.0.1).
    Stop: `postfix -c etc stop`, a bounded wait, SIGKILL to the process group for anything
    left; then the temp directory is removed. Needs root (Postfix itself does).

    The master changes its credentials, so a watchdog (DaemonInstance) cleans up if the test
    process dies without calling stop().
    """

    def __init__(self, users: Iterable[str] = (), domain: str = "example.net",
                 main: dict[str, str] | None = None, smtpd: dict[str, str] | None = None,
                 port: int | None = None):
        self.domain = domain
        self.users = [u if "@" in u else f"{u}@{domain}" for u in users]
        self.main_overrides = dict(main or {})
        self.smtpd_options = dict(smtpd or {})
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="smtpgate-postfix-"))
        self.config_dir = self.dir / "etc"
        self.queue_dir = self.dir / "queue"
        self.data_dir = self.dir / "data"
        self.mail_dir = self.dir / "mail"
        self.maillog_path = self.dir / "maillog"
        self.master_out_path = self.dir / "master.out"
        self._init_daemon()  # self.pgid: the master's process group, every Postfix process
        self._check_output = ""

    # -- configuration -------------------------------------------------------------------------
    def main_cf(self) -> dict[str, str]:
        nobody = pwd.getpwnam("nobody")
        settings = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            # postlogd writes only below maillog_file_prefixes (default /var, /dev/stdout).
            "maillog_file": str(self.maillog_path),
            "maillog_file_prefixes": str(self.dir),
            "myhostname": "postfix.test",
            "mydomain": "postfix.test",
            "myorigin": "postfix.test",
            "mydestination": "",
            # No local domain, so no passwd/aliases lookups (and no proxymap service).
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # No DNS anywhere: the client name is not looked up (logged as unknown[ip]) and
            # the SMTP client would use the hosts file only; it is never used anyway.
            "smtpd_peername_lookup": "no",
            "smtp_host_lookup": "native",
            "smtp_dns_support_level": "disabled",
            "lmtp_host_lookup": "native",
            "default_transport": "discard:not delivered by the test instance",
            "relay_transport": "discard:not delivered by the test instance",
            "local_transport": "discard:not delivered by the test instance",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_maps": f"texthash:{self.config_dir / 'vmailbox'}",
            "virtual_mailbox_base": str(self.mail_dir),
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            # The proxy's recipient cap (100 by default) is what must act, not Postfix's.
            "smtpd_recipient_limit": "1000",
            "biff": "no",
        }
        settings.update(self.main_overrides)
        return settings

    def master_cf(self) -> str:
        def option(name: str, value: str) -> str:
            return f"-o {name}={value}" if not re.search(r"\s", value) else f"-o {{ {name} = {value} }}"
        smtpd = f"{LOCALHOST}:{self.port} inet n - n - - smtpd"
        smtpd += "".join(f"\n  {option(k, v)}" for k, v in self.smtpd_options.items())
        return "\n".join([
            # service type private unpriv chroot wakeup maxproc command
            smtpd,
            "cleanup   unix n - n - 0 cleanup",
            "qmgr      unix n - n 300 1 qmgr",
            "rewrite   unix - - n - - trivial-rewrite",
            "bounce    unix - - n - 0 bounce",
            "defer     unix - - n - 0 bounce",
            "trace     unix - - n - 0 bounce",
            "virtual   unix - n n - 4 virtual",
            "discard   unix - - n - - discard",
            "anvil     unix - - n - 1 anvil",
            "tlsmgr    unix - - n 1000? 1 tlsmgr",
            "postlog   unix-dgram n - n - 1 postlogd",
            "",
        ])

    def _write_config(self) -> None:
        (self.config_dir / "main.cf").write_text(
            "".join(f"{k} = {v}\n" for k, v in self.main_cf().items()))
        (self.config_dir / "master.cf").write_text(self.master_cf())

    def _mailbox_path(self, address: str) -> str:
        local, domain = address.rsplit("@", 1)
        return f"{domain}/{local}/"  # trailing slash: Maildir, one file per message

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "PostfixInstance":
        if os.geteuid() != 0:
            raise AssertionError("PostfixInstance needs root: Postfix's master runs as root and "
                                 "its queue belongs to the postfix user")
        os.chmod(self.dir, 0o755)  # the postfix and nobody users must traverse it
        for d in (self.config_dir, self.queue_dir):
            d.mkdir(mode=0o755)
        self.mail_dir.mkdir(mode=0o755)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail_dir, nobody.pw_uid, nobody.pw_gid)
        (self.config_dir / "vmailbox").write_text(
            "".join(f"{u} {self._mailbox_path(u)}\n" for u in self.users))
        self._write_config()
        # check creates queue/ subdirectories and data/ (postfix:root, postdrop for public/
        # and maildrop/), runs postsuper and warns about ownership problems.
        check = run_tool([POSTFIX, "-c", str(self.config_dir), "check"], text=True)
        self._check_output = check.stdout + check.stderr
        if check.returncode != 0:
            self._fail_start(f"`postfix -c {self.config_dir} check` exited {check.returncode}")
        master = subprocess.run([POSTCONF, "-c", str(self.config_dir), "-h", "daemon_directory"],
                                capture_output=True, text=True, timeout=HANG_GUARD).stdout.strip()
        def spawn() -> subprocess.Popen:
            with open(self.master_out_path, "ab") as out:
                return subprocess.Popen(
                    [os.path.join(master, "master"), "-c", str(self.config_dir), "-s"],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)

        self._run_daemon(spawn, "Postfix master", new_port=self._write_config)
        return self

    def _probe(self) -> None:
        """Waits until an smtpd answers 220 (a broken smtpd setup fails here, with its log)."""
        proxy = "haproxy" in (self.smtpd_options.get("smtpd_upstream_proxy_protocol", "")
                              + self.main_overrides.get("smtpd_upstream_proxy_protocol", ""))
        try:
            with SmtpClient(LOCALHOST, self.port) as probe:
                if proxy:
                    sport = probe.sock.getsockname()[1]
                    probe.send(f"PROXY TCP4 {LOCALHOST} {LOCALHOST} {sport} {self.port}\r\n")
                banner = probe.read_reply()
                if banner.code != 220:
                    raise AssertionError(f"Postfix banner: got {banner}, want 220")
                quit_reply = probe.command("QUIT")
                if quit_reply.code != 221:
                    raise AssertionError(f"Postfix QUIT: got {quit_reply}, want 221")
        except (AssertionError, OSError) as e:
            self._fail_start(f"smtpd did not answer on {self.address}: {e}")

    def _fail_start(self, why: str):
        log = self.maillog_text()
        try:
            out = self.master_out_path.read_text(errors="replace")
        except FileNotFoundError:
            out = ""
        try:
            self.stop()
        finally:
            raise AssertionError(
                f"Postfix did not start: {why}\n--- postfix check ---\n{self._check_output}"
                f"--- master output ---\n{out}--- maillog ---\n{log}--- main.cf ---\n"
                + "".join(f"{k} = {v}\n" for k, v in self.main_cf().items())
                + f"--- master.cf ---\n{self.master_cf()}")

    def stop(self) -> None:
        """`postfix stop`, bounded; SIGKILL to the process group if anything is left; then the
        temp directory goes. Safe to call twice."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    run_tool([POSTFIX, "-c", str(self.config_dir), "stop"], timeout=HANG_GUARD)
                except subprocess.TimeoutExpired:
                    pass
            _stop_group(self.proc, 0, HANG_GUARD)  # waits; SIGKILLs the group if it must
        # The master SIGTERMs its process group on the way out; sweep what still lingers.
        self._finish_stop("Postfix")

    # -- what Postfix logged -------------------------------------------------------------------
    def maillog_text(self) -> str:
        try:
            return self.maillog_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def maillog_lines(self) -> list[str]:
        """Complete lines of Postfix's maillog_file so far (a partial last line is left out)."""
        return [l for l in self.maillog_text().split("\n")[:-1] if l]

    def maillog_tail(self, n: int = 30) -> str:
        return "\n".join(self.maillog_lines()[-n:])

    def grep_maillog(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        return [l for l in self.maillog_lines() if rx.search(l)]

    def wait_maillog(self, pattern: str, timeout: float = HANG_GUARD) -> str:
        """Waits for a maillog line matching the regex `pattern`; returns the line."""
        rx = re.compile(pattern)
        return wait_for(lambda: next((l for l in self.maillog_lines() if rx.search(l)), None), timeout,
                        f"a Postfix log line matching /{pattern}/\nmaillog tail:\n{self.maillog_tail()}")

    @staticmethod
    def queue_id(reply: "Reply | str") -> str:
        """The queue id in Postfix's `250 2.0.0 Ok: queued as 3F2A81C0A2`."""
        m = re.search(r"queued as ([0-9A-Za-z]+)", str(reply))
        if not m:
            raise AssertionError(f"got {str(reply)!r}, want a reply naming a Postfix queue id")
        return m.group(1)

    def wait_done(self, queue_id: str, timeout: float = HANG_GUARD) -> None:
        """Waits until qmgr removed the message `queue_id`: every recipient was delivered (or
        bounced/discarded), so the mailboxes hold all they ever will of it."""
        self.wait_maillog(rf"\b{re.escape(queue_id)}: removed\b", timeout)

    # -- what was delivered --------------------------------------------------------------------
    def mailbox(self, address: str) -> list[bytes]:
        """The messages delivered to `address` (Maildir new/ and cur/), oldest first."""
        base = self.mail_dir / self._mailbox_path(address)
        files = [p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir()]
        return [p.read_bytes() for p in sorted(files, key=lambda p: p.name)]

    def delivered(self) -> dict[str, int]:
        """Number of messages in each listed user's mailbox."""
        return {u: len(self.mailbox(u)) for u in self.users}


def _port_taken(port: int, host: str = LOCALHOST) -> bool:
    """True when binding host:port fails with EADDRINUSE (with SO_REUSEADDR, as Postfix's
    master binds, so a connection in TIME_WAIT does not count)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return False
        except OSError as e:
            return e.errno == errno.EADDRINUSE


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members
