// Admission: access rules, per-client concurrency and rate, host interval, greet pause.
// Synthetic time throughout; the settings are built here, not loaded.
#include "smtpgate/session/screening.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/state/memory_store.hpp"

using namespace smtpgate;
using namespace std::chrono_literals;
using policy::action;
using policy::admission_result;
using policy::duration;
using policy::time_point;
using policy::verdict;
namespace replies = smtp::replies;

namespace {

const time_point t0{std::chrono::hours(1000)};

config::rule make_rule(std::string match, config::rule_action act = config::rule_action::limit) {
    config::rule r;
    r.origin = "test.toml:" + match;
    r.match = std::move(match);
    r.action = act;
    return r;
}

/// Settings with every limit off, so a test turns on only what it checks.
config::settings no_limits() {
    config::settings s;
    s.limits.concurrent_per_client = 0;
    return s;
}

/// One admission with its own stores, like one proxy process.
struct harness {
    explicit harness(config::settings s, std::size_t max_entries = 10000)
        : settings(std::move(s)),
          store(max_entries),
          connections(store.slots()),
          admission(settings, store) {}

    admission_result admit(std::string_view client, time_point now) {
        // value(): a typo in a test address throws rather than counting an assertion.
        return admission.admit(inet::client_address::parse(client).value(), now);
    }
    /// A connection that is admitted or refused and closed at once.
    admission_result connect_and_close(std::string_view client, time_point now) {
        auto r = admit(client, now);
        admission.release(r);
        return r;
    }

    config::settings settings;
    state::memory_store store;
    const state::concurrency_table& connections;
    session::admission admission;
};

std::string describe(const verdict& v) {
    static constexpr const char* actions[] = {"pass", "tempfail", "reject", "disconnect"};
    std::ostringstream out;
    out << actions[static_cast<int>(v.act)];
    if (v.reply != nullptr) out << " " << v.reply->code;
    if (!v.reason.empty()) out << " reason=" << v.reason;
    if (v.observed != 0 || v.limit != 0) {
        out << " observed=" << v.observed << " limit=" << v.limit << (v.in_ms ? "ms" : "");
    }
    if (v.would_block) out << " would_block";
    return out.str();
}

std::string describe(const std::vector<verdict>& vs) {
    std::string out = "[";
    for (const auto& v : vs)
        out += (out.size() > 1 ? "; " : "") + describe(v);
    return out + "]";
}

void check_verdict(const verdict& got, const verdict& want) {
    INFO("got " << describe(got) << ", want " << describe(want));
    CHECK(got.act == want.act);
    CHECK(got.reply == want.reply);
    CHECK(got.reason == want.reason);
    CHECK(got.observed == want.observed);
    CHECK(got.limit == want.limit);
    CHECK(got.in_ms == want.in_ms);
    CHECK(got.would_block == want.would_block);
}

void check_admitted(const admission_result& got) {
    INFO("got " << describe(got.decision) << ", want pass; would_block "
                << describe(got.would_block));
    CHECK(got.decision.passed());
    CHECK(got.decision.reply == nullptr);
    CHECK(got.would_block.empty());
}

}  // namespace

TEST_CASE("policy/admission - default settings admit everything with no greet pause") {
    harness h(config::settings{});
    for (const auto* client : {"192.0.2.1", "198.51.100.7", "2001:db8::1", "::ffff:203.0.113.5"}) {
        CAPTURE(client);
        for (int i = 0; i < 10; ++i) {
            const auto r = h.admit(client, t0);  // ten open at once, same instant
            check_admitted(r);
            CHECK(r.greet_pause == 0ms);
            CHECK(r.rule == nullptr);
            CHECK_FALSE(r.held_key.empty());
        }
    }
    // Rate and interval are off by default: no limiter cells are written.
    CHECK(h.store.size() == 0);
    CHECK(h.connections.size() == 4);
}

TEST_CASE("policy/admission - the default concurrency limit is 50 per client") {
    harness h(config::settings{});
    std::vector<admission_result> open;
    for (int i = 0; i < 50; ++i) {
        open.push_back(h.admit("192.0.2.1", t0));
        check_admitted(open.back());
    }
    auto r = h.admit("192.0.2.1", t0);
    check_verdict(r.decision, {.act = action::disconnect,
                               .reply = &replies::too_many_client_connections,
                               .reason = "concurrent_per_client",
                               .observed = 51,
                               .limit = 50});
    h.admission.release(r);
    for (auto& o : open)
        h.admission.release(o);
    CHECK(h.connections.size() == 0);
}

