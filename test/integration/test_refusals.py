"""refusals - commands smtpgate answers itself and never forwards.

Identity commands only the proxy may speak (XCLIENT, XFORWARD, PROXY), extensions it does not
offer (BDAT, STARTTLS without TLS), unknown verbs, syntax errors and over-long lines are
refused locally and the session goes on; HTTP and other non-SMTP lines end the session with
521. In every case the backend never receives the line.
"""

import unittest

from harness import HANG_GUARD, ConnectionClosed, IntegrationCase, run_tool

# (line sent, reply prefix wanted, the session goes on afterwards)
REFUSED = [
    ("XCLIENT ADDR=192.0.2.1 NAME=spoofed.example", "550 5.7.0", True),
    ("XFORWARD ADDR=192.0.2.1", "550 5.7.0", True),
    ("xclient addr=192.0.2.1", "550 5.7.0", True),
    ("BDAT 0 LAST", "502 5.5.1", True),
    ("STARTTLS", "502 5.5.1", True),
    ("FOO bar", "500 5.5.1", True),
    ("HELO", "501 5.5.4", True),
    ("EHLO", "501 5.5.4", True),
    ("MAIL", "501 5.5.4", True),
    ("MAIL <a@example.test>", "501 5.5.4", True),
    ("MAIL TO:<a@example.test>", "501 5.5.4", True),
    ("RCPT", "501 5.5.4", True),
    ("RCPT <b@example.test>", "501 5.5.4", True),
    ("RCPT FROM:<b@example.test>", "501 5.5.4", True),
]

NON_SMTP = [
    "GET / HTTP/1.0",
    "POST /submit HTTP/1.1",
    "CONNECT mx.example.test:443 HTTP/1.1",
    "Host: x",
]


class LocalRefusalTest(IntegrationCase):
    def setUp(self):
        self.backend = self.recording_backend()
        self.gate = self.proxy(self.backend.address)

    def refuse(self, line: str, want: str, goes_on: bool) -> None:
        client = self.connect(self.gate)
        client.greet()
        self.assertReply(client.command(line), want, f"reply to {line!r}")
        if goes_on:
            # The backend answers NOOP, so the session is still relayed after the refusal.
            self.assertReply(client.command("NOOP"), "250", f"NOOP after {line!r}")
        client.send_line("QUIT")
        client.wait_closed()
        self.backend.wait_idle()
        verb = line.split(" ", 1)[0].encode()
        forwarded = [c for c in self.backend.commands() if c == line.encode()]
        self.assertEqual(forwarded, [], f"backend received {line!r}, want it never forwarded")
        if verb.upper() in (b"XCLIENT", b"XFORWARD", b"BDAT", b"STARTTLS", b"FOO"):
            self.assertEqual(self.backend.saw_verb(verb), [], f"backend received a {verb!r} line")

    def test_refused_commands_are_answered_locally_and_never_forwarded(self):
        for line, want, goes_on in REFUSED:
            with self.subTest(line=line):
                self.refuse(line, want, goes_on)

    def test_proxy_header_mid_session_is_refused(self):
        client = self.connect(self.gate)
        client.greet()
        reply = client.command("PROXY TCP4 192.0.2.1 192.0.2.2 40000 25")
        self.assertEqual(reply.code // 100, 5, f"got {reply}, want a 5xx")
        client.close()
        self.backend.wait_idle()
        self.assertEqual(self.backend.saw_verb(b"PROXY"), [], "backend received the PROXY line")

    def test_over_long_command_line_gets_500_and_the_session_goes_on(self):
        client = self.connect(self.gate)
        client.greet()
        long_line = "NOOP " + "x" * 3000
        self.assertReply(client.command(long_line), "500 5.5.2")
        self.assertReply(client.command("NOOP"), "250", "NOOP after the long line")
        client.command("QUIT")
        self.backend.wait_idle()
        got = [c[:40] for c in self.backend.commands()]
        self.assertEqual(got, [b"EHLO client.test", b"NOOP", b"QUIT"],
                         "no part of the long line reaches the backend")

    def test_line_of_exactly_max_line_length_is_forwarded(self):
        client = self.connect(self.gate)
        client.greet()
        line = "NOOP " + "y" * (2048 - 5)
        client.send_line(line)
        client.read_reply()  # aiosmtpd may refuse the long NOOP itself; what matters is it got it
        client.command("QUIT")
        self.backend.wait_idle()
        self.assertIn(line.encode(), self.backend.commands())

    def test_non_smtp_lines_get_521_and_the_connection_closes(self):
        for line in NON_SMTP:
            with self.subTest(line=line):
                client = self.connect(self.gate)
                client.read_reply()
                self.assertReply(client.command(line), "521 5.7.0", f"reply to {line!r}")
                self.assertClosed(client, f"after {line!r}")
                self.backend.wait_idle()
                self.assertNotIn(line.encode(), self.backend.commands())

    def test_an_http_client_is_turned_away(self):
        run = run_tool(["curl", "-sS", "--max-time", str(HANG_GUARD), "--http0.9",
                        f"http://{self.gate.address}/"])
        self.assertIn(b"521 5.7.0", run.stdout, f"curl got {run.stdout!r} (stderr {run.stderr!r})")
        self.backend.wait_idle()
        self.assertEqual(self.backend.saw_verb(b"GET"), [], "backend received the HTTP request")


class ErrorLimitTest(IntegrationCase):
    """limits.max_errors (docs/configuration.md): the error that reaches the limit gets
    `421 4.7.0` and the close; every command before it still gets its own reply, in order."""

    LIMITS = {"limits": {"soft_errors": 0, "max_errors": 5}}

    def commands(self):
        lines = []
        for i in range(10):
            lines += [f"NOOP {i}", f"FOO {i}"]
        want = []
        for i in range(4):
            want += [f"250 2.0.0 scripted: NOOP {i}", "500 5.5.1"]
        want += ["250 2.0.0 scripted: NOOP 4", "421 4.7.0"]
        return lines, want

    def test_the_error_reaching_max_errors_gets_421_4_7_0_and_the_close(self):
        backend = self.scripted_backend()
        gate = self.proxy(backend.address, self.LIMITS)
        client = self.connect(gate)
        client.greet()
        lines, want = self.commands()
        for line, prefix in zip(lines, want):
            self.assertReply(client.command(line), prefix, f"reply to {line!r}")
        self.assertClosed(client)

    def test_pipelined_commands_before_the_limit_keep_their_replies(self):
        backend = self.scripted_backend()
        gate = self.proxy(backend.address, self.LIMITS)
        client = self.connect(gate)
        client.greet()
        lines, want = self.commands()
        client.send("".join(line + "\r\n" for line in lines))
        got = []
        try:
            while len(got) < len(want):
                got.append(client.read_reply().lines[0])
        except ConnectionClosed:
            got.append("<connection closed>")
        pairs = list(zip(lines, got))
        wrong = [(line, g, w) for (line, g), w in zip(pairs, want) if not g.startswith(w)]
        self.assertEqual(wrong, [], f"(command, got, want) for each wrong reply; all replies: {got}")
        self.assertClosed(client)


if __name__ == "__main__":
    unittest.main()
