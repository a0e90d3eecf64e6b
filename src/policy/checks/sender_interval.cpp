#include "smtpgate/policy/checks/sender_interval.hpp"

namespace smtpgate::policy::checks {

sender_interval::sender_interval(const config::settings& s)
    : interval_(s.interval.sender), exceptions_(s.exceptions) {}

void sender_interval::plan(const check_input& in, policy::plan& p) const {
    // The null sender (bounces) is not one sender: it is never throttled by address.
    if (in.subject.empty()) return;
    const config::rule* r = in.client.rule;
    duration interval = r != nullptr && r->sender_interval ? *r->sender_interval : interval_;
    if (const auto e = exceptions_.for_sender(in.subject)) interval = *e;
    if (interval.count() == 0) return;
    auto& op = p.add(op_kind::interval);
    make_lower_key(op.key, store_key::sender_interval, in.subject);
    op.interval = interval;
}

verdict sender_interval::decide(const check_input&, const check_results& r) const {
    if (r.ops.empty()) return {};
    const auto& o = r.outcomes[0];
    if (!o.applied || o.allowed) return {};
    return {.act = action::tempfail,
            .reply = &smtp::replies::sender_throttled,
            .reason = "sender_interval",
            .observed = o.observed,
            .limit = r.ops[0].interval.count(),
            .in_ms = true};
}

}  // namespace smtpgate::policy::checks
