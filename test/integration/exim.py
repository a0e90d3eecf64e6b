"""exim - a private, real Exim for the integration tests (EximInstance).

The binary is Debian 12's exim4-daemon-heavy (Exim 4.96, built with PROXY protocol support),
unpacked under /opt/smtpgate-test/exim by scripts/install-exim.sh: Debian's exim4 packages
cannot be installed next to Postfix, which the other tests need.

What the binary insists on, and how the fixture meets it:
  - it looks up its compiled-in user, Debian-exim, before anything else (install-exim.sh
    creates it); the daemon runs as that user once it has bound its port, so the log and
    mail directories belong to it;
  - `-C <private config>` is honoured for root, but a process Exim re-executes for a delivery
    runs as Debian-exim and, the file not being in TRUSTED_CONFIG_LIST
    (/etc/exim4/trusted_configs), loses root ("exim user lost privilege for using -C
    option"; install-exim.sh strips the setuid bit besides); so `deliver_drop_privilege`
    makes every delivery run as Debian-exim, and the mailboxes are written as Debian-exim;
  - `exim_path` names the private binary, or re-executions would look for /usr/sbin/exim4.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Iterable, Optional

from harness import (HANG_GUARD, LOCALHOST, DaemonInstance, Reply, SmtpClient, _stop_group,
                     free_port, wait_for)

EXIM_PREFIX = Path("/opt/smtpgate-test/exim")
EXIM = EXIM_PREFIX / "usr/sbin/exim4"
EXIM_USER = "Debian-exim"  # compiled into Debian's binary (EXIM_USER=ref:Debian-exim)
INSTALL_HINT = ("run scripts/install-exim.sh as root: it unpacks Debian's exim4-daemon-heavy under "
                f"{EXIM_PREFIX} (Exim cannot be installed next to Postfix)")


def exim_problem() -> Optional[str]:
    """Why the private Exim cannot run here, or None when it can."""
    if not os.access(EXIM, os.X_OK):
        return f"Exim is not installed: {EXIM} is missing; {INSTALL_HINT}"
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return f"Exim's user {EXIM_USER} does not exist; {INSTALL_HINT}"
    return None


def proxy_v1_header(client: SmtpClient, server_port: int, source: str = LOCALHOST) -> str:
    """A PROXY v1 line for `client`'s own connection, naming `source` as the client."""
    sport = client.sock.getsockname()[1]
    return f"PROXY TCP4 {source} {LOCALHOST} {sport} {server_port}\r\n"


