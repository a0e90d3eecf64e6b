// Screening: one client's checks, run step by step over the shared store.
//
// A step is planned by the registry (policy/check.hpp), applied by the store
// (state/store.hpp) and decided by the registry. With the in-process store it all happens
// inside start(); with a store across the network start() returns "pending", the store tells
// the driver's completion when the plan is applied, and the driver calls finish(). The
// session engine and the I/O driver never see a check's state.
//
// `admission` and `transaction_checks` below are the synchronous form, for a store that
// completes at once (the unit tests, the benchmark, `smtpgate ctl`-style tools).
//
// Pure: no I/O, no clock (`now` comes from the caller). One per session, on one thread.
#pragma once

#include <string>
#include <string_view>

#include "smtpgate/config/config.hpp"
#include "smtpgate/inet/address.hpp"
#include "smtpgate/policy/admission.hpp"
#include "smtpgate/policy/check.hpp"
#include "smtpgate/policy/rules.hpp"
#include "smtpgate/state/store.hpp"

namespace smtpgate::session {

/// Who a connection's client is: its counting key, key text and matching rule. No state.
class client_identity {
  public:
    explicit client_identity(const config::settings& settings);
    policy::admission_result identify(const inet::client_address& client,
                                      std::string_view hostname = {}) const;
    const policy::rule_table& rules() const { return rules_; }

  private:
    inet::key_prefixes prefixes_;
    policy::rule_table rules_;
};

class screening {
  public:
    screening(const policy::registry& checks, state::store& store);
    ~screening();
    screening(const screening&) = delete;
    screening& operator=(const screening&) = delete;

    /// Plans and applies the step of `p` for `in`. True: decided, result() holds it. False:
    /// the store completes later and calls `waiter->plan_applied()`; then call finish(). `in`
    /// (and what it refers to) must stay alive until then.
    bool start(policy::phase p, const policy::check_input& in, policy::time_point now,
               state::completion* waiter);
    /// Decides a step whose plan the store has applied.
    const policy::step_result& finish(const policy::check_input& in);
    /// Abandons a pending step (the session ends): the waiter is not called.
    void cancel();
    bool pending() const { return waiter_ != nullptr; }
    const policy::step_result& result() const { return result_; }

    /// After a connect step: the concurrency slot it took, if any ("" otherwise).
    std::string_view acquired_slot() const;
    /// Sets who owns the slots this session acquires (instance and session id).
    void set_owner(std::string owner) { step_.plan.owner = std::move(owner); }

  private:
    const policy::registry& checks_;
    state::store& store_;
    policy::step step_;
    policy::step_result result_;
    state::completion* waiter_ = nullptr;
};

/// The connect checks, synchronously, over a store that completes at once.
class admission {
  public:
    /// Keeps references to the store; it must outlive this object.
    admission(const config::settings& settings, state::store& store);

    /// The verdict for a new connection. Whatever it says, call release() when the connection
    /// closes: a refused client holds its slot until it is gone.
    policy::admission_result admit(const inet::client_address& client, policy::time_point now,
                                   std::string_view hostname = {});
    /// Counts an unknown recipient against the client network; over the block level the
    /// network goes into the penalty box (enforce mode).
    policy::bad_recipient_verdict record_bad_recipient(const policy::admission_result& client,
                                                       policy::time_point now);
    /// The connection closed: gives back its concurrency slot.
    void release(policy::admission_result& result);
    const policy::rule_table& rules() const { return identity_.rules(); }

  private:
    config::greet_pause_settings greet_pause_;
    config::check_mode greet_pause_mode_;
    client_identity identity_;
    policy::registry checks_;
    state::store& store_;
    screening steps_;
};

/// The HELO, MAIL and RCPT checks, synchronously, over a store that completes at once.
class transaction_checks {
  public:
    transaction_checks(const config::settings& settings, state::store& store);

    policy::verdict helo(const policy::client_info& client, std::string_view name,
                         policy::time_point now);
    policy::verdict mail(const policy::client_info& client, std::string_view sender,
                         policy::time_point now);
    policy::verdict rcpt(const policy::client_info& client, std::string_view sender,
                         policy::time_point now);

  private:
    policy::verdict run(policy::phase p, const policy::client_info& client,
                        std::string_view subject, policy::time_point now);

    policy::registry checks_;
    screening steps_;
};

/// The verdict a transaction command gets from its step: the enforced refusal, else the
/// first observed one (reported, passing), else pass.
policy::verdict command_verdict(const policy::step_result& r);

}  // namespace smtpgate::session