TEST_CASE("policy/admission - a deny rule disconnects with 554 access denied") {
    auto s = config::settings{};
    s.greet_pause.delay = 700ms;
    s.rules = {make_rule("192.0.2.0/24", config::rule_action::deny)};
    harness h(s);

    auto r = h.admit("192.0.2.9", t0);
    check_verdict(
        r.decision,
        {.act = action::disconnect, .reply = &replies::access_denied, .reason = "access"});
    CHECK(r.decision.reply->code == 554);
    CHECK(r.decision.reply->closes);
    REQUIRE(r.rule != nullptr);
    CHECK(r.rule->origin == "test.toml:192.0.2.0/24");
    CHECK(r.would_block.empty());
    CHECK(r.greet_pause == 0ms);
    // A denied client holds nothing: no slot, no limiter cells.
    CHECK(r.held_key.empty());
    CHECK(h.connections.size() == 0);
    CHECK(h.store.size() == 0);
    h.admission.release(r);

    check_admitted(h.admit("192.0.3.9", t0));
}

TEST_CASE("policy/admission - an allow rule skips every limit and the greet pause") {
    auto s = no_limits();
    s.limits.concurrent_per_client = 1;
    s.limits.connection_rate = {1, 60s};
    s.interval.host = 60s;
    s.greet_pause.delay = 5s;
    s.rules = {make_rule("192.0.2.0/24", config::rule_action::allow)};

    SECTION("without its own greet pause") {
        harness h(s);
        for (int i = 0; i < 20; ++i) {
            CAPTURE(i);
            const auto r = h.admit("192.0.2.1", t0 + i * 1ms);  // none released
            check_admitted(r);
            CHECK(r.greet_pause == 0ms);
            CHECK(r.held_key.empty());
            REQUIRE(r.rule != nullptr);
            CHECK(r.rule->action == config::rule_action::allow);
        }
        CHECK(h.connections.size() == 0);
        CHECK(h.store.size() == 0);
        // Everyone else is limited.
        const auto other = h.admit("198.51.100.1", t0);
        check_admitted(other);
        CHECK(other.greet_pause == 5s);
        CHECK(h.admit("198.51.100.1", t0).decision.reason == "concurrent_per_client");
    }
    SECTION("with its own greet pause") {
        s.rules[0].greet_pause = 2s;
        harness h(s);
        const auto r = h.admit("192.0.2.1", t0);
        check_admitted(r);
        CHECK(r.greet_pause == 2s);
    }
}

TEST_CASE("policy/admission - a third concurrent connection over a limit of 2 is refused") {
    auto s = no_limits();
    s.limits.concurrent_per_client = 2;
    harness h(s);

    auto a1 = h.admit("192.0.2.1", t0);
    auto a2 = h.admit("192.0.2.1", t0);
    check_admitted(a1);
    check_admitted(a2);
    auto a3 = h.admit("192.0.2.1", t0);
    check_verdict(a3.decision, {.act = action::disconnect,
                                .reply = &replies::too_many_client_connections,
                                .reason = "concurrent_per_client",
                                .observed = 3,
                                .limit = 2});
    CHECK(a3.decision.reply->code == 421);
    // The refused connection holds its slot until it is closed.
    CHECK_FALSE(a3.held_key.empty());
    CHECK(h.connections.count(a3.held_key) == 3);
    auto a4 = h.admit("192.0.2.1", t0);
    CHECK(a4.decision.observed == 4);
    h.admission.release(a4);
    h.admission.release(a3);
    CHECK(h.connections.count(a1.held_key) == 2);

    // Another client has its own count.
    check_admitted(h.connect_and_close("192.0.2.2", t0));

    // Still full until an admitted connection closes.
    auto a5 = h.admit("192.0.2.1", t0 + 1s);
    CHECK_FALSE(a5.decision.passed());
    h.admission.release(a5);
    h.admission.release(a1);
    auto a6 = h.admit("192.0.2.1", t0 + 2s);
    check_admitted(a6);

    h.admission.release(a2);
    h.admission.release(a6);
    CHECK(h.connections.size() == 0);
}

