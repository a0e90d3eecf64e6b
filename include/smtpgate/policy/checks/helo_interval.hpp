// vthrottle's HELO interval: two HELO/EHLO with the same name (case-insensitive) must be at
// least `interval.helo` apart (or the rule's or the [[exception]]'s interval; 0 = off). Too
// soon: 451 4.7.1 to the HELO, not forwarded, so a real MTA retries later.
//
// State: the last time each name was seen. Every observation restarts the interval.
#pragma once

#include "smtpgate/policy/check.hpp"
#include "smtpgate/policy/transaction.hpp"

namespace smtpgate::policy::checks {

class helo_interval final : public check {
  public:
    explicit helo_interval(const config::settings& s);
    std::string_view name() const override { return "helo_interval"; }
    phase when() const override { return phase::helo; }
    mode_key mode() const override { return &config::mode_settings::helo_interval; }
    std::span<const store_key> state() const override {
        static constexpr store_key keys[] = {store_key::helo_interval};
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
