"""exim - smtpgate in front of a real Exim (a private instance, see exim.py's EximInstance).

Exim 4.96 (Debian 12) has no XCLIENT: the client's address reaches it in a PROXY protocol
header, which Exim takes from the hosts in `hosts_proxy` (here 127.0.0.1, where the proxy
connects from). What Exim decides is checked in its own log and mailboxes:
  - with backend.identity = "proxy-v2" or "proxy-v1", a message sent from 127.0.0.2 is received
    from 127.0.0.2: Exim's EHLO greeting, its `<=` log line (H=... [127.0.0.2] PRX=127.0.0.1)
    and the Received: header of the delivered message all name the client;
  - Exim's per-client limits (a ratelimit ACL) count each real client, not the proxy;
  - with "none", Exim, which expects a header from the proxy, refuses every command with
    `503 Command refused, required Proxy negotiation failed` and receives nothing: the header
    is what carries the address;
  - the fixture itself.
The private Exim comes from scripts/install-exim.sh; without it these tests fail, saying so.
"""

import os
import re
import unittest
from unittest import mock

import exim as exim_module
from exim import EximInstance, proxy_v1_header
from harness import IntegrationCase, SmtpClient, port_refuses

DOMAIN = "example.net"
USERS = [f"u{i}@{DOMAIN}" for i in range(1, 4)]
PROXY_FAILED = "503 Command refused, required Proxy negotiation failed"


def first_header(message: bytes, name: str) -> str:
    """The first `name:` header of `message`, unfolded."""
    head = message.split(b"\n\n", 1)[0].decode("latin-1")
    unfolded = re.sub(r"\n[ \t]+", " ", head)
    return next((line for line in unfolded.split("\n") if line.lower().startswith(name.lower() + ":")), "")


class EximCase(IntegrationCase):
    def exim(self, **kwargs) -> EximInstance:
        """A started EximInstance (arguments as its constructor's), stopped and removed by a
        cleanup; its logs are printed when the test fails. A missing Exim fails the test."""
        instance = EximInstance(**kwargs)
        self.addCleanup(instance.stop)
        self.addCleanup(self._dump_exim_log_on_failure, instance)
        return instance.start()

    def _dump_exim_log_on_failure(self, instance: EximInstance) -> None:
        if self._failed() or os.environ.get("SMTPGATE_SHOW_LOG"):
            print(f"\n--- Exim logs for {self.id()} ---\n{instance.logs_report(60)}--- end of Exim logs ---")

    def client(self, gate, source: str) -> SmtpClient:
        client = SmtpClient(gate.host, gate.port, source=source)
        self.addCleanup(client.close)
        return client

    def assertLogged(self, exim: EximInstance, line: str, pattern: str, what: str) -> None:
        if not re.search(pattern, line):
            self.fail(f"{what}: got {line!r}, want a match for /{pattern}/\n{exim.logs_report()}")


class ProxyProtocolTest(EximCase):
    def test_with_proxy_v2_exim_receives_the_message_from_the_real_client(self):
        self.check_exim_sees_the_client("proxy-v2")

    def test_with_proxy_v1_exim_receives_the_message_from_the_real_client(self):
        self.check_exim_sees_the_client("proxy-v1")

    def check_exim_sees_the_client(self, identity: str) -> None:
        exim = self.exim(users=USERS)
        gate = self.proxy(exim.address, {"backend": {"identity": identity}})
        client = self.client(gate, "127.0.0.2")
        banner, ehlo = client.greet()
        self.assertReply(banner, "220 exim.test ESMTP Exim", "Exim's banner, relayed")
        self.assertReply(ehlo, "250-exim.test Hello client.test [127.0.0.2]", "Exim's EHLO greeting")
        final = client.send_message("sender@example.org", ["u1@example.net"],
                                    f"Subject: via {identity}\r\n\r\nfrom 127.0.0.2\r\n".encode())
        self.assertReply(final, "250 OK id=", "end of data")
        self.assertReply(client.command("QUIT"), "221")
        message_id = exim.message_id(final)
        exim.wait_done(message_id)

        # The <= line: the client's HELO name and address, and the proxy it came through.
        self.assertLogged(exim, exim.received_line(message_id),
                          r" <= sender@example\.org H=(\S+ )?\(client\.test\) \[127\.0\.0\.2\] "
                          r"P=esmtp PRX=127\.0\.0\.1 ", f"Exim's <= line for {message_id}")
        closed = exim.wait_mainlog(r"SMTP connection from .*\(client\.test\) .* closed by QUIT")
        self.assertLogged(exim, closed, r"\[127\.0\.0\.2\] closed by QUIT$", "Exim's end of session line")
        (message,) = exim.mailbox("u1@example.net")
        received = first_header(message, "Received")
        self.assertRegex(received, r"^Received: from (\S+ \()?\[127\.0\.0\.2\]",
                         "Received: header of the delivered message")
        self.assertNotIn("127.0.0.1", received, "Received: header of the delivered message")
        self.assertIn(b"from 127.0.0.2", message, "the delivered message")


