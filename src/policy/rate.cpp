#include "smtpgate/policy/rate.hpp"

#include <algorithm>

namespace smtpgate::policy {

namespace {

using micros = std::chrono::microseconds;

// Microseconds, rounded down: N intervals fit in one window, so a client idle for a whole
// window has its whole burst back; the rate is at most N per (window - N us).
micros emission_interval(const config::rate& limit) {
    return micros(std::chrono::duration_cast<micros>(limit.window).count() / limit.count);
}

// The TAT is never further ahead than a full bucket: a wall clock stepping backwards (NTP, or
// another host's clock through a shared store) costs at most one window, not the step.
time_point start_of(time_point tat, time_point now, micros t, std::uint32_t count) {
    return std::min(std::max(tat, now), now + t * count);
}

std::int64_t events_in(micros backlog, micros t) {
    return (backlog + t - micros(1)) / t;
}

}  // namespace

rate_decision gcra_consume(time_point& tat, const config::rate& limit, time_point now) {
    rate_decision d;
    if (limit.count == 0) {
        d.idle_at = now;
        return d;
    }
    const micros t = emission_interval(limit);
    const micros tau = t * (limit.count - 1);  // burst tolerance: N events at once
    // A TAT more than a full bucket ahead cannot come from this key's events (the clock
    // stepped back): repair it, so the client waits one window at most.
    tat = std::min(tat, now + t * limit.count);
    const time_point start = std::max(tat, now);
    const micros backlog = start - now;
    if (backlog > tau) {
        d.allowed = false;
        d.observed = events_in(backlog, t) + 1;  // the bucket, and this attempt
        d.retry_after = std::chrono::ceil<duration>(backlog - tau);
        d.idle_at = start;
        return d;
    }
    tat = start + t;
    d.observed = events_in(tat - now, t);
    d.idle_at = tat;
    return d;
}

std::int64_t gcra_remaining(time_point tat, const config::rate& limit, time_point now) {
    if (limit.count == 0) return INT64_MAX;
    const micros t = emission_interval(limit);
    const micros backlog = start_of(tat, now, t, limit.count) - now;
    return std::max<std::int64_t>(0, limit.count - events_in(backlog, t));
}

interval_decision interval_observe(time_point& last_seen, duration expected, time_point now) {
    interval_decision d;
    if (last_seen != time_point{}) d.observed = std::chrono::floor<duration>(now - last_seen);
    d.allowed = expected.count() == 0 || last_seen == time_point{} || now - last_seen >= expected;
    last_seen = now;
    d.idle_at = now + expected;
    return d;
}

}  // namespace smtpgate::policy
