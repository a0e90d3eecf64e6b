// What a screening check is, and the registry that runs them.
//
// A check is one module (postscreen: one file per test) under policy/checks/. It names the
// phase it runs in, the mode key it obeys, the state it needs for a decision (a plan of store
// operations, policy/plan.hpp) and how it decides from the outcomes. It never reads its mode:
// the registry runs every check of a phase in one fixed order and applies the modes in one
// place, so observing one check changes nothing about another:
// - `off`: the check plans nothing and decides nothing; its state is never touched;
// - `observe`: its operations run but never refuse the step (a refused rate event still
//   records nothing), and its verdict is reported as `would_block`;
// - `enforce`: the first enforced refusal, in registry order, is the step's decision.
// A check that is a gate (an access deny, the penalty box) ends the step when it refuses in
// enforce mode: later checks plan nothing (pure checks) or their operations are skipped.
//
// Pure: no store, no I/O, no clock. A step is planned (begin), applied by whatever store the
// caller has, then decided (finish).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/config/config.hpp"
#include "smtpgate/inet/address.hpp"
#include "smtpgate/policy/plan.hpp"
#include "smtpgate/policy/store_keys.hpp"
#include "smtpgate/policy/verdict.hpp"

namespace smtpgate::policy {

/// When a check runs.
enum class phase : std::uint8_t {
    connect,     ///< a new connection, before any byte is sent
    pregreet,    ///< the client talked before the banner
    helo,        ///< HELO/EHLO, before it is forwarded
    mail,        ///< MAIL FROM, before it is forwarded
    rcpt,        ///< RCPT TO, before it is forwarded
    rcpt_reply,  ///< the backend refused a recipient as unknown
};
inline constexpr std::size_t phase_count = 6;
std::string_view phase_name(phase p);

/// The client as every check sees it.
struct client_info {
    inet::client_address address;
    /// The counting key of the client network (compact bytes).
    std::string key;
    /// The client network, readable ("192.0.2.1", "2001:db8:1:2::/64"), for logs.
    std::string key_text;
    /// The verified host name, "" when unknown.
    std::string hostname;
    /// The [[rule]] that matched, if any.
    const config::rule* rule = nullptr;

    bool allowed() const { return rule != nullptr && rule->action == config::rule_action::allow; }
};

/// What one step is about.
struct check_input {
    const client_info& client;
    /// helo: the HELO name; mail: the sender; rcpt: the open transaction's sender.
    std::string_view subject = {};
};

/// The operations a check planned for one step, and what they came to.
struct check_results {
    std::span<const operation> ops;
    std::span<const outcome> outcomes;
};

/// Which field of [modes] a check obeys.
using mode_key = config::check_mode config::mode_settings::*;

class check {
  public:
    virtual ~check() = default;
    /// Its name in logs and docs; the reason token of its verdicts unless it has several.
    virtual std::string_view name() const = 0;
    virtual phase when() const = 0;
    virtual mode_key mode() const = 0;
    /// The kinds of state it reads or writes (policy/store_keys.hpp); none for a pure check.
    virtual std::span<const store_key> state() const = 0;
    /// An allow rule skips every limit; the access check itself is the exception.
    virtual bool applies_to_allowed() const { return false; }
    /// A refusal in enforce mode ends the step.
    virtual bool gate() const { return false; }
    /// Adds the operations this check needs for `in` to `p`. A pure check (no state()) plans
    /// none and decides from `in` alone; a check with state that plans none has nothing to do
    /// this time (a limit of 0) and is not asked to decide.
    virtual void plan(const check_input& in, plan& p) const = 0;
    /// Its verdict from `in` and the outcomes of what it planned. A skipped operation
    /// (outcome::applied false) decides nothing.
    virtual verdict decide(const check_input& in, const check_results& r) const = 0;
};

/// The verdicts of one step.
struct step_result {
    /// The first enforced refusal in registry order, or pass.
    verdict decision;
    /// Checks that refused in observe mode, in registry order: log and count, nothing else.
    std::vector<verdict> would_block;
};

class registry;

/// One decision step in flight: its plan and outcomes. Reused from step to step, so a
/// session's steady state allocates nothing.
struct step {
    phase at = phase::connect;
    policy::plan plan;
    std::vector<outcome> outcomes;

    struct part {
        const check* c = nullptr;
        config::check_mode mode = config::check_mode::enforce;
        std::size_t first = 0;  ///< its first operation in `plan`
        std::size_t count = 0;
    };
    std::vector<part> parts;
};

class registry {
  public:
    /// Every check module, in their fixed order, with the modes of `settings`.
    explicit registry(const config::settings& settings);
    ~registry();
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    /// Plans the step of `p` for `in` into `s`. The plan may be empty: then finish() needs no
    /// store.
    void begin(step& s, phase p, const check_input& in) const;
    /// Decides the step from `s.outcomes` (one per planned operation).
    void finish(const step& s, const check_input& in, step_result& out) const;

    struct entry {
        std::unique_ptr<check> c;
        config::check_mode mode;
        // The check's constant answers, asked once here rather than per step.
        bool gate = false;
        bool applies_to_allowed = false;
        bool stateful = false;
    };
    const std::vector<entry>& entries() const { return entries_; }

  private:
    std::vector<entry> entries_;
    /// For each phase, the entries that are not off, in order.
    std::array<std::vector<std::size_t>, phase_count> by_phase_;
};

/// A refusal by a connection limit: 421 with `reply` and close, or (limits.on_exceed =
/// "tempfail") the proxy's banner and then 451 to every transaction command.
verdict limit_refusal(config::exceed_action on_exceed, const smtp::named_reply& reply,
                      std::string_view reason, std::int64_t observed, std::int64_t limit);

/// Sets `out` to `kind`'s key for a host name or address, lower-cased (RFC 5321 2.4).
void make_lower_key(std::string& out, store_key kind, std::string_view subject);

}  // namespace smtpgate::policy
