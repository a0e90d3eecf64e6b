// Concurrent connections per client network (sendmail ClientConn, Postfix
// smtpd_client_connection_count_limit): over `limits.concurrent_per_client` (or the rule's
// override; 0 = unlimited) the connection gets 421 4.7.0, or the tempfail treatment.
//
// State: one slot per connection, taken at connect whatever the verdict and held until the
// connection closes, so a client cannot open more sockets than its limit even to be refused.
#pragma once

#include "smtpgate/policy/check.hpp"

namespace smtpgate::policy::checks {

class concurrency final : public check {
  public:
    explicit concurrency(const config::settings& s);
    std::string_view name() const override { return "concurrent_per_client"; }
    phase when() const override { return phase::connect; }
    mode_key mode() const override { return &config::mode_settings::concurrent_per_client; }
    std::span<const store_key> state() const override {
        static constexpr store_key keys[] = {store_key::concurrency};
        return keys;
    }
    void plan(const check_input& in, policy::plan& p) const override;
    verdict decide(const check_input& in, const check_results& r) const override;

  private:
    std::uint32_t limit_;
    config::exceed_action on_exceed_;
};

}  // namespace smtpgate::policy::checks
