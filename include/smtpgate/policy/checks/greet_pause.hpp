// The greet pause (sendmail greet_pause, postscreen's pregreet test): the banner waits
// `greet_pause.delay` (or the rule's override; none for allow rules unless they set one;
// capped at 300 s, RFC 5321 4.5.3.2.1), and a client that talks before it is a slammer:
// 554 5.5.1, then nullserver (554 to every command) or the close, as `greet_pause.on_pregreet`
// says. The pregreet check is pure: the driver reports that the client talked.
#pragma once

#include "smtpgate/policy/check.hpp"

namespace smtpgate::policy::checks {

/// How long the banner waits for this client (0: none; also when the check is off).
duration greet_pause_for(const config::greet_pause_settings& s, config::check_mode m,
                         const client_info& client);

class pregreet final : public check {
  public:
    std::string_view name() const override { return "pregreet"; }
    phase when() const override { return phase::pregreet; }
    mode_key mode() const override { return &config::mode_settings::greet_pause; }
    std::span<const store_key> state() const override { return {}; }
    bool applies_to_allowed() const override { return true; }
    void plan(const check_input&, policy::plan&) const override {}
    verdict decide(const check_input& in, const check_results& r) const override;
};

}  // namespace smtpgate::policy::checks
