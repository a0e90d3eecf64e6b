"""relay - smtpgate relays a session to the backend command by command.

The client sees the backend's banner and replies; EHLO is relayed with the extensions the
proxy cannot honour removed; SMTP commands are forwarded as sent and their replies come back in
command order, also when the client pipelines them (RFC 2920) among commands the proxy answers
itself.
"""

import socket
import unittest

from harness import IntegrationCase, ScriptedBackend, SmtpClient, EVERYTHING_EHLO

HIDDEN_EXTENSIONS = ("XCLIENT", "XFORWARD", "CHUNKING", "BINARYMIME", "STARTTLS")


def keyword(ehlo_text: str) -> str:
    return ehlo_text.split(" ", 1)[0].upper()


class BannerAndEhloTest(IntegrationCase):
    def test_client_sees_the_backends_banner(self):
        backend = self.scripted_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        self.assertEqual(client.read_reply().lines, ["220 scripted.test ESMTP scripted"])

    def test_ehlo_reply_hides_xclient_xforward_chunking_binarymime_starttls(self):
        backend = self.scripted_backend(ScriptedBackend.advertises_everything())
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        _, ehlo = client.greet()
        # The backend's last line (STARTTLS) is hidden too, so the proxy re-terminates the reply.
        self.assertEqual(ehlo.lines, ["250-scripted.test", "250-PIPELINING", "250-SIZE 10240000",
                                      "250-8BITMIME", "250 ENHANCEDSTATUSCODES"],
                         f"backend advertised {EVERYTHING_EHLO}")
        self.assertEqual(backend.lines()[-1], b"EHLO client.test", "EHLO is forwarded as sent")

    def test_ehlo_reply_from_smtp_sink_loses_only_the_hidden_lines(self):
        sink = self.smtp_sink()
        with SmtpClient("127.0.0.1", sink.port) as direct:
            _, want = direct.greet()
        proxy = self.proxy(sink.address)
        client = self.connect(proxy)
        _, got = client.greet()
        # smtp-sink ends its reply with an empty "250 " line; an empty keyword is no extension
        # (RFC 5321 4.1.1.1 ehlo-line), so the proxy may drop it.
        want_texts = [t for t in want.texts if t and keyword(t) not in HIDDEN_EXTENSIONS]
        self.assertEqual(got.texts, want_texts, f"direct EHLO reply was {want}")
        self.assertNotEqual(want_texts, want.texts, "smtp-sink should advertise XCLIENT/XFORWARD")

    def test_helo_is_relayed(self):
        backend = self.scripted_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        client.read_reply()
        self.assertEqual(client.command("HELO client.test").lines, ["250 scripted.test"])
        self.assertEqual(backend.lines(), [b"HELO client.test"])


