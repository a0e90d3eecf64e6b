// The store: where every per-client counter lives, behind one asynchronous interface.
//
// A check never reads or writes state itself. A decision step hands the store a plan
// (policy/plan.hpp: operations on keys); the store applies the whole plan atomically and
// reports one outcome per operation. The in-process table applies it at once, on the caller's
// stack, with no coroutine frame and no allocation once warm. A store across the network
// applies it in one round trip and completes later. The maths is the same pure implementation
// (policy/rate.hpp) wherever the plan runs.
//
// Concurrency slots sit behind the same interface: `acquire` operations take them as part of a
// plan, release() gives one back when its owner's connection closes.
//
// Threading: a store is used from one thread (the I/O thread of the sessions that use it); a
// pending plan completes on that thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "smtpgate/policy/plan.hpp"

namespace smtpgate::state {

using policy::time_point;

/// Told when a plan that the store could not apply at once has been applied.
class completion {
  public:
    virtual void plan_applied() = 0;

  protected:
    ~completion() = default;
};

class store {
  public:
    virtual ~store() = default;

    /// Applies every operation of `p` at `now` as one atomic step and sets `out` to one
    /// outcome per operation. Returns true when that is done now. Otherwise returns false and
    /// calls `done->plan_applied()` later; `p`, `out` and `done` must stay alive until then,
    /// or until cancel(done). A store that cannot reach its state in time still completes, with
    /// the outcomes of a fresh state (fail-open): mail keeps flowing.
    virtual bool apply(const policy::plan& p, std::vector<policy::outcome>& out, time_point now,
                       completion* done) = 0;
    /// Forgets a pending plan: `done` is not called.
    virtual void cancel(completion* done) = 0;
    /// Gives back the concurrency slot `owner` holds under `key` (an `acquire` key).
    virtual void release(std::string_view key, std::string_view owner) = 0;
};

}  // namespace smtpgate::state
