// vthrottle's host interval: the time between two connections of one client network must be
// at least `interval.host` (or the rule's override; 0 = off). Too soon: 421 4.7.0, or the
// tempfail treatment.
//
// State: the last connection time per client network. Every connection is an observation,
// refused or not, so a client that keeps hammering stays throttled.
#pragma once

#include "smtpgate/policy/check.hpp"

namespace smtpgate::policy::checks {

class host_interval final : public check {
  public:
    explicit host_interval(const config::settings& s);
    std::string_view name() const override { return "host_interval"; }
    phase when() const override { return phase::connect; }
    mode_key mode() const override { return &config::mode_settings::host_interval; }
    std::span<const store_key> state() const override {
        static constexpr store_key keys[] = {store_key::host_interval};
        return keys;
    }
    void plan(const check_input& in, policy::plan& p) const override;
    verdict decide(const check_input& in, const check_results& r) const override;

  private:
    duration interval_;
    config::exceed_action on_exceed_;
};

}  // namespace smtpgate::policy::checks
