// The backend handshake state machine: banner, STARTTLS on the proxy's link, XCLIENT.
// Transcript style: "=> line" is what the proxy writes, "B: line" a backend reply line.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "smtpgate/session/backend_handshake.hpp"

using namespace smtpgate;
using session::handshake_step;

namespace {

session::xclient_identity ipv6_client() {
    return {"2001:db8::7", true, 41000, "mx.example.net", "192.0.2.25", false, 25};
}

/// Runs `script` against the machine and returns how it ended: "done 220 <text>",
/// "failed <reason>: <detail>" or "tls" (waiting for the handshake).
struct runner {
    session::backend_handshake hs;
    handshake_step step;

    runner(session::handshake_settings s, session::xclient_identity c = ipv6_client())
        : hs(std::move(s), std::move(c)), step(hs.start()) {}

    void run(const std::string& script) {
        std::istringstream in(script);
        std::string raw;
        smtp::reply_parser parser;
        while (std::getline(in, raw)) {
            const auto first = raw.find_first_not_of(' ');
            if (first == std::string::npos) continue;
            const std::string line = raw.substr(first);
            INFO("transcript: " << line);
            if (line.rfind("=> ", 0) == 0) {
                REQUIRE(step == handshake_step::exchange);
                CHECK(hs.line() == line.substr(3) + "\r\n");
            } else if (line.rfind("B: ", 0) == 0) {
                REQUIRE(step == handshake_step::exchange);
                const auto status = parser.feed(line.substr(3));
                REQUIRE(status != smtp::reply_status::malformed);
                if (status == smtp::reply_status::complete) step = hs.on_reply(parser.result());
            } else if (line == "! tls") {
                REQUIRE(step == handshake_step::start_tls);
                step = hs.on_tls_established();
            } else {
                FAIL("unknown transcript line " << line);
            }
        }
    }

    std::string ending() const {
        switch (step) {
            case handshake_step::done:
                return "done " + std::to_string(hs.greeting().code) + " "
                       + (hs.greeting().lines.empty() ? "" : hs.greeting().lines.front());
            case handshake_step::failed:
                return "failed " + std::string(hs.reason()) + ": " + hs.detail();
            case handshake_step::start_tls: return "tls";
            case handshake_step::exchange: return "exchange";
        }
        return "?";
    }
};

}  // namespace

TEST_CASE("session/backend_handshake - a plain backend: its banner is the client's") {
    runner r({"gate.test", false, false});
    CHECK(r.hs.line().empty());
    r.run("B: 220 mx.example ESMTP");
    CHECK(r.ending() == "done 220 mx.example ESMTP");
}

TEST_CASE("session/backend_handshake - a banner other than 220 ends it at once") {
    for (const bool tls : {false, true}) {
        runner r({"gate.test", tls, true});
        r.run("B: 554 5.3.2 go away");
        INFO("tls " << tls);
        CHECK(r.ending() == "done 554 5.3.2 go away");
    }
}

TEST_CASE("session/backend_handshake - STARTTLS to the backend, then the banner") {
    runner r({"gate.test", true, false});
    r.run(R"(
        B: 220 mx.example ESMTP
        => EHLO gate.test
        B: 250-mx.example
        B: 250-PIPELINING
        B: 250 starttls
        => STARTTLS
        B: 220 2.0.0 Ready to start TLS
    )");
    CHECK(r.ending() == "tls");
    r.run("! tls");
    CHECK(r.ending() == "done 220 mx.example ESMTP");
}

TEST_CASE("session/backend_handshake - STARTTLS not offered, or refused") {
    runner missing({"gate.test", true, false});
    missing.run(R"(
        B: 220 mx.example ESMTP
        => EHLO gate.test
        B: 250-mx.example
        B: 250 PIPELINING
    )");
    CHECK(missing.ending()
          == "failed tls_unsupported: the backend does not offer STARTTLS (EHLO said 250 "
             "mx.example)");
    runner refused({"gate.test", true, false});
    refused.run(R"(
        B: 220 mx.example ESMTP
        => EHLO gate.test
        B: 250-mx.example
        B: 250 STARTTLS
        => STARTTLS
        B: 454 4.7.0 TLS not available
    )");
    CHECK(refused.ending() == "failed tls_refused: 454 4.7.0 TLS not available");
}

