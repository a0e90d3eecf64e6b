"""Descriptor exhaustion: the proxy keeps answering when it runs out of file descriptors.

With RLIMIT_NOFILE lowered, clients beyond what the descriptor table holds get
`421 4.7.0` through the proxy's spare descriptor (OpenSMTPD's reserve) instead of waiting in
silence, the accept loop backs off instead of spinning, and service resumes when sessions end.
The admin endpoint's accept loop backs off the same way, and still ends when the drain closes it.
"""

import os
import socket
import unittest

from harness import HANG_GUARD, LOCALHOST, IntegrationCase, Proxy, SmtpClient, wait_for


class DescriptorReserveTest(IntegrationCase):
    def test_clients_past_the_descriptor_limit_get_421_and_service_resumes(self):
        backend = self.recording_backend()
        gate = Proxy(backend.address, {"limits": {"concurrent_per_client": 0}}, max_open_files=40)
        self.addCleanup(gate.cleanup_files)
        self.addCleanup(gate.close)
        self.addCleanup(self._dump_log_on_failure, gate)
        gate.start()
        clients = [self.connect(gate) for _ in range(40)]
        codes = [c.read_reply().code for c in clients]
        self.assertEqual(set(codes) - {220, 421}, set(), f"replies: {codes}")
        self.assertIn(421, codes, "some clients must be over the descriptor limit")
        self.assertIn(220, codes, "the clients that fit are served")
        gate.wait_log(r"reject session=\S+ client=127\.0\.0\.1 reason=descriptors code=421")
        errors = [l for l in gate.log_lines() if " accept_error " in l]
        self.assertLessEqual(len(errors), 5, f"accept_error lines are rate-limited, got {len(errors)}")
        for c in clients:
            c.close()

        def served():
            with SmtpClient(gate.host, gate.port) as c:
                return c.read_reply().code == 220
        wait_for(served, what="a new client to be served once descriptors are free")


class AdminDescriptorTest(IntegrationCase):
    """The admin listener out of descriptors backs off instead of spinning."""

    LIMIT = 40

    def _fill_descriptor_table(self) -> tuple[Proxy, list[SmtpClient]]:
        # In a long greet pause a session holds one descriptor (the backend is connected after
        # the pause), so these clients fill the table; the ones past it are refused through the
        # spare descriptor. With the table full, every accept fails (Linux takes the descriptor
        # before it looks at the queue), so the SMTP listener logs accept_error once a second.
        gate = self.proxy(self.recording_backend().address,
                          {"limits": {"concurrent_per_client": 0}, "greet_pause": {"delay": "300s"}},
                          max_open_files=self.LIMIT)
        clients = [self.connect(gate) for _ in range(self.LIMIT)]
        wait_for(lambda: len(gate.find_events("connect"))
                 + len(gate.find_events("reject", reason="descriptors")) == len(clients),
                 what=f"all {len(clients)} clients accepted or refused\nlog tail:\n{gate.log_tail()}")
        self.assertTrue(gate.find_events("reject", reason="descriptors"),
                        "some clients must be past the descriptor limit")
        return gate, clients

    def _admin_request(self, gate: Proxy) -> socket.socket:
        # The kernel completes the connection in the listen queue; the proxy cannot accept it.
        admin = socket.create_connection((LOCALHOST, gate.admin_port), timeout=HANG_GUARD)
        self.addCleanup(admin.close)
        admin.sendall(b"GET /healthz HTTP/1.1\r\nHost: gate\r\n\r\n")
        return admin

    def _next_accept_error(self, gate: Proxy) -> None:
        seen = len(gate.find_events("accept_error"))
        wait_for(lambda: len(gate.find_events("accept_error")) > seen,
                 what=f"the next accept_error line\nlog tail:\n{gate.log_tail()}")

    def test_admin_listener_backs_off_and_serves_once_descriptors_are_free(self):
        gate, clients = self._fill_descriptor_table()
        admin = self._admin_request(gate)
        # accept_error lines are at least a second apart: the CPU the proxy uses between two
        # of them is what a spinning accept loop would show, close to a whole second.
        self._next_accept_error(gate)
        cpu_before = cpu_seconds(gate.proc.pid)
        self._next_accept_error(gate)
        cpu = cpu_seconds(gate.proc.pid) - cpu_before
        self.assertLess(cpu, 0.25, f"CPU seconds in one logged second, out of descriptors: got "
                                   f"{cpu:.2f}, want next to none (a back-off, not a spin)")
        for c in clients:
            c.close()
        response = admin.recv(4096)
        self.assertTrue(response.startswith(b"HTTP/1.1 200"),
                        f"/healthz once descriptors are free: got {response[:80]!r}, want 200")

    def test_admin_listener_backing_off_still_closes_on_drain(self):
        gate, _ = self._fill_descriptor_table()
        self._admin_request(gate)
        self._next_accept_error(gate)
        self.assertEqual(gate.stop(), 0, "exit status after SIGTERM")
        self.assertEqual(gate.find_events("internal_error"), [])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` and all its threads, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    unittest.main()
