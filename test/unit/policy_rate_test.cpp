// Rate maths: GCRA "N per window" and vthrottle intervals, on synthetic time.
#include "smtpgate/policy/rate.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

using namespace smtpgate;
using namespace std::chrono_literals;
using policy::duration;
using policy::time_point;

namespace {

// Synthetic time: far from the epoch, which means "never seen".
const time_point t0{std::chrono::hours(1000)};

config::rate per(std::uint32_t count, duration window) {
    return config::rate{count, window};
}

/// Consumes events at `now` until one is refused; returns how many were allowed (at most cap).
std::int64_t burst_at(time_point& tat, const config::rate& limit, time_point now,
                      std::int64_t cap = 100000) {
    std::int64_t allowed = 0;
    while (allowed < cap && policy::gcra_consume(tat, limit, now).allowed)
        ++allowed;
    return allowed;
}

}  // namespace

TEST_CASE("policy/rate - GCRA allows a burst of N at one instant, then one every window/N") {
    struct burst_case {
        config::rate limit;
        std::chrono::microseconds want_spacing;  ///< window / N, in whole microseconds
    };
    const std::vector<burst_case> cases{
        {per(1, 60s), 60s},
        {per(3, 60s), 20s},
        {per(5, 60s), 12s},
        {per(10, 1s), 100ms},
        {per(100, 1h), 36s},
        {per(1000, 1s), 1ms},
        // window/N below a millisecond: the state has microsecond steps.
        {per(4, 2ms), 500us},
        // window/N not whole: rounded down to the microsecond, so N fit in one window.
        {per(3, 1s), 333333us},
    };
    for (const auto& c : cases) {
        CAPTURE(c.limit.count, c.limit.window.count());
        time_point tat{};
        for (std::uint32_t i = 1; i <= c.limit.count; ++i) {
            CAPTURE(i);
            const auto d = policy::gcra_consume(tat, c.limit, t0);
            INFO("got allowed=" << d.allowed << " observed=" << d.observed << ", want allowed=1 "
                                << "observed=" << i);
            REQUIRE(d.allowed);
            CHECK(d.observed == i);
            CHECK(d.retry_after == 0ms);
            CHECK(d.idle_at == t0 + i * c.want_spacing);
        }
        const auto refused = policy::gcra_consume(tat, c.limit, t0);
        INFO("N+1th: got allowed=" << refused.allowed
                                   << " retry_after=" << refused.retry_after.count()
                                   << "ms observed=" << refused.observed
                                   << ", want refused, retry_after=" << c.want_spacing.count()
                                   << "us (rounded up to ms) observed=" << c.limit.count + 1);
        CHECK_FALSE(refused.allowed);
        CHECK(refused.retry_after == std::chrono::ceil<duration>(c.want_spacing));
        CHECK(refused.observed == c.limit.count + 1);
        CHECK(refused.idle_at == t0 + c.limit.count * c.want_spacing);

        // One window/N later exactly one more, not earlier.
        time_point probe = tat;
        CHECK_FALSE(policy::gcra_consume(probe, c.limit, t0 + c.want_spacing - 1us).allowed);
        const auto next = policy::gcra_consume(tat, c.limit, t0 + c.want_spacing);
        CHECK(next.allowed);
        CHECK(next.observed == c.limit.count);
        CHECK_FALSE(policy::gcra_consume(tat, c.limit, t0 + c.want_spacing).allowed);
    }
}

TEST_CASE("policy/rate - GCRA gives the full burst back after an idle window") {
    // Windows that divide evenly by the count.
    const std::vector<config::rate> cases{per(1, 60s), per(3, 60s),  per(10, 60s),
                                          per(5, 1s),  per(100, 1h), per(1000, 1s)};
    for (const auto& limit : cases) {
        CAPTURE(limit.count, limit.window.count());
        time_point tat{};
        REQUIRE(burst_at(tat, limit, t0) == limit.count);
        // Just before the window ends the burst is not complete yet.
        time_point early = tat;
        const auto got_early = burst_at(early, limit, t0 + limit.window - 1ms);
        INFO("at window-1ms: got " << got_early << ", want " << limit.count - 1);
        CHECK(got_early == limit.count - 1);
        const auto got = burst_at(tat, limit, t0 + limit.window);
        INFO("after the window: got " << got << ", want " << limit.count);
        CHECK(got == limit.count);
        // And a much longer idle time does not bank more than one burst.
        const auto later = burst_at(tat, limit, t0 + 100 * limit.window);
        INFO("after 100 windows: got " << later << ", want " << limit.count);
        CHECK(later == limit.count);
    }
}

