"""postfix - smtpgate in front of a real Postfix (a private instance, see PostfixInstance).

What Postfix itself decides (unknown users, queue ids, delivery) is checked in Postfix's own
log and mailboxes, so each behaviour is specified end to end:
  - the recipient cap: RCPT 101+ get the proxy's 452 4.5.3 and never reach Postfix; the
    sender's retry with the rest delivers them: nothing lost;
  - a dictionary attack: Postfix's 550 5.1.1 replies are relayed, the proxy throttles them
    (rcpt_flood) and ends the session at max_errors with 421 4.7.0, while a normal sender in
    a parallel session is untouched;
  - the PROXY protocol hand-off: Postfix with smtpd_upstream_proxy_protocol = haproxy records
    the real client address, for proxy-v2 and proxy-v1.
"""

import re
import shutil
import tempfile
import threading
import unittest
from pathlib import Path

from harness import (HANG_GUARD, ConnectionClosed, IntegrationCase, PostfixInstance, Reply,
                     SmtpClient, make_certificate, port_refuses, postfix_installed, run_tool,
                     wait_for)

SKIP_REASON = ("Postfix is not installed (/usr/sbin/postfix absent); these tests run smtpgate in "
               "front of a private Postfix instance")

DOMAIN = "example.net"
USERS = [f"u{i}@{DOMAIN}" for i in range(1, 151)]
CAP = 100  # limits.recipients_per_message default
END_OF_MESSAGE = [("DATA", "354"), ("<end of data>", "250 2.0.0 Ok: queued as")]
UNKNOWN_USER = "550 5.1.1 <{}>: Recipient address rejected: User unknown in virtual mailbox table"


def swaks(address: str, recipients: list[str], *extra: str):
    host, port = address.rsplit(":", 1)
    return run_tool(["swaks", "--server", host, "--port", port, "--helo", "client.test",
                     "--from", "list@example.org", "--to", ",".join(recipients),
                     "--header", "Subject: a list message",
                     "--timeout", str(int(HANG_GUARD)), *extra], text=True)


def swaks_dialogue(transcript: str) -> list[tuple[str, str | None]]:
    """(command, first line of its reply, or None when none came) for every command swaks sent
    up to and including DATA, then ("<end of data>", reply). swaks marks lines `->` (sent),
    `<-` (a reply it expected) and `<**` (one it did not); with --pipeline the replies follow
    the whole group, in command order, so pairing by position works in both modes."""
    commands, replies, current = [], [], None
    in_data = False
    for line in transcript.splitlines():
        if line.startswith(" -> ") and not in_data:
            commands.append(line[4:])
            in_data = line[4:] == "DATA"
        elif line.startswith(("<-  ", "<** ")):
            text = line[4:]
            if current is None:
                current = text
            if text[3:4] != "-":  # the last line of a (multi-line) reply
                replies.append(current)
                current = None
    commands.append("<end of data>")
    replies = replies[1:]  # the first is the banner
    return [(c, replies[i] if i < len(replies) else None) for i, c in enumerate(commands)]


def mismatches(dialogue: list[tuple[str, str | None]], want: list[tuple[str, str]]) -> list[str]:
    """One got/want line per wanted (command, reply prefix) that swaks did not see: a different
    reply, or none (the command was not sent, or the connection closed first)."""
    got = dict(dialogue)
    return [f"{c}: got {got.get(c)!r}, want {w!r}" for c, w in want
            if not (got.get(c) or "").startswith(w)]


def summary(lines: list[str], limit: int = 6) -> str:
    shown = lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
    return "\n  " + "\n  ".join(shown)


def transcript_tail(run, n: int = 12) -> str:
    return "\n".join((run.stdout + run.stderr).splitlines()[-n:])


