#include "smtpgate/policy/checks/helo_interval.hpp"

namespace smtpgate::policy::checks {

helo_interval::helo_interval(const config::settings& s)
    : interval_(s.interval.helo), exceptions_(s.exceptions) {}

void helo_interval::plan(const check_input& in, policy::plan& p) const {
    const config::rule* r = in.client.rule;
    duration interval = r != nullptr && r->helo_interval ? *r->helo_interval : interval_;
    if (const auto e = exceptions_.for_helo(in.subject)) interval = *e;
    if (interval.count() == 0) return;
    auto& op = p.add(op_kind::interval);
    make_lower_key(op.key, store_key::helo_interval, in.subject);
    op.interval = interval;
}

verdict helo_interval::decide(const check_input&, const check_results& r) const {
    if (r.ops.empty()) return {};
    const auto& o = r.outcomes[0];
    if (!o.applied || o.allowed) return {};
    // vthrottle: a 4xx, so a real MTA queues the message and comes back later.
    return {.act = action::tempfail,
            .reply = &smtp::replies::helo_throttled,
            .reason = "helo_interval",
            .observed = o.observed,
            .limit = r.ops[0].interval.count(),
            .in_ms = true};
}

}  // namespace smtpgate::policy::checks
