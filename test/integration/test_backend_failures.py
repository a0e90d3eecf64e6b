"""backend failures - when the backend is down, refuses, stalls or goes away, the client gets a
proper 421 and a close, never a hang, and the proxy goes on serving.
"""

import unittest

from harness import HANG_GUARD, IntegrationCase, RecordingBackend, ScriptedBackend, run_tool


class BackendFailureTest(IntegrationCase):
    def test_unreachable_backend_gets_421_4_4_1_before_any_command(self):
        port = ScriptedBackend.refused_port()
        gate = self.proxy(f"127.0.0.1:{port}")
        for attempt in (1, 2):
            with self.subTest(connection=attempt):
                client = self.connect(gate)
                # Nothing is sent: the 421 comes on its own, instead of a banner.
                self.assertReply(client.read_reply(), "421 4.4.1")
                self.assertClosed(client)
        # Once the backend is up, the same proxy relays to it.
        backend = RecordingBackend(port=port).start()
        self.addCleanup(backend.stop)
        client = self.connect(gate)
        self.assertReply(client.read_reply(), "220 backend.test")
        client.command("EHLO client.test")
        self.assertReply(client.send_message("a@example.test", ["b@example.test"], b"after the outage\r\n"),
                         "250 2.0.0 Ok: queued as RB00001")

    def test_backend_banner_554_gets_421_4_3_0(self):
        backend = self.scripted_backend(ScriptedBackend.banner_554())
        gate = self.proxy(backend.address)
        client = self.connect(gate)
        self.assertReply(client.read_reply(), "421 4.3.0")
        self.assertClosed(client)

    def test_backend_that_stops_answering_gets_421_4_4_2(self):
        backend = self.scripted_backend(ScriptedBackend.silent_after_banner())
        gate = self.proxy(backend.address, {"backend": {"reply_timeout": "2s"}})
        client = self.connect(gate)
        self.assertReply(client.read_reply(), "220 scripted.test")
        client.send_line("EHLO client.test")
        self.assertReply(client.read_reply(), "421 4.4.2")
        self.assertClosed(client)
        self.assertEqual(backend.lines()[:1], [b"EHLO client.test"], "the EHLO was forwarded")

    def open_data(self, client):
        client.greet()
        for line in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"):
            client.command(line)

    def test_backend_closing_while_the_client_sends_the_body_gets_421_and_nothing_is_delivered(self):
        backend = self.scripted_backend(ScriptedBackend.closes_in_data())
        gate = self.proxy(backend.address)
        client = self.connect(gate)
        self.open_data(client)
        client.send(b"Subject: cut short\r\n\r\n" + b"body line\r\n" * 6000)  # 66 kB, no end yet
        self.assertTrue(backend.closed_in_data.wait(HANG_GUARD), "the backend did not see the body start")
        # The proxy may answer at once or after the client's end-of-data; either way it is a 421.
        client.send(b"rest of the body\r\n.\r\n", tolerate_reset=True)
        self.assertReply(client.read_reply(), "421", "reply after the backend went away mid-DATA")
        self.assertClosed(client)
        self.assertEqual(backend.transactions, [])

    def test_backend_closing_before_its_final_reply_gets_421(self):
        backend = self.scripted_backend(ScriptedBackend.closes_in_data())
        gate = self.proxy(backend.address)
        client = self.connect(gate)
        self.open_data(client)
        client.send(b"Subject: never answered\r\n\r\nbody\r\n.\r\n")
        self.assertReply(client.read_reply(), "421", "reply when the backend closes instead of its verdict")
        self.assertClosed(client)
        self.assertTrue(backend.closed_in_data.is_set())
        self.assertEqual(backend.transactions, [])

    def test_a_backend_that_speaks_out_of_turn_is_dropped_before_replies_go_astray(self):
        # A backend not told to expect the PROXY header answers it as a command right after its
        # banner. Relayed, every later reply would answer the wrong command (a 250 to RCPT
        # taken for the 354 to DATA...); the client gets 421 4.3.0 instead of the banner.
        for identity in ("proxy-v1", "proxy-v2"):
            with self.subTest(identity=identity):
                backend = self.scripted_backend(
                    ScriptedBackend(out_of_turn=b"500 5.5.1 Error: unknown command\r\n"))
                gate = self.proxy(backend.address, {"backend": {"identity": identity}})
                client = self.connect(gate)
                self.assertReply(client.read_reply(), "421 4.3.0", "instead of the banner")
                self.assertClosed(client)
                event = gate.wait_event("backend_error", reason="unsolicited_reply")
                self.assertIn('unasked: "500 5.5.1 Error: unknown command"', event["detail"])
                self.assertIn("PROXY header", event["detail"])
                self.assertEqual([l for l in backend.lines() if l != b"QUIT"], [])

    def test_smtp_sink_unaware_of_the_proxy_header_gets_no_message_and_the_log_says_why(self):
        sink = self.smtp_sink()
        gate = self.proxy(sink.address, {"backend": {"identity": "proxy-v1"}})
        run = run_tool(["swaks", "--server", gate.host, "--port", str(gate.port),
                        "--from", "a@example.org", "--to", "b@example.net"])
        self.assertNotEqual(run.returncode, 0, run.stdout.decode(errors="replace"))
        event = gate.wait_event("backend_error", reason="unsolicited_reply")
        self.assertIn("PROXY header", event["detail"])
        self.assertEqual(sink.message_count(), 0)

    def test_proxy_keeps_serving_after_a_backend_failure(self):
        backend = self.scripted_backend(ScriptedBackend.closes_in_data())
        gate = self.proxy(backend.address)
        first = self.connect(gate)
        self.open_data(first)
        first.send(b"x\r\n.\r\n", tolerate_reset=True)
        self.assertReply(first.read_reply(), "421")
        first.wait_closed()
        second = self.connect(gate)
        banner, ehlo = second.greet()
        self.assertReply(banner, "220 scripted.test")
        self.assertReply(ehlo, "250")


if __name__ == "__main__":
    unittest.main()
