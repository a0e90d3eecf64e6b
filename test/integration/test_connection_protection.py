"""Connection-level protection: admission limits, greet pause, access rules, modes.

Each client is a loopback address of its own (127.0.0.2, 127.0.0.3, ...), bound as the
source address, so per-client limits can be told apart. Every refused client must cost the
backend nothing: the backend's connection count is asserted each time.
"""

import subprocess
import unittest

from harness import IntegrationCase, Proxy, SmtpClient, smtpgate_binary, to_toml


class ConnectionProtectionCase(IntegrationCase):
    def client(self, gate, source: str) -> SmtpClient:
        client = SmtpClient(gate.host, gate.port, source=source)
        self.addCleanup(client.close)
        return client

    def session_ok(self, gate, source: str) -> None:
        """A whole polite session: the backend's banner, then QUIT."""
        with SmtpClient(gate.host, gate.port, source=source) as c:
            self.assertReply(c.read_reply(), "220 backend.test", f"banner for {source}")
            self.assertReply(c.command("QUIT"), "221")
            c.wait_closed()


class GreetPauseTest(ConnectionProtectionCase):
    def test_a_client_that_talks_first_gets_554_and_never_reaches_the_backend(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"greet_pause": {"delay": "2s"}})
        slammer = self.client(gate, "127.0.0.2")
        slammer.send(b"EHLO slammer.test\r\n")
        self.assertReply(slammer.read_reply(), "554 5.5.1", "pre-greeting traffic")
        # sendmail nullserver: every command gets 554, QUIT gets 221.
        self.assertReply(slammer.read_reply(), "554 5.5.1", "the early EHLO itself")
        self.assertReply(slammer.command("MAIL FROM:<a@example.org>"), "554 5.5.1")
        self.assertReply(slammer.command("QUIT"), "221")
        self.assertClosed(slammer)
        gate.wait_log(r"reject session=\S+ client=127\.0\.0\.2:\d+ reason=pregreet code=554 bytes=19")
        self.assertEqual(backend.connections_opened, 0, "backend connections for a slammer")

    def test_a_patient_client_gets_the_backend_banner_after_the_pause(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"greet_pause": {"delay": "300ms"}})
        self.session_ok(gate, "127.0.0.2")
        self.assertEqual(backend.connections_opened, 1)

    def test_drop_mode_closes_the_slammer(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"greet_pause": {"delay": "2s", "on_pregreet": "drop"}})
        slammer = self.client(gate, "127.0.0.2")
        slammer.send(b"HELO x\r\n")
        self.assertReply(slammer.read_reply(), "554 5.5.1")
        self.assertClosed(slammer)
        self.assertEqual(backend.connections_opened, 0)

    def test_an_allow_rule_skips_the_pause_and_observe_mode_only_logs(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {
            "greet_pause": {"delay": "2s"},
            "modes": {"greet_pause": "observe"},
        })
        early = self.client(gate, "127.0.0.2")
        early.send(b"NOOP\r\n")
        # Observe mode: logged as would_reject, then relayed as if nothing happened.
        self.assertReply(early.read_reply(), "220 backend.test")
        self.assertReply(early.read_reply(), "250")
        gate.wait_log(r"would_reject session=\S+ client=127\.0\.0\.2:\d+ reason=pregreet")


class ConcurrencyTest(ConnectionProtectionCase):
    def test_the_connection_over_the_per_client_limit_gets_421_others_are_untouched(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"limits": {"concurrent_per_client": 2}})
        first, second = self.client(gate, "127.0.0.2"), self.client(gate, "127.0.0.2")
        for c in (first, second):
            self.assertReply(c.read_reply(), "220 backend.test")
        third = self.client(gate, "127.0.0.2")
        self.assertReply(third.read_reply(), "421 4.7.0", "third concurrent connection")
        self.assertClosed(third)
        gate.wait_log(r"reject session=\S+ client=127\.0\.0\.2:\d+ reason=concurrent_per_client "
                      r"code=421 observed=3 limit=2 key=127\.0\.0\.2")
        # Another client network is counted on its own.
        self.session_ok(gate, "127.0.0.3")
        self.assertEqual(backend.connections_opened, 3, "backend connections (2 + the other client)")

    def test_tempfail_mode_answers_451_to_transactions_without_a_backend(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"limits": {"concurrent_per_client": 1,
                                                       "on_exceed": "tempfail"}})
        first = self.client(gate, "127.0.0.2")
        self.assertReply(first.read_reply(), "220 backend.test")
        over = self.client(gate, "127.0.0.2")
        self.assertReply(over.read_reply(), "220 gate.test ESMTP", "the proxy's own banner")
        self.assertReply(over.command("EHLO client.test"), "250 gate.test")
        self.assertReply(over.command("MAIL FROM:<a@example.org>"), "451 4.7.0")
        self.assertReply(over.command("RCPT TO:<b@example.net>"), "451 4.7.0")
        self.assertReply(over.command("QUIT"), "221")
        self.assertClosed(over)
        self.assertEqual(backend.connections_opened, 1)


