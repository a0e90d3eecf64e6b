// Learn mode: suggested interval exceptions from observe-mode log lines (vmeasure).
#include <catch2/catch.hpp>

#include <sstream>

#include "smtpgate/config/loader.hpp"
#include "smtpgate/ops/learn.hpp"

using namespace smtpgate;

TEST_CASE("ops/learn - log lines parse in text and JSON form") {
    const auto text = ops::parse_log_line(
        R"(2026-11-23T09:40:00.123Z warning would_reject session=ab client=127.0.0.1:1 reason=sender_interval code=451 observed=10s limit=1m detail="a b\"c@x")");
    REQUIRE(text);
    CHECK(text->at("event") == "would_reject");
    CHECK(text->at("observed") == "10s");
    CHECK(text->at("detail") == "a b\"c@x");
    const auto json = ops::parse_log_line(
        R"({"ts":"2026-11-23T09:40:00.123Z","level":"warning","event":"would_reject","session":"ab","code":451,"detail":"x\u0041@y"})");
    REQUIRE(json);
    CHECK(json->at("event") == "would_reject");
    CHECK(json->at("code") == "451");
    CHECK(json->at("detail") == "xA@y");
    CHECK_FALSE(ops::parse_log_line(R"({"event":"x")"));
}

TEST_CASE("ops/learn - suggests exceptions for regulars and loads as configuration") {
    std::istringstream log(R"(
2026-11-23T09:40:00.000Z warning would_reject session=1 client=192.0.2.1:1 reason=sender_interval code=451 observed=12s limit=1m detail=news@lists.example.org
2026-11-23T09:40:12.000Z warning would_reject session=2 client=192.0.2.1:1 reason=sender_interval code=451 observed=9500ms limit=1m detail=news@lists.example.org
2026-11-23T09:40:13.000Z warning would_reject session=3 client=192.0.2.9:1 reason=sender_interval code=451 observed=1s limit=1m detail=once@example.com
2026-11-23T09:40:14.000Z warning would_reject session=4 client=192.0.2.1:1 reason=helo_interval code=451 observed=30s limit=1m detail=mx.lists.example.org
2026-11-23T09:40:15.000Z warning would_reject session=5 client=192.0.2.1:1 reason=helo_interval code=451 observed=20s limit=1m detail=mx.lists.example.org
2026-11-23T09:40:16.000Z warning would_reject session=6 client=192.0.2.1:1 reason=host_interval code=421 observed=2s limit=1m key=192.0.2.1
2026-11-23T09:40:17.000Z warning would_reject session=7 client=192.0.2.1:1 reason=host_interval code=421 observed=3s limit=1m key=192.0.2.1
2026-11-23T09:40:18.000Z warning reject session=8 client=192.0.2.1:1 reason=sender_interval code=451 observed=1s limit=1m detail=enforced@example.com
2026-11-23T09:40:18.000Z info connect session=9 client=192.0.2.1:1 server=127.0.0.1:25
)");
    ops::interval_learner learner;
    learner.add_stream(log);
    CHECK(learner.lines_used() == 7);
    const std::string toml = learner.suggestions(2);
    INFO(toml);
    CHECK(toml.find("match = \"news@lists.example.org\"\ninterval = \"9s\"") != std::string::npos);
    CHECK(toml.find("match = \"mx.lists.example.org\"\ninterval = \"20s\"") != std::string::npos);
    CHECK(toml.find("match = \"192.0.2.1\"\nhost_interval = \"2s\"") != std::string::npos);
    CHECK(toml.find("once@example.com") == std::string::npos);      // seen once: not a regular
    CHECK(toml.find("enforced@example.com") == std::string::npos);  // not an observe-mode line
    // What it prints is configuration the loader accepts.
    const auto loaded = config::load_string(toml, "learned.toml");
    CHECK(loaded.exceptions.size() == 2);
    CHECK(loaded.rules.size() == 1);
}
