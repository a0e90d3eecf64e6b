// Session engine, specified by transcripts (see session_transcript.hpp for the notation).
#include <catch2/catch.hpp>

#include "session_transcript.hpp"

using smtpgate::test::transcript_runner;

TEST_CASE("session - relays the banner and a whole transaction in order") {
    transcript_runner t;
    t.run(R"(
        Banner: 220 mx.example ESMTP
        S: 220 mx.example ESMTP
        C: EHLO client.example
        => EHLO client.example
        B: 250-mx.example
        B: 250-PIPELINING
        B: 250 8BITMIME
        S: 250-mx.example
        S: 250-PIPELINING
        S: 250 8BITMIME
        C: MAIL FROM:<a@example.org>
        => MAIL FROM:<a@example.org>
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        C: RCPT TO:<b@example.net>
        => RCPT TO:<b@example.net>
        B: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
        C: DATA
        => DATA
        B: 354 End data with <CR><LF>.<CR><LF>
        S: 354 End data with <CR><LF>.<CR><LF>
        ? phase data
        ! data_end
        ? phase command
        B: 250 2.0.0 Ok: queued as 1234
        S: 250 2.0.0 Ok: queued as 1234
        C: QUIT
        => QUIT
        B: 221 2.0.0 Bye
        S: 221 2.0.0 Bye
        ? closing
        ? no quit backend
    )");
    CHECK(t.engine().messages() == 1);
    CHECK(t.engine().close_reason() == "quit");
}

TEST_CASE("session - a non-220 banner is 421 4.3.0 and close") {
    transcript_runner t;
    t.run(R"(
        Banner: 554 5.7.1 go away
        S: 421 4.3.0 gate.test Service not available, backend error
        ? closing
    )");
}

TEST_CASE("session - pipelined commands are answered in command order, local replies included") {
    transcript_runner t;
    t.run(R"(
        C: MAIL FROM:<a@example.org>
        C: XCLIENT ADDR=192.0.2.1
        C: RCPT TO:<b@example.net>
        C: BDAT 100 LAST
        C: RCPT TO:<c@example.net>
        C: NOOP
        => MAIL FROM:<a@example.org>
        => RCPT TO:<b@example.net>
        => RCPT TO:<c@example.net>
        => NOOP
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        S: 550 5.7.0 gate.test Error: insufficient authorization
        B: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
        S: 502 5.5.1 gate.test Error: BDAT not implemented, use DATA
        B: 550 5.1.1 <c@example.net>: Recipient address rejected
        S: 550 5.1.1 <c@example.net>: Recipient address rejected
        B: 250 2.0.0 Ok
        S: 250 2.0.0 Ok
        ? idle
    )");
}

TEST_CASE("session - a local reply with nothing outstanding goes out at once") {
    transcript_runner t;
    t.run(R"(
        C: XFORWARD ADDR=192.0.2.1
        S: 550 5.7.0 gate.test Error: insufficient authorization
        C: PROXY TCP4 192.0.2.1 192.0.2.2 1234 25
        S: 550 5.7.0 gate.test Error: insufficient authorization
        C: STARTTLS
        S: 502 5.5.1 gate.test Error: STARTTLS not available
        C: FROB x
        S: 500 5.5.1 gate.test Error: command not recognized
        C: HELO
        S: 501 5.5.4 gate.test Error: syntax error in parameters
        C: RCPT TO:<>
        S: 501 5.5.4 gate.test Error: syntax error in parameters
        Clong:
        S: 500 5.5.2 gate.test Error: line too long
        ? open
    )");
}

TEST_CASE("session - DATA is the last command of a pipelined group") {
    // What follows DATA is message content once the 354 is in; the engine must not read it
    // as commands.
    transcript_runner t;
    t.run(R"(
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<b@example.net>
        C: DATA
        C: RSET
        => MAIL FROM:<a@example.org>
        => RCPT TO:<b@example.net>
        => DATA
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        B: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
        B: 354 go ahead
        S: 354 go ahead
        ? phase data
    )");
}

