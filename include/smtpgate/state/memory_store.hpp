// The in-process store: a bounded, expiring LRU table of cells, and the open connections.
//
// A cell is one timestamp that an operation's maths interprets (a GCRA TAT, a last-seen time,
// a penalty's end) and the time after which it is as good as new. At most `max_entries` cells.
// Every access moves a cell to the front, so the back holds the idlest. When the table is full,
// a new key first takes the place of an idle (expired) cell from the back; only when the idlest
// cell still carries state is it evicted, and counted. An abuser who keeps connecting keeps its
// cell fresh at the front, so a flood of new addresses evicts idle clients, not the abuser's
// budget. Each access also drops a couple of expired cells from the back, so memory follows the
// live population.
//
// Concurrency slots are not cells: a count must never be evicted while its connections are
// open, so they live in a table of their own, bounded by the open sessions.
//
// apply() completes at once: one hash lookup and a list splice per operation, no allocation
// once the table and the caller's plan are warm. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "smtpgate/state/store.hpp"

namespace smtpgate::state {

struct cell {
    time_point stamp{};    ///< the state (TAT, last seen, block end)
    time_point idle_at{};  ///< after this the cell equals a fresh one and may be dropped
};

/// Open connections per key. Entries exist only while a count is above zero, so the table
/// never holds more entries than there are sessions.
class concurrency_table {
  public:
    /// Counts one more connection; returns the new count.
    std::uint32_t acquire(std::string_view key);
    /// Counts one connection less.
    void release(std::string_view key);
    std::uint32_t count(std::string_view key) const;
    std::size_t size() const { return counts_.size(); }

  private:
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };
    std::unordered_map<std::string, std::uint32_t, hash, std::equal_to<>> counts_;
};

class memory_store final : public store {
  public:
    explicit memory_store(std::size_t max_entries);

    bool apply(const policy::plan& p, std::vector<policy::outcome>& out, time_point now,
               completion* done) override;
    void cancel(completion*) override {}
    void release(std::string_view key, std::string_view owner) override;

    /// The cell for `key`, created fresh if absent. Valid until the next call on the store.
    cell& at(std::string_view key, time_point now);
    /// The cell for `key` if present, without creating or refreshing it.
    const cell* peek(std::string_view key) const;
    /// Every cell, most recently used first (inspection and tests).
    void for_each(const std::function<void(std::string_view key, const cell&)>& f) const;

    std::size_t size() const { return index_.size(); }
    std::size_t capacity() const { return max_entries_; }
    /// Cells dropped while still carrying state because the table was full.
    std::uint64_t evictions() const { return evictions_; }
    const concurrency_table& slots() const { return slots_; }

  private:
    struct entry {
        std::string key;
        cell value;
    };
    using list = std::list<entry>;
    struct deferred_commit {
        std::size_t op;
        cell* where;           ///< valid while erased_ still equals `erased`
        std::uint64_t erased;  ///< erased_ when `where` was taken
        time_point tat;
        time_point idle_at;
    };

    void drop_expired(time_point now, int budget);

    std::size_t max_entries_;
    list lru_;  // front: most recently used
    std::unordered_map<std::string_view, list::iterator> index_;
    std::uint64_t evictions_ = 0;
    std::uint64_t erased_ = 0;  // cells ever dropped: a cell pointer taken before is still valid
                                // when this has not moved
    concurrency_table slots_;
    std::vector<deferred_commit> deferred_;  // reused by apply()
};

}  // namespace smtpgate::state
