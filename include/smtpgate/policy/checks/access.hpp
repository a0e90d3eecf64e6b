// The access check: a [[rule]] with action = "deny" refuses the client at connect with
// 554 5.7.1, before any limit counts it (sendmail access db REJECT). A gate: nothing after it
// runs for a denied client. Allow rules are not decided here: the registry skips every limit
// for them.
//
// Pure; no state.
#pragma once

#include "smtpgate/policy/check.hpp"

namespace smtpgate::policy::checks {

class access final : public check {
  public:
    std::string_view name() const override { return "access"; }
    phase when() const override { return phase::connect; }
    mode_key mode() const override { return &config::mode_settings::access; }
    std::span<const store_key> state() const override { return {}; }
    bool applies_to_allowed() const override { return true; }
    bool gate() const override { return true; }
    void plan(const check_input&, policy::plan&) const override {}
    verdict decide(const check_input& in, const check_results& r) const override;
};

}  // namespace smtpgate::policy::checks
