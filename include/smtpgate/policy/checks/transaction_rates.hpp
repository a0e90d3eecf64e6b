// Message and recipient rates (Postfix anvil's smtpd_client_message_rate_limit and
// smtpd_client_recipient_rate_limit, Exim ratelimit per sender): MAIL commands and RCPT
// commands per client network and per envelope sender, GCRA over `limits.message_rate`,
// `limits.sender_message_rate`, `limits.recipient_rate` and `limits.sender_recipient_rate`.
// Over one: 450 4.7.1, not forwarded.
//
// State: one GCRA cell per client network and one per lower-case sender. The network counts
// first, and a command it refuses does not count for the sender; one the sender refuses has
// still counted for the network (Postfix counts requests). The null sender has no sender
// budget.
#pragma once

#include "smtpgate/policy/check.hpp"

namespace smtpgate::policy::checks {

/// One module for both: they differ only in their phase, limits, keys and reason tokens.
class transaction_rate final : public check {
  public:
    /// `messages`: MAIL (message_rate); otherwise RCPT (recipient_rate).
    transaction_rate(const config::settings& s, bool messages);
    std::string_view name() const override { return messages_ ? "message_rate" : "recipient_rate"; }
    phase when() const override { return messages_ ? phase::mail : phase::rcpt; }
    mode_key mode() const override {
        return messages_ ? &config::mode_settings::message_rate
                         : &config::mode_settings::recipient_rate;
    }
    std::span<const store_key> state() const override;
    bool gate() const override { return true; }
    void plan(const check_input& in, policy::plan& p) const override;
    verdict decide(const check_input& in, const check_results& r) const override;

  private:
    bool messages_;
    config::rate per_client_;
    config::rate per_sender_;
};

}  // namespace smtpgate::policy::checks