class RateTest(ConnectionProtectionCase):
    def test_a_burst_beyond_the_rate_gets_421_while_rule_exempted_clients_pass(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {
            "limits": {"connection_rate": "3/60s"},
            "rule": [
                {"match": "127.0.0.4", "action": "allow"},
                {"match": "127.0.0.5/32", "connection_rate": "off"},
            ],
        })
        for _ in range(3):
            self.session_ok(gate, "127.0.0.2")
        over = self.client(gate, "127.0.0.2")
        self.assertReply(over.read_reply(), "421 4.7.0", "fourth connection within the window")
        self.assertClosed(over)
        gate.wait_log(r"reject session=\S+ client=127\.0\.0\.2:\d+ reason=connection_rate "
                      r"code=421 observed=4 limit=3")
        for source in ("127.0.0.4", "127.0.0.5"):
            for _ in range(5):
                self.session_ok(gate, source)
        self.assertEqual(backend.connections_opened, 3 + 10)

    def test_observe_mode_lets_everything_through_and_logs_it(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"limits": {"connection_rate": "1/60s"},
                                            "modes": {"connection_rate": "observe"}})
        for _ in range(3):
            self.session_ok(gate, "127.0.0.2")
        gate.wait_log(r"would_reject session=\S+ client=127\.0\.0\.2:\d+ reason=connection_rate "
                      r"code=421 observed=2 limit=1")
        self.assertEqual(len([l for l in gate.log_lines() if " would_reject " in l]), 2)
        self.assertEqual(backend.connections_opened, 3)

    def test_host_interval_refuses_a_client_that_comes_back_too_soon(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"interval": {"host": "1h"}})
        self.session_ok(gate, "127.0.0.2")
        again = self.client(gate, "127.0.0.2")
        self.assertReply(again.read_reply(), "421 4.7.0", "second connection within the interval")
        gate.wait_log(r"reject session=\S+ client=127\.0\.0\.2:\d+ reason=host_interval code=421 "
                      r"observed=\d+m?s limit=1h")
        self.session_ok(gate, "127.0.0.3")


class AccessRuleTest(ConnectionProtectionCase):
    def test_a_deny_rule_gets_554_5_7_1_and_the_most_specific_rule_wins(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"rule": [
            {"match": "127.0.0.0/24", "action": "deny"},
            {"match": "127.0.0.6", "action": "allow"},
        ]})
        denied = self.client(gate, "127.0.0.2")
        self.assertReply(denied.read_reply(), "554 5.7.1")
        self.assertClosed(denied)
        self.session_ok(gate, "127.0.0.6")
        self.assertEqual(backend.connections_opened, 1)


class HostNameRuleTest(ConnectionProtectionCase):
    def test_a_rule_matches_the_forward_confirmed_host_name(self):
        # /etc/hosts names 127.0.0.1 "localhost" (and localhost back to 127.0.0.1); 127.0.0.2
        # has no name. The lookups go through nsswitch like any other, on the resolver pool.
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {
            "server": {"reverse_lookup": True, "reverse_lookup_timeout": "5s"},
            "rule": [{"match": "localhost", "action": "deny"}],
        })
        named = self.client(gate, "127.0.0.1")
        self.assertReply(named.read_reply(), "554 5.7.1", "client named localhost")
        self.assertClosed(named)
        gate.wait_log(r"reject session=\S+ client=127\.0\.0\.1:\d+ reason=access code=554 .*client_name=localhost")
        self.session_ok(gate, "127.0.0.2")
        self.assertEqual(backend.connections_opened, 1)

    def test_a_name_rule_without_reverse_lookups_is_a_configuration_error(self):
        backend = self.recording_backend()
        proxy = Proxy(backend.address, {"rule": [{"match": "localhost", "action": "deny"}]})
        self.addCleanup(proxy.cleanup_files)
        proxy.config_path.write_text(to_toml(proxy.config))
        check = subprocess.run([smtpgate_binary(), "--check-config", "--config", str(proxy.config_path)],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 1, f"exit status; stderr {check.stderr!r}")
        self.assertIn("needs server.reverse_lookup = true", check.stderr)


class AcceptRateTest(ConnectionProtectionCase):
    def test_accept_pacing_delays_rather_than_refuses(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"accept_rate": 2},
                                            "log": {"level": "debug"}})
        clients = [self.client(gate, f"127.0.0.{10 + i}") for i in range(6)]
        for i, c in enumerate(clients):
            self.assertReply(c.read_reply(), "220 backend.test", f"client {i} after pacing")
        self.assertTrue(any(" accept_paced " in l for l in gate.log_lines()),
                        "want accept_paced lines in the log: 6 connections at 2/s must be paced")
        self.assertFalse(any(" reject " in l for l in gate.log_lines()), "nobody refused")


if __name__ == "__main__":
    unittest.main()
