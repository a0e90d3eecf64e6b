#include "smtpgate/policy/checks/bad_recipients.hpp"

#include "smtpgate/policy/admission.hpp"

namespace smtpgate::policy::checks {

namespace {
enum tag : std::uint8_t { throttle_level, block_level, box };
}  // namespace

penalty_box::penalty_box(const config::settings& s)
    : block_for_(s.limits.bad_recipient_block_for), on_exceed_(s.limits.on_exceed) {}

void penalty_box::plan(const check_input& in, policy::plan& p) const {
    auto& op = p.add(op_kind::read_until);
    make_key(op.key, store_key::penalty, in.client.key);
}

verdict penalty_box::decide(const check_input&, const check_results& r) const {
    const auto& o = r.outcomes[0];
    if (!o.applied || o.allowed) return {};
    verdict v = limit_refusal(on_exceed_, smtp::replies::penalty_box, "penalty", o.observed,
                              block_for_.count());
    v.in_ms = true;
    return v;
}

bad_recipient_rate::bad_recipient_rate(const config::settings& s)
    : throttle_(s.limits.bad_recipient_throttle_rate),
      limit_(s.limits.bad_recipient_limit),
      block_for_(s.limits.bad_recipient_block_for) {}

void bad_recipient_rate::plan(const check_input& in, policy::plan& p) const {
    if (in.client.key.empty()) return;
    // Both levels count every unknown recipient.
    if (!throttle_.off()) {
        auto& op = p.add(op_kind::rate);
        make_key(op.key, store_key::bad_recipient_throttle, in.client.key);
        op.rate = throttle_;
        op.tag = throttle_level;
    }
    if (!limit_.off()) {
        const auto level = static_cast<int>(p.size());
        auto& op = p.add(op_kind::rate);
        make_key(op.key, store_key::bad_recipient_limit, in.client.key);
        op.rate = limit_;
        op.tag = block_level;
        auto& boxed = p.add(op_kind::set_until);
        make_key(boxed.key, store_key::penalty, in.client.key);
        boxed.interval = block_for_;
        boxed.if_refused = level;
        boxed.tag = box;
    }
}

verdict bad_recipient_rate::decide(const check_input&, const check_results& r) const {
    verdict v;
    // The higher level decides first.
    for (std::size_t i = 0; i < r.ops.size(); ++i) {
        const auto& o = r.outcomes[i];
        if (!o.applied || o.allowed || r.ops[i].kind != op_kind::rate) continue;
        if (r.ops[i].tag == block_level) {
            return {.act = action::disconnect,
                    .reply = &smtp::replies::penalty_box,
                    .reason = "bad_recipient_rate",
                    .observed = o.observed,
                    .limit = r.ops[i].rate.count};
        }
        v = {.act = action::throttle,
             .reason = "bad_recipient_throttle_rate",
             .observed = o.observed,
             .limit = r.ops[i].rate.count};
    }
    return v;
}

}  // namespace smtpgate::policy::checks

namespace smtpgate::policy {

bad_recipient_verdict bad_recipient_finding(const step_result& r) {
    const verdict* v = !r.decision.passed() ? &r.decision : nullptr;
    for (const auto& w : r.would_block) {
        if (v == nullptr) v = &w;
    }
    if (v == nullptr) return {};
    return {v->act == action::throttle || v->reason == "bad_recipient_throttle_rate"
                ? bad_recipient_outcome::throttle
                : bad_recipient_outcome::block,
            v->observed, v->limit, v->would_block};
}

}  // namespace smtpgate::policy