TEST_CASE("policy/rate - GCRA gives the full burst back after a window the count does not divide") {
    // The header promises "a key idle for a whole window has its full burst back". With the
    // emission interval rounded up to whole milliseconds, N intervals last longer than the
    // window when window % N != 0, and part of the burst is still missing at window's end.
    const std::vector<config::rate> cases{per(3, 1s), per(7, 1s), per(7, 60s), per(6, 100s)};
    for (const auto& limit : cases) {
        CAPTURE(limit.count, limit.window.count());
        time_point tat{};
        REQUIRE(burst_at(tat, limit, t0) == limit.count);
        const auto remaining = policy::gcra_remaining(tat, limit, t0 + limit.window);
        const auto got = burst_at(tat, limit, t0 + limit.window);
        INFO("after one idle window: got " << got << " allowed (remaining said " << remaining
                                           << "), want " << limit.count);
        CHECK(got == limit.count);
    }
}

TEST_CASE("policy/rate - GCRA paces at window/N after the burst, never faster") {
    // Events offered every millisecond for ten windows. Any k consecutive allowed events
    // beyond a burst of N span at least (k - N) * window/N, so the long-run rate never exceeds
    // N per window; once the burst is spent they are exactly one emission interval apart. The
    // first window holds the burst plus the paced events, at most 2N-1 (GCRA's documented
    // shape, unlike a sliding-window count).
    const std::vector<config::rate> cases{per(3, 1s), per(7, 1s), per(10, 1s), per(1, 250ms)};
    for (const auto& limit : cases) {
        CAPTURE(limit.count, limit.window.count());
        const std::int64_t n = limit.count;
        time_point tat{};
        std::vector<time_point> allowed;
        for (auto now = t0; now < t0 + 10 * limit.window; now += 1ms) {
            if (policy::gcra_consume(tat, limit, now).allowed) allowed.push_back(now);
        }
        REQUIRE(static_cast<std::int64_t>(allowed.size()) > 3 * n);
        int wrong = 0;
        for (std::int64_t i = 0; i < static_cast<std::int64_t>(allowed.size()); ++i) {
            for (std::int64_t j = std::max<std::int64_t>(0, i - 3 * n); j + n <= i; ++j) {
                const auto span = allowed[i] - allowed[j];
                if (span * n < (i - j - (n - 1)) * limit.window && ++wrong <= 5) {
                    INFO("events " << j << " and " << i << ": got " << span.count()
                                   << "ms apart, want at least " << i - j - (n - 1) << " * "
                                   << limit.window.count() << "ms/" << n);
                    CHECK(span * n >= (i - j - (n - 1)) * limit.window);
                }
            }
        }
        CHECK(wrong == 0);
        // Offers come every millisecond, so a gap is the spacing rounded up to the next offer.
        const std::chrono::microseconds spacing(
            std::chrono::duration_cast<std::chrono::microseconds>(limit.window).count() / n);
        for (std::size_t i = allowed.size() / 2; i < allowed.size(); ++i) {
            const auto gap = allowed[i] - allowed[i - 1];
            INFO("steady state: events " << i - 1 << " and " << i << " are " << gap.count()
                                         << "us apart, want " << spacing.count()
                                         << "us rounded up to the next millisecond");
            REQUIRE(gap >= spacing - 1ms);
            REQUIRE(gap <= spacing + 1ms);
        }
        const auto in_first_window = std::count_if(
            allowed.begin(), allowed.end(), [&](time_point t) { return t < t0 + limit.window; });
        INFO("first window: got " << in_first_window << ", want at most " << 2 * n - 1);
        CHECK(in_first_window <= 2 * n - 1);
    }
}

TEST_CASE("policy/rate - a wall-clock step backwards costs at most one emission interval") {
    // The TAT is wall-clock time (shared with other hosts through Redis). After the clock
    // steps back (NTP step, or a host whose clock lags its peers), a stored TAT can be far
    // ahead of `now`. A TAT more than a full burst ahead cannot come from this key's events,
    // so a client that waited out its interval must not be locked out for the size of the
    // step.
    const auto limit = per(3, 60s);  // one every 20 s
    time_point tat{};
    REQUIRE(burst_at(tat, limit, t0 + 1h) == 3);
    // The clock steps back by an hour; the client comes back after a polite minute.
    const auto now = t0 + 1min;
    const auto d = policy::gcra_consume(tat, limit, now);
    INFO("got allowed=" << d.allowed << " retry_after=" << d.retry_after.count()
                        << "ms, want a retry_after of at most 20000ms");
    CHECK(d.retry_after <= 20s);
    const auto remaining = policy::gcra_remaining(tat, limit, now + 20s);
    INFO("20 s later: got remaining " << remaining << ", want at least 1");
    CHECK(remaining >= 1);
}

