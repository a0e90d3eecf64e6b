"""volume - a thousand messages in, a thousand identical messages out.

Nothing is lost, duplicated or altered when many messages cross the proxy, sequentially over
several sessions (smtplib) and concurrently over 20 sessions (Postfix's smtp-source).
"""

import hashlib
import re
import smtplib
import unittest

from harness import HANG_GUARD, SMTP_SOURCE, IntegrationCase, run_tool

MESSAGES = 1000


def body_of(i: int) -> bytes:
    filler = hashlib.sha256(str(i).encode()).hexdigest().encode()
    return (f"Subject: message {i}\r\nMessage-Id: <{i}@volume.test>\r\n\r\n".encode()
            + b".dot line " + filler + b"\r\n" + filler * (i % 40) + b"\r\n")


class VolumeTest(IntegrationCase):
    def test_a_thousand_messages_over_ten_sessions_with_smtplib(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        sessions = 10
        for s in range(sessions):
            with smtplib.SMTP(gate.host, gate.port, local_hostname="client.test", timeout=HANG_GUARD) as smtp:
                for i in range(s * MESSAGES // sessions, (s + 1) * MESSAGES // sessions):
                    refused = smtp.sendmail(f"s{i}@example.test", [f"r{i}@example.test"], body_of(i))
                    self.assertEqual(refused, {}, f"message {i}")
        got = backend.transactions
        self.assertEqual(len(got), MESSAGES, "messages at the backend")
        wrong = [i for i, t in enumerate(got)
                 if (t.mail_from, t.rcpt_tos, t.content) != (f"s{i}@example.test", [f"r{i}@example.test"], body_of(i))]
        self.assertEqual(wrong, [], "messages that arrived altered or out of order")

    def smtp_source(self, address: str, messages: int, sessions: int) -> None:
        run = run_tool([SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-d", "-l", "2000",
                        "-f", "sender@example.test", "-t", "rcpt@example.test", address],
                       timeout=HANG_GUARD * 6)
        self.assertEqual(run.returncode, 0, f"smtp-source to {address}: {run.stderr.decode(errors='replace')}")

    def test_a_thousand_messages_from_smtp_source_in_20_sessions_reach_smtp_sink(self):
        sink = self.smtp_sink()
        # Reference: one message straight into the sink, to learn the body smtp-source sends.
        self.smtp_source(sink.address, 1, 1)
        (reference,) = sink.messages()
        want_body = reference.split(b"\n\n", 1)[1]
        sink.clear()
        gate = self.proxy(sink.address)
        self.smtp_source(gate.address, MESSAGES, 20)
        messages = sink.messages()
        self.assertEqual(len(messages), MESSAGES, "messages dumped by smtp-sink")
        altered = [m[:300] for m in messages if m.split(b"\n\n", 1)[1] != want_body]
        self.assertEqual(altered, [], f"every body must equal the reference {want_body[:120]!r}...")

    def test_a_thousand_messages_from_smtp_source_reach_the_recording_backend(self):
        backend = self.recording_backend()
        self.smtp_source(backend.address, 1, 1)
        want_body = backend.transactions[0].content.split(b"\r\n\r\n", 1)[1]
        backend.clear()
        gate = self.proxy(backend.address)
        self.smtp_source(gate.address, MESSAGES, 20)
        got = backend.transactions
        self.assertEqual(len(got), MESSAGES, "messages at the backend")
        envelopes = {(t.mail_from, tuple(t.rcpt_tos)) for t in got}
        self.assertEqual(envelopes, {("sender@example.test", ("rcpt@example.test",))})
        altered = [t.content[:300] for t in got if t.content.split(b"\r\n\r\n", 1)[1] != want_body]
        self.assertEqual(altered, [], "every body must equal the reference")
        message_ids = {re.search(rb"Message-Id: (\S+)", t.content).group(1) for t in got}
        self.assertEqual(len(message_ids), MESSAGES, "distinct messages (no duplicates)")


if __name__ == "__main__":
    unittest.main()