TEST_CASE(
    "session/backend_handshake - XCLIENT with what the backend offers; its 220 is "
    "the client's banner") {
    runner r({"gate.test", false, true});
    r.run(R"(
        B: 220 first.example ESMTP
        => EHLO gate.test
        B: 250-mx.example
        B: 250 XCLIENT NAME ADDR PORT DESTADDR DESTPORT HELO
        => XCLIENT ADDR=IPV6:2001:db8::7 PORT=41000 NAME=mx.example.net DESTADDR=192.0.2.25 DESTPORT=25
        B: 220 second.example ESMTP
    )");
    CHECK(r.ending() == "done 220 second.example ESMTP");
}

TEST_CASE(
    "session/backend_handshake - XCLIENT: an unknown name is [UNAVAILABLE]; only "
    "offered attributes") {
    auto client = ipv6_client();
    client.name.clear();
    runner r({"gate.test", false, true}, client);
    r.run(R"(
        B: 220 first.example ESMTP
        => EHLO gate.test
        B: 250-mx.example
        B: 250 XCLIENT NAME ADDR
        => XCLIENT ADDR=IPV6:2001:db8::7 NAME=[UNAVAILABLE]
        B: 220 second.example ESMTP
    )");
    CHECK(r.ending() == "done 220 second.example ESMTP");
}

TEST_CASE("session/backend_handshake - XCLIENT not offered, none usable, or refused") {
    runner missing({"gate.test", false, true});
    missing.run(R"(
        B: 220 first.example ESMTP
        => EHLO gate.test
        B: 250 mx.example
    )");
    CHECK(missing.ending().rfind("failed xclient_unsupported: the backend does not offer", 0) == 0);
    runner useless({"gate.test", false, true});
    useless.run(R"(
        B: 220 first.example ESMTP
        => EHLO gate.test
        B: 250-mx.example
        B: 250 XCLIENT HELO PROTO
    )");
    CHECK(useless.ending()
          == "failed xclient_unsupported: the backend's XCLIENT takes none of ADDR, PORT, NAME");
    runner refused({"gate.test", false, true});
    refused.run(R"(
        B: 220 first.example ESMTP
        => EHLO gate.test
        B: 250-mx.example
        B: 250 XCLIENT ADDR
        => XCLIENT ADDR=IPV6:2001:db8::7
        B: 550 5.7.0 Error: insufficient authorization
    )");
    CHECK(refused.ending()
          == "failed xclient_refused: 550 5.7.0 Error: insufficient authorization");
}

TEST_CASE("session/backend_handshake - STARTTLS first, then XCLIENT inside TLS") {
    runner r({"gate.test", true, true});
    r.run(R"(
        B: 220 first.example ESMTP
        => EHLO gate.test
        B: 250-mx.example
        B: 250 STARTTLS
        => STARTTLS
        B: 220 2.0.0 Ready
        ! tls
        => EHLO gate.test
        B: 250-mx.example
        B: 250 XCLIENT ADDR
        => XCLIENT ADDR=IPV6:2001:db8::7
        B: 220 second.example ESMTP
    )");
    CHECK(r.ending() == "done 220 second.example ESMTP");
}

TEST_CASE("session/backend_handshake - ehlo_line and xclient_offer ignore case") {
    smtp::reply ehlo;
    ehlo.code = 250;
    ehlo.lines = {"mx.example", "Xclient Name ADDR", "STARTTLS"};
    CHECK(session::ehlo_line(ehlo, "starttls") != nullptr);
    CHECK(session::ehlo_line(ehlo, "mx.example") == nullptr);  // the greeting line is not one
    CHECK(session::xclient_offer(ehlo) == std::vector<std::string>{"name", "addr"});
    ehlo.lines = {"mx.example", "XCLIENT"};
    CHECK(session::xclient_offer(ehlo) == std::vector<std::string>{""});
}
