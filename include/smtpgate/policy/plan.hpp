// A plan: the state operations one decision step needs, and what each one came to.
//
// A check never touches the store. It says what it needs (operations on keys), the store
// applies the whole plan at once and atomically, and the check decides from the outcomes. This
// is what lets the same check run over the in-process table, which completes at once, and over
// a store across the network, which applies the plan in one round trip (a Lua script
// interpreting the same operations) and completes later.
//
// Semantics every store reproduces exactly, in plan order:
// - `rate` consumes one event by GCRA (policy/rate.hpp). An allowed event is recorded at once,
//   or, with `commit_on_pass`, only when no enforced operation of the step refused (a refused
//   connection consumes no rate budget). A refused event never advances the state.
// - `interval` records an observation (vthrottle: refused or not) and refuses when the
//   previous one was less than `interval` ago.
// - `read_until` reads a stamp (a penalty's end) and refuses while it lies in the future.
// - `set_until` sets the stamp to now + `interval` when operation `if_refused` refused in
//   enforce mode (the penalty box closing on a client).
// - `acquire` takes one concurrency slot for `plan::owner` and refuses above `limit` (0 =
//   unlimited); the slot is held whatever the verdict, until the owner releases it.
// - An operation with `enforce` unset (its check observes) never refuses the step. An
//   enforced refusal of a `gate` operation skips every later operation of the plan.
//
// Pure values; no I/O, no clock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "smtpgate/config/config.hpp"
#include "smtpgate/policy/rate.hpp"

namespace smtpgate::policy {

enum class op_kind : std::uint8_t { rate, interval, read_until, set_until, acquire };

/// plan::add() resets every field to the defaults below: a new field is reset there too.
struct operation {
    op_kind kind = op_kind::rate;
    std::string key;          ///< from policy/store_keys.hpp: which check, which subject
    config::rate rate{};      ///< rate
    duration interval{0};     ///< interval: the expected interval; set_until: how long
    std::uint32_t limit = 0;  ///< acquire: slots allowed (0 = unlimited)
    int if_refused = -1;      ///< set_until: the index of the operation it depends on
    bool enforce = true;      ///< set by the registry from the check's mode
    bool gate = false;
    bool commit_on_pass = false;
    std::uint8_t tag = 0;  ///< the check's own label for this operation
};

struct outcome {
    bool applied = false;  ///< false: skipped after a gate refused
    bool allowed = true;
    /// rate: events in the burst with this one; interval: ms since the last observation (-1:
    /// none); read_until: ms left (0 when past); acquire: slots held with this one.
    std::int64_t observed = 0;
};

/// A plan is reused from step to step: clear() keeps the operations' key buffers, so a
/// session's steady state allocates nothing.
class plan {
  public:
    /// A new operation at the end, with its fields reset.
    operation& add(op_kind kind);
    void clear() { used_ = 0; }
    std::size_t size() const { return used_; }
    bool empty() const { return used_ == 0; }
    const operation& operator[](std::size_t i) const { return ops_[i]; }
    operation& operator[](std::size_t i) { return ops_[i]; }
    const operation* begin() const { return ops_.data(); }
    const operation* end() const { return ops_.data() + used_; }

    /// Who holds the slots `acquire` takes: the instance and session ("" in tests).
    std::string owner;

  private:
    std::vector<operation> ops_;  // beyond used_: spares, kept for their keys' capacity
    std::size_t used_ = 0;
};

}  // namespace smtpgate::policy
