#include "smtpgate/policy/rate.hpp"

#include <algorithm>

namespace smtpgate::policy {

namespace {

duration emission_interval(const config::rate& limit) {
    // Rounded up: never admit faster than configured.
    const auto w = limit.window.count();
    return duration((w + limit.count - 1) / limit.count);
}

}  // namespace

rate_decision gcra_consume(time_point& tat, const config::rate& limit, time_point now) {
    rate_decision d;
    if (limit.count == 0) {
        d.observed = 0;
        d.idle_at = now;
        return d;
    }
    const duration t = emission_interval(limit);
    const duration tau = t * (limit.count - 1);  // burst tolerance: N events at once
    const time_point start = std::max(tat, now);
    const duration backlog = start - now;  // events in the bucket times t
    if (backlog > tau) {
        d.allowed = false;
        d.observed = backlog / t + 1;
        d.retry_after = backlog - tau;
        d.idle_at = tat;
        return d;
    }
    tat = start + t;
    d.observed = (tat - now + t - duration(1)) / t;
    d.idle_at = tat;
    return d;
}

std::int64_t gcra_remaining(time_point tat, const config::rate& limit, time_point now) {
    if (limit.count == 0) return INT64_MAX;
    const duration t = emission_interval(limit);
    const duration backlog = std::max(tat, now) - now;
    const std::int64_t used = (backlog + t - duration(1)) / t;
    return std::max<std::int64_t>(0, limit.count - used);
}

interval_decision interval_observe(time_point& last_seen, duration expected, time_point now) {
    interval_decision d;
    if (last_seen != time_point{}) d.observed = now - last_seen;
    d.allowed = expected.count() == 0 || last_seen == time_point{} || d.observed >= expected;
    last_seen = now;
    d.idle_at = now + expected;
    return d;
}

}  // namespace smtpgate::policy
