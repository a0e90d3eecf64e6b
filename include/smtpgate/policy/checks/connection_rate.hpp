// New connections per client network (sendmail ClientRate): GCRA over
// `limits.connection_rate` (or the rule's override). Over it: 421 4.7.0, or the tempfail
// treatment.
//
// State: one GCRA cell per client network, recorded only when the whole connect step passes,
// so a connection refused by any check consumes no budget.
#pragma once

#include "smtpgate/policy/check.hpp"

namespace smtpgate::policy::checks {

class connection_rate final : public check {
  public:
    explicit connection_rate(const config::settings& s);
    std::string_view name() const override { return "connection_rate"; }
    phase when() const override { return phase::connect; }
    mode_key mode() const override { return &config::mode_settings::connection_rate; }
    std::span<const store_key> state() const override {
        static constexpr store_key keys[] = {store_key::connection_rate};
        return keys;
    }
    void plan(const check_input& in, policy::plan& p) const override;
    verdict decide(const check_input& in, const check_results& r) const override;

  private:
    config::rate rate_;
    config::exceed_action on_exceed_;
};

}  // namespace smtpgate::policy::checks
