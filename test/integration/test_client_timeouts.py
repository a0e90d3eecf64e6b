"""client timeouts - one deadline per phase, a 421 4.4.2 goodbye, then the close.

The command deadline covers a whole command line, not each read, so a client that trickles
one byte at a time (slowloris) is cut off all the same. The data deadline covers the whole
body.
"""

import time
import unittest

from harness import HANG_GUARD, IntegrationCase


class CommandTimeoutTest(IntegrationCase):
    def setUp(self):
        self.backend = self.recording_backend()
        self.gate = self.proxy(self.backend.address, {"timeouts": {"command": "1s"}})

    def test_silent_client_after_the_banner_gets_421_4_4_2(self):
        client = self.connect(self.gate)
        self.assertReply(client.read_reply(), "220")
        self.assertReply(client.read_reply(), "421 4.4.2")
        self.assertClosed(client)

    def test_silent_client_between_commands_gets_421_4_4_2(self):
        client = self.connect(self.gate)
        client.greet()
        self.assertReply(client.read_reply(), "421 4.4.2")
        self.assertClosed(client)

    def test_partial_line_gets_421_4_4_2(self):
        client = self.connect(self.gate)
        client.greet()
        client.send(b"NOOP half a comm")
        self.assertReply(client.read_reply(), "421 4.4.2")
        self.assertClosed(client)
        self.backend.wait_idle()
        self.assertEqual(self.backend.saw_verb(b"NOOP"), [], "the partial line is never forwarded")

    def test_slowloris_is_cut_off_at_the_whole_line_deadline(self):
        client = self.connect(self.gate)
        client.greet()
        # One byte every 0.3 s: each read comes well within 1 s, only the line as a whole is late.
        # The pacing waits on the socket, so a reply ends the drip at once.
        dripped = 0
        started = time.monotonic()
        while not client.readable(0.3):
            if time.monotonic() - started > HANG_GUARD:
                self.fail(f"no reply after dripping {dripped} bytes over {HANG_GUARD:g}s; "
                          f"want 421 4.4.2 once the 1s command deadline passed")
            client.send(b"x", tolerate_reset=True)
            dripped += 1
        self.assertReply(client.read_reply(), "421 4.4.2", f"after {dripped} dripped bytes")
        self.assertClosed(client)

    def test_a_prompt_client_is_not_affected(self):
        client = self.connect(self.gate)
        client.greet()
        for _ in range(3):
            self.assertReply(client.command("NOOP"), "250")
        self.assertReply(client.send_message("a@example.test", ["b@example.test"], b"ok\r\n"), "250")


class DataTimeoutTest(IntegrationCase):
    def test_client_stalling_mid_body_gets_421_4_4_2_and_nothing_is_delivered(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"timeouts": {"data": "2s"}})
        client = self.connect(gate)
        client.greet()
        for line in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"):
            client.command(line)
        client.send(b"Subject: stalled\r\n\r\nhalf a bo")
        self.assertReply(client.read_reply(), "421 4.4.2")
        self.assertClosed(client)
        backend.wait_idle()
        self.assertEqual(backend.transactions, [])

    def test_slow_body_is_cut_off_at_the_whole_body_deadline(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"timeouts": {"data": "2s"}})
        client = self.connect(gate)
        client.greet()
        for line in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"):
            client.command(line)
        started = time.monotonic()
        lines = 0
        while not client.readable(0.3):
            if time.monotonic() - started > HANG_GUARD:
                self.fail(f"no reply after {lines} body lines over {HANG_GUARD:g}s; want 421 4.4.2 "
                          f"once the 2s data deadline passed")
            client.send(b"a line of a very slow body\r\n", tolerate_reset=True)
            lines += 1
        self.assertReply(client.read_reply(), "421 4.4.2")
        self.assertClosed(client)
        backend.wait_idle()
        self.assertEqual(backend.transactions, [])


if __name__ == "__main__":
    unittest.main()