class ForwardedCommandsTest(IntegrationCase):
    # Every reply of the scripted backend names the line it answers, so a relayed reply
    # cannot be mistaken for one the proxy made up.
    FORWARDED = [
        ("EHLO client.test", None),
        ("MAIL FROM:<a@example.test>", ["250 2.1.0 scripted: MAIL FROM:<a@example.test>"]),
        ("RCPT TO:<b@example.test>", ["250 2.1.5 scripted: RCPT TO:<b@example.test>"]),
        ("RSET", ["250 2.0.0 scripted: RSET"]),
        ("NOOP", ["250 2.0.0 scripted: NOOP"]),
        ("VRFY postmaster", ["252 2.0.0 scripted: VRFY postmaster"]),
        ("EXPN staff", ["252 2.0.0 scripted: EXPN staff"]),
        ("HELP", ["214-2.0.0 scripted: HELP", "214 2.0.0 scripted: end of HELP"]),
        ("ETRN example.test", ["250 2.0.0 scripted: ETRN example.test"]),
        ("AUTH PLAIN AHVzZXIAcGFzcw==", ["235 2.7.0 scripted: AUTH PLAIN AHVzZXIAcGFzcw=="]),
        ("HELO client.test", ["250 scripted.test"]),
        ("QUIT", ["221 2.0.0 scripted: QUIT bye"]),
    ]

    def test_each_command_is_forwarded_as_sent_and_its_reply_relayed(self):
        backend = self.scripted_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        client.read_reply()
        for line, want in self.FORWARDED:
            with self.subTest(command=line):
                reply = client.command(line)
                if want is not None:
                    self.assertEqual(reply.lines, want)
        self.assertClosed(client, "after QUIT")
        self.assertEqual(backend.lines(), [line.encode() for line, _ in self.FORWARDED])

    def test_data_streams_the_body_and_relays_the_final_reply_unchanged(self):
        backend = self.scripted_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        client.greet()
        client.command("MAIL FROM:<a@example.test>")
        client.command("RCPT TO:<b@example.test>")
        self.assertEqual(client.command("DATA").lines,
                         ["354 2.0.0 scripted: send data, end with <CRLF>.<CRLF>"])
        client.send(b"Subject: hello\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(client.read_reply().lines, ["250 2.0.0 Ok: queued as SB00001"])
        self.assertEqual(backend.transactions[0].content, b"Subject: hello\r\n\r\nbody\r\n")

    def test_auth_continuation_lines_go_to_the_backend(self):
        backend = self.scripted_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        client.greet()
        self.assertEqual(client.command("AUTH LOGIN").lines, ["334 VXNlcm5hbWU6"])
        self.assertEqual(client.command("dXNlcg==").lines, ["334 UGFzc3dvcmQ6"])
        self.assertEqual(client.command("cGFzcw==").lines, ["235 2.7.0 scripted: AUTH LOGIN ok"])
        self.assertEqual(backend.lines()[-3:], [b"AUTH LOGIN", b"dXNlcg==", b"cGFzcw=="])

    def test_verbs_are_case_insensitive(self):
        backend = self.recording_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        client.read_reply()
        self.assertReply(client.command("ehlo client.test"), "250")
        self.assertReply(client.command("mail from:<a@example.test>"), "250")
        self.assertReply(client.command("rcpt to:<b@example.test>"), "250")
        self.assertReply(client.command("noop"), "250")
        self.assertEqual(backend.saw_verb(b"MAIL"), [b"mail from:<a@example.test>"])


class PipeliningTest(IntegrationCase):
    def test_pipelined_commands_get_replies_in_order_also_when_answered_locally(self):
        backend = self.scripted_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        client.greet()
        batch = [
            ("MAIL FROM:<a@example.test>", "250 2.1.0 scripted: MAIL FROM:<a@example.test>"),
            ("XCLIENT ADDR=192.0.2.1", "550 5.7.0"),
            ("RCPT TO:<b@example.test>", "250 2.1.5 scripted: RCPT TO:<b@example.test>"),
            ("FOO bar", "500 5.5.1"),
            ("RCPT TO:<c@example.test>", "250 2.1.5 scripted: RCPT TO:<c@example.test>"),
            ("BDAT 0 LAST", "502 5.5.1"),
            ("NOOP 1", "250 2.0.0 scripted: NOOP 1"),
            ("MAIL", "501 5.5.4"),
            ("DATA", "354 2.0.0 scripted"),
        ]
        client.send(b"".join(line.encode() + b"\r\n" for line, _ in batch))
        replies = client.read_replies(len(batch))
        got = [(line, r.lines[0]) for (line, _), r in zip(batch, replies)]
        for (line, want), (_, first) in zip(batch, got):
            self.assertTrue(first.startswith(want), f"reply to {line!r}: got {first!r}, want {want!r}\nall: {got}")
        client.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        self.assertEqual(client.read_reply().lines, ["250 2.0.0 Ok: queued as SB00001"])
        self.assertEqual(client.read_reply().lines, ["221 2.0.0 scripted: QUIT bye"])
        t = backend.transactions[0]
        self.assertEqual((t.mail_from, t.rcpt_tos), ("a@example.test", ["b@example.test", "c@example.test"]))

    def test_a_hundred_pipelined_commands_in_one_write(self):
        backend = self.scripted_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        client.greet()
        # 8 of them refused locally: below the error limits (limits.soft_errors, max_errors).
        lines, want = [], []
        for i in range(100):
            if i % 12 == 11:
                lines.append(f"FOO {i}")
                want.append("500 5.5.1")
            else:
                lines.append(f"NOOP {i}")
                want.append(f"250 2.0.0 scripted: NOOP {i}")
        client.send("".join(l + "\r\n" for l in lines))
        got = [r.lines[0] for r in client.read_replies(len(lines))]
        mismatches = [(l, g, w) for l, g, w in zip(lines, got, want) if not g.startswith(w)]
        self.assertEqual(mismatches, [], "(command, got, want) for each reply out of order or wrong")
        self.assertEqual(backend.lines()[1:], [l.encode() for l in lines if l.startswith("NOOP")])

    def test_pipelined_transaction_with_recording_backend(self):
        backend = self.recording_backend()
        proxy = self.proxy(backend.address)
        client = self.connect(proxy)
        client.greet()
        client.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n")
        codes = [r.code for r in client.read_replies(4)]
        self.assertEqual(codes, [250, 250, 250, 354])
        client.send(b"pipelined body\r\n.\r\nRSET\r\nMAIL FROM:<d@example.test>\r\nRCPT TO:<e@example.test>\r\nDATA\r\n")
        replies = client.read_replies(5)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 250, 354], [str(r) for r in replies])
        client.send(b"second\r\n.\r\n")
        self.assertReply(client.read_reply(), "250 2.0.0 Ok: queued as RB00002")
        got = [(t.mail_from, t.rcpt_tos, t.content) for t in backend.transactions]
        self.assertEqual(got, [("a@example.test", ["b@example.test", "c@example.test"], b"pipelined body\r\n"),
                               ("d@example.test", ["e@example.test"], b"second\r\n")])


class ListenTest(IntegrationCase):
    @unittest.skipUnless(socket.has_ipv6, "no IPv6")
    def test_listens_on_ipv6_loopback(self):
        backend = self.recording_backend()
        proxy = self.proxy(backend.address, listen_host="::1")
        client = self.connect(proxy)
        banner, ehlo = client.greet()
        self.assertReply(banner, "220 backend.test")
        self.assertReply(ehlo, "250")
        self.assertReply(client.send_message("a@example.test", ["b@example.test"], b"over ipv6\r\n"), "250")
        self.assertEqual(backend.transactions[0].content, b"over ipv6\r\n")


if __name__ == "__main__":
    unittest.main()
