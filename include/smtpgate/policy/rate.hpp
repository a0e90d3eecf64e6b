// Rate maths shared by every limiter: GCRA for "N per window", intervals for vthrottle.
//
// GCRA (the generic cell rate algorithm, as in ATM and redis-cell) keeps one timestamp per key,
// the theoretical arrival time (TAT). "N per window" admits a burst of N, then one more every
// window/N; a key idle for a whole window has its full burst back. Refused events do not
// advance the state, and the TAT never runs more than a window ahead of `now`. It is exact (no hash
// collisions, no fixed-window edges) and needs 8 bytes of state, the same in memory or Redis.
//
// The interval check is vthrottle's: the time since the previous observation of the same key
// must be at least the expected interval; every observation, refused or not, restarts the
// interval (a worm that keeps hammering stays throttled).
//
// Pure functions of (state, parameters, now). No clock reads, no I/O.
#pragma once

#include <chrono>
#include <cstdint>

#include "smtpgate/config/units.hpp"

namespace smtpgate::policy {

using duration = std::chrono::milliseconds;
/// Wall-clock time in microseconds: shared state (Redis) must mean the same on every host,
/// and GCRA's spacing (window/N) needs finer steps than the configured milliseconds.
using time_point = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

struct rate_decision {
    bool allowed = true;
    /// Events counted in the current burst, including this one (what a log line reports).
    std::int64_t observed = 0;
    /// When the next event would be allowed (only when refused).
    duration retry_after{0};
    /// When this key's state is as good as new and may be forgotten.
    time_point idle_at{};
};

/// Consumes one event from `tat` (the stored TAT; a default time_point means never seen).
/// `limit.count == 0` means unlimited. The state is only advanced when the event is allowed.
rate_decision gcra_consume(time_point& tat, const config::rate& limit, time_point now);

/// How many events `limit` would still allow right now, without consuming any.
std::int64_t gcra_remaining(time_point tat, const config::rate& limit, time_point now);

struct interval_decision {
    bool allowed = true;
    /// Time since the previous observation; -1 ms when there was none.
    duration observed{-1};
    time_point idle_at{};
};

/// Records an observation at `now` in `last_seen`; refuses when the previous one was less than
/// `expected` ago. `expected == 0` means off (always allowed, still recorded).
interval_decision interval_observe(time_point& last_seen, duration expected, time_point now);

}  // namespace smtpgate::policy