TEST_CASE("session - a refused DATA lets the next command through") {
    transcript_runner t;
    t.run(R"(
        C: DATA
        C: RSET
        => DATA
        B: 554 5.5.1 Error: no valid recipients
        S: 554 5.5.1 Error: no valid recipients
        => RSET
        B: 250 2.0.0 Ok
        S: 250 2.0.0 Ok
        ? phase command
    )");
}

TEST_CASE("session - the final reply after DATA waits before later commands") {
    transcript_runner t;
    t.run(R"(
        C: DATA
        => DATA
        B: 354 go ahead
        S: 354 go ahead
        ! data_end
        C: MAIL FROM:<next@example.org>
        B: 451 4.3.0 Error: queue file write error
        S: 451 4.3.0 Error: queue file write error
        => MAIL FROM:<next@example.org>
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
    )");
    CHECK(t.engine().messages() == 0);
}

TEST_CASE("session - EHLO reply hides XCLIENT, XFORWARD, CHUNKING, BINARYMIME and STARTTLS") {
    transcript_runner t;
    t.run(R"(
        C: EHLO client.example
        => EHLO client.example
        B: 250-mx.example
        B: 250-PIPELINING
        B: 250-STARTTLS
        B: 250-XCLIENT NAME ADDR PROTO HELO
        B: 250-XFORWARD NAME ADDR PROTO HELO
        B: 250-CHUNKING
        B: 250-BINARYMIME
        B: 250-SIZE 10240000
        B: 250 SMTPUTF8
        S: 250-mx.example
        S: 250-PIPELINING
        S: 250-SIZE 10240000
        S: 250 SMTPUTF8
    )");
}

TEST_CASE("session - AUTH continuation lines are forwarded, junk cancels the exchange") {
    transcript_runner t;
    t.run(R"(
        C: AUTH LOGIN
        => AUTH LOGIN
        B: 334 VXNlcm5hbWU6
        S: 334 VXNlcm5hbWU6
        ? phase auth
        C: dXNlcg==
        => dXNlcg==
        B: 334 UGFzc3dvcmQ6
        S: 334 UGFzc3dvcmQ6
        C: MAIL FROM:<smuggled@example.org>
        => *
        B: 501 5.7.0 Authentication aborted
        S: 501 5.7.0 Authentication aborted
        ? phase command
    )");
}

TEST_CASE("session - non-SMTP lines end the session at once") {
    for (const char* line : {"GET / HTTP/1.1", "POST /x HTTP/1.0", "CONNECT mx.example:25 HTTP/1.1",
                             "Host: mx.example", "User-Agent: curl/7.88"}) {
        INFO(line);
        transcript_runner t;
        t.run(std::string("C: MAIL FROM:<a@b>\n=> MAIL FROM:<a@b>\nC: ") + line + R"(
            S: 521 5.7.0 gate.test Error: non-SMTP command, closing
            ? closing
        )");
    }
}

TEST_CASE("session - bare line endings: normalized by default, refused in reject mode") {
    transcript_runner normalize;
    normalize.run(R"(
        Cbare: NOOP
        => NOOP
        B: 250 2.0.0 Ok
        S: 250 2.0.0 Ok
    )");
    transcript_runner reject({"gate.test", true});
    reject.run(R"(
        Cbare: NOOP
        S: 500 5.5.2 gate.test Error: bare <CR> or <LF> received
        C: NOOP
        => NOOP
        B: 250 2.0.0 Ok
        S: 250 2.0.0 Ok
        C: DATA
        => DATA
        B: 354 go ahead
        S: 354 go ahead
        ! data_bare
        S: 521 5.5.2 gate.test Error: bare <CR> or <LF> in message content, closing
        ? closing
        ? no quit backend
    )");
}

