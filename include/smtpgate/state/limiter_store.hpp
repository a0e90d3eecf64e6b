// The limiter store: where every per-client counter lives.
//
// A store maps a key (a check's letter + a client key, a HELO name, a sender...) to a cell: one
// timestamp the check's maths interprets (a GCRA TAT, a last-seen time, a penalty's end) and
// the time after which the cell is as good as new. The maths itself is in policy/rate.hpp and
// is the same whatever the store; a store only keeps cells, bounds their number and forgets
// idle ones.
//
// Concurrent-connection counts are not cells: they must never be evicted while a connection
// is open, so they live in a concurrency_table bounded by the global session cap.
//
// Threading: used from the I/O thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "smtpgate/policy/rate.hpp"

namespace smtpgate::state {

using policy::time_point;

struct cell {
    time_point stamp{};    ///< the check's state (TAT, last seen, block end)
    time_point idle_at{};  ///< after this the cell equals a fresh one and may be dropped
};

class limiter_store {
  public:
    virtual ~limiter_store() = default;

    /// The cell for `key`, created fresh if absent. Valid until the next call on the store.
    virtual cell& at(std::string_view key, time_point now) = 0;
    /// The cell for `key` if present, without creating or refreshing it.
    virtual const cell* peek(std::string_view key) const = 0;

    virtual std::size_t size() const = 0;
    virtual std::size_t capacity() const = 0;
    /// Cells dropped while still carrying state because the table was full.
    virtual std::uint64_t evictions() const = 0;
};

/// Open connections per client key. Entries exist only while a count is above zero, so the
/// table never holds more entries than there are sessions.
class concurrency_table {
  public:
    /// Counts one more connection; returns the new count.
    std::uint32_t acquire(const std::string& key) { return ++counts_[key]; }
    /// Counts one connection less.
    void release(const std::string& key);
    std::uint32_t count(const std::string& key) const;
    std::size_t size() const { return counts_.size(); }

  private:
    std::unordered_map<std::string, std::uint32_t> counts_;
};

}  // namespace smtpgate::state
