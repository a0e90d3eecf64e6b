"""swaks - a real SMTP client delivers end to end through smtpgate, with and without PIPELINING,
to a recording aiosmtpd backend and to Postfix's smtp-sink.
"""

import unittest

from harness import HANG_GUARD, IntegrationCase, run_tool

BODY = "Hello from swaks through smtpgate."


def swaks(address: str, *extra: str):
    host, port = address.rsplit(":", 1)
    return run_tool(["swaks", "--server", host, "--port", port, "--helo", "client.test",
                     "--from", "c@d.test", "--to", "a@b.test", "--body", BODY,
                     "--timeout", str(int(HANG_GUARD)), *extra], text=True)


class SwaksTest(IntegrationCase):
    def test_swaks_delivers_to_the_recording_backend(self):
        for extra in ([], ["--pipeline"]):
            with self.subTest(options=extra):
                backend = self.recording_backend()
                gate = self.proxy(backend.address)
                run = swaks(gate.address, *extra)
                self.assertEqual(run.returncode, 0, f"swaks {' '.join(extra)} transcript:\n{run.stdout}{run.stderr}")
                (t,) = backend.transactions
                self.assertEqual((t.mail_from, t.rcpt_tos), ("c@d.test", ["a@b.test"]))
                self.assertIn(BODY.encode(), t.content)
                self.assertIn("Ok: queued as RB00001", run.stdout, "the backend's reply reaches swaks")

    def test_swaks_delivers_to_smtp_sink(self):
        for extra in ([], ["--pipeline"]):
            with self.subTest(options=extra):
                sink = self.smtp_sink()
                gate = self.proxy(sink.address)
                run = swaks(gate.address, *extra)
                self.assertEqual(run.returncode, 0, f"swaks {' '.join(extra)} transcript:\n{run.stdout}{run.stderr}")
                (message,) = sink.messages()
                self.assertIn(b"X-Mail-Args: <c@d.test>", message)
                self.assertIn(BODY.encode(), message)

    def test_swaks_sees_no_xclient_through_the_proxy(self):
        sink = self.smtp_sink()
        gate = self.proxy(sink.address)
        run = swaks(gate.address, "--quit-after", "EHLO")
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        ehlo_lines = [l for l in run.stdout.splitlines() if l.startswith("<- ") or l.startswith("<-  ")]
        self.assertTrue(any("PIPELINING" in l for l in ehlo_lines), run.stdout)
        self.assertFalse(any("XCLIENT" in l or "XFORWARD" in l for l in ehlo_lines), run.stdout)


if __name__ == "__main__":
    unittest.main()
