// The greet pause state machine: teaser, the wait, and what a slammer gets.
#include <catch2/catch.hpp>

#include "session_transcript.hpp"
#include "smtpgate/session/greet_pause.hpp"

using namespace smtpgate;
using namespace std::chrono_literals;
using session::greet_step;
using smtpgate::test::transcript_runner;

namespace {

policy::verdict pregreet_found(bool observed = false) {
    policy::verdict v{
        .act = policy::action::reject, .reply = &smtp::replies::pregreet, .reason = "pregreet"};
    if (observed) {
        v.act = policy::action::pass;
        v.would_block = true;
    }
    return v;
}

}  // namespace

TEST_CASE("session/greet_pause - no pause: straight on, nothing sent") {
    transcript_runner t;
    session::greet_pause p(0ms, true, config::pregreet_action::nullserver);
    CHECK(p.start(t.engine()) == greet_step::proceed);
    CHECK(t.engine().to_client().empty());
}

TEST_CASE("session/greet_pause - a slammer gets 554, then nullserver until QUIT") {
    transcript_runner t;
    session::greet_pause p(700ms, false, config::pregreet_action::nullserver);
    REQUIRE(p.start(t.engine()) == greet_step::wait);
    CHECK(p.pause() == 700ms);
    CHECK(t.engine().to_client().empty());
    CHECK(p.on_client_spoke(pregreet_found(), t.engine()) == greet_step::done);
    t.run(R"(
        S: 554 5.5.1 gate.test Error: SMTP protocol synchronization, not accepting messages
        C: EHLO bot.example
        S: 554 5.5.1 gate.test Error: not accepting commands
        C: QUIT
        S: 221 2.0.0 gate.test Bye
        ? closing
    )");
}

TEST_CASE("session/greet_pause - after a teaser, nullserver completes the banner first") {
    transcript_runner t;
    session::greet_pause p(1s, true, config::pregreet_action::nullserver);
    REQUIRE(p.start(t.engine()) == greet_step::wait);
    t.run("S: 220-gate.test ESMTP");
    CHECK(p.on_client_spoke(pregreet_found(), t.engine()) == greet_step::done);
    t.run(R"(
        S: 220 gate.test ESMTP
        C: MAIL FROM:<a@example.org>
        S: 554 5.5.1 gate.test Error: not accepting commands
    )");
}

TEST_CASE("session/greet_pause - drop: 554 and close, or a silent close after a teaser") {
    transcript_runner plain;
    session::greet_pause p(1s, false, config::pregreet_action::drop);
    REQUIRE(p.start(plain.engine()) == greet_step::wait);
    CHECK(p.on_client_spoke(pregreet_found(), plain.engine()) == greet_step::done);
    plain.run(R"(
        S: 554 5.5.1 gate.test Error: SMTP protocol synchronization, not accepting messages
        ? closing
    )");
    CHECK(plain.engine().close_reason() == "pregreet");

    transcript_runner teased;
    session::greet_pause q(1s, true, config::pregreet_action::drop);
    REQUIRE(q.start(teased.engine()) == greet_step::wait);
    teased.run("S: 220-gate.test ESMTP");
    CHECK(q.on_client_spoke(pregreet_found(), teased.engine()) == greet_step::close);
    teased.run("? open");
}

TEST_CASE("session/greet_pause - observed: the session goes on as if nothing happened") {
    transcript_runner t;
    session::greet_pause p(1s, false, config::pregreet_action::drop);
    REQUIRE(p.start(t.engine()) == greet_step::wait);
    CHECK(p.on_client_spoke(pregreet_found(true), t.engine()) == greet_step::proceed);
    t.run("? open");
}