TEST_CASE("policy/admission - release gives back the slot once") {
    auto s = no_limits();
    s.limits.concurrent_per_client = 1;
    harness h(s);
    auto a = h.admit("192.0.2.1", t0);
    check_admitted(a);
    const auto key = a.held_key;
    h.admission.release(a);
    CHECK(a.held_key.empty());
    CHECK(h.connections.count(key) == 0);

    auto b = h.admit("192.0.2.1", t0);
    check_admitted(b);
    // Releasing `a` again must not free `b`'s slot.
    h.admission.release(a);
    CHECK(h.connections.count(key) == 1);
    CHECK_FALSE(h.admit("192.0.2.1", t0).decision.passed());
}

TEST_CASE("policy/admission - a rule's concurrency override replaces the default, 0 is unlimited") {
    auto s = no_limits();
    s.limits.concurrent_per_client = 2;
    auto unlimited = make_rule("192.0.2.0/24");
    unlimited.concurrent_per_client = 0;
    auto strict = make_rule("198.51.100.0/24");
    strict.concurrent_per_client = 1;
    s.rules = {unlimited, strict};
    harness h(s);

    for (int i = 0; i < 200; ++i) {
        const auto r = h.admit("192.0.2.1", t0);
        if (!r.decision.passed()) {
            INFO("connection " << i + 1 << ": got " << describe(r.decision) << ", want pass");
            FAIL();
        }
    }
    check_admitted(h.admit("198.51.100.1", t0));
    check_verdict(h.admit("198.51.100.1", t0).decision,
                  {.act = action::disconnect,
                   .reply = &replies::too_many_client_connections,
                   .reason = "concurrent_per_client",
                   .observed = 2,
                   .limit = 1});
    // Unmatched clients get the default.
    check_admitted(h.admit("203.0.113.1", t0));
    check_admitted(h.admit("203.0.113.1", t0));
    CHECK(h.admit("203.0.113.1", t0).decision.observed == 3);
}

TEST_CASE("policy/admission - connection rate 3/60s refuses the fourth and recovers after 20 s") {
    auto s = no_limits();
    s.limits.connection_rate = {3, 60s};
    harness h(s);

    for (int i = 0; i < 3; ++i)
        check_admitted(h.connect_and_close("192.0.2.1", t0));
    const auto fourth = h.connect_and_close("192.0.2.1", t0);
    check_verdict(fourth.decision, {.act = action::disconnect,
                                    .reply = &replies::connection_rate_exceeded,
                                    .reason = "connection_rate",
                                    .observed = 4,
                                    .limit = 3});
    CHECK(fourth.decision.reply->code == 421);

    // Refused attempts consume nothing: hammering does not push the next slot back.
    for (auto now = t0; now < t0 + 20s; now += 500ms) {
        const auto r = h.connect_and_close("192.0.2.1", now);
        if (r.decision.reason != "connection_rate") {
            INFO("at +" << (now - t0).count() << "ms: got " << describe(r.decision)
                        << ", want connection_rate refusal");
            FAIL();
        }
    }
    check_admitted(h.connect_and_close("192.0.2.1", t0 + 20s));
    CHECK(h.connect_and_close("192.0.2.1", t0 + 20s).decision.reason == "connection_rate");
    // A whole idle window later the burst is back.
    for (int i = 0; i < 3; ++i)
        check_admitted(h.connect_and_close("192.0.2.1", t0 + 140s));
    CHECK_FALSE(h.connect_and_close("192.0.2.1", t0 + 140s).decision.passed());
    // Other clients are not affected.
    check_admitted(h.connect_and_close("192.0.2.2", t0 + 140s));
}