TEST_CASE("policy/rate - a refused GCRA event does not advance the state") {
    const auto limit = per(5, 60s);  // one every 12 s
    time_point tat{};
    REQUIRE(burst_at(tat, limit, t0) == 5);
    const time_point full = tat;
    // Hammering for the whole interval: every attempt refused, the wait shrinks with time
    // and never grows, and the stored TAT does not move.
    for (auto now = t0; now < t0 + 12s; now += 250ms) {
        CAPTURE((now - t0).count());
        const auto d = policy::gcra_consume(tat, limit, now);
        CHECK_FALSE(d.allowed);
        const auto want_retry = std::chrono::ceil<duration>(12s - (now - t0));
        INFO("got retry_after " << d.retry_after.count() << "ms, want " << want_retry.count()
                                << "ms");
        CHECK(d.retry_after == want_retry);
        CHECK(tat == full);
        CHECK(d.idle_at == full);
    }
    const auto d = policy::gcra_consume(tat, limit, t0 + 12s);
    CHECK(d.allowed);
    CHECK(tat == full + 12s);
}

TEST_CASE("policy/rate - a refused GCRA event reports more events than the limit") {
    // A log line "observed=5 limit=5" on a refusal reads as if the client was within its
    // limit. Whenever an event is refused, the count reported must exceed the limit.
    const std::vector<config::rate> cases{per(5, 60s), per(3, 60s), per(1, 60s), per(10, 1s)};
    for (const auto& limit : cases) {
        CAPTURE(limit.count, limit.window.count());
        time_point tat{};
        REQUIRE(burst_at(tat, limit, t0) == limit.count);
        const duration spacing = limit.window / limit.count;
        for (const duration after : {0ms, 1ms, spacing / 2, spacing - 1ms}) {
            CAPTURE(after.count());
            const auto d = policy::gcra_consume(tat, limit, t0 + after);
            REQUIRE_FALSE(d.allowed);
            INFO("got observed " << d.observed << ", want more than " << limit.count);
            CHECK(d.observed > limit.count);
        }
    }
}

TEST_CASE("policy/rate - GCRA count 0 is unlimited and keeps no state") {
    for (const duration window : {duration(0), duration(1), duration(60s)}) {
        const auto limit = per(0, window);
        CAPTURE(window.count());
        time_point tat{};
        for (int i = 0; i < 10000; ++i) {
            const auto d = policy::gcra_consume(tat, limit, t0);
            if (!d.allowed || d.retry_after != 0ms || d.observed != 0) {
                INFO("event " << i << ": got allowed=" << d.allowed << " retry_after="
                              << d.retry_after.count() << "ms observed=" << d.observed
                              << ", want allowed=1 retry_after=0ms observed=0");
                FAIL();
            }
        }
        CHECK(tat == time_point{});
        CHECK(policy::gcra_remaining(tat, limit, t0) == INT64_MAX);
        // Whatever an old state says, unlimited stays unlimited.
        time_point busy = t0 + 24h;
        CHECK(policy::gcra_consume(busy, limit, t0).allowed);
        CHECK(busy == t0 + 24h);
    }
}

TEST_CASE("policy/rate - GCRA idle_at says when the key may be forgotten") {
    const auto limit = per(3, 60s);
    time_point tat{};
    CHECK(policy::gcra_consume(tat, limit, t0).idle_at == t0 + 20s);
    CHECK(policy::gcra_consume(tat, limit, t0 + 5s).idle_at == t0 + 40s);
    // Forgetting the key at idle_at changes nothing: a fresh key has the same budget.
    time_point fresh{};
    CHECK(policy::gcra_remaining(tat, limit, t0 + 40s)
          == policy::gcra_remaining(fresh, limit, t0 + 40s));
    CHECK(policy::gcra_remaining(tat, limit, t0 + 40s - 1ms) < 3);
}

