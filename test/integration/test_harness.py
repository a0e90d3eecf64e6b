"""harness - the backends, clients and parsers the suite relies on, proven without smtpgate.

If these fail, a proxy test's verdict means nothing. They also show that the vulnerable
backend used by test_smuggling really is vulnerable, so those tests can fail.
"""

import unittest

from harness import (SMTP_SOURCE, run_tool, EVERYTHING_EHLO, IntegrationCase, ScriptedBackend,
                     SmtpClient, has_bare_newline, parse_text_log_line, port_refuses, wire_body,
                     LOCALHOST)

SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n"


class RecordingBackendTest(IntegrationCase):
    def test_records_every_command_line_including_unknown_verbs(self):
        backend = self.recording_backend()
        with SmtpClient(LOCALHOST, backend.port) as c:
            c.greet()
            c.command("XCLIENT ADDR=192.0.2.1")
            c.command("FOO bar")
            c.command("QUIT")
        backend.wait_idle()
        self.assertEqual(backend.commands(),
                         [b"EHLO client.test", b"XCLIENT ADDR=192.0.2.1", b"FOO bar", b"QUIT"])

    def test_advertises_pipelining_and_8bitmime(self):
        backend = self.recording_backend()
        with SmtpClient(LOCALHOST, backend.port) as c:
            _, ehlo = c.greet()
        for keyword in ("PIPELINING", "8BITMIME"):
            self.assertIn(keyword, ehlo.texts, f"EHLO reply {ehlo}")

    def test_keeps_content_byte_exact_and_unstuffed(self):
        backend = self.recording_backend()
        body = b".leading dot\r\n..two\r\n\x00\xff\x80 8-bit\r\n" + b"x" * 5000 + b"\r\n"
        with SmtpClient(LOCALHOST, backend.port) as c:
            c.greet()
            final = c.send_message("a@example.test", ["b@example.test"], body)
        self.assertReply(final, "250 2.0.0 Ok: queued as RB00001")
        (t,) = backend.transactions
        self.assertBytesEqual(t.content, body, "content")
        self.assertBytesEqual(t.wire, wire_body(body), "wire bytes")

    def test_rejects_content_with_the_marker(self):
        backend = self.recording_backend()
        with SmtpClient(LOCALHOST, backend.port) as c:
            c.greet()
            final = c.send_message("a@example.test", ["b@example.test"], b"X-Reject-Me: yes\r\n")
        self.assertEqual(final.lines, [backend.REJECT_REPLY])


class ScriptedBackendTest(IntegrationCase):
    def test_lenient_backend_is_vulnerable_to_smuggling(self):
        # Without a proxy in front, each vector smuggles a second transaction from evil@x.
        for separator in [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r\n.\r"]:
            with self.subTest(separator=separator):
                backend = self.scripted_backend(ScriptedBackend.lenient())
                with SmtpClient(LOCALHOST, backend.port) as c:
                    c.greet()
                    for line in ("MAIL FROM:<good@example.test>", "RCPT TO:<v@y>", "DATA"):
                        c.command(line)
                    c.send(b"A" + separator + SMUGGLED + b".\r\n")
                    c.read_replies(2)
                senders = [t.mail_from for t in backend.transactions]
                self.assertEqual(senders, ["good@example.test", "evil@x"])

    def test_strict_backend_is_not(self):
        backend = self.scripted_backend()
        with SmtpClient(LOCALHOST, backend.port) as c:
            c.greet()
            final = c.send_message("good@example.test", ["v@y"], b"A\n.\n" + SMUGGLED)
        self.assertReply(final, "250 2.0.0 Ok: queued as SB00001")
        self.assertEqual([t.mail_from for t in backend.transactions], ["good@example.test"])
        self.assertTrue(has_bare_newline(backend.transactions[0].content))

    def test_banner_554(self):
        backend = self.scripted_backend(ScriptedBackend.banner_554())
        with SmtpClient(LOCALHOST, backend.port) as c:
            self.assertReply(c.read_reply(), "554 5.3.2")

    def test_silent_after_banner_records_but_never_answers(self):
        backend = self.scripted_backend(ScriptedBackend.silent_after_banner())
        with SmtpClient(LOCALHOST, backend.port) as c:
            c.read_reply()
            c.send_line("EHLO client.test")
            backend.wait_line(lambda l: l == b"EHLO client.test", what="EHLO")
            self.assertFalse(c.readable(0))

    def test_closes_in_data(self):
        backend = self.scripted_backend(ScriptedBackend.closes_in_data())
        with SmtpClient(LOCALHOST, backend.port) as c:
            c.greet()
            for line in ("MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"):
                c.command(line)
            c.send(b"Subject: x\r\n")
            self.assertClosed(c)
        self.assertTrue(backend.closed_in_data.is_set())
        self.assertEqual(backend.transactions, [])

    def test_advertises_everything(self):
        backend = self.scripted_backend(ScriptedBackend.advertises_everything())
        with SmtpClient(LOCALHOST, backend.port) as c:
            _, ehlo = c.greet()
        self.assertEqual(ehlo.texts, EVERYTHING_EHLO)

    def test_refused_port(self):
        self.assertTrue(port_refuses(LOCALHOST, ScriptedBackend.refused_port()))


class PostfixToolsTest(IntegrationCase):
    def test_smtp_source_to_smtp_sink(self):
        sink = self.smtp_sink()
        run = run_tool([SMTP_SOURCE, "-s", "5", "-m", "50", "-d", "-f", "a@example.test",
                        "-t", "b@example.test", sink.address])
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(sink.message_count(), 50)

    def test_smtp_sink_advertises_xclient(self):
        sink = self.smtp_sink()
        with SmtpClient(LOCALHOST, sink.port) as c:
            _, ehlo = c.greet()
        self.assertTrue(any(t.startswith("XCLIENT") for t in ehlo.texts), str(ehlo))


class TextLogGrammarTest(unittest.TestCase):
    def test_parses_the_documented_shape(self):
        cases = [
            ("2026-11-23T09:40:00.123Z info connect session=1a2b3c client=127.0.0.1:40000 server=127.0.0.1:2525",
             {"ts": "2026-11-23T09:40:00.123Z", "level": "info", "event": "connect", "session": "1a2b3c",
              "client": "127.0.0.1:40000", "server": "127.0.0.1:2525"}),
            ('2026-11-23T09:40:00.123Z warning reject session=1 reason="a b \\"c\\"" code=550',
             {"ts": "2026-11-23T09:40:00.123Z", "level": "warning", "event": "reject", "session": "1",
              "reason": 'a b "c"', "code": "550"}),
            ("2026-11-23T09:40:00.123Z info started", {"ts": "2026-11-23T09:40:00.123Z", "level": "info",
                                                        "event": "started"}),
        ]
        for line, want in cases:
            with self.subTest(line=line):
                self.assertEqual(parse_text_log_line(line), want)

    def test_rejects_other_shapes(self):
        for line in ["connect session=1", "2026-11-23 09:40:00 info connect",
                     "2026-11-23T09:40:00.123Z info connect reason=two words"]:
            with self.subTest(line=line):
                self.assertIsNone(parse_text_log_line(line))


if __name__ == "__main__":
    unittest.main()
