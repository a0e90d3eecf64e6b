#include "smtpgate/policy/checks/transaction_rates.hpp"

namespace smtpgate::policy::checks {

namespace {
enum tag : std::uint8_t { per_client, per_sender };
}  // namespace

transaction_rate::transaction_rate(const config::settings& s, bool messages)
    : messages_(messages),
      per_client_(messages ? s.limits.message_rate : s.limits.recipient_rate),
      per_sender_(messages ? s.limits.sender_message_rate : s.limits.sender_recipient_rate) {}

std::span<const store_key> transaction_rate::state() const {
    static constexpr store_key messages[] = {store_key::message_rate,
                                             store_key::sender_message_rate};
    static constexpr store_key recipients[] = {store_key::recipient_rate,
                                               store_key::sender_recipient_rate};
    if (messages_) return messages;
    return recipients;
}

void transaction_rate::plan(const check_input& in, policy::plan& p) const {
    if (!per_client_.off()) {
        auto& op = p.add(op_kind::rate);
        make_key(op.key, messages_ ? store_key::message_rate : store_key::recipient_rate,
                 in.client.key);
        op.rate = per_client_;
        op.tag = per_client;
        // A command the network's rate refuses does not count for its sender.
        op.gate = true;
    }
    if (!per_sender_.off() && !in.subject.empty()) {
        auto& op = p.add(op_kind::rate);
        make_lower_key(
            op.key, messages_ ? store_key::sender_message_rate : store_key::sender_recipient_rate,
            in.subject);
        op.rate = per_sender_;
        op.tag = per_sender;
    }
}

verdict transaction_rate::decide(const check_input&, const check_results& r) const {
    for (std::size_t i = 0; i < r.ops.size(); ++i) {
        const auto& o = r.outcomes[i];
        if (!o.applied || o.allowed) continue;
        const bool client = r.ops[i].tag == per_client;
        std::string_view reason;
        if (messages_) {
            reason = client ? "message_rate" : "sender_message_rate";
        } else {
            reason = client ? "recipient_rate" : "sender_recipient_rate";
        }
        const auto& reply = !client     ? smtp::replies::sender_rate_exceeded
                            : messages_ ? smtp::replies::message_rate_exceeded
                                        : smtp::replies::recipient_rate_exceeded;
        return {.act = action::tempfail,
                .reply = &reply,
                .reason = reason,
                .observed = o.observed,
                .limit = r.ops[i].rate.count};
    }
    return {};
}

}  // namespace smtpgate::policy::checks
