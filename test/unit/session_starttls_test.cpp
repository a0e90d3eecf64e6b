// STARTTLS in the session engine (RFC 3207), specified by transcripts.
#include <catch2/catch.hpp>

#include "session_transcript.hpp"

using smtpgate::test::transcript_runner;

namespace {

smtpgate::session::engine_settings with_tls() {
    smtpgate::session::engine_settings s{"gate.test", false};
    s.tls_available = true;
    return s;
}

}  // namespace

TEST_CASE("session tls - STARTTLS is offered until TLS is active, then EHLO starts over") {
    transcript_runner t(with_tls());
    t.run(R"(
        Banner: 220 mx.example ESMTP
        S: 220 mx.example ESMTP
        C: EHLO client.example
        => EHLO client.example
        B: 250-mx.example
        B: 250-STARTTLS
        B: 250 PIPELINING
        S: 250-mx.example
        S: 250-STARTTLS
        S: 250 PIPELINING
        C: STARTTLS
        S: 220 2.0.0 Ready to start TLS
        ? phase tls
        ! tls_established
        ? phase command
        C: MAIL FROM:<a@example.org>
        S: 503 5.5.1 gate.test Error: send HELO/EHLO first
        C: EHLO client.example
        => EHLO client.example
        B: 250-mx.example
        B: 250-STARTTLS
        B: 250 PIPELINING
        S: 250-mx.example
        S: 250 PIPELINING
        C: STARTTLS
        S: 554 5.5.1 gate.test Error: TLS already active
        C: MAIL FROM:<a@example.org>
        => MAIL FROM:<a@example.org>
        B: 250 2.1.0 Ok
        S: 250 2.1.0 Ok
    )");
    CHECK(t.engine().tls_active());
}

TEST_CASE("session tls - commands pipelined after STARTTLS are never executed (CVE-2011-0411)") {
    transcript_runner t(with_tls());
    t.run(R"(
        Banner: 220 mx.example ESMTP
        S: 220 mx.example ESMTP
        C: EHLO client.example
        => EHLO client.example
        B: 250 mx.example
        S: 250-mx.example
        S: 250 STARTTLS
        C: STARTTLS
        C: RSET
        C: MAIL FROM:<injected@example.org>
        S: 220 2.0.0 Ready to start TLS
        ? phase tls
        ! tls_established
        C: EHLO client.example
        => EHLO client.example
        B: 250 mx.example
        S: 250 mx.example
    )");
}

TEST_CASE("session tls - a pipelined STARTTLS waits for the replies owed before it") {
    transcript_runner t(with_tls());
    t.run(R"(
        Banner: 220 mx.example ESMTP
        S: 220 mx.example ESMTP
        C: EHLO client.example
        C: STARTTLS
        C: QUIT
        => EHLO client.example
        ? phase command
        B: 250 mx.example
        S: 250-mx.example
        S: 250 STARTTLS
        S: 220 2.0.0 Ready to start TLS
        ? phase tls
        ! tls_established
        ? open
    )");
}

TEST_CASE("session tls - STARTTLS refused: not configured, with arguments, inside a transaction") {
    SECTION("no certificate") {
        transcript_runner t;
        t.run(R"(
            Banner: 220 mx.example ESMTP
            S: 220 mx.example ESMTP
            C: STARTTLS
            S: 502 5.5.1 gate.test Error: STARTTLS not available
            ? phase command
        )");
    }
    SECTION("arguments and transaction") {
        transcript_runner t(with_tls());
        t.run(R"(
            Banner: 220 mx.example ESMTP
            S: 220 mx.example ESMTP
            C: STARTTLS now
            S: 501 5.5.4 gate.test Error: syntax error in parameters
            C: MAIL FROM:<a@example.org>
            => MAIL FROM:<a@example.org>
            B: 250 2.1.0 Ok
            S: 250 2.1.0 Ok
            C: STARTTLS
            S: 503 5.5.1 gate.test Error: MAIL transaction in progress
            ? phase command
        )");
    }
}

TEST_CASE("session tls - a failed handshake closes the session without a reply") {
    transcript_runner t(with_tls());
    t.run(R"(
        Banner: 220 mx.example ESMTP
        S: 220 mx.example ESMTP
        C: STARTTLS
        S: 220 2.0.0 Ready to start TLS
        ! tls_failed
        ? closing
        ? quit backend
    )");
    CHECK(t.engine().close_reason() == "tls_handshake");
}

TEST_CASE("session tls - EHLO again after STARTTLS is one HELO observation, not two") {
    struct counting_policy : smtpgate::session::transaction_policy {
        int helos = 0;
        smtpgate::policy::step_result passed;
        const smtpgate::policy::step_result* check(smtpgate::policy::phase p,
                                                   std::string_view) override {
            if (p == smtpgate::policy::phase::helo) ++helos;
            return &passed;
        }
    } checks;
    transcript_runner t(with_tls());
    t.engine().set_transaction_policy(&checks);
    t.run(R"(
        Banner: 220 mx.example ESMTP
        S: 220 mx.example ESMTP
        C: EHLO client.example
        => EHLO client.example
        B: 250 mx.example
        S: 250-mx.example
        S: 250 STARTTLS
        C: STARTTLS
        S: 220 2.0.0 Ready to start TLS
        ! tls_established
        C: EHLO client.example
        => EHLO client.example
        B: 250 mx.example
        S: 250 mx.example
        C: EHLO other.example
        => EHLO other.example
        B: 250 mx.example
        S: 250 mx.example
    )");
    CHECK(checks.helos == 2);
}
