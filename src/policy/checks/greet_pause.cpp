#include "smtpgate/policy/checks/greet_pause.hpp"

#include <algorithm>

namespace smtpgate::policy::checks {

namespace {
// RFC 5321 4.5.3.2.1: the client's greeting timeout is 5 minutes.
constexpr duration max_greet_pause = std::chrono::seconds(300);
}  // namespace

duration greet_pause_for(const config::greet_pause_settings& s, config::check_mode m,
                         const client_info& client) {
    if (m == config::check_mode::off) return duration(0);
    duration pause = client.allowed() ? duration(0) : s.delay;
    if (client.rule != nullptr && client.rule->greet_pause) pause = *client.rule->greet_pause;
    return std::min(pause, max_greet_pause);
}

verdict pregreet::decide(const check_input&, const check_results&) const {
    // Only asked when the client did talk first: that is the finding.
    return {.act = action::reject, .reply = &smtp::replies::pregreet, .reason = "pregreet"};
}

}  // namespace smtpgate::policy::checks