TEST_CASE("policy/admission - a rule's connection rate override replaces the default") {
    auto s = no_limits();
    s.limits.connection_rate = {1, 60s};
    auto off = make_rule("192.0.2.0/24");
    off.connection_rate = config::rate{};  // "off"
    auto slow = make_rule("198.51.100.0/24");
    slow.connection_rate = config::rate{2, 3600s};
    s.rules = {off, slow};
    harness h(s);

    for (int i = 0; i < 100; ++i)
        check_admitted(h.connect_and_close("192.0.2.1", t0));
    check_admitted(h.connect_and_close("198.51.100.1", t0));
    check_admitted(h.connect_and_close("198.51.100.1", t0));
    const auto r = h.connect_and_close("198.51.100.1", t0 + 60s);
    CHECK(r.decision.reason == "connection_rate");
    CHECK(r.decision.limit == 2);
    check_admitted(h.connect_and_close("203.0.113.1", t0));
    CHECK(h.connect_and_close("203.0.113.1", t0).decision.limit == 1);
}

TEST_CASE("policy/admission - host interval 60s refuses a connection 10 s after the last") {
    auto s = no_limits();
    s.interval.host = 60s;
    harness h(s);

    check_admitted(h.connect_and_close("192.0.2.1", t0));
    const auto r = h.connect_and_close("192.0.2.1", t0 + 10s);
    check_verdict(r.decision, {.act = action::disconnect,
                               .reply = &replies::connecting_too_often,
                               .reason = "host_interval",
                               .observed = 10000,
                               .limit = 60000,
                               .in_ms = true});
    CHECK(r.decision.reply->code == 421);
    // vthrottle: the refused connection restarted the interval.
    CHECK(h.connect_and_close("192.0.2.1", t0 + 69s).decision.reason == "host_interval");
    check_admitted(h.connect_and_close("192.0.2.1", t0 + 129s));
    // Exactly the interval is enough.
    check_admitted(h.connect_and_close("192.0.2.1", t0 + 189s));
    // Other clients are not affected.
    check_admitted(h.connect_and_close("192.0.2.2", t0 + 189s));
}

TEST_CASE("policy/admission - a rule's host interval override replaces the default, 0 is off") {
    auto s = no_limits();
    s.interval.host = 60s;
    auto off = make_rule("192.0.2.0/24");
    off.host_interval = 0ms;
    auto shorter = make_rule("198.51.100.0/24");
    shorter.host_interval = 5s;
    s.rules = {off, shorter};
    harness h(s);

    for (int i = 0; i < 10; ++i)
        check_admitted(h.connect_and_close("192.0.2.1", t0));
    check_admitted(h.connect_and_close("198.51.100.1", t0));
    const auto r = h.connect_and_close("198.51.100.1", t0 + 4s);
    CHECK(r.decision.reason == "host_interval");
    CHECK(r.decision.limit == 5000);
    check_admitted(h.connect_and_close("198.51.100.1", t0 + 9s));
}

TEST_CASE("policy/admission - a connection refused by any check consumes no rate budget") {
    // docs/configuration.md: "A refused connection consumes nothing." Rate 2/60s is one every
    // 30 s with a burst of 2; the host interval is 10 s.
    auto s = no_limits();
    s.limits.connection_rate = {2, 60s};
    s.interval.host = 10s;
    harness h(s);

    check_admitted(h.connect_and_close("192.0.2.1", t0));
    const auto too_soon = h.connect_and_close("192.0.2.1", t0 + 5s);
    REQUIRE(too_soon.decision.reason == "host_interval");
    // 11 s after the refused connection the interval is satisfied, and only one connection
    // has been admitted in this window, so the rate has room for a second.
    const auto r = h.connect_and_close("192.0.2.1", t0 + 16s);
    INFO("the connection refused by host_interval at +5s consumed connection_rate budget");
    check_admitted(r);
}

TEST_CASE("policy/admission - a connection refused for concurrency consumes no rate budget") {
    auto s = no_limits();
    s.limits.concurrent_per_client = 1;
    s.limits.connection_rate = {1, 60s};
    harness h(s);

    auto first = h.admit("192.0.2.1", t0);
    check_admitted(first);
    for (int i = 1; i <= 10; ++i) {
        auto r = h.admit("192.0.2.1", t0 + i * 1s);
        CHECK(r.decision.reason == "concurrent_per_client");
        h.admission.release(r);
    }
    h.admission.release(first);
    check_admitted(h.connect_and_close("192.0.2.1", t0 + 60s));
}