TEST_CASE("session - deadlines and backend failures end with a 421 and close") {
    transcript_runner command;
    command.run(R"(
        ! timeout command
        S: 421 4.4.2 gate.test Error: timeout exceeded
        ? closing
        ? quit backend
    )");
    transcript_runner data;
    data.run(R"(
        C: DATA
        => DATA
        B: 354 go ahead
        S: 354 go ahead
        ! timeout data
        S: 421 4.4.2 gate.test Error: timeout exceeded
        ? closing
        ? no quit backend
    )");
    transcript_runner backend;
    backend.run(R"(
        C: MAIL FROM:<a@b>
        C: RCPT TO:<c@d>
        => MAIL FROM:<a@b>
        => RCPT TO:<c@d>
        ! backend_down
        S: 421 4.3.0 gate.test Service not available, backend error
        ? closing
    )");
}

TEST_CASE("session - a 421 from the backend is relayed and closes the session") {
    transcript_runner t;
    t.run(R"(
        C: NOOP
        C: NOOP
        => NOOP
        => NOOP
        B: 421 4.7.0 mx.example Error: too many errors
        S: 421 4.7.0 mx.example Error: too many errors
        ? closing
    )");
}

TEST_CASE("session - drain closes between transactions, never inside one") {
    transcript_runner t;
    t.run(R"(
        C: MAIL FROM:<a@b>
        => MAIL FROM:<a@b>
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        ! drain
        C: RCPT TO:<c@d>
        => RCPT TO:<c@d>
        B: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
        C: DATA
        => DATA
        B: 354 go ahead
        S: 354 go ahead
        ! data_end
        B: 250 2.0.0 Ok
        S: 250 2.0.0 Ok
        C: MAIL FROM:<again@b>
        S: 421 4.3.2 gate.test Service shutting down, try again later
        ? closing
        ? quit backend
    )");
    CHECK(t.engine().messages() == 1);
}

TEST_CASE("session - drain still lets QUIT through") {
    transcript_runner t;
    t.run(R"(
        ! drain
        C: QUIT
        => QUIT
        B: 221 2.0.0 Bye
        S: 221 2.0.0 Bye
        ? closing
    )");
}

TEST_CASE("session - tempfail mode answers transactions with 451 until QUIT") {
    transcript_runner t;
    t.engine().answer_locally(&smtpgate::smtp::replies::greeting,
                              smtpgate::smtp::replies::tempfail_command, true);
    t.run(R"(
        S: 220 gate.test ESMTP
        C: EHLO client.example
        S: 250 gate.test
        C: MAIL FROM:<a@example.org>
        S: 451 4.7.0 gate.test Temporarily refusing mail from your network, try again later
        C: RCPT TO:<b@example.net>
        S: 451 4.7.0 gate.test Temporarily refusing mail from your network, try again later
        C: NOOP
        S: 250 2.0.0 Ok
        C: QUIT
        S: 221 2.0.0 gate.test Bye
        ? closing
    )");
}

TEST_CASE("session - nullserver mode refuses everything but QUIT, and not for long") {
    transcript_runner t;
    t.engine().answer_locally(&smtpgate::smtp::replies::pregreet,
                              smtpgate::smtp::replies::nullserver_command, false);
    std::string script = R"(
        S: 554 5.5.1 gate.test Error: SMTP protocol synchronization, not accepting messages
        C: EHLO client.example
        S: 554 5.5.1 gate.test Error: not accepting commands
        C: XCLIENT ADDR=192.0.2.1
        S: 554 5.5.1 gate.test Error: not accepting commands
    )";
    // A client that keeps talking is cut off after max_local_commands.
    for (std::uint64_t i = 2; i < smtpgate::session::engine::max_local_commands; ++i) {
        script += "C: NOOP\nS: 554 5.5.1 gate.test Error: not accepting commands\n";
    }
    script += R"(
        C: NOOP
        S: 421 4.7.0 gate.test Error: too many errors
        ? closing
    )";
    t.run(script);
}

