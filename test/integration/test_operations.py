"""operations - what a postmaster watches and changes while smtpgate runs.

The admin endpoint (/metrics in the Prometheus text format, /healthz, /readyz) scraped with
curl and parsed with prometheus_client's parser; SIGHUP reloads with a bad and a good file
while smtp-source sends, losing no session and keeping limiter state; a SIGTERM drain with
a thousand sessions in flight loses no message the backend accepted and cuts no client in DATA
without a 4xx.
"""

import asyncio
import os
import pwd
import resource
import shutil
import signal
import subprocess
import tempfile
import unittest
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from harness import (HANG_GUARD, IntegrationCase, ScriptedBackend, SmtpClient, die_with_parent,
                     free_port, run_tool, smtpgate_binary, to_toml, wait_for)


def scrape(gate) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, fetched with curl: {(name, sorted labels): value}."""
    run = run_tool(["curl", "-fsS", f"{gate.admin_url}/metrics"])
    assert run.returncode == 0, run.stderr.decode()
    samples = {}
    for family in text_string_to_metric_families(run.stdout.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def status_of(gate, path: str) -> int:
    run = run_tool(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{gate.admin_url}{path}"])
    return int(run.stdout.decode() or 0)


class AdminEndpointTest(IntegrationCase):
    def test_metrics_count_a_refused_and_a_relayed_session(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"rule": [{"match": "127.0.0.3", "action": "deny"}]})
        before = scrape(gate)
        self.assertEqual(before[("smtpgate_build_info", (("version", "0.1.0"),))], 1.0)

        client = SmtpClient(gate.host, gate.port, source="127.0.0.2")
        self.addCleanup(client.close)
        client.greet()
        self.assertReply(client.send_message("a@example.org", ["b@example.net"], b"hi\r\n"), "250")
        self.assertReply(client.command("QUIT"), "221")
        refused = SmtpClient(gate.host, gate.port, source="127.0.0.3")
        self.addCleanup(refused.close)
        self.assertReply(refused.read_reply(), "554 5.7.1")
        gate.wait_event("disconnect", reason="access")

        after = scrape(gate)
        self.assertEqual(after[("smtpgate_refusals_total", (("action", "refuse"), ("reason", "access")))], 1)
        self.assertEqual(after[("smtpgate_messages_total", ())], 1)
        self.assertEqual(after[("smtpgate_sessions_total", ())], 2)
        self.assertEqual(after[("smtpgate_backend_connect_seconds_count", ())], 1,
                         "the refused client cost no backend connection")
        self.assertGreater(after[("smtpgate_bytes_total", (("direction", "in"),))], 0)
        self.assertEqual(after[("smtpgate_events_total", (("event", "connect"), ("reason", "")))], 2)
        self.assertEqual(after[("smtpgate_sessions_active", ())], 0)

    def test_healthz_and_readyz_follow_the_backend(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        self.assertEqual(status_of(gate, "/healthz"), 200)
        self.assertEqual(status_of(gate, "/readyz"), 200)
        self.assertEqual(status_of(gate, "/nothing"), 404)
        backend.stop()
        # The cached verdict lasts 10 s; a client's failed backend connection updates it now.
        client = self.connect(gate)
        self.assertReply(client.read_reply(), "421 4.4.1")
        self.assertEqual(status_of(gate, "/readyz"), 503)
        self.assertEqual(status_of(gate, "/healthz"), 200, "alive, only not ready")


    def test_readyz_probes_with_a_short_smtp_session_that_introduces_itself(self):
        # Without recent sessions /readyz asks the backend itself: banner, then QUIT, after a
        # PROXY header naming the proxy when the backend expects one. A backend that accepts
        # the connection but refuses service is not ready.
        backend = self.scripted_backend(ScriptedBackend())
        gate = self.proxy(backend.address, {"backend": {"identity": "proxy-v1"}})
        self.assertEqual(status_of(gate, "/readyz"), 200)
        probe = backend.wait_connection(1)
        wait_for(probe.closed.is_set, what="the probe to end")
        self.assertEqual(probe.lines, [b"QUIT"])
        self.assertRegex(probe.proxy_header, rb"^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ %d\r\n$"
                         % backend.port)

        refusing = self.scripted_backend(ScriptedBackend.banner_554())
        gate = self.proxy(refusing.address)
        self.assertEqual(status_of(gate, "/readyz"), 503)
        refused = refusing.wait_connection(1)
        wait_for(refused.closed.is_set, what="the probe to end")
        self.assertEqual(refused.lines, [b"QUIT"], "a refusing backend is left with a QUIT too")


@unittest.skipUnless(os.geteuid() == 0, "switching users needs root")
class PrivilegesTest(IntegrationCase):
    def test_started_as_root_it_becomes_server_user_and_still_relays_and_reloads(self):
        nobody = pwd.getpwnam("nobody")
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"user": "nobody"}})
        os.chmod(gate.dir, 0o755)  # the reload reads the file as nobody
        event = gate.wait_event("privileges", user="nobody")
        self.assertEqual((int(event["uid"]), int(event["gid"])), (nobody.pw_uid, nobody.pw_gid))
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{gate.proc.pid}/status").read_text().splitlines() if ":" in line)
        self.assertEqual(status["Uid"].split(), [str(nobody.pw_uid)] * 4, "real, effective, saved, fs")
        self.assertEqual(status["Gid"].split(), [str(nobody.pw_gid)] * 4)
        self.assertNotIn("0", status["Groups"].split(), "root's group kept")

        client = self.connect(gate)
        client.greet()
        self.assertReply(client.send_message("a@example.org", ["b@example.net"], b"hi\r\n"), "250")
        self.assertReply(client.command("QUIT"), "221")

        config = dict(gate.config)
        config["rule"] = [{"match": "127.0.0.3", "action": "deny"}]
        gate.config_path.write_text(to_toml(config))
        gate.signal(signal.SIGHUP)
        gate.wait_event("reload", status="ok")
        refused = SmtpClient(gate.host, gate.port, source="127.0.0.3")
        self.addCleanup(refused.close)
        self.assertReply(refused.read_reply(), "554 5.7.1", "the reloaded rule applies")

    def test_started_unprivileged_another_user_is_an_error_not_ignored(self):
        directory = Path(tempfile.mkdtemp(prefix="smtpgate-user-"))
        self.addCleanup(shutil.rmtree, directory, True)
        os.chmod(directory, 0o755)
        config = directory / "smtpgate.toml"
        config.write_text(to_toml({"server": {"listen": [f"127.0.0.1:{free_port()}"], "user": "daemon"},
                                   "admin": {"listen": ""}}))
        nobody = pwd.getpwnam("nobody")

        def as_nobody():
            die_with_parent()
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        binary = directory / "smtpgate"  # where nobody may run it, whatever the build path
        shutil.copy(smtpgate_binary(), binary)
        run = subprocess.run([str(binary), "--config", str(config)], capture_output=True,
                             timeout=HANG_GUARD, preexec_fn=as_nobody)
        self.assertEqual(run.returncode, 1)
        self.assertIn(f'server.user = "daemon": switching to another user needs root; started as '
                      f"uid {nobody.pw_uid}", run.stderr.decode())


class ReloadTest(IntegrationCase):
    def reload_with(self, gate, overrides: dict, event_status: str, count: int):
        config = dict(gate.config)
        config.update(overrides)
        gate.config_path.write_text(to_toml(config))
        gate.signal(signal.SIGHUP)
        wait_for(lambda: len(gate.find_events("reload", status=event_status)) >= count,
                 what=f"reload status={event_status} number {count}")

    def test_sighup_under_load_keeps_every_session_and_changes_the_limits(self):
        backend = self.recording_backend()
        limited = {"match": "127.0.0.4", "connection_rate": "2/60s"}
        gate = self.proxy(backend.address, {"rule": [limited]})
        # Two connections of 127.0.0.4's budget are used before the reloads.
        for _ in range(2):
            c = SmtpClient(gate.host, gate.port, source="127.0.0.4")
            self.assertReply(c.read_reply(), "220")
            c.command("QUIT")
            c.close()

        messages = 2000
        source = run_tool_async(["smtp-source", "-s", "5", "-m", str(messages), "-c",
                                 "-f", "a@example.org", "-t", "b@example.net", gate.address])
        wait_for(lambda: len(backend.transactions) >= 20, what="smtp-source to be under way")

        gate.config_path.write_text(to_toml(gate.config) + "\n[bogus]\nkey = 1\n")
        gate.signal(signal.SIGHUP)
        failed = gate.wait_event("reload", status="failed")
        self.assertIn("bogus", failed["detail"])

        self.reload_with(gate, {"rule": [limited, {"match": "127.0.0.3", "action": "deny"}]},
                         "ok", 1)
        self.assertIsNone(source.poll(), "the reloads must happen while smtp-source sends")
        out, err = source.communicate(timeout=HANG_GUARD * 3)
        self.assertEqual(source.returncode, 0, (out + err).decode(errors="replace"))
        wait_for(lambda: len(backend.transactions) >= messages,
                 what=f"{messages} messages at the backend")
        self.assertEqual(len(backend.transactions), messages, "no message lost or doubled")

        denied = SmtpClient(gate.host, gate.port, source="127.0.0.3")
        self.addCleanup(denied.close)
        self.assertReply(denied.read_reply(), "554 5.7.1", "the new rule applies")
        third = SmtpClient(gate.host, gate.port, source="127.0.0.4")
        self.addCleanup(third.close)
        self.assertReply(third.read_reply(), "421 4.7.0", "the rate state survived the reload")
        samples = scrape(gate)
        self.assertEqual(samples[("smtpgate_config_reloads_total", (("result", "ok"),))], 1)
        self.assertEqual(samples[("smtpgate_config_reloads_total", (("result", "failed"),))], 1)

    def test_a_listener_change_is_refused_and_nothing_is_applied(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address)
        self.reload_with(gate, {"server": dict(gate.config["server"], listen=["127.0.0.1:1"]),
                                "rule": [{"match": "127.0.0.0/8", "action": "deny"}]},
                         "failed", 1)
        self.assertIn("server.listen", gate.find_events("reload", status="failed")[0]["detail"])
        client = self.connect(gate)
        self.assertReply(client.read_reply(), "220", "the deny rule of the refused file is not in force")


def run_tool_async(cmd) -> subprocess.Popen:
    """A client program running in the background (bounded by the caller's communicate())."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=die_with_parent)


class DrainUnderLoadTest(IntegrationCase):
    SESSIONS = 1000

    async def session(self, host, port, n, acked, outcomes):
        """Sends messages until the proxy ends the session; records every 250 and how it ended."""
        reader, writer = await asyncio.open_connection(host, port)

        async def reply():
            lines = []
            while True:
                line = await reader.readline()
                if not line:
                    raise ConnectionError("closed " + " | ".join(lines))
                lines.append(line.decode().rstrip())
                if line[3:4] != b"-":
                    return lines[-1]

        try:
            banner = await reply()
            if banner.startswith("421 4.3.2"):
                outcomes[n] = "421 at the banner"  # still in the listen backlog at SIGTERM
                return
            if not banner.startswith("220"):
                outcomes[n] = f"unexpected banner: {banner}"
                return
            writer.write(b"EHLO drain.test\r\n")
            if (await reply()).startswith("421"):
                outcomes[n] = "421 between transactions"
                return
            for m in range(1000):
                tag = f"s{n}m{m}"
                writer.write(f"MAIL FROM:<{tag}@example.org>\r\n".encode())
                r = await reply()
                if r.startswith("421"):
                    outcomes[n] = "421 between transactions"
                    return
                writer.write(b"RCPT TO:<b@example.net>\r\nDATA\r\n")
                await reply(), await reply()
                body = f"Subject: {tag}\r\n\r\n".encode() + b"x" * 998 + b"\r\n"
                for _ in range(16):  # about 16 KB in pieces: sessions are often inside DATA
                    writer.write(body)
                    await writer.drain()
                    body = b"y" * 998 + b"\r\n"
                writer.write(b".\r\n")
                r = await reply()
                if r.startswith("250"):
                    acked.add(tag)
                elif r.startswith("4"):
                    outcomes[n] = f"4xx after DATA: {r}"
                    return
                else:
                    outcomes[n] = f"unexpected after DATA: {r}"
                    return
        except ConnectionError as e:
            outcomes[n] = f"cut without a reply: {e}"
        finally:
            writer.close()

    def setUp(self):
        # The clients and the recording backend live in this process, two sockets per session;
        # the proxy inherits the limit. Raise the soft limit as far as the hard one allows.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 2 * self.SESSIONS + 256
        if soft < need:
            if hard != resource.RLIM_INFINITY and hard < need:
                self.fail(f"RLIMIT_NOFILE hard limit {hard} is below the {need} this test needs")
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))

    def test_sigterm_with_a_thousand_busy_sessions_loses_nothing(self):
        backend = self.recording_backend()
        gate = self.proxy(backend.address, {"server": {"shutdown_grace": "20s"},
                                            "limits": {"concurrent_per_client": 0}})
        acked: set[str] = set()
        outcomes: dict[int, str] = {}

        async def main():
            tasks = [asyncio.create_task(self.session(gate.host, gate.port, n, acked, outcomes))
                     for n in range(self.SESSIONS)]
            async def under_way():
                while len(backend.transactions) < self.SESSIONS:
                    await asyncio.sleep(0.05)  # polls a condition, bounded by wait_for

            await asyncio.wait_for(under_way(), HANG_GUARD * 3)
            os.kill(gate.proc.pid, signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(*tasks), HANG_GUARD * 3)

        asyncio.run(main())
        self.assertEqual(gate.wait_exit(), 0)
        accepted = {t.mail_from.split("@")[0] for t in backend.transactions}
        self.assertEqual(accepted - acked, set(), "accepted by the backend, never confirmed to the client")
        self.assertEqual(acked - accepted, set(), "confirmed to the client, unknown to the backend")
        bad = {n: o for n, o in outcomes.items() if not o.startswith("421")}
        self.assertEqual(bad, {}, "every session must end with a 421, between transactions or "
                                  "instead of the banner")
        self.assertEqual(len(outcomes), self.SESSIONS)


if __name__ == "__main__":
    unittest.main()