TEST_CASE("policy/admission - every connection restarts the host interval, refused or not") {
    // docs/configuration.md [interval] host: "Every connection restarts the interval,
    // refused or not." Here the second connection is refused for concurrency; the third
    // comes 10 s after it, well inside the 60 s interval.
    auto s = no_limits();
    s.limits.concurrent_per_client = 1;
    s.interval.host = 60s;
    harness h(s);

    auto first = h.admit("192.0.2.1", t0);
    check_admitted(first);
    auto second = h.admit("192.0.2.1", t0 + 100s);
    REQUIRE(second.decision.reason == "concurrent_per_client");
    h.admission.release(second);
    h.admission.release(first);

    const auto third = h.connect_and_close("192.0.2.1", t0 + 110s);
    check_verdict(third.decision, {.act = action::disconnect,
                                   .reply = &replies::connecting_too_often,
                                   .reason = "host_interval",
                                   .observed = 10000,
                                   .limit = 60000,
                                   .in_ms = true});
}

TEST_CASE("policy/admission - on_exceed tempfail answers with 451 instead of closing") {
    struct tempfail_case {
        std::string_view reason;
        std::function<void(config::settings&)> configure;
        std::vector<duration> attempts;  ///< offsets from t0; the last one is over the limit
        std::int64_t observed;
        std::int64_t limit;
        bool in_ms;
    };
    const std::vector<tempfail_case> cases{
        {"concurrent_per_client",
         [](config::settings& s) { s.limits.concurrent_per_client = 1; },
         {0s, 0s},
         2,
         1,
         false},
        {"connection_rate",
         [](config::settings& s) {
             s.limits.connection_rate = {2, 60s};
         },
         {0s, 0s, 0s},
         3,
         2,
         false},
        {"host_interval",
         [](config::settings& s) { s.interval.host = 30s; },
         {0s, 10s},
         10000,
         30000,
         true},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.reason));
        auto s = no_limits();
        s.limits.on_exceed = config::exceed_action::tempfail;
        c.configure(s);
        harness h(s);
        admission_result last;
        for (const auto offset : c.attempts)
            last = h.admit("192.0.2.1", t0 + offset);
        check_verdict(last.decision, {.act = action::tempfail,
                                      .reply = &replies::tempfail_command,
                                      .reason = c.reason,
                                      .observed = c.observed,
                                      .limit = c.limit,
                                      .in_ms = c.in_ms});
        CHECK(last.decision.reply->code == 451);
        CHECK_FALSE(last.decision.reply->closes);
    }

    SECTION("a deny rule still disconnects with 554") {
        auto s = no_limits();
        s.limits.on_exceed = config::exceed_action::tempfail;
        s.rules = {make_rule("192.0.2.0/24", config::rule_action::deny)};
        harness h(s);
        check_verdict(
            h.admit("192.0.2.1", t0).decision,
            {.act = action::disconnect, .reply = &replies::access_denied, .reason = "access"});
    }
}

namespace {

/// One check driven over its limit: the settings and the attempts that trip it.
struct check_case {
    std::string_view reason;
    std::function<void(config::settings&, config::check_mode)> configure;
    std::vector<duration> attempts;  ///< offsets from t0, none released; the last trips it
    verdict enforced;                ///< what enforce mode answers on the last attempt
};

std::vector<check_case> check_cases() {
    return {
        {"access",
         [](config::settings& s, config::check_mode m) {
             s.rules = {make_rule("192.0.2.0/24", config::rule_action::deny)};
             s.modes.access = m;
         },
         {0s},
         {.act = action::disconnect, .reply = &replies::access_denied, .reason = "access"}},
        {"concurrent_per_client",
         [](config::settings& s, config::check_mode m) {
             s.limits.concurrent_per_client = 2;
             s.modes.concurrent_per_client = m;
         },
         {0s, 0s, 0s},
         {.act = action::disconnect,
          .reply = &replies::too_many_client_connections,
          .reason = "concurrent_per_client",
          .observed = 3,
          .limit = 2}},
        {"connection_rate",
         [](config::settings& s, config::check_mode m) {
             s.limits.connection_rate = {3, 60s};
             s.modes.connection_rate = m;
         },
         {0s, 0s, 0s, 0s},
         {.act = action::disconnect,
          .reply = &replies::connection_rate_exceeded,
          .reason = "connection_rate",
          .observed = 4,
          .limit = 3}},
        {"host_interval",
         [](config::settings& s, config::check_mode m) {
             s.interval.host = 60s;
             s.modes.host_interval = m;
         },
         {0s, 10s},
         {.act = action::disconnect,
          .reply = &replies::connecting_too_often,
          .reason = "host_interval",
          .observed = 10000,
          .limit = 60000,
          .in_ms = true}},
    };
}

}  // namespace

