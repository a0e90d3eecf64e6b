#include "smtpgate/policy/check.hpp"

#include "smtpgate/policy/checks/access.hpp"
#include "smtpgate/policy/checks/bad_recipients.hpp"
#include "smtpgate/policy/checks/concurrency.hpp"
#include "smtpgate/policy/checks/connection_rate.hpp"
#include "smtpgate/policy/checks/greet_pause.hpp"
#include "smtpgate/policy/checks/helo_interval.hpp"
#include "smtpgate/policy/checks/host_interval.hpp"
#include "smtpgate/policy/checks/sender_interval.hpp"
#include "smtpgate/policy/checks/transaction_rates.hpp"

namespace smtpgate::policy {

std::string_view phase_name(phase p) {
    switch (p) {
        case phase::connect: return "connect";
        case phase::pregreet: return "pregreet";
        case phase::helo: return "helo";
        case phase::mail: return "mail";
        case phase::rcpt: return "rcpt";
        case phase::rcpt_reply: return "rcpt_reply";
    }
    return "unknown";
}

registry::registry(const config::settings& settings) {
    // The order is the order of decision within a phase: the first enforced refusal is the
    // one the client gets, and observed ones are reported in this order.
    std::unique_ptr<check> all[] = {
        // connect: the access rule and the penalty box before anything counts the client; then
        // the limits. Every connection restarts the host interval, refused or not; it is
        // reported after the counts.
        std::make_unique<checks::access>(),
        std::make_unique<checks::penalty_box>(settings),
        std::make_unique<checks::concurrency>(settings),
        std::make_unique<checks::connection_rate>(settings),
        std::make_unique<checks::host_interval>(settings),
        std::make_unique<checks::pregreet>(),
        std::make_unique<checks::helo_interval>(settings),
        std::make_unique<checks::sender_interval>(settings),
        std::make_unique<checks::transaction_rate>(settings, true),
        std::make_unique<checks::transaction_rate>(settings, false),
        std::make_unique<checks::bad_recipient_rate>(settings),
    };
    for (auto& c : all) {
        const auto m = settings.modes.*c->mode();
        const auto p = static_cast<std::size_t>(c->when());
        if (m != config::check_mode::off) by_phase_[p].push_back(entries_.size());
        const bool gate = c->gate();
        const bool to_allowed = c->applies_to_allowed();
        const bool stateful = !c->state().empty();
        entries_.push_back({std::move(c), m, gate, to_allowed, stateful});
    }
}

registry::~registry() = default;

void registry::begin(step& s, phase p, const check_input& in) const {
    s.at = p;
    s.plan.clear();
    s.parts.clear();
    for (const std::size_t index : by_phase_[static_cast<std::size_t>(p)]) {
        const auto& e = entries_[index];
        if (in.client.allowed() && !e.applies_to_allowed) continue;
        const std::size_t first = s.plan.size();
        e.c->plan(in, s.plan);
        const std::size_t count = s.plan.size() - first;
        // A check that keeps state but needs none of it now (a limit of 0) has nothing to say.
        if (count == 0 && e.stateful) continue;
        s.parts.push_back({e.c.get(), e.mode, first, count});
        for (std::size_t i = first; i < first + count; ++i) {
            s.plan[i].enforce = e.mode == config::check_mode::enforce;
            if (e.gate) s.plan[i].gate = true;
        }
        // A gate that decides from the input alone (an access deny) ends the step here: no
        // later check plans anything, so nothing counts the client.
        if (count == 0 && e.gate && e.mode == config::check_mode::enforce
            && !e.c->decide(in, {}).passed()) {
            break;
        }
    }
}

void registry::finish(const step& s, const check_input& in, step_result& out) const {
    out.decision = {};
    out.would_block.clear();
    const std::span<const operation> ops(s.plan.begin(), s.plan.end());
    const std::span<const outcome> outcomes(s.outcomes);
    for (const auto& part : s.parts) {
        const check_results r{ops.subspan(part.first, part.count),
                              outcomes.subspan(part.first, part.count)};
        verdict v = with_mode(part.c->decide(in, r), part.mode);
        v.check = part.c->name();
        if (v.would_block) out.would_block.push_back(v);
        if (!v.passed() && out.decision.passed()) out.decision = v;
    }
}

verdict limit_refusal(config::exceed_action on_exceed, const smtp::named_reply& reply,
                      std::string_view reason, std::int64_t observed, std::int64_t limit) {
    verdict v{.reason = reason, .observed = observed, .limit = limit};
    if (on_exceed == config::exceed_action::terminate) {
        v.act = action::disconnect;
        v.reply = &reply;
    } else {
        v.act = action::tempfail;
        v.reply = &smtp::replies::tempfail_command;
    }
    return v;
}

void make_lower_key(std::string& out, store_key kind, std::string_view subject) {
    make_key(out, kind, subject);
    for (std::size_t i = 1; i < out.size(); ++i) {
        if (out[i] >= 'A' && out[i] <= 'Z') out[i] = static_cast<char>(out[i] - 'A' + 'a');
    }
}

operation& plan::add(op_kind kind) {
    if (used_ == ops_.size()) ops_.emplace_back();
    operation& op = ops_[used_++];
    // Field by field: the key keeps its buffer.
    op.kind = kind;
    op.key.clear();
    op.rate = {};
    op.interval = duration{0};
    op.limit = 0;
    op.if_refused = -1;
    op.enforce = true;
    op.gate = false;
    op.commit_on_pass = false;
    op.tag = 0;
    return op;
}

}  // namespace smtpgate::policy