namespace {

smtpgate::session::engine_settings throttled(std::uint32_t recipients, std::uint32_t bad_after) {
    smtpgate::session::engine_settings s;
    s.hostname = "gate.test";
    s.recipients_per_message = recipients;
    s.bad_recipient_after = bad_after;
    s.bad_recipient_delay = std::chrono::seconds(1);
    return s;
}

std::int64_t total_delay_ms(smtpgate::session::engine& e) {
    std::int64_t total = 0;
    for (const auto& d : e.delayed())
        total += d.delay.count();
    return total;
}

}  // namespace

TEST_CASE("session - the recipient cap answers 452 4.5.3 locally from recipient N+1 on") {
    auto settings = throttled(100, 0);
    std::string script =
        "C: MAIL FROM:<a@example.org>\n=> MAIL FROM:<a@example.org>\n"
        "B: 250 2.1.0 Ok\nS: 250 2.1.0 Ok\n";
    for (int i = 1; i <= 102; ++i) {
        const std::string rcpt = "RCPT TO:<u" + std::to_string(i) + "@example.net>";
        script += "C: " + rcpt + "\n";
        if (i <= 100) {
            script += "=> " + rcpt + "\nB: 250 2.1.5 Ok\nS: 250 2.1.5 Ok\n";
        } else {
            script += "S: 452 4.5.3 gate.test Error: too many recipients\n";
        }
    }
    // A new transaction starts the count again.
    script +=
        "C: RSET\n=> RSET\nB: 250 2.0.0 Ok\nS: 250 2.0.0 Ok\n"
        "C: MAIL FROM:<a@example.org>\n=> MAIL FROM:<a@example.org>\nB: 250 2.1.0 Ok\nS: 250 2.1.0 "
        "Ok\n"
        "C: RCPT TO:<again@example.net>\n=> RCPT TO:<again@example.net>\nB: 250 2.1.5 Ok\nS: 250 "
        "2.1.5 Ok\n";
    transcript_runner t(settings);
    t.run(script);
}

TEST_CASE("session - recipients past the cap are not errors: a 150-recipient list is not cut off") {
    auto settings = throttled(100, 0);
    settings.soft_errors = 10;
    settings.max_errors = 20;
    transcript_runner t(settings);
    std::string script =
        "C: MAIL FROM:<list@example.org>\n=> MAIL FROM:<list@example.org>\n"
        "B: 250 2.1.0 Ok\nS: 250 2.1.0 Ok\n";
    for (int i = 1; i <= 150; ++i) {
        const std::string rcpt = "RCPT TO:<u" + std::to_string(i) + "@example.net>";
        script += "C: " + rcpt + "\n";
        script += i <= 100 ? "=> " + rcpt + "\nB: 250 2.1.5 Ok\nS: 250 2.1.5 Ok\n"
                           : "S: 452 4.5.3 gate.test Error: too many recipients\n";
    }
    script += "C: DATA\n=> DATA\nB: 354 go ahead\nS: 354 go ahead\n? open\n";
    t.run(script);
    CHECK(t.engine().delayed().empty());
}

TEST_CASE("session - pipelined RCPTs past the cap keep command order") {
    transcript_runner t(throttled(100, 0));
    std::string script = "C: MAIL FROM:<a@example.org>\n";
    for (int i = 1; i <= 101; ++i)
        script += "C: RCPT TO:<u" + std::to_string(i) + "@example.net>\n";
    script += "C: NOOP\n=> MAIL FROM:<a@example.org>\n";
    for (int i = 1; i <= 100; ++i)
        script += "=> RCPT TO:<u" + std::to_string(i) + "@example.net>\n";
    script += "=> NOOP\nB: 250 2.1.0 Ok\nS: 250 2.1.0 Ok\n";
    for (int i = 1; i <= 100; ++i)
        script += "B: 250 2.1.5 Ok\nS: 250 2.1.5 Ok\n";
    // The 452 for recipient 101 waits behind the backend's 100 replies, and the NOOP's reply
    // behind it.
    script +=
        "S: 452 4.5.3 gate.test Error: too many recipients\nB: 250 2.0.0 Ok\nS: 250 2.0.0 Ok\n";
    t.run(script);
}

