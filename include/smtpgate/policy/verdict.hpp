// One verdict vocabulary for every check (STYLE 6).
//
// A check returns pass, tempfail (answer every command with a 4xx until QUIT), reject,
// disconnect or throttle (let the command through, delay the session's later replies of its
// kind), with the reply to send, a stable reason token, and the observed value and limit
// for the log line. A check in `observe` mode computes the same verdict but reports it as
// `would_block` and lets the session pass; `off` skips the check.
//
// Pure values; no I/O.
#pragma once

#include <cstdint>
#include <string_view>

#include "smtpgate/config/config.hpp"
#include "smtpgate/smtp/replies.hpp"

namespace smtpgate::policy {

using mode = config::check_mode;

enum class action { pass, tempfail, reject, disconnect, throttle };

struct verdict {
    action act = action::pass;
    const smtp::named_reply* reply = nullptr;
    std::string_view reason = {};  ///< "connection_rate", "concurrent_per_client", ...
    std::int64_t observed = 0;
    std::int64_t limit = 0;
    /// observed and limit are milliseconds (interval checks), not counts.
    bool in_ms = false;
    /// The check fired in observe mode: log and count, change nothing.
    bool would_block = false;
    /// The check that gave it (its registry name), set by the registry.
    std::string_view check = {};

    bool passed() const { return act == action::pass; }
};

/// Applies a check's mode to the verdict it would give.
inline verdict with_mode(verdict v, mode m) {
    if (v.passed() || m == mode::enforce) return v;
    if (m == mode::observe) v.would_block = true;
    v.act = action::pass;
    return v;
}

}  // namespace smtpgate::policy
