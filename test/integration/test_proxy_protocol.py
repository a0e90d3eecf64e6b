"""proxy_protocol - clients behind a load balancer: PROXY protocol v1 and v2 in.

A connection from server.trusted_proxies must begin with a valid PROXY header; the client it
names is the one limits, rules, logs and the backend hand-off use. A malformed, truncated,
late or untrusted header closes the connection, is logged, and costs no backend connection.
Headers come from swaks (--proxy-version) and from raw sockets.
"""

import socket
import struct
import unittest

from harness import IntegrationCase, run_tool

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(source: str, sport: int, dest: str, dport: int, command: int = 0x21,
              tlvs: bytes = b"") -> bytes:
    body = socket.inet_aton(source) + socket.inet_aton(dest) + struct.pack("!HH", sport, dport)
    body += tlvs
    return V2_SIGNATURE + bytes([command, 0x11]) + struct.pack("!H", len(body)) + body


class ProxyProtocolTest(IntegrationCase):
    def gate(self, backend, **server):
        settings = {"trusted_proxies": ["127.0.0.1"], "proxy_header_timeout": "1s"}
        settings.update(server)
        return self.proxy(backend.address, {"server": settings,
                                            "backend": {"identity": "proxy-v1"}})

    def test_v1_header_names_the_client_for_logs_and_the_backend(self):
        backend = self.scripted_backend()
        gate = self.gate(backend)
        client = self.connect(gate)
        client.send(b"PROXY TCP4 192.0.2.7 198.51.100.25 40000 25\r\n")
        client.greet()
        conn = backend.wait_connection()
        self.assertEqual(conn.proxy_header, b"PROXY TCP4 192.0.2.7 198.51.100.25 40000 25\r\n",
                         "the backend hears of the client in the header, not of the balancer")
        event = gate.wait_event("connect", client="192.0.2.7:40000")
        self.assertEqual(event["via"], client.local_address)
        self.assertEqual(event["server"], "198.51.100.25:25")

    def test_v2_header_with_tlvs_and_swaks_through_it(self):
        backend = self.scripted_backend()
        gate = self.gate(backend)
        # NOOP TLV (0x04) and an SSL TLV (0x20: client flags, verify, no sub-TLVs).
        tlvs = b"\x04\x00\x02ab" + b"\x20\x00\x05\x01\x00\x00\x00\x00"
        client = self.connect(gate)
        client.send(v2_header("203.0.113.9", 5555, "198.51.100.25", 25, tlvs=tlvs))
        client.greet()
        self.assertEqual(backend.wait_connection().proxy_header,
                         b"PROXY TCP4 203.0.113.9 198.51.100.25 5555 25\r\n")

        for version, family in (("1", "TCP4"), ("2", "AF_INET")):
            with self.subTest(swaks=version):
                run = run_tool(["swaks", "--server", gate.host, "--port", str(gate.port),
                                "--proxy-version", version, "--proxy-family", family,
                                "--proxy-source", "192.0.2.44", "--proxy-source-port", "4444",
                                "--proxy-dest", "198.51.100.25", "--proxy-dest-port", "25",
                                "--from", "a@example.org", "--to", "b@example.net"])
                out = run.stdout.decode(errors="replace") + run.stderr.decode(errors="replace")
                self.assertEqual(run.returncode, 0, out)
                gate.wait_event("connect", client="192.0.2.44:4444")
        headers = [c.proxy_header for c in backend.connections]
        self.assertEqual(headers.count(b"PROXY TCP4 192.0.2.44 198.51.100.25 4444 25\r\n"), 2,
                         headers)

    def test_limits_and_rules_apply_to_the_address_in_the_header(self):
        backend = self.scripted_backend()
        gate = self.proxy(backend.address, {
            "server": {"trusted_proxies": ["127.0.0.0/8"]},
            "rule": [{"match": "192.0.2.0/24", "action": "deny"}],
        })
        denied = self.connect(gate)
        denied.send(b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 25\r\n")
        self.assertReply(denied.read_reply(), "554 5.7.1")
        allowed = self.connect(gate)
        allowed.send(b"PROXY TCP4 203.0.113.1 127.0.0.1 1000 25\r\n")
        self.assertReply(allowed.read_reply(), "220")
        gate.wait_event("reject", client="192.0.2.1:1000", reason="access")
        self.assertEqual(len(backend.connections), 1, "only the allowed client reached the backend")

    def test_local_command_keeps_the_connection_addresses(self):
        backend = self.scripted_backend()
        gate = self.gate(backend)
        client = self.connect(gate)
        client.send(v2_header("0.0.0.0", 0, "0.0.0.0", 0, command=0x20))  # LOCAL
        client.greet()
        host, port = client.sock.getsockname()[:2]
        self.assertEqual(backend.wait_connection().proxy_header,
                         f"PROXY TCP4 {host} 127.0.0.1 {port} {gate.port}\r\n".encode())

    def test_bad_headers_close_the_connection_and_are_logged(self):
        cases = [
            ("malformed v1", b"PROXY TCP4 192.0.2.300 127.0.0.1 1 25\r\n", "malformed_v1_address"),
            ("plain SMTP from a balancer", b"EHLO client.test\r\n", "malformed_signature"),
            ("oversized v1", b"PROXY TCP4 " + b"1" * 120, "oversized"),
            ("v2 TLV overrun", v2_header("192.0.2.1", 1, "127.0.0.1", 25, tlvs=b"\x04\x00\x09ab"),
             "malformed_tlv_overrun"),
            ("truncated", b"PROXY TCP4 192.0.2.1 ", "timeout"),
        ]
        backend = self.scripted_backend()
        gate = self.gate(backend)
        for what, data, reason in cases:
            with self.subTest(what):
                client = self.connect(gate)
                client.send(data)
                self.assertEqual(client.wait_closed(), b"", "closed without a word")
                gate.wait_event("proxy_header", reason=reason, client=client.local_address)
        self.assertEqual(len(backend.connections), 0, "no backend connection for a bad header")

    def test_a_header_from_an_untrusted_address_is_refused(self):
        backend = self.scripted_backend()
        for greet_pause in ("0s", "2s"):
            with self.subTest(greet_pause=greet_pause):
                gate = self.proxy(backend.address, {
                    "server": {"trusted_proxies": ["127.0.0.1"]},  # not 127.0.0.2
                    "greet_pause": {"delay": greet_pause}})
                run = run_tool(["swaks", "--server", gate.host, "--port", str(gate.port),
                                "--local-interface", "127.0.0.2", "--proxy-version", "1",
                                "--proxy-family", "TCP4", "--proxy-source", "192.0.2.9",
                                "--proxy-source-port", "9", "--proxy-dest", "127.0.0.1",
                                "--proxy-dest-port", "25", "--quit-after", "EHLO"])
                self.assertNotEqual(run.returncode, 0, "swaks must not get a session")
                event = gate.wait_event("proxy_header", reason="untrusted")
                self.assertTrue(event["client"].startswith("127.0.0.2:"), event)
                self.assertFalse(gate.find_events("connect", client="192.0.2.9:9"),
                                 "an untrusted header must not name the client")
                self.assertFalse(gate.find_events("reject", reason="pregreet"),
                                 "logged as what it is, not as a pregreet")
        # Without a greet pause the backend was connected before the client spoke; it must
        # still never hear the header.
        for conn in backend.connections:
            self.assertNotIn(b"PROXY", bytes(conn.raw), f"backend connection {conn.number}")

if __name__ == "__main__":
    unittest.main()
