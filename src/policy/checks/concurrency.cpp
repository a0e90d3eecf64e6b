#include "smtpgate/policy/checks/concurrency.hpp"

namespace smtpgate::policy::checks {

concurrency::concurrency(const config::settings& s)
    : limit_(s.limits.concurrent_per_client), on_exceed_(s.limits.on_exceed) {}

void concurrency::plan(const check_input& in, policy::plan& p) const {
    const config::rule* r = in.client.rule;
    // The slot is taken even with no limit: a rule may set one at the next reload, and the
    // count must include the connections already open.
    auto& op = p.add(op_kind::acquire);
    make_key(op.key, store_key::concurrency, in.client.key);
    op.limit = r != nullptr && r->concurrent_per_client ? *r->concurrent_per_client : limit_;
}

verdict concurrency::decide(const check_input&, const check_results& r) const {
    const auto& o = r.outcomes[0];
    if (!o.applied || o.allowed) return {};
    return limit_refusal(on_exceed_, smtp::replies::too_many_client_connections,
                         "concurrent_per_client", o.observed, r.ops[0].limit);
}

}  // namespace smtpgate::policy::checks
