"""logs - one line per event with a session id, as text `key=value` or JSON.

Text lines read `<ts> <level> <event> key=value ...` (values with spaces double-quoted). The
events connect, disconnect, reject, timeout and backend_error carry the keys log shippers and
fail2ban filters depend on.
"""

import json
import os
import re
import unittest
from pathlib import Path

from harness import IntegrationCase, ScriptedBackend, SmtpClient, parse_text_log_line, run_tool

COUNTERS = ("commands", "messages", "bytes_in", "bytes_out", "duration_ms")


class TextLogTest(IntegrationCase):
    def run_one_message_session(self, gate):
        client = self.connect(gate)
        client.greet()
        self.assertReply(client.send_message("a@example.test", ["b@example.test"], b"logged\r\n"), "250")
        self.assertReply(client.command("QUIT"), "221")
        client.wait_closed()
        return client

    def test_every_line_follows_the_text_grammar(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        self.run_one_message_session(gate)
        bad = self.connect(gate)
        bad.greet()
        bad.command("XCLIENT ADDR=192.0.2.1")
        bad.command("QUIT")
        bad.wait_closed()
        gate.wait_event("disconnect", client=bad.local_address)
        malformed = [l for l in gate.log_lines() if parse_text_log_line(l) is None]
        self.assertEqual(malformed, [], "log lines that are not '<ts> <level> <event> key=value...'")

    def test_connect_and_disconnect_carry_the_session_and_its_counters(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        client = self.run_one_message_session(gate)
        connect = gate.wait_event("connect", client=client.local_address)
        self.assertEqual(connect["server"], gate.address, f"connect event {connect}")
        self.assertRegex(connect["session"], r"^\S+$")
        disconnect = gate.wait_event("disconnect", session=connect["session"])
        missing = [k for k in ("reason",) + COUNTERS if k not in disconnect]
        self.assertEqual(missing, [], f"keys missing from {disconnect}")
        not_numbers = [k for k in COUNTERS if not re.fullmatch(r"\d+", str(disconnect[k]))]
        self.assertEqual(not_numbers, [], f"counters that are not whole numbers in {disconnect}")
        self.assertEqual(disconnect["reason"], "quit", f"reason in {disconnect}")
        self.assertEqual(int(disconnect["messages"]), 1, f"messages in {disconnect}")
        # EHLO, MAIL, RCPT, DATA, QUIT
        self.assertGreaterEqual(int(disconnect["commands"]), 5, f"commands in {disconnect}")
        self.assertEqual(int(disconnect["bytes_in"]), client.sent, f"bytes_in in {disconnect} vs bytes the client sent")
        self.assertEqual(int(disconnect["bytes_out"]), len(client.received),
                         f"bytes_out in {disconnect} vs bytes the client received")

    def test_sessions_have_distinct_ids(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        clients = [self.run_one_message_session(gate) for _ in range(3)]
        ids = [gate.wait_event("connect", client=c.local_address)["session"] for c in clients]
        self.assertEqual(len(set(ids)), 3, f"session ids {ids}")

    def test_local_refusal_is_logged_as_reject_with_reason_and_code(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        client = self.connect(gate)
        client.greet()
        self.assertReply(client.command("XCLIENT ADDR=192.0.2.1"), "550")
        session = gate.session_of(client)
        reject = gate.wait_event("reject", session=session)
        self.assertEqual((reject.get("reason"), reject.get("code")), ("xclient", "550"),
                         f"reject event {reject}")
        self.assertEqual(reject.get("client"), client.local_address)

    def test_client_timeout_is_logged_with_its_phase(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"timeouts": {"command": "1s"}})
        client = self.connect(gate)
        client.greet()
        self.assertReply(client.read_reply(), "421 4.4.2")
        timeout = gate.wait_event("timeout", session=gate.session_of(client))
        self.assertEqual((timeout.get("phase"), timeout.get("code")), ("command", "421"), f"timeout event {timeout}")

    def test_data_and_backend_timeouts_name_their_phase(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"timeouts": {"data": "1s"}})
        client = self.connect(gate)
        client.greet()
        for line in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"):
            client.command(line)
        client.send(b"half a bo")
        self.assertReply(client.read_reply(), "421 4.4.2")
        self.assertEqual(gate.wait_event("timeout", session=gate.session_of(client)).get("phase"), "data")

        silent = self.scripted_backend(ScriptedBackend.silent_after_banner())
        gate = self.proxy(silent.address, {"backend": {"reply_timeout": "1s"}})
        client = self.connect(gate)
        client.read_reply()
        client.send_line("EHLO client.test")
        self.assertReply(client.read_reply(), "421 4.4.2")
        self.assertEqual(gate.wait_event("timeout", session=gate.session_of(client)).get("phase"), "backend_reply")

    def test_unreachable_backend_is_logged_as_backend_error(self):
        gate = self.proxy(f"127.0.0.1:{ScriptedBackend.refused_port()}")
        client = self.connect(gate)
        self.assertReply(client.read_reply(), "421 4.4.1")
        error = gate.wait_event("backend_error", session=gate.session_of(client))
        self.assertEqual((error.get("reason"), error.get("code")), ("connect", "421"), f"backend_error event {error}")


class JsonLogTest(IntegrationCase):
    def test_every_line_is_a_json_object_and_sessions_pair_up(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"log": {"format": "json"}})
        clients = []
        for i in range(3):
            client = self.connect(gate)
            client.greet()
            client.command("FOO refused")  # a reject event in the mix
            self.assertReply(client.send_message("a@example.test", ["b@example.test"], b"json\r\n"), "250")
            client.command("QUIT")
            client.wait_closed()
            clients.append(client)
        gate.stop()
        lines = gate.log_lines()
        not_json, entries = [], []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                not_json.append(line)
                continue
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                not_json.append(line)
        self.assertEqual(not_json, [], "stderr lines that are not one JSON object")
        no_basics = [e for e in entries if not all(k in e for k in ("ts", "level", "event"))]
        self.assertEqual(no_basics, [], "entries without ts, level and event")
        for e in entries:
            self.assertRegex(e["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        by_event = lambda name: [e for e in entries if e["event"] == name]
        for name in ("connect", "disconnect", "reject"):
            no_session = [e for e in by_event(name) if not e.get("session")]
            self.assertEqual(no_session, [], f"{name} entries without a session")
        connects = {e["client"]: e["session"] for e in by_event("connect")}
        for client in clients:
            self.assertIn(client.local_address, connects, "connect entry for the client")
        connect_ids = sorted(str(connects[c.local_address]) for c in clients)
        disconnect_ids = sorted(str(e["session"]) for e in by_event("disconnect"))
        self.assertEqual(disconnect_ids, connect_ids, "every connect has its disconnect, same session id")
        for e in by_event("disconnect"):
            for k in ("bytes_in", "bytes_out", "commands", "messages", "duration_ms"):
                self.assertIsInstance(e.get(k), int, f"{k} in {e}")
        self.assertEqual(entries[-1]["event"], "stopped", "the last line when the process exits")


class Fail2banTest(IntegrationCase):
    """contrib/fail2ban/smtpgate.conf, run by fail2ban-regex over a real log."""

    FILTER = Path(os.environ.get("SMTPGATE_SOURCE_DIR", Path(__file__).resolve().parents[2])) \
        / "contrib" / "fail2ban" / "smtpgate.conf"

    def client(self, gate, source):
        client = SmtpClient(gate.host, gate.port, source=source)
        self.addCleanup(client.close)
        return client

    def test_the_shipped_filter_catches_abusers_and_spares_mail_servers(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {
            "timeouts": {"command": "1s"},
            "rule": [{"match": "127.0.0.2", "greet_pause": "5s"}]})
        slammer = self.client(gate, "127.0.0.2")
        slammer.send(b"EHLO too.early\r\n")
        self.assertReply(slammer.read_reply(), "554 5.5.1")
        web = self.client(gate, "127.0.0.3")
        web.read_reply()
        self.assertReply(web.command("GET / HTTP/1.0"), "521")
        idle = self.client(gate, "127.0.0.4")
        idle.read_reply()
        self.assertReply(idle.read_reply(), "421 4.4.2")
        mta = self.client(gate, "127.0.0.5")
        mta.greet()
        self.assertReply(mta.command("XYZZY"), "500")
        self.assertReply(mta.send_message("a@example.org", ["b@example.net"], b"ok\r\n"), "250")
        self.assertReply(mta.command("QUIT"), "221")
        gate.wait_event("disconnect", reason="quit")

        run = run_tool(["fail2ban-regex", "--print-all-matched", str(gate.log_path),
                        str(self.FILTER)])
        out = run.stdout.decode(errors="replace")
        self.assertEqual(run.returncode, 0, out + run.stderr.decode(errors="replace"))
        matched = out.split("Matched line(s):", 1)[1].split("`-", 1)[0] if "Matched line(s):" in out else ""
        for host, why in (("127.0.0.2", "pregreet"), ("127.0.0.3", "non_smtp"),
                          ("127.0.0.4", "phase=command")):
            self.assertRegex(matched, rf"client={re.escape(host)}:\d+ \S*{why}",
                             f"{host} ({why}) must be banned; fail2ban-regex said:\n{out}")
        self.assertNotIn("client=127.0.0.5:", matched,
                         f"an MTA with one unknown command must not be banned:\n{out}")


if __name__ == "__main__":
    unittest.main()