TEST_CASE("session - unknown users are classified; the throttle starts after N of them") {
    using smtpgate::smtp::reply;
    CHECK(smtpgate::session::is_unknown_recipient(
        reply{550, {"5.1.1 <x@example.net>: Recipient address rejected"}}));
    CHECK(smtpgate::session::is_unknown_recipient(reply{550, {"No such user here"}}));
    CHECK(smtpgate::session::is_unknown_recipient(reply{553, {"5.1.3 bad address syntax"}}));
    CHECK_FALSE(smtpgate::session::is_unknown_recipient(reply{554, {"5.7.1 Relay access denied"}}));
    CHECK_FALSE(smtpgate::session::is_unknown_recipient(reply{550, {"5.7.1 Access denied"}}));
    CHECK_FALSE(smtpgate::session::is_unknown_recipient(reply{450, {"4.1.1 try later"}}));

    transcript_runner t(throttled(100, 2));
    auto& e = t.engine();
    t.run(R"(
        C: MAIL FROM:<spammer@example.org>
        => MAIL FROM:<spammer@example.org>
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        C: RCPT TO:<info@example.net>
        => RCPT TO:<info@example.net>
        B: 550 5.1.1 <info@example.net>: Recipient address rejected: User unknown
        S: 550 5.1.1 <info@example.net>: Recipient address rejected: User unknown
        C: RCPT TO:<sales@example.net>
        => RCPT TO:<sales@example.net>
        B: 550 5.1.1 <sales@example.net>: Recipient address rejected: User unknown
        S: 550 5.1.1 <sales@example.net>: Recipient address rejected: User unknown
        C: RCPT TO:<admin@example.net>
        => RCPT TO:<admin@example.net>
        B: 250 2.1.5 Ok
    )");
    // Two bad recipients seen: the third RCPT's reply waits a second, even though it is good.
    REQUIRE(e.delayed().size() == 1);
    CHECK(e.delayed().front().delay == std::chrono::seconds(1));
    CHECK(e.delayed().front().bytes == "250 2.1.5 Ok\r\n");
    e.delayed().clear();
    // MAIL starts a new transaction: the count starts again.
    t.run(R"(
        C: MAIL FROM:<next@example.org>
        => MAIL FROM:<next@example.org>
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        C: RCPT TO:<x@example.net>
        => RCPT TO:<x@example.net>
        B: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
    )");
    CHECK(e.delayed().empty());
}

TEST_CASE("session - pipelined RCPTs with delayed and local replies stay in order") {
    auto settings = throttled(100, 1);
    settings.recipients_per_message = 100;
    transcript_runner t(settings);
    auto& e = t.engine();
    t.run(R"(
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<bad@example.net>
        C: XCLIENT ADDR=192.0.2.1
        C: RCPT TO:<good@example.net>
        C: NOOP
        => MAIL FROM:<a@example.org>
        => RCPT TO:<bad@example.net>
        => RCPT TO:<good@example.net>
        => NOOP
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        B: 550 5.1.1 unknown
        S: 550 5.1.1 unknown
        S: 550 5.7.0 gate.test Error: insufficient authorization
        B: 250 2.1.5 Ok
        B: 250 2.0.0 Ok
    )");
    // The local 550 for XCLIENT went out at once (its turn came before the delayed RCPT
    // reply); the good RCPT's reply waits, and the NOOP's reply queues behind it.
    REQUIRE(e.delayed().size() == 1);
    CHECK(e.delayed().front().bytes == "250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n");
    e.delayed().clear();
}

