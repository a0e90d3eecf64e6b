"""identity - the backend learns the real client from a PROXY protocol header.

With backend.identity = "proxy-v1" or "proxy-v2" each backend connection starts with a HAProxy
PROXY header naming the client's address and port and the address it connected to; with
"none" the backend gets SMTP only.
"""

import socket
import struct
import unittest

from harness import IntegrationCase

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


if __name__ == "__main__":
    unittest.main()
