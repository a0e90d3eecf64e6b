#include "smtpgate/policy/checks/host_interval.hpp"

namespace smtpgate::policy::checks {

host_interval::host_interval(const config::settings& s)
    : interval_(s.interval.host), on_exceed_(s.limits.on_exceed) {}

void host_interval::plan(const check_input& in, policy::plan& p) const {
    const config::rule* r = in.client.rule;
    const duration interval = r != nullptr && r->host_interval ? *r->host_interval : interval_;
    if (interval.count() == 0) return;
    auto& op = p.add(op_kind::interval);
    make_key(op.key, store_key::host_interval, in.client.key);
    op.interval = interval;
}

verdict host_interval::decide(const check_input&, const check_results& r) const {
    if (r.ops.empty()) return {};
    const auto& o = r.outcomes[0];
    if (!o.applied || o.allowed) return {};
    verdict v = limit_refusal(on_exceed_, smtp::replies::connecting_too_often, "host_interval",
                              o.observed, r.ops[0].interval.count());
    v.in_ms = true;
    return v;
}

}  // namespace smtpgate::policy::checks
