#include "smtpgate/policy/checks/connection_rate.hpp"

namespace smtpgate::policy::checks {

connection_rate::connection_rate(const config::settings& s)
    : rate_(s.limits.connection_rate), on_exceed_(s.limits.on_exceed) {}

void connection_rate::plan(const check_input& in, policy::plan& p) const {
    const config::rule* r = in.client.rule;
    const config::rate rate = r != nullptr && r->connection_rate ? *r->connection_rate : rate_;
    if (rate.off()) return;
    auto& op = p.add(op_kind::rate);
    make_key(op.key, store_key::connection_rate, in.client.key);
    op.rate = rate;
    // Recorded only for a connection that is let in: a refused one costs no budget.
    op.commit_on_pass = true;
}

verdict connection_rate::decide(const check_input&, const check_results& r) const {
    if (r.ops.empty()) return {};
    const auto& o = r.outcomes[0];
    if (!o.applied || o.allowed) return {};
    return limit_refusal(on_exceed_, smtp::replies::connection_rate_exceeded, "connection_rate",
                         o.observed, r.ops[0].rate.count);
}

}  // namespace smtpgate::policy::checks