TEST_CASE("policy/rate - gcra_remaining counts what a burst would still get, without consuming") {
    struct remaining_case {
        int consumed_at_t0;
        duration later;
        std::int64_t want;
    };
    const auto limit = per(5, 60s);  // one every 12 s
    const std::vector<remaining_case> cases{
        {0, 0s, 5},  {1, 0s, 4},  {4, 0s, 1},  {5, 0s, 0}, {5, 1ms, 0}, {5, 11999ms, 0},
        {5, 12s, 1}, {5, 30s, 2}, {5, 60s, 5}, {5, 1h, 5}, {3, 24s, 4}, {3, 36s, 5},
    };
    for (const auto& c : cases) {
        CAPTURE(c.consumed_at_t0, c.later.count());
        time_point tat{};
        for (int i = 0; i < c.consumed_at_t0; ++i) {
            REQUIRE(policy::gcra_consume(tat, limit, t0).allowed);
        }
        const time_point before = tat;
        const auto got = policy::gcra_remaining(tat, limit, t0 + c.later);
        INFO("got " << got << ", want " << c.want);
        CHECK(got == c.want);
        CHECK(tat == before);
        // It agrees with what consuming would allow.
        const auto burst = burst_at(tat, limit, t0 + c.later);
        INFO("a burst got " << burst << ", remaining said " << got);
        CHECK(burst == got);
    }
}

TEST_CASE("policy/rate - interval allows the first observation and records it") {
    time_point last{};
    const auto d = policy::interval_observe(last, 60s, t0);
    CHECK(d.allowed);
    CHECK(d.observed == duration(-1));
    CHECK(d.idle_at == t0 + 60s);
    CHECK(last == t0);
}

TEST_CASE("policy/rate - interval refuses an observation sooner than expected") {
    struct interval_case {
        duration expected;
        duration gap;
        bool want_allowed;
    };
    const std::vector<interval_case> cases{
        {60s, 0ms, false},    {60s, 10s, false}, {60s, 59999ms, false}, {60s, 60s, true},
        {60s, 61s, true},     {60s, 24h, true},  {1ms, 0ms, false},     {1ms, 1ms, true},
        {10s, 9999ms, false}, {10s, 10s, true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.expected.count(), c.gap.count());
        time_point last{};
        REQUIRE(policy::interval_observe(last, c.expected, t0).allowed);
        const auto d = policy::interval_observe(last, c.expected, t0 + c.gap);
        INFO("got allowed=" << d.allowed << " observed=" << d.observed.count()
                            << "ms, want allowed=" << c.want_allowed
                            << " observed=" << c.gap.count() << "ms");
        CHECK(d.allowed == c.want_allowed);
        CHECK(d.observed == c.gap);
        CHECK(last == t0 + c.gap);
        CHECK(d.idle_at == t0 + c.gap + c.expected);
    }
}

TEST_CASE("policy/rate - a refused interval observation restarts the interval") {
    // vthrottle: a worm that keeps hammering stays throttled.
    time_point last{};
    REQUIRE(policy::interval_observe(last, 60s, t0).allowed);
    auto d = policy::interval_observe(last, 60s, t0 + 59s);
    CHECK_FALSE(d.allowed);
    CHECK(d.observed == 59s);
    // 60 s after the first, but only 1 s after the refused one.
    d = policy::interval_observe(last, 60s, t0 + 60s);
    CHECK_FALSE(d.allowed);
    CHECK(d.observed == 1s);
    // Hammering every 30 s never gets through.
    for (auto now = t0 + 90s; now < t0 + 1h; now += 30s) {
        CAPTURE((now - t0).count());
        d = policy::interval_observe(last, 60s, now);
        CHECK_FALSE(d.allowed);
        CHECK(d.observed == 30s);
    }
    // Backing off for the full interval is let through.
    const auto quiet = last + 60s;
    d = policy::interval_observe(last, 60s, quiet);
    CHECK(d.allowed);
    CHECK(d.observed == 60s);
}

TEST_CASE("policy/rate - interval 0 is off but still records observations") {
    time_point last{};
    for (int i = 0; i < 5; ++i) {
        const auto now = t0 + i * 1ms;
        CAPTURE(i);
        const auto d = policy::interval_observe(last, 0ms, now);
        CHECK(d.allowed);
        CHECK(d.observed == (i == 0 ? duration(-1) : 1ms));
        CHECK(d.idle_at == now);
        CHECK(last == now);
    }
    // Same instant twice.
    const auto d = policy::interval_observe(last, 0ms, last);
    CHECK(d.allowed);
    CHECK(d.observed == 0ms);
}
