"""Transaction-level protection against a backend that knows its users.

The scripted backend answers 550 5.1.1 for recipients named nobody*, as an MTA does for a
missing mailbox; the proxy classifies those replies, throttles and finally blocks the client
network, and caps recipients per message.
"""

import subprocess
import unittest

from harness import IntegrationCase, ScriptedBackend, SmtpClient, smtpgate_binary


class TransactionLimitsCase(IntegrationCase):
    def client(self, gate, source: str) -> SmtpClient:
        client = SmtpClient(gate.host, gate.port, source=source)
        self.addCleanup(client.close)
        return client


class RecipientCapTest(TransactionLimitsCase):
    def test_recipients_past_the_cap_get_452_and_never_reach_the_backend(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        c = self.client(gate, "127.0.0.2")
        c.greet()
        self.assertReply(c.command("MAIL FROM:<list@example.org>"), "250")
        for i in range(1, 103):
            self.assertReply(c.command(f"RCPT TO:<u{i}@example.net>"), "250" if i <= 100 else "452 4.5.3",
                             f"RCPT {i}")
        self.assertReply(c.command("DATA"), "354")
        c.send(b"Subject: many\r\n\r\nhello\r\n.\r\n")
        self.assertReply(c.read_reply(), "250")
        (txn,) = backend.wait_transactions(1)
        self.assertEqual(len(txn.rcpt_tos), 100, "recipients the backend accepted")
        self.assertFalse(any(b"u101@" in line for line in backend.commands()), "RCPT 101 was forwarded")


class BadRecipientTest(TransactionLimitsCase):
    def test_a_dictionary_attack_is_throttled_then_boxed_while_others_pass(self):
        backend = self.scripted_backend(ScriptedBackend(unknown_users="nobody"))
        gate = self.proxy(backend.address, {"limits": {
            "bad_recipient_throttle": {"after": 2, "delay": "100ms"},
            "bad_recipient_rate": {"limit": "5/1h", "block_for": "1h"},
            "soft_errors": 0, "max_errors": 0,
        }})
        attacker = self.client(gate, "127.0.0.2")
        self.assertReply(attacker.read_reply(), "220")
        self.assertReply(attacker.command("EHLO bot.test"), "250")
        self.assertReply(attacker.command("MAIL FROM:<bot@example.org>"), "250")
        for i in range(1, 6):
            self.assertReply(attacker.command(f"RCPT TO:<nobody{i}@example.net>"), "550 5.1.1", f"RCPT {i}")
        gate.wait_log(r"rcpt_flood session=\S+ client=127\.0\.0\.2:\d+ reason=bad_recipient_throttle")
        # The sixth unknown user is over 5 per hour: its 550, then the penalty box.
        attacker.send_line("RCPT TO:<nobody6@example.net>")
        self.assertReply(attacker.read_reply(), "550 5.1.1")
        self.assertReply(attacker.read_reply(), "421 4.7.0", "penalty box")
        self.assertClosed(attacker)
        gate.wait_log(r"reject session=\S+ client=127\.0\.0\.2:\d+ reason=bad_recipient_rate code=421 "
                      r"observed=6 limit=5 key=127\.0\.0\.2 action=block")
        opened = len(backend.connections)
        # New connections from the boxed network are refused at admission: no backend cost.
        again = self.client(gate, "127.0.0.2")
        self.assertReply(again.read_reply(), "421 4.7.0 gate.test Too many unknown recipients")
        self.assertClosed(again)
        self.assertEqual(len(backend.connections), opened, "backend connections for a boxed client")
        # Another network is untouched.
        with SmtpClient(gate.host, gate.port, source="127.0.0.3") as other:
            other.greet()
            self.assertReply(other.command("MAIL FROM:<friend@example.org>"), "250")
            self.assertReply(other.command("RCPT TO:<alice@example.net>"), "250")
            self.assertReply(other.command("QUIT"), "221")

    def test_observe_mode_logs_the_box_but_lets_the_client_go_on(self):
        backend = self.scripted_backend(ScriptedBackend(unknown_users="nobody"))
        gate = self.proxy(backend.address, {
            "limits": {"bad_recipient_rate": {"limit": "2/1h"}, "bad_recipient_throttle": {"after": 0},
                       "soft_errors": 0, "max_errors": 0},
            "modes": {"bad_recipient_rate": "observe"},
        })
        c = self.client(gate, "127.0.0.2")
        c.greet()
        self.assertReply(c.command("MAIL FROM:<bot@example.org>"), "250")
        for i in range(1, 5):
            self.assertReply(c.command(f"RCPT TO:<nobody{i}@example.net>"), "550 5.1.1")
        self.assertReply(c.command("QUIT"), "221")
        gate.wait_log(r"would_reject session=\S+ client=127\.0\.0\.2:\d+ reason=bad_recipient_rate")
        with SmtpClient(gate.host, gate.port, source="127.0.0.2") as again:
            self.assertReply(again.read_reply(), "220", "observe mode boxes nobody")


class IntervalTest(TransactionLimitsCase):
    def test_the_same_sender_too_soon_gets_451_and_the_backend_never_sees_it(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {
            "interval": {"sender": "1h", "helo": "1h"},
            "exception": [{"match": "@lists.example.org", "interval": "0s"}],
        })
        c = self.client(gate, "127.0.0.2")
        self.assertReply(c.read_reply(), "220")
        self.assertReply(c.command("EHLO worm.example"), "250")
        for sender, want in [("worm@example.com", "250"), ("worm@example.com", "451 4.7.1"),
                             ("news@lists.example.org", "250"), ("news@lists.example.org", "250"),
                             ("other@example.com", "250")]:
            self.assertReply(c.command(f"MAIL FROM:<{sender}>"), want, f"MAIL FROM {sender}")
            self.assertReply(c.command("RSET"), "250")
        mails = [l for l in backend.commands() if l.upper().startswith(b"MAIL FROM")]
        self.assertEqual(len(mails), 4, f"MAIL commands forwarded: got {mails!r}")
        gate.wait_log(r"reject session=\S+ client=127\.0\.0\.2:\d+ reason=sender_interval code=451 "
                      r"observed=\d+m?s limit=1h detail=worm@example\.com")
        # The HELO name is throttled the same way in the next session.
        with SmtpClient(gate.host, gate.port, source="127.0.0.3") as again:
            self.assertReply(again.read_reply(), "220")
            self.assertReply(again.command("EHLO worm.example"), "451 4.7.1")
            self.assertReply(again.command("QUIT"), "221")


class LearnTest(TransactionLimitsCase):
    def test_observe_mode_then_learn_suggests_exceptions_that_load(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"interval": {"sender": "1h"},
                                            "modes": {"sender_interval": "observe"}})
        c = self.client(gate, "127.0.0.2")
        c.greet()
        for _ in range(3):
            self.assertReply(c.command("MAIL FROM:<news@lists.example.org>"), "250", "observe mode")
            self.assertReply(c.command("RSET"), "250")
        gate.wait_log(r"would_reject .* reason=sender_interval .* detail=news@lists\.example\.org")
        learned = subprocess.run([smtpgate_binary(), "learn", str(gate.log_path)], capture_output=True,
                                 text=True, timeout=30)
        self.assertEqual(learned.returncode, 0, learned.stderr)
        self.assertIn('[[exception]]\nmatch = "news@lists.example.org"\ninterval = "0s"', learned.stdout)
        # The suggestion is configuration: appended to the proxy's own file it checks clean.
        config = gate.config_path.read_text() + "\n" + learned.stdout
        path = gate.dir / "learned.toml"
        path.write_text(config)
        check = subprocess.run([smtpgate_binary(), "--check-config", "--config", str(path)],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stderr)


if __name__ == "__main__":
    unittest.main()
