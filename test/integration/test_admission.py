"""admission - the global session cap (server.max_connections).

A client over the cap gets `421 4.7.0` and a close before any banner, and costs no backend
connection; a freed slot is usable again.
"""

import unittest

from harness import IntegrationCase, SmtpClient, wait_for


class MaxConnectionsTest(IntegrationCase):
    def test_third_concurrent_client_gets_421_4_7_0_and_no_backend_connection(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"max_connections": 2}})
        first, second = self.connect(gate), self.connect(gate)
        for client in (first, second):
            self.assertReply(client.read_reply(), "220 backend.test")
        third = self.connect(gate)
        self.assertReply(third.read_reply(), "421 4.7.0")
        self.assertClosed(third)
        self.assertEqual(backend.connections_opened, 2, "backend connections opened")
        # The first two are unaffected.
        for client in (first, second):
            self.assertReply(client.command("NOOP"), "250")

    def test_a_freed_slot_is_given_to_the_next_client(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"max_connections": 2}})
        first, second = self.connect(gate), self.connect(gate)
        for client in (first, second):
            client.read_reply()
        self.assertReply(first.command("QUIT"), "221")
        first.wait_closed()

        def admitted():
            with SmtpClient(gate.host, gate.port) as c:
                reply = c.read_reply()
                if reply.code == 220:
                    c.command("QUIT")
                    return True
                return False
        # The proxy frees the slot once it has seen the session end; until then it says 421.
        wait_for(admitted, what="a new client to be admitted after one of two sessions ended")


if __name__ == "__main__":
    unittest.main()
