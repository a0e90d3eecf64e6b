// HELO and sender intervals (vthrottle), message and recipient rates (Postfix anvil, Exim
// ratelimit), and the exception table.
#include <catch2/catch.hpp>

#include "smtpgate/policy/transaction.hpp"
#include "smtpgate/session/screening.hpp"
#include "smtpgate/state/memory_store.hpp"

using namespace smtpgate;
using namespace std::chrono_literals;

namespace {

const policy::time_point t0{std::chrono::hours(24 * 365 * 50)};

config::interval_exception exception(const char* match, policy::duration interval) {
    return {match, interval, "test"};
}

policy::admission_result client(const char* key) {
    policy::admission_result r;
    r.key = key;
    r.key_text = key;
    return r;
}

}  // namespace

TEST_CASE("policy/transaction - exceptions: the most specific entry wins") {
    const policy::exception_table table({
        exception("example.org", 10s),
        exception("lists.example.org", 0s),
        exception("@example.net", 20s),
        exception("boss@example.net", 1s),
        exception("Ops@Example.COM", 5s),
    });
    struct want_case {
        const char* subject;
        bool helo;
        std::optional<policy::duration> want;
    };
    const std::vector<want_case> cases{
        {"mx1.example.org", true, 10s},
        {"lists.example.org", true, 0s},
        {"a.lists.example.org", true, 0s},
        {"example.org", true, 10s},
        {"MX1.EXAMPLE.ORG", true, 10s},
        {"example.com", true, std::nullopt},
        {"news@lists.example.org", false, 0s},
        {"x@mail.example.org", false, 10s},
        {"anyone@example.net", false, 20s},
        {"boss@example.net", false, 1s},
        {"BOSS@example.NET", false, 1s},
        {"ops@example.com", false, 5s},
        {"other@example.com", false, std::nullopt},
        {"postmaster", false, std::nullopt},
    };
    for (const auto& c : cases) {
        const auto got = c.helo ? table.for_helo(c.subject) : table.for_sender(c.subject);
        INFO(c.subject << (c.helo ? " as HELO" : " as sender") << ": got "
                       << (got ? std::to_string(got->count()) + "ms" : "none") << ", want "
                       << (c.want ? std::to_string(c.want->count()) + "ms" : "none"));
        CHECK(got == c.want);
    }
}

TEST_CASE("policy/transaction - the sender interval: 451 when too soon, exceptions, null sender") {
    config::settings s;
    s.interval.sender = 60s;
    s.exceptions.push_back(exception("@lists.example.org", 0s));
    state::memory_store store(1000);
    session::transaction_checks checks(s, store);
    const auto c = client("a");

    CHECK(checks.mail(c, "worm@example.com", t0).passed());
    const auto v = checks.mail(c, "Worm@Example.com", t0 + 10s);
    INFO("got " << v.reason << " observed=" << v.observed << " limit=" << v.limit);
    CHECK(v.act == policy::action::tempfail);
    CHECK(v.reply == &smtp::replies::sender_throttled);
    CHECK(v.reply->code == 451);
    CHECK(v.reason == "sender_interval");
    CHECK(v.observed == 10000);
    CHECK(v.limit == 60000);
    CHECK(v.in_ms);
    // Every observation restarts the interval: 59 s after the refused one is still too soon.
    CHECK_FALSE(checks.mail(c, "worm@example.com", t0 + 69s).passed());
    CHECK(checks.mail(c, "worm@example.com", t0 + 69s + 60s).passed());
    // Exempt senders and bounces pass however often.
    for (int i = 0; i < 5; ++i) {
        CHECK(checks.mail(c, "news@lists.example.org", t0 + i * 1s).passed());
        CHECK(checks.mail(c, "", t0 + i * 1s).passed());
    }
}

TEST_CASE("policy/transaction - the HELO interval, with rule and exception overrides") {
    config::settings s;
    s.interval.helo = 30s;
    s.exceptions.push_back(exception("relay.example.org", 0s));
    state::memory_store store(1000);
    session::transaction_checks checks(s, store);
    auto c = client("a");
    CHECK(checks.helo(c, "bot.example", t0).passed());
    CHECK(checks.helo(c, "BOT.example", t0 + 5s).reason == "helo_interval");
    CHECK(checks.helo(c, "relay.example.org", t0).passed());
    CHECK(checks.helo(c, "relay.example.org", t0 + 1s).passed());

    config::rule r;
    r.match = "192.0.2.0/24";
    r.helo_interval = 0ms;
    c.rule = &r;
    CHECK(checks.helo(c, "bot.example", t0 + 6s).passed());
    config::rule allow;
    allow.action = config::rule_action::allow;
    c.rule = &allow;
    CHECK(checks.helo(c, "bot.example", t0 + 7s).passed());
}

TEST_CASE("policy/transaction - message and recipient rates per client network and per sender") {
    config::settings s;
    s.limits.message_rate = config::rate{3, 1h};
    s.limits.recipient_rate = config::rate{5, 1h};
    s.limits.sender_message_rate = config::rate{2, 1h};
    state::memory_store store(1000);
    session::transaction_checks checks(s, store);
    const auto a = client("a");
    const auto b = client("b");

    CHECK(checks.mail(a, "one@example.org", t0).passed());
    CHECK(checks.mail(a, "one@example.org", t0).passed());
    const auto by_sender = checks.mail(a, "one@example.org", t0);
    CHECK(by_sender.reason == "sender_message_rate");
    CHECK(by_sender.reply->code == 450);
    // The refused MAIL still counted for the network (Postfix counts MAIL requests), so the
    // network's fourth is over its rate of 3.
    CHECK(checks.mail(a, "two@example.org", t0).reason == "message_rate");
    CHECK(checks.mail(b, "two@example.org", t0).passed());

    for (int i = 0; i < 5; ++i)
        CHECK(checks.rcpt(b, "two@example.org", t0).passed());
    const auto v = checks.rcpt(b, "two@example.org", t0);
    CHECK(v.reason == "recipient_rate");
    CHECK(v.observed == 6);
    CHECK(v.limit == 5);
}

TEST_CASE("policy/transaction - observe and off modes") {
    config::settings s;
    s.interval.sender = 60s;
    s.modes.sender_interval = config::check_mode::observe;
    s.interval.helo = 60s;
    s.modes.helo_interval = config::check_mode::off;
    state::memory_store store(1000);
    session::transaction_checks checks(s, store);
    const auto c = client("a");
    CHECK(checks.mail(c, "x@example.org", t0).passed());
    const auto v = checks.mail(c, "x@example.org", t0 + 1s);
    CHECK(v.passed());
    CHECK(v.would_block);
    CHECK(v.reason == "sender_interval");
    CHECK(checks.helo(c, "h", t0).passed());
    CHECK(checks.helo(c, "h", t0 + 1s).passed());
    CHECK(store.size() == 1);  // off: not even observed
}
