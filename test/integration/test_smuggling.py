"""smuggling - SMTP smuggling (CVE-2023-51764, -51765, -51766) cannot pass through smtpgate.

A client hides a second transaction behind a non-standard end-of-data (`<LF>.<LF>`,
`<CR>.<CR>`, ...) hoping the backend honours it. With bare_newline = "normalize" (the default)
the proxy turns every bare CR or LF into CRLF and keeps a lone dot that ended with a bare line
ending as content (sent stuffed, as ".."), so the only end-of-data the backend ever sees is the
client's real <CRLF>.<CRLF>. With bare_newline = "reject" such content gets 521 and the session
ends with nothing delivered.
"""

import unittest

from harness import IntegrationCase, ScriptedBackend, has_bare_newline

SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n"

# (name, separator the client puts between "A" and the smuggled commands, content the
#  backend must queue: the separator as CRLF-normalised content)
VECTORS = [
    ("<LF>.<LF>", b"\n.\n", b"A\r\n.\r\n" + SMUGGLED),
    ("<CR>.<CR>", b"\r.\r", b"A\r\n.\r\n" + SMUGGLED),
    ("<CRLF>.<LF>", b"\r\n.\n", b"A\r\n.\r\n" + SMUGGLED),
    ("<LF>.<CRLF>", b"\n.\r\n", b"A\r\n.\r\n" + SMUGGLED),
    ("<CRLF>.<CR>", b"\r\n.\r", b"A\r\n.\r\n" + SMUGGLED),
    ("<CRLF><NUL>.<CRLF>", b"\r\n\x00.\r\n", b"A\r\n\x00.\r\n" + SMUGGLED),
]


def open_transaction(client, sender="good@example.test"):
    client.greet()
    for line in (f"MAIL FROM:<{sender}>", "RCPT TO:<v@y>"):
        reply = client.command(line)
        assert reply.code == 250, f"{line}: got {reply}, want 250"
    reply = client.command("DATA")
    assert reply.code == 354, f"DATA: got {reply}, want 354"


class NormalizeTest(IntegrationCase):
    def deliver(self, backend, separator: bytes):
        gate = self.proxy(backend.address)
        client = self.connect(gate)
        open_transaction(client)
        client.send(b"A" + separator + SMUGGLED + b".\r\n")
        final = client.read_reply()
        self.assertReply(final, "250", "the client's message is accepted")
        client.command("QUIT")
        client.wait_closed()
        return final

    def test_recording_backend_receives_one_message_with_the_smuggled_text_as_content(self):
        for name, separator, want in VECTORS:
            with self.subTest(vector=name):
                backend = self.recording_backend()
                self.deliver(backend, separator)
                backend.wait_idle()
                got = [(t.mail_from, t.content) for t in backend.transactions]
                self.assertEqual(got, [("good@example.test", want)],
                                 "exactly one message, the smuggled commands inside it as content")
                self.assertFalse(has_bare_newline(backend.transactions[0].wire),
                                 f"bare CR or LF reached the backend: {backend.transactions[0].wire!r}")
                self.assertEqual(backend.saw_verb(b"MAIL"), [b"MAIL FROM:<good@example.test>"],
                                 "the backend never saw MAIL FROM:<evil@x> as a command")

    def test_vulnerable_backend_behind_the_proxy_is_not_smuggled_to(self):
        # This backend ends DATA at any bare line ending (see test_harness: without the proxy
        # every one of these vectors smuggles a message from evil@x into it).
        for name, separator, want in VECTORS:
            with self.subTest(vector=name):
                backend = self.scripted_backend(ScriptedBackend.lenient())
                self.deliver(backend, separator)
                got = [(t.mail_from, t.content) for t in backend.transactions]
                self.assertEqual(got, [("good@example.test", want)])

    def test_bare_line_endings_in_content_become_crlf(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        client = self.connect(gate)
        open_transaction(client)
        client.send(b"one\ntwo\rthree\r\n\nfive\r\r\n.\r\n")
        self.assertReply(client.read_reply(), "250")
        self.assertEqual(backend.transactions[0].content, b"one\r\ntwo\r\nthree\r\n\r\nfive\r\n\r\n")

    def test_smuggling_split_across_writes(self):
        # The scanner keeps its state across reads: each byte of the vector in its own write.
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        client = self.connect(gate)
        open_transaction(client)
        for byte in b"A\n.\n" + SMUGGLED + b".\r\n":
            client.send(bytes([byte]))
        self.assertReply(client.read_reply(), "250")
        got = [(t.mail_from, t.content) for t in backend.transactions]
        self.assertEqual(got, [("good@example.test", b"A\r\n.\r\n" + SMUGGLED)])


class RejectTest(IntegrationCase):
    BARE = [
        ("bare LF", b"Subject: x\r\n\r\nline\nnext\r\n.\r\n"),
        ("bare CR", b"Subject: x\r\n\r\nline\rnext\r\n.\r\n"),
        ("<LF>.<LF> smuggling", b"A\n.\n" + SMUGGLED + b".\r\n"),
        ("<CR>.<CR> smuggling", b"A\r.\r" + SMUGGLED + b".\r\n"),
    ]

    def test_bare_newline_in_content_gets_521_and_nothing_is_delivered(self):
        for name, data in self.BARE:
            with self.subTest(content=name):
                backend = self.recording_backend()
                gate = self.proxy(backend.address, {"smtp": {"bare_newline": "reject"}})
                client = self.connect(gate)
                open_transaction(client)
                client.send(data, tolerate_reset=True)
                self.assertReply(client.read_reply(), "521 5.5.2")
                self.assertClosed(client, "after 521")
                backend.wait_idle()
                self.assertEqual(backend.transactions, [], "the backend must record no message")

    def test_clean_content_is_still_delivered(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"smtp": {"bare_newline": "reject"}})
        client = self.connect(gate)
        open_transaction(client)
        client.send(b"clean\r\n.\r\n")
        self.assertReply(client.read_reply(), "250")
        self.assertEqual(backend.transactions[0].content, b"clean\r\n")


if __name__ == "__main__":
    unittest.main()
