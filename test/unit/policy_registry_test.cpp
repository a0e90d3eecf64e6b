// The check registry: modes are applied in one place, so observing a check changes nothing
// about any other, and a check that is off never touches state.
//
// One scenario makes every check in the registry fire (connections, a slammer, HELO, MAIL,
// RCPT, unknown recipients, the penalty box that follows). For each mode key it is run twice,
// with that key `off` and with it `observe`, every other check enforcing, each run on a fresh
// memory store; the two runs must agree on every step's decision, on every other check's
// would_block reports and on every cell and slot that belongs to another check.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "smtpgate/policy/check.hpp"
#include "smtpgate/session/screening.hpp"
#include "smtpgate/state/memory_store.hpp"

using namespace smtpgate;
using namespace std::chrono_literals;
using policy::phase;

namespace {

const policy::time_point t0{std::chrono::hours(24 * 365 * 50)};

/// Tight limits for every check in the registry, all enforcing.
config::settings everything_on() {
    config::settings s;
    config::rule deny;
    deny.match = "198.51.100.0/24";
    deny.action = config::rule_action::deny;
    deny.origin = "test:deny";
    s.rules = {deny};
    s.limits.concurrent_per_client = 1;
    s.limits.connection_rate = {2, 60s};
    s.interval.host = 10s;
    s.interval.helo = 30s;
    s.interval.sender = 30s;
    s.limits.message_rate = {2, 1h};
    s.limits.sender_message_rate = {2, 1h};
    s.limits.recipient_rate = {3, 1h};
    s.limits.sender_recipient_rate = {3, 1h};
    s.limits.bad_recipient_throttle_rate = {1, 1h};
    s.limits.bad_recipient_limit = {2, 1h};
    s.limits.bad_recipient_block_for = 30min;
    s.greet_pause.delay = 1s;
    return s;
}

struct event {
    phase at;
    const char* client;
    std::int64_t seconds;      ///< after t0
    const char* subject = "";  ///< HELO name or sender
    bool keep_slot = false;    ///< connect: the connection stays open
};

/// Every check fires at least once, most of them with the others in play.
const std::vector<event>& scenario() {
    static const std::vector<event> events{
        {phase::connect, "192.0.2.1", 0, "", true},
        {phase::connect, "192.0.2.1", 1},     // a second connection: concurrency, host interval
        {phase::connect, "198.51.100.1", 1},  // denied
        {phase::pregreet, "192.0.2.1", 1},
        {phase::helo, "192.0.2.1", 2, "bot.example"},
        {phase::helo, "192.0.2.1", 3, "BOT.example"},  // too soon
        {phase::mail, "192.0.2.1", 4, "x@example.org"},
        {phase::mail, "192.0.2.1", 5, "x@example.org"},  // sender interval
        {phase::mail, "192.0.2.1", 6, "y@example.org"},
        {phase::mail, "192.0.2.1", 7, "z@example.org"},  // message rate
        {phase::rcpt, "192.0.2.1", 8, "y@example.org"},
        {phase::rcpt, "192.0.2.1", 8, "y@example.org"},
        {phase::rcpt, "192.0.2.1", 8, "y@example.org"},
        {phase::rcpt, "192.0.2.1", 8, "y@example.org"},  // recipient rate
        {phase::rcpt_reply, "192.0.2.1", 9},
        {phase::rcpt_reply, "192.0.2.1", 9},  // throttle level
        {phase::rcpt_reply, "192.0.2.1", 9},  // block level: the penalty box
        {phase::connect, "192.0.2.1", 30},    // boxed
        {phase::connect, "192.0.2.2", 0},
        {phase::connect, "192.0.2.2", 11},
        {phase::connect, "192.0.2.2", 22},  // connection rate
        {phase::connect, "192.0.2.3", 0},
        {phase::connect, "192.0.2.3", 5},  // host interval
    };
    return events;
}

std::string describe(const policy::verdict& v) {
    std::ostringstream out;
    out << v.check << ":" << static_cast<int>(v.act) << ":" << v.reason << ":" << v.observed << "/"
        << v.limit;
    return out.str();
}

struct run_record {
    std::vector<std::string> decisions;                 ///< one per step
    std::vector<std::vector<std::string>> would_block;  ///< one list per step
    std::map<std::string, std::string> cells;           ///< key -> stamp/idle
    std::map<std::string, std::uint32_t> slots;
};

/// The checks that obey `key`, and the kinds of state they own.
std::set<policy::store_key> owned_state(const policy::registry& r, policy::mode_key key) {
    std::set<policy::store_key> kinds;
    for (const auto& e : r.entries()) {
        if (e.c->mode() != key) continue;
        for (const auto k : e.c->state())
            kinds.insert(k);
    }
    return kinds;
}

run_record run(const config::settings& s) {
    const policy::registry checks(s);
    const session::client_identity identity(s);
    state::memory_store store(10000);
    session::screening screening(checks, store);
    run_record rec;
    std::map<std::string, policy::admission_result> clients;
    for (const auto& e : scenario()) {
        auto [it, fresh] = clients.try_emplace(e.client);
        if (fresh) it->second = identity.identify(*inet::client_address::parse(e.client));
        const policy::check_input in{it->second, e.subject};
        REQUIRE(screening.start(e.at, in, t0 + std::chrono::seconds(e.seconds), nullptr));
        const auto& r = screening.result();
        rec.decisions.push_back(describe(r.decision));
        std::vector<std::string> observed;
        for (const auto& v : r.would_block)
            observed.push_back(describe(v));
        rec.would_block.push_back(observed);
        const std::string slot(screening.acquired_slot());
        if (!slot.empty() && !e.keep_slot) store.release(slot, {});
    }
    // Expired cells are as good as absent; how many of them the table has dropped yet depends
    // on how often it was touched, which is not state.
    std::int64_t last = 0;
    for (const auto& e : scenario())
        last = std::max(last, e.seconds);
    const auto end = t0 + std::chrono::seconds(last);
    store.for_each([&](std::string_view key, const state::cell& c) {
        if (c.idle_at <= end) return;
        rec.cells[std::string(key)] = std::to_string(c.stamp.time_since_epoch().count()) + "/"
                                      + std::to_string(c.idle_at.time_since_epoch().count());
    });
    for (const auto& [name, client] : clients) {
        std::string key;
        policy::make_key(key, policy::store_key::concurrency, client.key);
        rec.slots[key] = store.slots().count(key);
    }
    return rec;
}

template <class Map>
Map without(const Map& m, const std::set<policy::store_key>& kinds) {
    Map out;
    for (const auto& [k, v] : m)
        if (!kinds.contains(policy::kind_of_key(k))) out.emplace(k, v);
    return out;
}

/// The reports of checks other than `names`.
std::vector<std::string> others_than(const std::vector<std::string>& reports,
                                     const std::set<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& r : reports)
        if (!names.contains(r.substr(0, r.find(':')))) out.push_back(r);
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : ", ") + s;
    return out;
}

}  // namespace

