"""Descriptor exhaustion: the proxy keeps answering when it runs out of file descriptors.

With RLIMIT_NOFILE lowered, clients beyond what the descriptor table holds get
`421 4.7.0` through the proxy's spare descriptor (OpenSMTPD's reserve) instead of waiting in
silence, the accept loop backs off instead of spinning, and service resumes when sessions end.
"""

import unittest

from harness import IntegrationCase, Proxy, SmtpClient, wait_for


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


if __name__ == "__main__":
    unittest.main()
