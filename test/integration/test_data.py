"""data - message content reaches the backend byte for byte, and its verdict reaches the client.

After the backend's 354 the body is streamed through; the backend's final reply is relayed
unchanged (the proxy never says 250 for a message itself); a session carries several
transactions, with RSET between them.
"""

import unittest

from harness import IntegrationCase, RecordingBackend, wait_for, wire_body

BODIES = [
    ("plain", b"Subject: plain\r\n\r\nHello.\r\n"),
    ("empty", b""),
    ("only a blank line", b"\r\n"),
    ("lines starting with dots", b".\r\n..\r\n.hidden\r\n...three\r\n. space\r\nend\r\n"),
    ("dot at the very start", b".first line is a dot line\r\n"),
    ("8-bit bytes", bytes(range(0x80, 0x100)) + b"\r\nGr\xc3\xbc\xc3\x9fe\r\n"),
    ("NUL bytes", b"before\x00after\r\n\x00\r\n\x00\x00.\x00\r\n"),
    ("5000-byte line", b"L" * 5000 + b"\r\n"),
    ("looks like SMTP", b"MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nQUIT\r\n"),
    ("looks like the end", b"text .\r\n.\r\n.\r\n. \r\n"),
]


def five_megabytes() -> bytes:
    line = bytes(range(0x21, 0x7f)) * 10 + b"\r\n"  # 942 bytes
    body = (line * (5 * 1024 * 1024 // len(line) + 1))
    return b"Subject: big\r\n\r\n" + body


class ByteExactTest(IntegrationCase):
    def setUp(self):
        self.backend = self.recording_backend()
        self.gate = self.proxy(self.backend.address)

    def test_bodies_arrive_byte_exact(self):
        client = self.connect(self.gate)
        client.greet()
        for name, body in BODIES:
            with self.subTest(body=name):
                before = len(self.backend.transactions)
                final = client.send_message("a@example.test", ["b@example.test"], body)
                self.assertReply(final, "250 2.0.0 Ok: queued as RB")
                got = self.backend.transactions[before]
                self.assertBytesEqual(got.content, body, f"content of '{name}'")
                self.assertBytesEqual(got.wire, wire_body(body), f"wire bytes of '{name}'")

    def test_five_megabyte_body_arrives_byte_exact(self):
        body = five_megabytes()
        client = self.connect(self.gate)
        client.greet()
        final = client.send_message("a@example.test", ["b@example.test"], body)
        self.assertReply(final, "250 2.0.0 Ok: queued as RB00001")
        self.assertBytesEqual(self.backend.transactions[0].content, body, "5 MB content")

    def test_body_sent_one_byte_per_write_arrives_byte_exact(self):
        # The end-of-data scanner works across read boundaries.
        body = b"a\r\n.b\r\n..\r\n\r\n.\x00\r\nend\r\n"
        client = self.connect(self.gate)
        client.greet()
        for line in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"):
            client.command(line)
        for byte in wire_body(body):
            client.send(bytes([byte]))
        self.assertReply(client.read_reply(), "250 2.0.0 Ok: queued as RB00001")
        self.assertBytesEqual(self.backend.transactions[0].content, body, "content")

    def test_several_transactions_per_session_with_rset_between(self):
        client = self.connect(self.gate)
        client.greet()
        sent = []
        for i in range(5):
            body = f"Subject: message {i}\r\n\r\nbody {i}\r\n".encode()
            final = client.send_message(f"s{i}@example.test", [f"r{i}@example.test", f"cc{i}@example.test"], body)
            self.assertEqual(final.lines, [f"250 2.0.0 Ok: queued as RB{i + 1:05d}"])
            self.assertReply(client.command("RSET"), "250")
            sent.append((f"s{i}@example.test", [f"r{i}@example.test", f"cc{i}@example.test"], body))
        # An abandoned transaction: RSET discards it, nothing is delivered.
        client.command("MAIL FROM:<abandoned@example.test>")
        client.command("RCPT TO:<b@example.test>")
        self.assertReply(client.command("RSET"), "250")
        self.assertReply(client.command("QUIT"), "221")
        got = [(t.mail_from, t.rcpt_tos, t.content) for t in self.backend.transactions]
        self.assertEqual(got, sent)

    def test_backend_rejection_of_a_message_is_relayed_unchanged(self):
        client = self.connect(self.gate)
        client.greet()
        final = client.send_message("a@example.test", ["b@example.test"], b"X-Reject-Me: please\r\n\r\nspam\r\n")
        self.assertEqual(final.lines, [RecordingBackend.REJECT_REPLY])
        # The session goes on and the next message is accepted.
        final = client.send_message("a@example.test", ["b@example.test"], b"ham\r\n")
        self.assertEqual(final.lines, ["250 2.0.0 Ok: queued as RB00002"])

    def test_data_before_rcpt_gets_the_backends_refusal(self):
        client = self.connect(self.gate)
        client.greet()
        client.command("MAIL FROM:<a@example.test>")
        reply = client.command("DATA")
        self.assertEqual(reply.lines, ["503 Error: need RCPT command"], "aiosmtpd's reply, relayed")
        self.assertReply(client.command("NOOP"), "250", "the session goes on in command mode")


class StreamingTest(IntegrationCase):
    def test_body_is_streamed_before_the_final_dot(self):
        backend = self.scripted_backend()
        gate = self.proxy(backend.address)
        client = self.connect(gate)
        client.greet()
        for line in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"):
            client.command(line)
        conn = backend.connections[0]
        start = len(conn.raw)  # the backend has read everything up to DATA when it sends 354
        chunk = (b"z" * 998 + b"\r\n") * 1024  # 1 MB, no end-of-data yet
        client.send(chunk)
        # Streaming, not buffering the whole message: most of the first MB must be at the
        # backend while the client has not ended the message (a bounded tail may lag behind).
        wait_for(lambda: len(conn.raw) - start >= len(chunk) // 2,
                 what="the backend to receive the first MB before the client sent the final dot")
        client.send(b".\r\n")
        self.assertReply(client.read_reply(), "250 2.0.0 Ok: queued as SB00001")
        self.assertBytesEqual(backend.transactions[0].content, chunk, "content")


if __name__ == "__main__":
    unittest.main()