TEST_CASE("policy/admission - each check in enforce mode decides") {
    for (const auto& c : check_cases()) {
        CAPTURE(std::string(c.reason));
        auto s = no_limits();
        c.configure(s, config::check_mode::enforce);
        harness h(s);
        admission_result last;
        for (const auto offset : c.attempts)
            last = h.admit("192.0.2.1", t0 + offset);
        check_verdict(last.decision, c.enforced);
        CHECK(last.would_block.empty());
    }
}

TEST_CASE("policy/admission - each check in observe mode passes and reports would_block") {
    for (const auto& c : check_cases()) {
        CAPTURE(std::string(c.reason));
        auto s = no_limits();
        c.configure(s, config::check_mode::observe);
        harness h(s);
        admission_result last;
        for (std::size_t i = 0; i < c.attempts.size(); ++i) {
            last = h.admit("192.0.2.1", t0 + c.attempts[i]);
            if (i + 1 < c.attempts.size()) check_admitted(last);
        }
        check_verdict(last.decision, verdict{});
        INFO("would_block " << describe(last.would_block));
        REQUIRE(last.would_block.size() == 1);
        auto want = c.enforced;
        want.act = action::pass;
        want.would_block = true;
        check_verdict(last.would_block[0], want);
    }
}

TEST_CASE("policy/admission - each check in off mode does nothing") {
    for (const auto& c : check_cases()) {
        CAPTURE(std::string(c.reason));
        auto s = no_limits();
        c.configure(s, config::check_mode::off);
        harness h(s);
        for (const auto offset : c.attempts)
            check_admitted(h.admit("192.0.2.1", t0 + offset));
    }
    SECTION("concurrency off holds no slots") {
        auto s = config::settings{};
        s.limits.concurrent_per_client = 1;
        s.modes.concurrent_per_client = config::check_mode::off;
        harness h(s);
        const auto r = h.admit("192.0.2.1", t0);
        CHECK(r.held_key.empty());
        CHECK(h.connections.size() == 0);
    }
}

TEST_CASE("policy/admission - checks in observe mode are all reported, in order") {
    auto s = no_limits();
    s.rules = {make_rule("192.0.2.0/24", config::rule_action::deny)};
    s.limits.concurrent_per_client = 1;
    s.limits.connection_rate = {1, 60s};
    s.interval.host = 60s;
    s.modes.access = config::check_mode::observe;
    s.modes.concurrent_per_client = config::check_mode::observe;
    s.modes.connection_rate = config::check_mode::observe;
    s.modes.host_interval = config::check_mode::observe;
    harness h(s);

    const auto first = h.admit("192.0.2.1", t0);
    CHECK(first.decision.passed());
    INFO("first: would_block " << describe(first.would_block));
    REQUIRE(first.would_block.size() == 1);
    CHECK(first.would_block[0].reason == "access");
    // Observing a deny rule does not turn it into an allow rule: the limits still count.
    CHECK_FALSE(first.held_key.empty());

    const auto second = h.admit("192.0.2.1", t0 + 1s);
    CHECK(second.decision.passed());
    INFO("second: would_block " << describe(second.would_block));
    REQUIRE(second.would_block.size() == 4);
    const std::vector<std::string_view> want{"access", "concurrent_per_client", "connection_rate",
                                             "host_interval"};
    for (std::size_t i = 0; i < want.size(); ++i) {
        CAPTURE(i);
        CHECK(second.would_block[i].reason == want[i]);
        CHECK(second.would_block[i].would_block);
        CHECK(second.would_block[i].passed());
    }
}

