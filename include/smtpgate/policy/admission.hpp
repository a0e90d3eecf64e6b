// Admission: the checks a new client passes before it sees a banner or costs a backend
// connection (sendmail 8.13 conncontrol, ratecontrol, greet_pause; vthrottle's host interval).
//
// Order: the access rule (deny ends it, allow skips the limits), concurrent connections per
// client network, connection rate per client network (GCRA), host interval. A check that
// fails in enforce mode decides; in observe mode it is reported in `would_block` and the next
// check runs. A refused connection consumes no rate budget; it holds its concurrency slot
// until it is closed, so a client cannot open more sockets than its limit even to be refused.
//
// Pure decisions over the limiter store; `now` comes from the caller. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "smtpgate/config/config.hpp"
#include "smtpgate/policy/address.hpp"
#include "smtpgate/policy/rate.hpp"
#include "smtpgate/policy/rules.hpp"
#include "smtpgate/policy/verdict.hpp"
#include "smtpgate/state/limiter_store.hpp"

namespace smtpgate::policy {

struct admission_result {
    /// pass, disconnect (421/554 and close) or tempfail (banner, then 451 to transactions).
    verdict decision;
    /// Checks that fired in observe mode: log and count, nothing else.
    std::vector<verdict> would_block;
    /// Greet pause for this client (0 = none), already capped at 300 s.
    duration greet_pause{0};
    /// The client network, readable ("192.0.2.1", "2001:db8:1:2::/64"), for logs.
    std::string key_text;
    /// The counting key of the client network (compact bytes), for later checks.
    std::string key;
    /// Set while this client holds a concurrency slot; pass the result to release().
    std::string held_key;
    /// The [[rule]] that matched, if any.
    const config::rule* rule = nullptr;
};

/// What one more unknown recipient means for the client network.
enum class bad_recipient_outcome { none, throttle, block };

struct bad_recipient_verdict {
    bad_recipient_outcome outcome = bad_recipient_outcome::none;
    std::int64_t observed = 0;  ///< unknown recipients in the current burst, this one included
    std::int64_t limit = 0;
    bool would_block = false;  ///< observe mode: log only
};

class admission {
  public:
    /// Keeps references to the stores; they must outlive this object.
    admission(const config::settings& settings, state::limiter_store& store,
              state::concurrency_table& connections);

    /// The verdict for a new connection. Whatever it says, the caller calls release() when the
    /// connection closes: a refused client holds its slot until it is gone.
    admission_result admit(const client_address& client, time_point now,
                           std::string_view hostname = {});
    /// Counts an unknown recipient against the client network (the session engine found one).
    /// Over the block level the network goes into the penalty box (enforce mode).
    bad_recipient_verdict record_bad_recipient(const admission_result& client, time_point now);
    /// The connection closed: gives back its concurrency slot.
    void release(admission_result& result);

    const rule_table& rules() const { return rules_; }

  private:
    verdict refuse(const smtp::named_reply& terminate_reply, std::string_view reason,
                   std::int64_t observed, std::int64_t limit) const;

    config::limits_settings limits_;
    config::greet_pause_settings greet_pause_;
    config::interval_settings interval_;
    config::mode_settings modes_;
    key_prefixes prefixes_;
    rule_table rules_;
    state::limiter_store& store_;
    state::concurrency_table& connections_;
};

}  // namespace smtpgate::policy