def first_header(message: bytes, name: str) -> str:
    """The first `name:` header of `message`, unfolded."""
    head = message.split(b"\n\n", 1)[0].decode("latin-1")
    lines = head.split("\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(name.lower() + ":"):
            value = line
            for cont in lines[i + 1:]:
                if cont[:1] not in (" ", "\t"):
                    break
                value += " " + cont.strip()
            return value
    return ""


@unittest.skipUnless(postfix_installed(), SKIP_REASON)
class PostfixCase(IntegrationCase):
    def client(self, gate, source: str) -> SmtpClient:
        client = SmtpClient(gate.host, gate.port, source=source)
        self.addCleanup(client.close)
        return client

    def assertDelivered(self, postfix, want: dict[str, int], what: str) -> None:
        got = postfix.delivered()
        wrong = [f"{u}: got {got[u]}, want {n}" for u, n in want.items() if got[u] != n]
        if wrong:
            self.fail(f"{what}: {len(wrong)} mailboxes hold the wrong number of messages:{summary(wrong)}")

    def postfix_rcpt_count(self, postfix, session: int) -> str:
        """The `rcpt=` field of Postfix's n-th (1-based) session that sent MAIL: how many RCPT
        commands Postfix received (`accepted/received`, or one number when all passed)."""
        def sessions():
            found = postfix.grep_maillog(r"disconnect from \S+ .*\bmail=")
            return found if len(found) >= session else None
        lines = wait_for(sessions, what=f"Postfix's disconnect line of session {session} with MAIL"
                                        f"\nmaillog tail:\n{postfix.maillog_tail()}")
        fields = dict(f.split("=", 1) for f in lines[session - 1].split() if "=" in f)
        return fields.get("rcpt", "")


class RecipientCapTest(PostfixCase):
    def test_recipients_past_the_cap_get_452_never_reach_postfix_and_arrive_on_retry(self):
        for mode in ([], ["--pipeline"]):
            with self.subTest(swaks=" ".join(mode) or "lock-step"):
                postfix = self.postfix(users=USERS)
                gate = self.proxy(postfix.address)

                run = swaks(gate.address, USERS, *mode)
                # Postfix's session summary counts the RCPT commands it received: the cap's.
                self.assertEqual(self.postfix_rcpt_count(postfix, 1), str(CAP),
                                 "RCPT commands Postfix received in the first session (rcpt=)")
                dialogue = swaks_dialogue(run.stdout)
                want = [(f"RCPT TO:<{u}>", "250 2.1.5" if i < CAP else "452 4.5.3") for i, u in enumerate(USERS)]
                wrong = mismatches(dialogue, want + END_OF_MESSAGE)
                if wrong:
                    self.fail(f"replies swaks got ({len(wrong)} wrong):{summary(wrong)}\n"
                              f"swaks exit status {run.returncode}; transcript tail:\n{transcript_tail(run)}")
                self.assertEqual(run.returncode, 0, f"swaks exit status; transcript tail:\n{transcript_tail(run)}")
                final = dict(dialogue)["<end of data>"]
                queue_id = postfix.queue_id(final)
                postfix.wait_done(queue_id)

                self.assertDelivered(postfix, {u: int(i < CAP) for i, u in enumerate(USERS)},
                                     "after the first send")
                qmgr = postfix.wait_maillog(rf"\b{queue_id}: from=<list@example\.org>")
                self.assertIn(f"nrcpt={CAP} ", qmgr, "Postfix's recipient count for the message")

                # The sender retries the 452ed recipients, as a standards-following MTA does.
                rest = USERS[CAP:]
                run = swaks(gate.address, rest, *mode)
                dialogue = swaks_dialogue(run.stdout)
                wrong = mismatches(dialogue, [(f"RCPT TO:<{u}>", "250 2.1.5") for u in rest] + END_OF_MESSAGE)
                if wrong:
                    self.fail(f"retry: replies swaks got ({len(wrong)} wrong):{summary(wrong)}\n"
                              f"swaks exit status {run.returncode}; transcript tail:\n{transcript_tail(run)}")
                self.assertEqual(run.returncode, 0, f"retry: swaks exit status; transcript tail:\n{transcript_tail(run)}")
                postfix.wait_done(postfix.queue_id(dict(dialogue)["<end of data>"]))
                self.assertDelivered(postfix, {u: 1 for u in USERS}, "after the retry")
                self.assertEqual(self.postfix_rcpt_count(postfix, 2), str(len(rest)),
                                 "RCPT commands Postfix received in the retry session (rcpt=)")


class DictionaryAttackTest(PostfixCase):
    THROTTLE = {"limits": {"bad_recipient_throttle": {"after": 2, "delay": "1s"},
                           "max_errors": 8, "soft_errors": 0}}

    def test_unknown_users_are_throttled_then_cut_off_while_a_normal_sender_passes(self):
        postfix = self.postfix(users=["u1@example.net", "u2@example.net"])
        gate = self.proxy(postfix.address, self.THROTTLE)

        # A normal sender's session is open all through the attack.
        normal = self.client(gate, "127.0.0.3")
        normal_replies: list[Reply] = list(normal.greet())
        normal_replies.append(normal.command("MAIL FROM:<alice@example.org>"))
        normal_replies.append(normal.command("RCPT TO:<u1@example.net>"))
        normal_session = gate.session_of(normal)

        attacker = self.client(gate, "127.0.0.2")
        attacker.greet()
        self.assertReply(attacker.command("MAIL FROM:<bot@example.org>"), "250", "attacker MAIL")
        attacker_session = gate.session_of(attacker)
        guesses = [f"nobody{i}@{DOMAIN}" for i in range(1, 13)]
        attacker.send("".join(f"RCPT TO:<{g}>\r\n" for g in guesses))  # one pipelined group

        # Read the attacker's replies as they come, each with the byte count received so far:
        # a reply completed by a later read than the one before it arrived after it.
        arrivals: list[tuple[Reply, int]] = []
        failure: list[BaseException] = []

        def read_all():
            try:
                for _ in range(len(guesses) + 2):
                    reply = attacker.read_reply()
                    arrivals.append((reply, len(attacker.received)))
            except ConnectionClosed:
                pass
            except BaseException as e:  # reported below, on the test thread
                failure.append(e)

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()

        flood = gate.wait_event("rcpt_flood", session=attacker_session)
        # While the attacker is throttled, the normal sender finishes its message.
        normal_replies.append(normal.command("RCPT TO:<u2@example.net>"))
        normal_replies.append(normal.command("DATA"))
        normal.send(b"Subject: ordinary mail\r\n\r\nsent during a dictionary attack\r\n.\r\n")
        normal_replies.append(normal.read_reply())
        normal_replies.append(normal.command("QUIT"))
        want_normal = ["220", "250", "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0 Ok: queued as", "221"]
        got_normal = [str(r) for r in normal_replies]
        self.assertTrue(all(g.startswith(w) for g, w in zip(got_normal, want_normal)),
                        f"normal sender's replies:\n got  {got_normal}\n want {want_normal}")

        reader.join(HANG_GUARD + 5)
        self.assertFalse(reader.is_alive(), "the attacker's session is still open; want it closed after 421")
        if failure:
            raise failure[0]

        # Postfix's own 550 5.1.1 for each guess is relayed unchanged, up to the 8th error;
        # then the proxy's 421 4.7.0 and the close.
        got = [str(r) for r, _ in arrivals]
        want = [UNKNOWN_USER.format(g) for g in guesses[:8]] + ["421 4.7.0"]
        self.assertEqual(len(got), len(want), f"attacker's replies:\n got  {got}\n want {want}")
        for i, (g, w) in enumerate(zip(got, want), 1):
            self.assertTrue(g.startswith(w), f"attacker reply {i}: got {g!r}, want {w!r}")
        self.assertTrue(attacker.eof, "the proxy closed the attacker's connection")
        for rcpt in guesses[:8]:
            postfix.wait_maillog(rf"reject: RCPT from \S+: {re.escape(UNKNOWN_USER.format(rcpt))}")

        # The log: rcpt_flood once, for the attacker's transaction; max_errors ends it.
        floods = gate.find_events("rcpt_flood")
        self.assertEqual([e.get("session") for e in floods], [attacker_session],
                         f"sessions of the rcpt_flood events (first: {flood})")
        self.assertEqual(flood.get("reason"), "bad_recipient_throttle", f"rcpt_flood event {flood}")
        gate.wait_event("reject", session=attacker_session, reason="max_errors")
        others = [e for e in gate.events() if e.get("session") == normal_session
                  and e.get("event") in ("rcpt_flood", "reject", "would_reject")]
        self.assertEqual(others, [], "throttle or reject events for the normal sender")

        # The normal sender's message is delivered to both of its recipients.
        postfix.wait_done(postfix.queue_id(normal_replies[6]))
        for rcpt in ("u1@example.net", "u2@example.net"):
            (message,) = postfix.mailbox(rcpt)
            self.assertIn(b"sent during a dictionary attack", message, f"the message in {rcpt}'s mailbox")

        # Last, the throttle itself: the replies to RCPT 3 to 7 (after `after = 2` unknown
        # users) are delayed, so each arrived after the ones before it, not with them. The 8th
        # reaches max_errors and goes out as it is, with the 421.
        reads = [n for _, n in arrivals]
        together = [i for i in range(3, 8) if reads[i - 1] <= reads[i - 2]]
        if together:
            self.fail(f"replies {together} (to RCPT {', '.join(f'<{guesses[i - 1]}>' for i in together)}) came "
                      f"in the same read as the reply before them, want each delayed until after it; bytes "
                      f"received when each of the {len(reads)} replies was complete: {reads}")


class ProxyProtocolTest(PostfixCase):
    def test_postfix_records_the_real_client_address(self):
        postfix = self.postfix(users=["u1@example.net", "u2@example.net"],
                               smtpd={"smtpd_upstream_proxy_protocol": "haproxy"})
        for n, identity in enumerate(("proxy-v2", "proxy-v1"), 1):
            with self.subTest(identity=identity):
                gate = self.proxy(postfix.address, {"backend": {"identity": identity}})
                client = self.client(gate, "127.0.0.2")
                client.greet()
                rcpt = f"u{n}@{DOMAIN}"
                final = client.send_message("sender@example.org", [rcpt],
                                            f"Subject: via {identity}\r\n\r\nfrom 127.0.0.2\r\n".encode())
                self.assertReply(final, "250 2.0.0 Ok: queued as", "end of data")
                self.assertReply(client.command("QUIT"), "221")
                queue_id = postfix.queue_id(final)
                postfix.wait_done(queue_id)

                logged = postfix.wait_maillog(rf"\b{queue_id}: client=")
                self.assertTrue(logged.endswith("client=unknown[127.0.0.2]"),
                                f"Postfix's client for {queue_id}: got {logged!r}, want client=unknown[127.0.0.2]")
                connects = postfix.grep_maillog(r"connect from unknown\[127\.0\.0\.2\]$")
                self.assertEqual(len(connects), n, f"Postfix's 'connect from unknown[127.0.0.2]' lines: {connects}")
                (message,) = postfix.mailbox(rcpt)
                received = first_header(message, "Received")
                self.assertIn("from client.test (unknown [127.0.0.2])", received,
                              f"Received: header of the delivered message: got {received!r}")

    def test_the_readiness_probe_is_an_ordinary_short_session_for_postfix(self):
        # /readyz without recent sessions probes: PROXY header naming the proxy, banner, QUIT.
        postfix = self.postfix(users=["u1@example.net"],
                               smtpd={"smtpd_upstream_proxy_protocol": "haproxy"})
        gate = self.proxy(postfix.address, {"backend": {"identity": "proxy-v2"}})
        clean = r"disconnect from \S+\[127\.0\.0\.1\] quit=1 commands=1$"
        before = len(postfix.grep_maillog(clean))  # the fixture's own readiness check
        run = run_tool(["curl", "-fsS", f"{gate.admin_url}/readyz"])
        self.assertEqual(run.returncode, 0, run.stderr.decode(errors="replace"))
        wait_for(lambda: len(postfix.grep_maillog(clean)) > before, what="the probe's session in the maillog")
        self.assertEqual(postfix.grep_maillog(r"warning|lost connection"), [])

    def test_a_header_to_a_postfix_that_does_not_expect_it_is_caught(self):
        # Without smtpd_upstream_proxy_protocol Postfix answers the header as a command right
        # after its banner; smtpgate ends the session before replies answer the wrong command.
        postfix = self.postfix(users=["u1@example.net"])
        for identity in ("proxy-v2", "proxy-v1"):
            with self.subTest(identity=identity):
                gate = self.proxy(postfix.address, {"backend": {"identity": identity}})
                client = self.client(gate, "127.0.0.2")
                reply = client.read_reply()
                if reply.code == 220:  # Postfix's answer came after the banner's read
                    reply = client.command("EHLO client.test")
                self.assertReply(reply, "421 4.3.0")
                event = gate.wait_event("backend_error", reason="unsolicited_reply")
                self.assertIn('unasked: "500 5.5.2 Error: ', event["detail"])
                self.assertIn("smtpd_upstream_proxy_protocol", event["detail"])
        self.assertEqual(postfix.mailbox("u1@example.net"), [])


class XclientTest(PostfixCase):
    def test_postfix_records_the_real_client_address_given_by_xclient(self):
        postfix = self.postfix(users=["u1@example.net"],
                               smtpd={"smtpd_authorized_xclient_hosts": "127.0.0.1"})
        gate = self.proxy(postfix.address, {"backend": {"identity": "xclient"}})
        client = self.client(gate, "127.0.0.2")
        banner, ehlo = client.greet()
        self.assertNotIn("XCLIENT", " ".join(ehlo.texts), "XCLIENT is the proxy's, never the client's")
        final = client.send_message("sender@example.org", [f"u1@{DOMAIN}"],
                                    b"Subject: via XCLIENT\r\n\r\nfrom 127.0.0.2\r\n")
        self.assertReply(final, "250 2.0.0 Ok: queued as", "end of data")
        self.assertReply(client.command("QUIT"), "221")
        queue_id = postfix.queue_id(final)
        postfix.wait_done(queue_id)
        logged = postfix.wait_maillog(rf"\b{queue_id}: client=")
        self.assertTrue(logged.endswith("client=unknown[127.0.0.2]"),
                        f"Postfix's client for {queue_id}: got {logged!r}, want client=unknown[127.0.0.2]")
        (message,) = postfix.mailbox(f"u1@{DOMAIN}")
        received = first_header(message, "Received")
        self.assertIn("from client.test (unknown [127.0.0.2])", received,
                      f"Received: header of the delivered message: got {received!r}")

    def test_starttls_in_the_proxy_with_xclient_to_postfix(self):
        postfix = self.postfix(users=["u1@example.net"],
                               smtpd={"smtpd_authorized_xclient_hosts": "127.0.0.1"})
        directory = Path(tempfile.mkdtemp(prefix="smtpgate-tls-"))
        self.addCleanup(shutil.rmtree, directory, True)
        cert, key = make_certificate(directory, "gate.test")
        gate = self.proxy(postfix.address, {"backend": {"identity": "xclient"},
                                            "tls": {"certificate": str(cert), "key": str(key)}})
        run = swaks(gate.address, [f"u1@{DOMAIN}"], "--tls", "--local-interface", "127.0.0.2")
        self.assertEqual(run.returncode, 0, transcript_tail(run))
        self.assertIn("TLS started", run.stdout)
        (message,) = wait_for(lambda: postfix.mailbox(f"u1@{DOMAIN}") or None,
                              what="the message in u1's mailbox")
        received = first_header(message, "Received")
        self.assertIn("[127.0.0.2]", received, f"Received: header: got {received!r}")
        [tls] = gate.find_events("tls")
        self.assertTrue(tls["client"].startswith("127.0.0.2:"), tls)

    def test_postfix_that_does_not_authorize_the_proxy_is_a_clear_error(self):
        postfix = self.postfix(users=["u1@example.net"])
        gate = self.proxy(postfix.address, {"backend": {"identity": "xclient"}})
        client = self.client(gate, "127.0.0.2")
        self.assertReply(client.read_reply(), "421 4.3.0")
        event = gate.wait_event("backend_error", reason="xclient_unsupported")
        self.assertIn("smtpd_authorized_xclient_hosts", event["detail"])


class BackendTlsTest(PostfixCase):
    """backend.tls = "starttls": a Postfix that requires TLS (smtpd_tls_security_level =
    encrypt) gets it from the proxy, while the client speaks plain SMTP to the proxy."""

    def tls_postfix(self, directory: Path):
        cert, key = make_certificate(directory, "postfix.test", alt_names="IP:127.0.0.1")
        postfix = self.postfix(users=["u1@example.net"], main={
            "smtpd_tls_security_level": "encrypt", "smtpd_tls_cert_file": str(cert),
            "smtpd_tls_key_file": str(key), "smtpd_tls_received_header": "yes"})
        return postfix, cert

    def setUp(self):
        super().setUp()
        self.dir = Path(tempfile.mkdtemp(prefix="smtpgate-backend-tls-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_a_postfix_that_requires_tls_gets_it_and_verifies(self):
        postfix, cert = self.tls_postfix(self.dir)
        direct = SmtpClient("127.0.0.1", postfix.port)
        self.addCleanup(direct.close)
        direct.greet()
        self.assertReply(direct.command("MAIL FROM:<a@example.org>"), "530 5.7.0",
                         "Postfix refuses plaintext mail")

        gate = self.proxy(postfix.address, {"backend": {"tls": "starttls",
                                                        "tls_ca_file": str(cert)}})
        client = self.client(gate, "127.0.0.2")
        _, ehlo = client.greet()
        self.assertNotIn("STARTTLS", ehlo.texts, "the backend's STARTTLS is the proxy's business")
        final = client.send_message("sender@example.org", [f"u1@{DOMAIN}"],
                                    b"Subject: over the proxy's TLS link\r\n\r\nhello\r\n")
        self.assertReply(final, "250 2.0.0 Ok: queued as", "end of data")
        self.assertReply(client.command("QUIT"), "221")
        postfix.wait_done(postfix.queue_id(final))
        (message,) = postfix.mailbox(f"u1@{DOMAIN}")
        received = first_header(message, "Received")
        self.assertIn("(using TLSv1.", received, f"Received: header: got {received!r}")

    def test_a_backend_certificate_that_does_not_verify_is_a_421(self):
        postfix, _ = self.tls_postfix(self.dir)
        other, _ = make_certificate(self.dir, "other.test", name="other", alt_names="IP:127.0.0.1")
        gate = self.proxy(postfix.address, {"backend": {"tls": "starttls",
                                                        "tls_ca_file": str(other)}})
        client = self.client(gate, "127.0.0.2")
        self.assertReply(client.read_reply(), "421 4.3.0")
        event = gate.wait_event("backend_error", reason="tls_handshake")
        self.assertIn("certificate", event["detail"])
        client.wait_closed()


class PostfixInstanceTest(PostfixCase):
    """The fixture itself, without smtpgate: what the tests above rely on."""

    def test_listed_users_get_mail_unknown_users_550_5_1_1_other_domains_are_discarded(self):
        postfix = self.postfix(users=["u1@example.net"])
        client = SmtpClient("127.0.0.1", postfix.port)
        self.addCleanup(client.close)
        client.greet()
        self.assertReply(client.command("MAIL FROM:<s@example.org>"), "250 2.1.0")
        self.assertReply(client.command("RCPT TO:<u1@example.net>"), "250 2.1.5")
        unknown = client.command("RCPT TO:<nobody@example.net>")
        self.assertEqual(str(unknown), UNKNOWN_USER.format("nobody@example.net"), "unknown user")
        self.assertReply(client.command("RCPT TO:<someone@elsewhere.test>"), "250 2.1.5")
        self.assertReply(client.command("DATA"), "354")
        client.send(b"Subject: fixture\r\n\r\nstraight to Postfix\r\n.\r\n")
        final = client.read_reply()
        self.assertReply(final, "250 2.0.0 Ok: queued as")
        self.assertReply(client.command("QUIT"), "221")
        queue_id = postfix.queue_id(final)
        postfix.wait_done(queue_id)
        (message,) = postfix.mailbox("u1@example.net")
        self.assertIn(b"straight to Postfix", message, "the delivered message")
        discarded = postfix.wait_maillog(rf"\b{queue_id}: to=<someone@elsewhere\.test>")
        self.assertIn("relay=none", discarded, "another domain's recipient goes to the discard transport")
        self.assertIn("status=sent (not delivered by the test instance)", discarded, "discarded")

    def test_stop_ends_every_process_and_removes_every_file(self):
        postfix = PostfixInstance(users=["u1@example.net"])
        self.addCleanup(postfix.stop)
        postfix.start()
        running = postfix.processes()
        self.assertIn(postfix.pgid, running, "the master runs in its own process group")
        postfix.stop()
        self.assertEqual(postfix.processes(), [], "Postfix processes left after stop()")
        self.assertFalse(postfix.dir.exists(), f"{postfix.dir} left after stop()")
        self.assertTrue(port_refuses("127.0.0.1", postfix.port), f"port {postfix.port} still accepts after stop()")

    def test_a_failed_start_reports_postfix_log_and_leaves_nothing(self):
        postfix = PostfixInstance(users=["u1@example.net"], smtpd={"smtpd_upstream_proxy_protocol": "bogus"})
        self.addCleanup(postfix.stop)
        with self.assertRaises(AssertionError) as raised:
            postfix.start()
        self.assertIn("fatal: unsupported smtpd_upstream_proxy_protocol value: bogus", str(raised.exception),
                      "the start-up failure quotes Postfix's log")
        self.assertEqual(postfix.processes(), [], "Postfix processes left after a failed start")
        self.assertFalse(postfix.dir.exists(), f"{postfix.dir} left after a failed start")


if __name__ == "__main__":
    unittest.main()