TEST_CASE("policy/admission - an enforced check decides after observed ones are reported") {
    auto s = no_limits();
    s.limits.concurrent_per_client = 1;
    s.modes.concurrent_per_client = config::check_mode::observe;
    s.interval.host = 60s;
    harness h(s);
    check_admitted(h.admit("192.0.2.1", t0));
    const auto r = h.admit("192.0.2.1", t0 + 1s);
    CHECK(r.decision.reason == "host_interval");
    CHECK_FALSE(r.decision.passed());
    REQUIRE(r.would_block.size() == 1);
    CHECK(r.would_block[0].reason == "concurrent_per_client");
}

TEST_CASE("policy/admission - greet pause: default, per-rule override, allow rules and the cap") {
    struct pause_case {
        std::string_view name;
        duration delay;                                  ///< [greet_pause] delay
        std::optional<config::rule_action> rule_action;  ///< a rule for the client, if any
        std::optional<duration> rule_pause;
        config::check_mode mode;
        duration want;
    };
    using config::check_mode;
    using config::rule_action;
    const std::vector<pause_case> cases{
        {"off by default", 0ms, std::nullopt, std::nullopt, check_mode::enforce, 0ms},
        {"default", 700ms, std::nullopt, std::nullopt, check_mode::enforce, 700ms},
        {"rule without a pause", 700ms, rule_action::limit, std::nullopt, check_mode::enforce,
         700ms},
        {"rule sets a longer pause", 700ms, rule_action::limit, 5s, check_mode::enforce, 5s},
        {"rule sets no pause (GreetPause: 0)", 700ms, rule_action::limit, 0ms, check_mode::enforce,
         0ms},
        {"rule sets a pause when the default is off", 0ms, rule_action::limit, 2s,
         check_mode::enforce, 2s},
        {"allow rule", 700ms, rule_action::allow, std::nullopt, check_mode::enforce, 0ms},
        {"allow rule with a pause", 700ms, rule_action::allow, 3s, check_mode::enforce, 3s},
        {"default at the cap", 300s, std::nullopt, std::nullopt, check_mode::enforce, 300s},
        {"default over the cap", 400s, std::nullopt, std::nullopt, check_mode::enforce, 300s},
        {"rule over the cap", 700ms, rule_action::limit, 400s, check_mode::enforce, 300s},
        {"allow rule over the cap", 0ms, rule_action::allow, 1h, check_mode::enforce, 300s},
        {"observe mode still pauses", 700ms, std::nullopt, std::nullopt, check_mode::observe,
         700ms},
        {"off mode", 700ms, std::nullopt, std::nullopt, check_mode::off, 0ms},
        {"off mode ignores rules", 700ms, rule_action::limit, 5s, check_mode::off, 0ms},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.name));
        auto s = no_limits();
        s.greet_pause.delay = c.delay;
        s.modes.greet_pause = c.mode;
        if (c.rule_action) {
            auto r = make_rule("192.0.2.0/24", *c.rule_action);
            r.greet_pause = c.rule_pause;
            s.rules = {r};
        }
        harness h(s);
        const auto got = h.admit("192.0.2.1", t0);
        check_admitted(got);
        INFO("got greet_pause " << got.greet_pause.count() << "ms, want " << c.want.count()
                                << "ms");
        CHECK(got.greet_pause == c.want);
    }
}

TEST_CASE("policy/admission - IPv6 clients in one /64 share their limits") {
    auto s = no_limits();
    s.limits.concurrent_per_client = 2;
    harness h(s);

    auto a = h.admit("2001:db8:1:2::1", t0);
    auto b = h.admit("2001:db8:1:2:ffff:ffff:ffff:ffff", t0);
    check_admitted(a);
    check_admitted(b);
    CHECK(a.held_key == b.held_key);
    CHECK(a.key_text == "2001:db8:1:2::/64");
    auto c = h.admit("2001:db8:1:2:1234::5", t0);
    CHECK(c.decision.reason == "concurrent_per_client");
    CHECK(c.decision.observed == 3);
    // The neighbouring /64 is another client.
    auto d = h.admit("2001:db8:1:3::1", t0);
    check_admitted(d);
    CHECK(d.key_text == "2001:db8:1:3::/64");

    h.admission.release(c);
    h.admission.release(a);
    check_admitted(h.connect_and_close("2001:db8:1:2::99", t0));

    SECTION("and their connection rate") {
        auto rs = no_limits();
        rs.limits.connection_rate = {1, 60s};
        harness hr(rs);
        check_admitted(hr.connect_and_close("2001:db8:1:2::1", t0));
        CHECK(hr.connect_and_close("2001:db8:1:2::2", t0 + 1s).decision.reason
              == "connection_rate");
        check_admitted(hr.connect_and_close("2001:db8:1:3::1", t0 + 1s));
    }
}