TEST_CASE("session - errors: delayed after the soft limit, closed at the hard limit") {
    smtpgate::session::engine_settings s;
    s.hostname = "gate.test";
    s.soft_errors = 2;
    s.max_errors = 4;
    s.error_delay = std::chrono::milliseconds(500);
    transcript_runner t(s);
    auto& e = t.engine();
    t.run(R"(
        C: FOO
        S: 500 5.5.1 gate.test Error: command not recognized
        C: VRFY root
        => VRFY root
        B: 502 5.5.1 VRFY command is disabled
        S: 502 5.5.1 VRFY command is disabled
        C: BAR
    )");
    REQUIRE(e.delayed().size() == 1);
    CHECK(e.delayed().front().delay == std::chrono::milliseconds(500));
    CHECK(total_delay_ms(e) == 500);
    e.delayed().clear();
    t.run(R"(
        C: BAZ
        S: 421 4.7.0 gate.test Error: too many errors
        ? closing
    )");
}

TEST_CASE("session - the delay budget closes the session instead of growing without bound") {
    auto settings = throttled(1000, 1);
    settings.max_total_delay = std::chrono::seconds(3);
    transcript_runner t(settings);
    auto& e = t.engine();
    std::string script =
        "C: MAIL FROM:<a@b>\n=> MAIL FROM:<a@b>\nB: 250 2.1.0 Ok\nS: 250 2.1.0 Ok\n"
        "C: RCPT TO:<u0@b>\n=> RCPT TO:<u0@b>\nB: 550 5.1.1 unknown\nS: 550 5.1.1 unknown\n";
    for (int i = 1; i <= 3; ++i) {
        script += "C: RCPT TO:<u" + std::to_string(i) + "@b>\n=> RCPT TO:<u" + std::to_string(i)
                  + "@b>\nB: 550 5.1.1 unknown\n";
    }
    t.run(script);
    CHECK(total_delay_ms(e) == 3000);
    e.delayed().clear();
    t.run(R"(
        C: RCPT TO:<u4@b>
        => RCPT TO:<u4@b>
        B: 550 5.1.1 unknown
        S: 550 5.1.1 unknown
        S: 421 4.7.0 gate.test Error: too many errors
        ? closing
    )");
}

TEST_CASE("session - the error limit waits for the replies owed to earlier pipelined commands") {
    smtpgate::session::engine_settings s;
    s.hostname = "gate.test";
    s.soft_errors = 0;
    s.max_errors = 2;
    transcript_runner t(s);
    t.run(R"(
        C: NOOP 0
        C: FOO 0
        C: NOOP 1
        C: FOO 1
        C: NOOP 2
        => NOOP 0
        => NOOP 1
        B: 250 2.0.0 Ok 0
        S: 250 2.0.0 Ok 0
        S: 500 5.5.1 gate.test Error: command not recognized
        ? open
        B: 250 2.0.0 Ok 1
        S: 250 2.0.0 Ok 1
        S: 421 4.7.0 gate.test Error: too many errors
        ? closing
    )");
    CHECK(t.engine().close_reason() == "max_errors");
}

namespace {

/// Refuses what it is told to, as the screening over the store would. With `defer`, every
/// check is pending until the transcript says `! check_done`.
class fake_policy : public smtpgate::session::transaction_policy {
  public:
    std::string refuse_sender;
    bool observe_rcpt = false;
    bool refuse_rcpt = false;
    bool defer = false;
    std::vector<std::string> asked;
    smtpgate::policy::step_result result;

    const smtpgate::policy::step_result* check(smtpgate::policy::phase p,
                                               std::string_view subject) override {
        using smtpgate::policy::phase;
        const auto v = p == phase::helo   ? helo(subject)
                       : p == phase::mail ? mail(subject)
                                          : rcpt(subject);
        result = {};
        if (v.would_block) {
            result.would_block.push_back(v);
        } else {
            result.decision = v;
        }
        return defer ? nullptr : &result;
    }