TEST_CASE("policy/registry - every store key belongs to a check") {
    const policy::registry checks(everything_on());
    std::set<policy::store_key> owned;
    for (const auto& e : checks.entries())
        for (const auto k : e.c->state())
            owned.insert(k);
    for (const auto k : policy::all_store_keys) {
        INFO("store key '" << static_cast<char>(k) << "' has no check");
        CHECK(owned.contains(k));
    }
}

TEST_CASE("policy/registry - the scenario makes every check refuse when enforced") {
    const auto rec = run(everything_on());
    const policy::registry checks(everything_on());
    std::string all = join(rec.decisions);
    for (const auto& e : checks.entries()) {
        INFO("no step was refused by " << e.c->name() << "; decisions: " << all);
        CHECK(all.find(std::string(e.c->name()) + ":") != std::string::npos);
    }
}

TEST_CASE("policy/registry - observe changes nothing but its own reports; off touches nothing") {
    const config::settings base = everything_on();
    const policy::registry checks(base);
    std::vector<policy::mode_key> keys;  // member pointers: equality, no order
    for (const auto& e : checks.entries())
        if (std::find(keys.begin(), keys.end(), e.c->mode()) == keys.end())
            keys.push_back(e.c->mode());
    REQUIRE(keys.size() >= 9);

    for (const auto key : keys) {
        const auto own_state = owned_state(checks, key);
        std::set<std::string> own_checks;
        std::string names;
        for (const auto& e : checks.entries()) {
            if (e.c->mode() != key) continue;
            own_checks.emplace(e.c->name());
            names += std::string(e.c->name()) + " ";
        }
        CAPTURE(names);

        auto off = base;
        off.modes.*key = config::check_mode::off;
        auto observe = base;
        observe.modes.*key = config::check_mode::observe;
        const auto off_run = run(off);
        const auto observe_run = run(observe);

        // Off: none of its state exists at all.
        for (const auto& [k, v] : off_run.cells) {
            INFO("off, yet the store holds " << k);
            CHECK_FALSE(own_state.contains(policy::kind_of_key(k)));
        }
        for (const auto& [k, n] : off_run.slots) {
            if (own_state.contains(policy::kind_of_key(k))) CHECK(n == 0);
        }

        // Observe: it reported at least once, decided nothing, and every other check saw
        // exactly what it sees when this one is off.
        bool reported = false;
        for (std::size_t i = 0; i < scenario().size(); ++i) {
            CAPTURE(i);
            INFO("decision observe " << observe_run.decisions[i] << ", off "
                                     << off_run.decisions[i]);
            CHECK(observe_run.decisions[i] == off_run.decisions[i]);
            const auto others = others_than(observe_run.would_block[i], own_checks);
            reported = reported || others.size() < observe_run.would_block[i].size();
            INFO("would_block observe [" << join(observe_run.would_block[i]) << "], off ["
                                         << join(off_run.would_block[i]) << "]");
            CHECK(others == off_run.would_block[i]);
        }
        CHECK(reported);
        const auto observe_cells = without(observe_run.cells, own_state);
        const auto off_cells = without(off_run.cells, own_state);
        for (const auto& [k, v] : observe_cells) {
            const auto it = off_cells.find(k);
            INFO("cell " << k << " is " << v << " when observed, "
                         << (it == off_cells.end() ? std::string("absent") : it->second)
                         << " when off");
            CHECK((it != off_cells.end() && it->second == v));
        }
        CHECK(observe_cells.size() == off_cells.size());
        CHECK(without(observe_run.slots, own_state) == without(off_run.slots, own_state));
    }
}

TEST_CASE("policy/registry - observing the sender interval leaves the message rate counting") {
    // The bug this structure removes: an observed sender interval used to return early, so the
    // message rate stopped counting while it observed.
    auto s = config::settings{};
    s.interval.sender = 60s;
    s.modes.sender_interval = config::check_mode::observe;
    s.limits.message_rate = {2, 1h};
    state::memory_store store(100);
    session::transaction_checks checks(s, store);
    policy::client_info client;
    client.key = "a";
    CHECK(checks.mail(client, "x@example.org", t0).passed());
    const auto second = checks.mail(client, "x@example.org", t0 + 1s);
    CHECK(second.passed());
    CHECK(second.would_block);
    const auto third = checks.mail(client, "x@example.org", t0 + 2s);
    INFO("got " << third.reason);
    CHECK(third.reason == "message_rate");
    CHECK_FALSE(third.passed());
}