class PerClientLimitTest(EximCase):
    # One message per hour per sending host ($sender_host_address is the default key). The
    # condition is true at the limit, and a host's first MAIL measures 1.0, so the limit is
    # 1.5: the first MAIL passes, the second (about 2.0) is over.
    ONE_MESSAGE_PER_HOUR = """
        defer   ratelimit = 1.5 / 1h / strict / per_mail
                message = rate limit for $sender_host_address: $sender_rate per $sender_rate_period
    """

    def test_exim_ratelimit_counts_each_real_client_not_the_proxy(self):
        exim = self.exim(users=USERS, mail_acl=self.ONE_MESSAGE_PER_HOUR)
        gate = self.proxy(exim.address, {"backend": {"identity": "proxy-v2"}})

        busy = self.client(gate, "127.0.0.2")
        busy.greet()
        self.assertReply(busy.command("MAIL FROM:<busy@example.org>"), "250", "127.0.0.2's first MAIL")
        self.assertReply(busy.command("RSET"), "250")
        self.assertReply(busy.command("MAIL FROM:<busy@example.org>"),
                         "451 rate limit for 127.0.0.2:", "127.0.0.2's second MAIL, over its limit")

        # Through the same proxy, another client has its own count.
        other = self.client(gate, "127.0.0.3")
        other.greet()
        self.assertReply(other.command("MAIL FROM:<other@example.org>"), "250",
                         "127.0.0.3's first MAIL, while 127.0.0.2 is over its limit")
        for client in (busy, other):
            self.assertReply(client.command("QUIT"), "221")

        deferred = exim.wait_mainlog(r"temporarily rejected MAIL <busy@example\.org>")
        self.assertLogged(exim, deferred, r" H=(\S+ )?\(client\.test\) \[127\.0\.0\.2\] temporarily",
                          "Exim's log line for the deferred MAIL")
        self.assertEqual(exim.grep_mainlog(r"rejected MAIL"), [deferred], "MAIL commands Exim refused")


class MissingHeaderTest(EximCase):
    def test_without_a_proxy_header_exim_refuses_every_command_and_receives_nothing(self):
        exim = self.exim(users=USERS)
        gate = self.proxy(exim.address, {"backend": {"identity": "none"}})
        client = self.client(gate, "127.0.0.2")

        # Exim waits proxy_protocol_timeout (3s) for the header, then greets and refuses all
        # but QUIT.
        self.assertReply(client.read_reply(), "220 exim.test", "Exim's banner, after its wait for a header")
        ehlo = client.command("EHLO client.test")
        self.assertEqual(str(ehlo), PROXY_FAILED, "EHLO without a PROXY header")
        for command in ("HELO client.test", "MAIL FROM:<sender@example.org>", "RCPT TO:<u1@example.net>"):
            self.assertEqual(str(client.command(command)), PROXY_FAILED, f"{command} without a PROXY header")
        self.assertReply(client.command("QUIT"), "221")

        exim.wait_mainlog(r"SMTP connection from \[127\.0\.0\.1\] closed by QUIT$")
        self.assertEqual(exim.grep_mainlog(r"127\.0\.0\.2| <= "), [],
                         f"Exim log lines naming 127.0.0.2 or receiving a message\n{exim.logs_report()}")
        self.assertEqual(exim.mailbox("u1@example.net"), [], "u1's mailbox")