  private:
    smtpgate::policy::verdict helo(std::string_view name) {
        asked.push_back("helo " + std::string(name));
        return {};
    }
    smtpgate::policy::verdict mail(std::string_view sender) {
        asked.push_back("mail " + std::string(sender));
        smtpgate::policy::verdict v;
        if (sender == refuse_sender) {
            v.act = smtpgate::policy::action::tempfail;
            v.reply = &smtpgate::smtp::replies::sender_throttled;
            v.reason = "sender_interval";
            v.observed = 10000;
            v.limit = 60000;
            v.in_ms = true;
        }
        return v;
    }
    smtpgate::policy::verdict rcpt(std::string_view sender) {
        asked.push_back("rcpt " + std::string(sender));
        smtpgate::policy::verdict v;
        if (observe_rcpt || refuse_rcpt) {
            v.would_block = observe_rcpt;
            v.act =
                refuse_rcpt ? smtpgate::policy::action::tempfail : smtpgate::policy::action::pass;
            v.reason = "recipient_rate";
            v.reply = &smtpgate::smtp::replies::recipient_rate_exceeded;
        }
        return v;
    }
};

}  // namespace

TEST_CASE("session - HELO, MAIL and RCPT are checked before they are forwarded") {
    fake_policy checks;
    checks.refuse_sender = "worm@example.com";
    checks.observe_rcpt = true;
    transcript_runner t;
    t.engine().set_transaction_policy(&checks);
    t.run(R"(
        C: EHLO bot.example extra
        => EHLO bot.example extra
        B: 250 mx.example
        S: 250 mx.example
        C: MAIL FROM:<worm@example.com>
        S: 451 4.7.1 gate.test Sender seen too often, try again later
        C: RCPT TO:<a@example.net>
        => RCPT TO:<a@example.net>
        B: 503 5.5.1 Error: need MAIL command
        S: 503 5.5.1 Error: need MAIL command
        C: MAIL FROM:<friend@example.org>
        => MAIL FROM:<friend@example.org>
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        C: RCPT TO:<a@example.net>
        => RCPT TO:<a@example.net>
        B: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
    )");
    const std::vector<std::string> want{"helo bot.example", "mail worm@example.com", "rcpt ",
                                        "mail friend@example.org", "rcpt friend@example.org"};
    CHECK(checks.asked == want);
    bool logged = false;
    for (const auto& e : t.engine().events()) {
        if (e.kind == smtpgate::session::event_kind::reject && e.reason == "sender_interval") {
            logged = e.detail == "worm@example.com" && e.in_ms && e.observed == 10000;
        }
    }
    CHECK(logged);
}

TEST_CASE("session - a check that waits for the store holds later lines, replies stay in order") {
    fake_policy checks;
    checks.defer = true;
    checks.refuse_rcpt = true;
    transcript_runner t;
    t.engine().set_transaction_policy(&checks);
    t.check_answer = [&] { return checks.result; };
    t.run(R"(
        C: EHLO client.example
        ? awaiting_check
        ! check_done
        ? not awaiting_check
        => EHLO client.example
        C: MAIL FROM:<a@example.org>
        ? awaiting_check
        C: RCPT TO:<x@example.net>
        C: RCPT TO:<y@example.net>
        B: 250 mx.example
        S: 250 mx.example
        ! check_done
        => MAIL FROM:<a@example.org>
        ? awaiting_check
        ! check_done
        ? awaiting_check
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
        S: 450 4.7.1 gate.test Too many recipients from your network, try again later
        ! check_done
        ? not awaiting_check
        S: 450 4.7.1 gate.test Too many recipients from your network, try again later
    )");
    // The lines held while a check waited were taken in order, one check at a time.
    const std::vector<std::string> want{"helo client.example", "mail a@example.org",
                                        "rcpt a@example.org", "rcpt a@example.org"};
    CHECK(checks.asked == want);
}

TEST_CASE("session - a pending check ends with the session: timeout, shutdown") {
    fake_policy checks;
    checks.defer = true;
    transcript_runner t;
    t.engine().set_transaction_policy(&checks);
    t.check_answer = [&] { return checks.result; };
    t.run(R"(
        C: HELO client.example
        ? awaiting_check
        ! timeout command
        S: 421 4.4.2 gate.test Error: timeout exceeded
        ? closing
        ? not awaiting_check
        ! check_done
    )");
    CHECK(t.engine().next() == smtpgate::session::next_step::close);
}
