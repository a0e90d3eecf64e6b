#include "smtpgate/policy/checks/access.hpp"

namespace smtpgate::policy::checks {

verdict access::decide(const check_input& in, const check_results&) const {
    const config::rule* r = in.client.rule;
    if (r == nullptr || r->action != config::rule_action::deny) return {};
    // A deny is not a limit: 554 and close whatever limits.on_exceed says.
    return {.act = action::disconnect, .reply = &smtp::replies::access_denied, .reason = "access"};
}

}  // namespace smtpgate::policy::checks
