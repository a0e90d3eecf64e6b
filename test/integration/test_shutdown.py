"""shutdown - SIGTERM drains: stop accepting, let sessions finish, say 421 4.3.2, exit 0.

An idle session gets `421 4.3.2` at its next command or when shutdown_grace ends; a message
in flight (also a 5 MB one, most of it sent after SIGTERM) is completed (the backend's verdict is relayed) before the process exits.
"""

import signal
import socket
import unittest

from harness import HANG_GUARD, IntegrationCase, is_listening, port_refuses, wait_for, wire_body


class ShutdownTest(IntegrationCase):
    def stop_accepting(self, gate):
        """SIGTERM, then wait until the listener is gone (checked without connecting)."""
        gate.terminate()
        wait_for(lambda: not is_listening(gate.port, gate.proc.pid), what="smtpgate to stop listening after SIGTERM")

    def start_message(self, gate):
        """A client in the middle of DATA: the first 200 bytes of the body are sent."""
        client = self.connect(gate)
        client.greet()
        for line in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"):
            client.command(line)
        body = b"Subject: in flight\r\n\r\n" + b"line\r\n" * 100
        wire = wire_body(body)
        client.send(wire[:200])
        return client, body, wire[200:]

    def test_new_connections_are_refused_after_sigterm(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "30s"}})
        client, _, rest = self.start_message(gate)  # keeps the process draining
        self.stop_accepting(gate)
        self.assertTrue(port_refuses(gate.host, gate.port), "a new connection was accepted after SIGTERM")
        self.assertTrue(gate.running, "smtpgate should still drain the message in flight")
        client.send(rest)
        self.assertReply(client.read_reply(), "250")

    def test_idle_session_is_closed_at_once_while_a_message_in_flight_completes(self):
        # Between transactions a session has nothing to lose: at SIGTERM it gets 421 4.3.2 at
        # once (its client retries, maybe at another MX) and does not hold the drain up. A
        # message in flight in another session finishes meanwhile.
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "30s"}})
        idle = self.connect(gate)
        idle.greet()
        sender, _, rest = self.start_message(gate)
        self.stop_accepting(gate)
        self.assertReply(idle.read_reply(), "421 4.3.2", "idle session at SIGTERM")
        self.assertClosed(idle)
        sender.send(rest)
        self.assertReply(sender.read_reply(), "250 2.0.0 Ok: queued as RB00001")

    def test_idle_session_gets_421_4_3_2_at_its_next_command_and_the_proxy_exits_0(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "30s"}})
        client = self.connect(gate)
        client.greet()
        self.stop_accepting(gate)
        self.assertReply(client.command("NOOP"), "421 4.3.2")
        self.assertClosed(client)
        self.assertEqual(gate.wait_exit(), 0, "exit status")

    def test_idle_session_that_sends_nothing_gets_421_4_3_2_within_the_grace(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "1s"}})
        client = self.connect(gate)
        client.greet()
        gate.terminate()
        self.assertReply(client.read_reply(), "421 4.3.2")
        self.assertClosed(client)
        self.assertEqual(gate.wait_exit(), 0, "exit status")

    def test_message_in_flight_completes_before_exit(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "15s"}})
        client, body, rest = self.start_message(gate)
        self.stop_accepting(gate)
        client.send(rest)
        self.assertEqual(client.read_reply().lines, ["250 2.0.0 Ok: queued as RB00001"],
                         "the backend's verdict on the message in flight")
        # After the message the session ends: QUIT is relayed (221) or answered 421 4.3.2.
        reply = client.command("QUIT")
        self.assertTrue(reply.startswith("221") or reply.startswith("421 4.3.2"),
                        f"got {reply}, want 221 or 421 4.3.2")
        self.assertClosed(client)
        self.assertEqual(gate.wait_exit(), 0, "exit status")
        self.assertEqual(backend.transactions[0].content, body)

    def test_a_large_message_in_flight_at_sigterm_is_delivered_whole(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "15s"}})
        client = self.connect(gate)
        client.greet()
        for line in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"):
            client.command(line)
        body = b"Subject: 5 MB\r\n\r\n" + b"".join(
            b"%07d " % i + b"x" * 70 + b"\r\n" for i in range(5 * 1024 * 1024 // 80))
        wire = wire_body(body)
        client.send(wire[:1024 * 1024])
        self.stop_accepting(gate)
        client.send(wire[1024 * 1024:])
        self.assertReply(client.read_reply(), "250 2.0.0 Ok: queued as RB00001")
        self.assertEqual(gate.wait_exit(), 0, "exit status")
        self.assertEqual(backend.transactions[0].content, body, "the message arrived whole")

    def test_connections_waiting_to_be_accepted_at_sigterm_are_answered_never_dropped(self):
        # Connections the proxy has not accepted yet when SIGTERM arrives (the kernel holds
        # them; here the proxy is stopped while they connect, so SIGTERM and the waiting
        # connections reach it together) must each get a reply: the sessions started before
        # the drain reply 220, the rest 421 4.3.2. A close without a reply looks to an MTA
        # like a broken server.
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "5s"},
                                            "limits": {"concurrent_per_client": 0}})
        gate.proc.send_signal(signal.SIGSTOP)
        try:
            clients = [socket.create_connection((gate.host, gate.port), timeout=HANG_GUARD)
                       for _ in range(50)]
            gate.proc.send_signal(signal.SIGTERM)
            gate.terminated = True
        finally:
            gate.proc.send_signal(signal.SIGCONT)
        replies = []
        for c in clients:
            with c:
                try:
                    replies.append(c.makefile("rb").readline().decode()[:9] or "no reply")
                except ConnectionResetError:
                    replies.append("reset")
        self.assertEqual(gate.wait_exit(), 0, "exit status")
        self.assertEqual([r for r in replies if r[:3] not in ("220", "421")], [],
                         f"every waiting connection gets a reply: {replies}")
        self.assertIn("421 4.3.2", replies)

    def test_a_client_in_the_greet_pause_gets_421_4_3_2_at_once_and_costs_no_backend(self):
        # Nothing is owed to a client still waiting for its banner: the drain answers it now
        # instead of at the end of the pause or of the grace (both longer than a reply wait).
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "60s"},
                                            "greet_pause": {"delay": "120s"}})
        client = self.connect(gate)
        wait_for(lambda: " connect session=" in gate.log_text(), what="the greet pause to begin")
        gate.terminate()
        self.assertReply(client.read_reply(), "421 4.3.2", "instead of the banner")
        self.assertClosed(client)
        self.assertEqual(gate.wait_exit(), 0, "exit status")
        self.assertEqual(backend.connections_opened, 0, "backend connections")

    def test_sigterm_without_sessions_exits_0(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        gate.terminate()
        self.assertEqual(gate.wait_exit(), 0, "exit status")


if __name__ == "__main__":
    unittest.main()
