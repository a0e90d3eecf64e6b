// vthrottle's sender interval: two MAIL FROM with the same sender address (case-insensitive)
// must be at least `interval.sender` apart (or the rule's or the [[exception]]'s interval;
// 0 = off). Too soon: 451 4.7.1 to the MAIL, not forwarded. The null sender (bounces) is
// never one sender and is not throttled.
//
// State: the last time each sender was seen. Every observation restarts the interval. A gate:
// a MAIL refused here counts against no rate.
#pragma once

#include "smtpgate/policy/check.hpp"
#include "smtpgate/policy/transaction.hpp"

namespace smtpgate::policy::checks {

class sender_interval final : public check {
  public:
    explicit sender_interval(const config::settings& s);
    std::string_view name() const override { return "sender_interval"; }
    phase when() const override { return phase::mail; }
    mode_key mode() const override { return &config::mode_settings::sender_interval; }
    std::span<const store_key> state() const override {
        static constexpr store_key keys[] = {store_key::sender_interval};
        return keys;
    }
    bool gate() const override { return true; }
    void plan(const check_input& in, policy::plan& p) const override;
    verdict decide(const check_input& in, const check_results& r) const override;

  private:
    duration interval_;
    exception_table exceptions_;
};

}  // namespace smtpgate::policy::checks
