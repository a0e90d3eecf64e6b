// The bad-recipient rate and the penalty box (exim-users "100 bad recipients per hour" recipe).
#include <catch2/catch.hpp>

#include "smtpgate/session/screening.hpp"
#include "smtpgate/state/memory_store.hpp"

using namespace smtpgate;
using namespace std::chrono_literals;
using policy::bad_recipient_outcome;

namespace {

const policy::time_point t0{std::chrono::hours(24 * 365 * 50)};

inet::client_address addr(const char* text) {
    return *inet::client_address::parse(text);
}

config::settings boxed(config::check_mode m = config::check_mode::enforce) {
    config::settings s;
    s.limits.bad_recipient_throttle_rate = config::rate{3, 1h};
    s.limits.bad_recipient_limit = config::rate{5, 1h};
    s.limits.bad_recipient_block_for = 30min;
    s.modes.bad_recipient_rate = m;
    return s;
}

}  // namespace

TEST_CASE("policy/penalty - the throttle level comes first, the block level boxes the network") {
    const auto settings = boxed();
    state::memory_store store(1000);
    session::admission adm(settings, store);
    auto session = adm.admit(addr("192.0.2.1"), t0);
    REQUIRE(session.decision.passed());

    std::vector<bad_recipient_outcome> got;
    for (int i = 1; i <= 6; ++i)
        got.push_back(adm.record_bad_recipient(session, t0 + i * 1s).outcome);
    using o = bad_recipient_outcome;
    const std::vector<bad_recipient_outcome> want{o::none,     o::none,     o::none,
                                                  o::throttle, o::throttle, o::block};
    CHECK(got == want);

    // Boxed: the same network is refused at admission, others are not.
    const auto refused = adm.admit(addr("192.0.2.1"), t0 + 10s);
    INFO("got reason " << refused.decision.reason);
    CHECK(refused.decision.act == policy::action::disconnect);
    CHECK(refused.decision.reason == "penalty");
    CHECK(refused.decision.reply == &smtp::replies::penalty_box);
    CHECK(refused.decision.observed == std::chrono::milliseconds(30min - 4s).count());
    CHECK(adm.admit(addr("192.0.2.2"), t0 + 10s).decision.passed());
    // The box ends after block_for.
    CHECK(adm.admit(addr("192.0.2.1"), t0 + 6s + 30min).decision.passed());
}

TEST_CASE(
    "policy/penalty - observe mode reports the block and boxes nobody; allow rules are exempt") {
    auto settings = boxed(config::check_mode::observe);
    config::rule friendly;
    friendly.match = "198.51.100.0/24";
    friendly.action = config::rule_action::allow;
    friendly.origin = "test:1";
    settings.rules.push_back(friendly);
    state::memory_store store(1000);
    session::admission adm(settings, store);

    auto session = adm.admit(addr("192.0.2.1"), t0);
    policy::bad_recipient_verdict last;
    for (int i = 1; i <= 6; ++i)
        last = adm.record_bad_recipient(session, t0 + i * 1s);
    CHECK(last.outcome == bad_recipient_outcome::block);
    CHECK(last.would_block);
    CHECK(last.observed == 6);
    CHECK(last.limit == 5);
    CHECK(adm.admit(addr("192.0.2.1"), t0 + 10s).decision.passed());

    auto trusted = adm.admit(addr("198.51.100.7"), t0);
    for (int i = 1; i <= 20; ++i) {
        CHECK(adm.record_bad_recipient(trusted, t0 + i * 1s).outcome
              == bad_recipient_outcome::none);
    }
}

TEST_CASE("policy/penalty - networks, not addresses: an IPv6 /64 shares one budget") {
    const auto settings = boxed();
    state::memory_store store(1000);
    session::admission adm(settings, store);
    for (int i = 1; i <= 6; ++i) {
        // A client rotating through its /64 with each bad recipient.
        auto s = adm.admit(addr(("2001:db8:1:2::" + std::to_string(i)).c_str()), t0 + i * 1s);
        adm.record_bad_recipient(s, t0 + i * 1s);
        adm.release(s);
    }
    CHECK(adm.admit(addr("2001:db8:1:2::99"), t0 + 10s).decision.reason == "penalty");
    CHECK(adm.admit(addr("2001:db8:1:3::1"), t0 + 10s).decision.passed());
}
