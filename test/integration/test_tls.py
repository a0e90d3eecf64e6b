"""tls - STARTTLS terminated in the proxy (RFC 3207).

With tls.certificate and tls.key set, the proxy offers STARTTLS in EHLO replies, answers it
itself and runs the handshake; the backend keeps its plain connection and sees the client's
EHLO again. Plaintext pipelined after STARTTLS is dropped, never executed (CVE-2011-0411).
Certificates are made by the test with openssl; changed files are picked up without a restart.
"""

import os
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import unittest
from pathlib import Path

from harness import (HANG_GUARD, IntegrationCase, make_certificate, smtpgate_binary, run_tool,
                     wait_for)

BODY = b"Subject: over TLS\r\n\r\nline one\r\n.dot-leading line\r\n\xe9 8-bit\r\n"


def no_verify() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def certificate_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


class StartTlsTest(IntegrationCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="smtpgate-tls-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cert, self.key = make_certificate(self.dir, "gate.test")

    def tls_proxy(self, backend, **tls):
        settings = {"certificate": str(self.cert), "key": str(self.key)}
        settings.update(tls)
        return self.proxy(backend.address, {"tls": settings})

    def starttls(self, gate, context: ssl.SSLContext | None = None):
        """A client in TLS after EHLO and STARTTLS."""
        client = self.connect(gate)
        _, ehlo = client.greet()
        self.assertIn("STARTTLS", ehlo.texts, "offered before TLS")
        self.assertReply(client.command("STARTTLS"), "220 2.0.0")
        client.start_tls(context or no_verify())
        return client

    def peer_certificate(self, gate) -> bytes:
        client = self.starttls(gate)
        der = client.sock.getpeercert(binary_form=True)
        client.command("QUIT")
        client.close()
        return der

    def test_swaks_sends_over_tls_and_the_backend_gets_the_message(self):
        backend = self.recording_backend()
        gate = self.tls_proxy(backend)
        run = run_tool(["swaks", "--server", gate.host, "--port", str(gate.port), "--tls",
                        "--helo", "client.test", "--from", "a@example.org", "--to",
                        "b@example.net", "--body", "sent over TLS"])
        transcript = run.stdout.decode(errors="replace") + run.stderr.decode(errors="replace")
        self.assertEqual(run.returncode, 0, f"swaks transcript:\n{transcript}")
        self.assertIn("TLS started", transcript)
        [tx] = backend.wait_transactions(1)
        self.assertEqual((tx.mail_from, tx.rcpt_tos), ("a@example.org", ["b@example.net"]))
        self.assertIn(b"sent over TLS", tx.content)
        event = gate.wait_event("tls")
        self.assertIn(event["version"], ("TLSv1.2", "TLSv1.3"))

    def test_smtplib_starttls_relays_byte_exact_and_stops_offering_starttls(self):
        backend = self.recording_backend()
        gate = self.tls_proxy(backend)
        with smtplib.SMTP(gate.host, gate.port, timeout=HANG_GUARD) as smtp:
            smtp.ehlo("client.test")
            self.assertTrue(smtp.has_extn("starttls"), "STARTTLS offered in plaintext")
            code, _ = smtp.starttls(context=no_verify())
            self.assertEqual(code, 220)
            smtp.ehlo("client.test")
            self.assertFalse(smtp.has_extn("starttls"), "STARTTLS offered again inside TLS")
            smtp.sendmail("a@example.org", ["b@example.net"], BODY)
        [tx] = backend.wait_transactions(1)
        self.assertBytesEqual(tx.content.rstrip(b"\r\n"), BODY.rstrip(b"\r\n"), "message content")
        session = backend.wait_transactions(1)[0].session
        verbs = [line.split(b" ")[0].upper() for line in backend.commands_of(session)]
        self.assertEqual(verbs[:2], [b"EHLO", b"EHLO"],
                         "the backend sees the client's EHLO again after TLS, and no STARTTLS")

    def test_plaintext_pipelined_after_starttls_is_not_executed(self):
        backend = self.recording_backend()
        gate = self.tls_proxy(backend)
        client = self.connect(gate)
        client.greet()
        client.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.org>\r\n")
        self.assertReply(client.read_reply(), "220 2.0.0")
        client.start_tls(no_verify())
        self.assertReply(client.command("MAIL FROM:<a@example.org>"), "503 5.5.1",
                         "EHLO comes first inside TLS")
        self.assertReply(client.command("EHLO client.test"), "250")
        self.assertReply(client.command("QUIT"), "221")
        client.wait_closed()
        gate.wait_event("disconnect", reason="quit")
        commands = backend.commands()
        self.assertNotIn(b"RSET", commands, "injected plaintext reached the backend")
        self.assertFalse([c for c in commands if b"injected" in c], commands)
        event = gate.wait_event("reject", reason="starttls_pipelining")
        self.assertEqual(int(event["bytes"]), len(b"RSET\r\nMAIL FROM:<injected@example.org>\r\n"))

    def test_identity_commands_inside_tls_are_refused_and_never_forwarded(self):
        backend = self.recording_backend()
        gate = self.tls_proxy(backend)
        client = self.starttls(gate)
        self.assertReply(client.command("EHLO client.test"), "250")
        client.send(b"XCLIENT ADDR=192.0.2.1\r\nXFORWARD ADDR=192.0.2.1\r\n"
                    b"PROXY TCP4 192.0.2.1 127.0.0.1 1 25\r\nNOOP\r\n")
        replies = client.read_replies(4)
        self.assertEqual([r.code for r in replies], [550, 550, 550, 250], [str(r) for r in replies])
        self.assertReply(client.command("QUIT"), "221")
        gate.wait_event("disconnect", reason="quit")
        leaked = [c for c in backend.commands() if c.split(b" ")[0].upper()
                  in (b"XCLIENT", b"XFORWARD", b"PROXY")]
        self.assertEqual(leaked, [], "identity commands reached the backend")

    def test_the_proxy_ends_tls_with_close_notify_after_quit_and_after_a_421(self):
        # RFC 8446 6.1: without close_notify a client cannot tell the end of the session from
        # a cut connection (OpenSSL 3: "unexpected eof while reading"). Python ignores that by
        # default; this client does not.
        strict = no_verify()
        strict.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
        backend = self.recording_backend()
        gate = self.tls_proxy(backend)
        quitting, idle = self.starttls(gate, strict), self.starttls(gate, strict)
        for client in (quitting, idle):
            self.assertReply(client.command("EHLO client.test"), "250")
        self.assertReply(quitting.command("QUIT"), "221")
        gate.terminate()  # the idle session gets 421 4.3.2 at once
        self.assertReply(idle.read_reply(), "421 4.3.2")
        for client in (quitting, idle):
            client.sock.settimeout(HANG_GUARD)
            self.assertEqual(client.sock.recv(64), b"", "the end of TLS, then of TCP")
        self.assertEqual(gate.wait_exit(), 0)

    def test_a_client_that_does_not_handshake_is_closed_without_a_reply(self):
        backend = self.recording_backend()
        gate = self.tls_proxy(backend)
        client = self.connect(gate)
        client.greet()
        self.assertReply(client.command("STARTTLS"), "220 2.0.0")
        client.send(b"EHLO still-plaintext.test\r\n")
        self.assertEqual(client.wait_closed(), b"", "no plaintext reply after the 220")
        gate.wait_event("tls_error", reason="handshake")
        gate.wait_event("disconnect", reason="tls_handshake")

    def test_the_handshake_has_its_own_deadline(self):
        backend = self.recording_backend()
        gate = self.tls_proxy(backend, handshake_timeout="1s")
        client = self.connect(gate)
        client.greet()
        self.assertReply(client.command("STARTTLS"), "220 2.0.0")
        self.assertEqual(client.wait_closed(), b"")
        gate.wait_event("tls_error", reason="handshake_timeout")

    def test_changed_certificate_files_are_used_without_a_restart(self):
        backend = self.recording_backend()
        gate = self.tls_proxy(backend)
        original = certificate_der(self.cert)
        self.assertEqual(self.peer_certificate(gate), original)

        renewed_cert, renewed_key = make_certificate(self.dir, "renewed.test", name="renewed")
        # Half a renewal first: the new certificate with the old key does not load; the old
        # pair stays in service and the failure is logged.
        shutil.copy(renewed_cert, self.dir / "staged.crt")
        os.replace(self.dir / "staged.crt", self.cert)
        def failed_reload():
            # Files are looked at when a handshake starts (at most once a second).
            served = self.peer_certificate(gate)
            self.assertEqual(served, original, "the old pair stays in service")
            return gate.find_events("tls_reload", status="failed")
        wait_for(failed_reload, what="the failed reload to be logged")

        os.replace(renewed_key, self.key)
        wait_for(lambda: self.peer_certificate(gate) == certificate_der(renewed_cert),
                 what="the renewed certificate in a new handshake")
        gate.wait_event("tls_reload", status="ok")
        self.assertTrue(gate.running, "the proxy kept running")

    def test_check_config_refuses_a_key_that_does_not_match(self):
        _, other_key = make_certificate(self.dir, "other.test", name="other")
        config = self.dir / "mismatch.toml"
        config.write_text(f'[tls]\ncertificate = "{self.cert}"\nkey = "{other_key}"\n')
        run = subprocess.run([smtpgate_binary(), "--config", str(config), "--check-config"],
                             capture_output=True, text=True, timeout=HANG_GUARD)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("mismatch", run.stderr)
        self.assertIn(str(other_key), run.stderr)


if __name__ == "__main__":
    unittest.main()