class UnexpectedHeaderTest(EximCase):
    def test_a_header_to_an_exim_without_hosts_proxy_is_caught_and_nothing_is_received(self):
        # Exim reads the header as a command and answers it right after its banner; smtpgate
        # sees the reply nobody asked for and ends the session before replies go astray.
        exim = self.exim(users=USERS, proxy_protocol=False)
        for identity in ("proxy-v1", "proxy-v2"):
            with self.subTest(identity=identity):
                gate = self.proxy(exim.address, {"backend": {"identity": identity}})
                client = self.client(gate, "127.0.0.2")
                # Caught with the banner when Exim's answer came in the same read, else before
                # the first command is forwarded.
                reply = client.read_reply()
                if reply.code == 220:
                    reply = client.command("EHLO client.test")
                self.assertReply(reply, "421 4.3.0")
                self.assertClosed(client)
                event = gate.wait_event("backend_error", reason="unsolicited_reply")
                self.assertIn('unasked: "500 unrecognized command"', event["detail"])
                self.assertIn("hosts_proxy", event["detail"])
        self.assertEqual(exim.mailbox("u1@example.net"), [], "u1's mailbox")


class EximInstanceTest(EximCase):
    """The fixture itself, without smtpgate: what the tests above rely on."""

    def test_listed_users_get_mail_unknown_users_and_other_domains_550(self):
        exim = self.exim(users=["u1@example.net"])
        client = SmtpClient("127.0.0.1", exim.port)
        self.addCleanup(client.close)
        client.send(proxy_v1_header(client, exim.port, source="127.0.0.9"))
        banner, ehlo = client.greet()
        self.assertReply(ehlo, "250-exim.test Hello client.test [127.0.0.9]", "EHLO after a PROXY v1 header")
        self.assertReply(client.command("MAIL FROM:<s@example.org>"), "250 OK")
        self.assertReply(client.command("RCPT TO:<u1@example.net>"), "250 Accepted")
        self.assertReply(client.command("RCPT TO:<nobody@example.net>"), "550 Unrouteable address")
        self.assertReply(client.command("RCPT TO:<someone@elsewhere.test>"), "550 relay not permitted")
        self.assertReply(client.command("DATA"), "354")
        client.send(b"Subject: fixture\r\n\r\nstraight to Exim\r\n.\r\n")
        final = client.read_reply()
        self.assertReply(final, "250 OK id=")
        self.assertReply(client.command("QUIT"), "221")
        message_id = exim.message_id(final)
        exim.wait_done(message_id)
        (message,) = exim.mailbox("u1@example.net")
        self.assertIn(b"straight to Exim", message, "the delivered message")
        delivered = exim.wait_mainlog(rf" {message_id} => ")
        self.assertLogged(exim, delivered, r" => u1 <u1@example\.net> R=mailbox T=maildir$", "delivery line")

    def test_stop_ends_every_process_and_removes_every_file(self):
        exim = EximInstance(users=["u1@example.net"])
        self.addCleanup(exim.stop)
        exim.start()
        self.assertIn(exim.pgid, exim.processes(), "the daemon runs in its own process group")
        exim.stop()
        self.assertEqual(exim.processes(), [], "Exim processes left after stop()")
        self.assertFalse(exim.dir.exists(), f"{exim.dir} left after stop()")
        self.assertTrue(port_refuses("127.0.0.1", exim.port), f"port {exim.port} still accepts after stop()")

    def test_a_failed_start_reports_exims_complaint_and_leaves_nothing(self):
        exim = EximInstance(users=["u1@example.net"], main={"bogus_option": "1"})
        self.addCleanup(exim.stop)
        with self.assertRaises(AssertionError) as raised:
            exim.start()
        self.assertIn('main option "bogus_option" unknown', str(raised.exception),
                      "the start-up failure quotes Exim")
        self.assertEqual(exim.processes(), [], "Exim processes left after a failed start")
        self.assertFalse(exim.dir.exists(), f"{exim.dir} left after a failed start")

    def test_a_missing_exim_fails_and_says_how_to_install_it(self):
        with mock.patch.object(exim_module, "EXIM", exim_module.EXIM_PREFIX / "no-such-exim"):
            with self.assertRaises(AssertionError) as raised:
                EximInstance().start()
        self.assertIn("scripts/install-exim.sh", str(raised.exception), "the failure message")


if __name__ == "__main__":
    unittest.main()
