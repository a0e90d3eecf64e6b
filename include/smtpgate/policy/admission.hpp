// What admission found for a new client: the verdict of the connect checks, the greet pause it
// gets, and who it is for every later check.
//
// The checks themselves are modules under policy/checks/ run by the registry
// (policy/check.hpp); session/screening.hpp runs them over a store.
//
// Pure values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "smtpgate/policy/check.hpp"
#include "smtpgate/policy/rate.hpp"
#include "smtpgate/policy/verdict.hpp"

namespace smtpgate::policy {

struct admission_result : client_info {
    /// pass, disconnect (421/554 and close) or tempfail (banner, then 451 to transactions).
    verdict decision;
    /// Checks that fired in observe mode: log and count, nothing else.
    std::vector<verdict> would_block;
    /// Greet pause for this client (0 = none), already capped at 300 s.
    duration greet_pause{0};
    /// Set while this client holds a concurrency slot (its store key); released when the
    /// connection closes.
    std::string held_key;
};

/// What one more unknown recipient means for the client network.
enum class bad_recipient_outcome { none, throttle, block };

struct bad_recipient_verdict {
    bad_recipient_outcome outcome = bad_recipient_outcome::none;
    std::int64_t observed = 0;  ///< unknown recipients in the current burst, this one included
    std::int64_t limit = 0;
    bool would_block = false;  ///< observe mode: log only
};

/// The bad-recipient finding of a rcpt_reply step.
bad_recipient_verdict bad_recipient_finding(const step_result& r);

}  // namespace smtpgate::policy
