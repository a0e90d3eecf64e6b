"""identity - the backend learns the real client from a PROXY protocol header or XCLIENT.

With backend.identity = "proxy-v1" or "proxy-v2" each backend connection starts with a HAProxy
PROXY header naming the client's address and port and the address it connected to; with
"xclient" the proxy sends EHLO and XCLIENT after the banner and relays the backend's fresh
220; with "none" the backend gets SMTP only.
"""

import socket
import struct
import unittest
import urllib.request

from harness import EVERYTHING_EHLO, HANG_GUARD, IntegrationCase, ScriptedBackend, SmtpClient

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


class IdentityTest(IntegrationCase):
    def session_through(self, identity: str):
        backend = self.scripted_backend()
        gate = self.proxy(backend.address, {"backend": {"identity": identity}})
        client = self.connect(gate)
        client.greet()
        conn = backend.wait_connection()
        client_host, client_port = client.sock.getsockname()[:2]
        return backend, gate, conn, client_host, client_port

    def test_proxy_v1_header_names_the_client(self):
        backend, gate, conn, host, port = self.session_through("proxy-v1")
        want = f"PROXY TCP4 {host} 127.0.0.1 {port} {gate.port}".encode()
        self.assertEqual(conn.proxy_header, want + b"\r\n", "first line at the backend")
        self.assertEqual(conn.lines, [b"EHLO client.test"], "SMTP follows the header")

    def test_proxy_v2_header_names_the_client(self):
        backend, gate, conn, host, port = self.session_through("proxy-v2")
        raw = conn.proxy_header
        self.assertEqual(conn.lines, [b"EHLO client.test"], "SMTP follows the header")
        self.assertEqual(raw[:12], V2_SIGNATURE, f"header starts {raw[:16]!r}")
        ver_cmd, family, length = raw[12], raw[13], struct.unpack("!H", raw[14:16])[0]
        self.assertEqual((ver_cmd, family), (0x21, 0x11), "version 2 PROXY command, TCP over IPv4")
        src, dst, sport, dport = struct.unpack("!4s4sHH", raw[16:28])
        self.assertEqual((socket.inet_ntoa(src), socket.inet_ntoa(dst), sport, dport),
                         (host, "127.0.0.1", port, gate.port))
        self.assertEqual(len(raw), 16 + length, "header length")

    def test_identity_none_sends_smtp_only(self):
        backend, gate, conn, host, port = self.session_through("none")
        self.assertEqual((conn.proxy_header, bytes(conn.raw)), (b"", b"EHLO client.test\r\n"))

    def test_a_backend_named_by_host_name_is_resolved_by_the_probe_and_each_session(self):
        # "localhost" is in /etc/hosts: resolved without DNS. Both the /readyz probe and a
        # session look the name up, then introduce themselves as with an IP address.
        backend = self.scripted_backend()
        gate = self.proxy(f"localhost:{backend.port}", {"backend": {"identity": "proxy-v1"}})
        with urllib.request.urlopen(f"{gate.admin_url}/readyz", timeout=HANG_GUARD) as r:
            self.assertEqual(r.status, 200, "/readyz with the backend named by host name")
        probe = backend.wait_connection(1)
        self.assertRegex(probe.proxy_header,
                         rb"^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ %d\r\n$" % backend.port)
        client = self.connect(gate)
        client.greet()
        conn = backend.wait_connection(2)
        host, port = client.sock.getsockname()[:2]
        self.assertEqual(conn.proxy_header,
                         f"PROXY TCP4 {host} 127.0.0.1 {port} {gate.port}\r\n".encode())
        self.assertEqual(conn.lines, [b"EHLO client.test"], "SMTP follows the header")


class XclientTest(IntegrationCase):
    def test_xclient_names_the_client_and_the_fresh_banner_is_relayed(self):
        backend = self.scripted_backend(ScriptedBackend(ehlo=EVERYTHING_EHLO))
        gate = self.proxy(backend.address, {"backend": {"identity": "xclient"}})
        client = SmtpClient(gate.host, gate.port, source="127.0.0.2")
        self.addCleanup(client.close)
        banner, _ = client.greet()
        port = client.sock.getsockname()[1]
        xclient = "XCLIENT ADDR=127.0.0.2 NAME=[UNAVAILABLE]"
        self.assertEqual(str(banner), f"220 scripted.test ESMTP scripted: {xclient}",
                         "the client sees the greeting given after XCLIENT")
        conn = backend.wait_connection()
        self.assertEqual(conn.lines[1:], [xclient.encode(), b"EHLO client.test"])
        self.assertTrue(conn.lines[0].startswith(b"EHLO "), conn.lines)
        self.assertEqual(conn.proxy_header, b"")
        self.assertNotIn(str(port), xclient, "PORT is sent only when offered")

    def test_all_offered_attributes_are_sent(self):
        ehlo = ["scripted.test", "PIPELINING", "XCLIENT NAME ADDR PORT PROTO HELO DESTADDR DESTPORT"]
        backend = self.scripted_backend(ScriptedBackend(ehlo=ehlo))
        gate = self.proxy(backend.address, {"backend": {"identity": "xclient"}})
        client = SmtpClient(gate.host, gate.port, source="127.0.0.3")
        self.addCleanup(client.close)
        client.greet()
        port = client.sock.getsockname()[1]
        conn = backend.wait_connection()
        self.assertEqual(conn.lines[1], f"XCLIENT ADDR=127.0.0.3 PORT={port} NAME=[UNAVAILABLE] "
                                        f"DESTADDR=127.0.0.1 DESTPORT={gate.port}".encode())

    def test_a_backend_without_xclient_is_a_clear_error(self):
        backend = self.scripted_backend()  # EHLO without XCLIENT
        gate = self.proxy(backend.address, {"backend": {"identity": "xclient"}})
        client = self.connect(gate)
        self.assertReply(client.read_reply(), "421 4.3.0")
        event = gate.wait_event("backend_error", reason="xclient_unsupported")
        self.assertIn("smtpd_authorized_xclient_hosts", event["detail"])
        backend.wait_line(lambda line: line == b"QUIT", what="the proxy to end the backend session")

    def test_a_refused_xclient_ends_the_session_with_421(self):
        backend = self.scripted_backend(ScriptedBackend(
            ehlo=EVERYTHING_EHLO, xclient_reply="550 5.7.0 Error: insufficient authorization\r\n"))
        gate = self.proxy(backend.address, {"backend": {"identity": "xclient"}})
        client = self.connect(gate)
        self.assertReply(client.read_reply(), "421 4.3.0")
        event = gate.wait_event("backend_error", reason="xclient_refused")
        self.assertIn("550 5.7.0", event["detail"])


if __name__ == "__main__":
    unittest.main()