TEST_CASE("policy/admission - key text names the client network") {
    struct key_case {
        int ipv4_prefix;
        int ipv6_prefix;
        std::string_view client;
        std::string_view want;
    };
    const std::vector<key_case> cases{
        {32, 64, "192.0.2.1", "192.0.2.1"},
        {32, 64, "::ffff:192.0.2.1", "192.0.2.1"},
        {24, 64, "192.0.2.77", "192.0.2.0/24"},
        {32, 64, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
        {32, 48, "2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"},
        {32, 128, "2001:db8::25", "2001:db8::25"},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.client), c.ipv4_prefix, c.ipv6_prefix);
        auto s = no_limits();
        s.limits.client_key_ipv4_prefix = c.ipv4_prefix;
        s.limits.client_key_ipv6_prefix = c.ipv6_prefix;
        harness h(s);
        const auto got = h.admit(c.client, t0);
        INFO("got " << got.key_text << ", want " << c.want);
        CHECK(got.key_text == c.want);
    }

    SECTION("an IPv4 /24 key counts the whole /24 as one client") {
        auto s = no_limits();
        s.limits.client_key_ipv4_prefix = 24;
        s.limits.concurrent_per_client = 1;
        harness h(s);
        check_admitted(h.admit("192.0.2.1", t0));
        CHECK(h.admit("192.0.2.254", t0).decision.reason == "concurrent_per_client");
        check_admitted(h.admit("192.0.3.1", t0));
    }
    SECTION("an IPv4-mapped client is the IPv4 client") {
        auto s = no_limits();
        s.limits.concurrent_per_client = 1;
        harness h(s);
        check_admitted(h.admit("192.0.2.1", t0));
        CHECK(h.admit("::ffff:192.0.2.1", t0).decision.reason == "concurrent_per_client");
    }
}

TEST_CASE("policy/admission - rate and interval keep separate cells per client") {
    auto s = no_limits();
    s.limits.connection_rate = {10, 60s};
    s.interval.host = 1s;
    harness h(s);
    check_admitted(h.connect_and_close("192.0.2.1", t0));
    CHECK(h.store.size() == 2);
    check_admitted(h.connect_and_close("192.0.2.1", t0 + 1s));
    CHECK(h.store.size() == 2);
    check_admitted(h.connect_and_close("192.0.2.2", t0 + 1s));
    CHECK(h.store.size() == 4);
}

TEST_CASE("policy/admission - a flood of new addresses does not reset an abuser's rate budget") {
    // The limiter table is bounded (100 cells here); the abuser keeps connecting, so its cell
    // stays fresh while a flood of one-off addresses passes through the table.
    auto s = no_limits();
    s.limits.connection_rate = {3, 60s};
    harness h(s, 100);

    for (int i = 0; i < 3; ++i)
        check_admitted(h.connect_and_close("198.51.100.66", t0));
    auto now = t0;
    int abuser_admitted = 0;
    for (int i = 0; i < 5000; ++i) {
        now += 1ms;
        const auto client = "10." + std::to_string(i / 65536) + "."
                            + std::to_string((i / 256) % 256) + "." + std::to_string(i % 256);
        const auto r = h.connect_and_close(client, now);
        if (!r.decision.passed()) {
            INFO("flood client " << client << ": got " << describe(r.decision) << ", want pass");
            FAIL();
        }
        if (i % 20 == 19 && h.connect_and_close("198.51.100.66", now).decision.passed()) {
            ++abuser_admitted;
        }
        if (h.store.size() > h.store.capacity()) {
            INFO("got table size " << h.store.size() << ", want at most " << h.store.capacity());
            FAIL();
        }
    }
    INFO("the abuser got " << abuser_admitted << " connections in during the flood, want 0");
    CHECK(abuser_admitted == 0);
    CHECK(h.store.evictions() > 0);
}