class EximInstance(DaemonInstance):
    """A private Exim daemon that lives in one temp directory: its configuration (exim.conf),
    spool (spool/), logs (log/mainlog, log/rejectlog, log/paniclog) and Maildir mailboxes
    (mail/<local part>/). Nothing of the system's is used, nothing leaves the machine.

    The daemon listens on 127.0.0.1:<free port>. With `proxy_protocol` (the default)
    `hosts_proxy = 127.0.0.1`: every connection from 127.0.0.1, which is where smtpgate connects
    from, must start with a PROXY v1 or v2 header. Mail for `domain` (example.net) is accepted
    for the listed `users` and delivered at once to their mailboxes; other addresses there get
    Exim's `550 Unrouteable address`, other domains `550 relay not permitted`.

    `main` adds or replaces main-section settings ({"proxy_protocol_timeout": "1s"});
    `mail_acl` is ACL text run for MAIL before it is accepted (a ratelimit, say).

    Start-up: the daemon runs in the foreground (`-bdf`) as our child in its own process group;
    ready means it listens and answers 220 to a probe (which sends a PROXY header when Exim
    wants one); a failed start raises with Exim's logs. Stop: SIGTERM to the process group, a
    bounded wait, SIGKILL for anything left; then the temp directory goes. Exim changes its
    credentials, so the watchdog of DaemonInstance cleans up if the test process dies first.
    Needs root.
    """

    def __init__(self, users: Iterable[str] = (), domain: str = "example.net",
                 proxy_protocol: bool = True, main: dict[str, str] | None = None,
                 mail_acl: str = "", port: int | None = None):
        self.domain = domain
        self.users = [u if "@" in u else f"{u}@{domain}" for u in users]
        self.proxy_protocol = proxy_protocol
        self.main_overrides = dict(main or {})
        self.mail_acl = mail_acl
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="smtpgate-exim-"))
        self.config_path = self.dir / "exim.conf"
        self.spool_dir = self.dir / "spool"
        self.log_dir = self.dir / "log"
        self.mail_dir = self.dir / "mail"
        self.stderr_path = self.dir / "daemon.stderr"
        self._init_daemon()

    # -- configuration -------------------------------------------------------------------------
    def main_settings(self) -> dict[str, str]:
        settings = {
            "exim_path": str(EXIM),
            "primary_hostname": "exim.test",
            "qualify_domain": self.domain,
            "spool_directory": str(self.spool_dir),
            "log_file_path": f"{self.log_dir}/%slog",
            "pid_file_path": str(self.dir / "exim.pid"),
            "local_interfaces": LOCALHOST,
            "daemon_smtp_ports": str(self.port),
            # PROXY protocol: the only connections expected from 127.0.0.1 are the proxy's.
            "hosts_proxy": LOCALHOST if self.proxy_protocol else "",
            # Every delivery as Debian-exim: a re-executed Exim drops root for a -C config.
            "deliver_drop_privilege": "true",
            "never_users": "root",
            "queue_only": "false",
            "acl_smtp_mail": "acl_check_mail",
            "acl_smtp_rcpt": "acl_check_rcpt",
            # <= lines name the proxy (PRX=), deliveries their recipients.
            "log_selector": "+proxy +received_recipients +smtp_connection",
            # No ident, no TLS, no inherited environment, no disk space checks.
            "rfc1413_hosts": "",
            "tls_advertise_hosts": "",
            "keep_environment": "",
            "check_spool_space": "0",
            "check_log_space": "0",
            # No reverse lookups asked for; the one Exim makes anyway for the address in a
            # PROXY header is kept short.
            "host_lookup": "",
            "dns_retrans": "1s",
            "dns_retry": "1",
        }
        settings.update(self.main_overrides)
        return settings

    def config_text(self) -> str:
        local_parts = " : ".join(sorted({u.rsplit("@", 1)[0] for u in self.users})) or "!*"
        mail_acl = textwrap.indent(textwrap.dedent(self.mail_acl).strip("\n") + "\n", "  ")
        main = "".join(f"{k} = {v}\n" for k, v in self.main_settings().items())
        return f"""# EximInstance: a private test instance, see test/integration/exim.py
{main}domainlist local_domains = {self.domain}

begin acl

acl_check_mail:
{mail_acl if self.mail_acl.strip() else ""}  accept

acl_check_rcpt:
  deny    message = relay not permitted
          !domains = +local_domains
  require verify = recipient
  accept

begin routers

mailbox:
  driver = accept
  domains = +local_domains
  local_parts = {local_parts}
  transport = maildir

begin transports

maildir:
  driver = appendfile
  directory = {self.mail_dir}/${{local_part_data}}
  maildir_format
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add
  user = {EXIM_USER}
  group = {EXIM_USER}

begin retry

*  *  F,1m,1m
"""

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "EximInstance":
        problem = exim_problem()
        if not problem and os.geteuid() != 0:
            problem = ("EximInstance needs root: Exim keeps its privileges with -C only for root, "
                       f"and its files belong to {EXIM_USER}")
        if problem:
            self.stop()
            raise AssertionError(problem)
        exim = pwd.getpwnam(EXIM_USER)
        os.chmod(self.dir, 0o755)  # Debian-exim must traverse it
        for d in (self.spool_dir, self.log_dir, self.mail_dir):
            d.mkdir(mode=0o750)
            os.chown(d, exim.pw_uid, exim.pw_gid)
        def spawn() -> subprocess.Popen:
            # Exim wants its configuration owned by root and writable by nobody else.
            self.config_path.write_text(self.config_text())
            os.chmod(self.config_path, 0o644)
            with open(self.stderr_path, "ab") as err:
                return subprocess.Popen([str(EXIM), "-C", str(self.config_path), "-bdf"],
                                        stdout=err, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)

        self._run_daemon(spawn, "Exim daemon")
        return self

    def _probe(self) -> None:
        """Waits until Exim answers 220 (with a PROXY header naming 127.0.0.1 when it wants one,
        so the probe is not held for proxy_protocol_timeout)."""
        try:
            with SmtpClient(LOCALHOST, self.port) as probe:
                if self.proxy_protocol:
                    probe.send(proxy_v1_header(probe, self.port))
                banner = probe.read_reply()
                if banner.code != 220:
                    raise AssertionError(f"Exim banner: got {banner}, want 220")
                quit_reply = probe.command("QUIT")
                if quit_reply.code != 221:
                    raise AssertionError(f"Exim QUIT: got {quit_reply}, want 221")
        except (AssertionError, OSError) as e:
            self._fail_start(f"Exim did not answer on {self.address}: {e}")

    def _fail_start(self, why: str):
        report = self.logs_report()
        try:
            self.stop()
        finally:
            raise AssertionError(f"Exim did not start: {why}\n{report}"
                                 f"--- exim.conf ---\n{self.config_text()}")

    def stop(self) -> None:
        """SIGTERM to the daemon's process group, bounded; SIGKILL for anything left; then the
        temp directory goes. Safe to call twice."""
        if self.proc is not None:
            _stop_group(self.proc, signal.SIGTERM, HANG_GUARD)  # SIGKILLs the group if it must
        # A delivery process may still be finishing; it is in the same process group.
        self._finish_stop("Exim")

    # -- what Exim logged ----------------------------------------------------------------------
    def log_text(self, name: str = "main") -> str:
        """log/<name>log: "main", "reject" or "panic"."""
        try:
            return (self.log_dir / f"{name}log").read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def mainlog_lines(self) -> list[str]:
        """Complete lines of Exim's main log so far (a partial last line is left out)."""
        return [l for l in self.log_text().split("\n")[:-1] if l]

    def mainlog_tail(self, n: int = 30) -> str:
        return "\n".join(self.mainlog_lines()[-n:])

    def logs_report(self, n: int = 40) -> str:
        """The main log's tail, the panic log and the daemon's own output, for failure messages."""
        try:
            stderr = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            stderr = ""
        return (f"--- Exim mainlog (tail) ---\n{self.mainlog_tail(n)}\n"
                f"--- Exim paniclog ---\n{self.log_text('panic')}"
                f"--- Exim daemon output ---\n{stderr}")

    def grep_mainlog(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        return [l for l in self.mainlog_lines() if rx.search(l)]

    def wait_mainlog(self, pattern: str, timeout: float = HANG_GUARD) -> str:
        """Waits for a main log line matching the regex `pattern`; returns the line."""
        rx = re.compile(pattern)
        return wait_for(lambda: next((l for l in self.mainlog_lines() if rx.search(l)), None), timeout,
                        f"an Exim log line matching /{pattern}/\n{self.logs_report()}")

    @staticmethod
    def message_id(reply: "Reply | str") -> str:
        """The message id in Exim's `250 OK id=1xVSxk-0007Qr-29`."""
        m = re.search(r"\bid=([0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2,4})\b", str(reply))
        if not m:
            raise AssertionError(f"got {str(reply)!r}, want a reply naming an Exim message id")
        return m.group(1)

    def received_line(self, message_id: str) -> str:
        """The `<=` line Exim logged when it accepted `message_id`."""
        return self.wait_mainlog(rf" {re.escape(message_id)} <= ")

    def wait_done(self, message_id: str, timeout: float = HANG_GUARD) -> None:
        """Waits until Exim logged `Completed` for `message_id`: every recipient was delivered
        (or bounced), so the mailboxes hold all they ever will of it."""
        self.wait_mainlog(rf" {re.escape(message_id)} Completed$", timeout)

    # -- what was delivered --------------------------------------------------------------------
    def mailbox(self, address: str) -> list[bytes]:
        """The messages delivered to `address` (Maildir new/ and cur/), oldest first."""
        base = self.mail_dir / address.rsplit("@", 1)[0]
        files = [p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir()]
        return [p.read_bytes() for p in sorted(files, key=lambda p: p.name)]
