// The in-memory limiter store: a bounded, expiring LRU table.
//
// At most `max_entries` cells. Every access moves a cell to the front, so the back holds the
// idlest. When the table is full, a new key first takes the place of an idle (expired) cell
// from the back; only when the idlest cell still carries state is it evicted, and counted. An
// abuser who keeps connecting keeps its cell fresh at the front, so a flood of new addresses
// evicts idle clients, not the abuser's budget (the common case). Each access also drops a
// couple of expired cells from the back, so memory follows the live population.
//
// Cost per access: one hash lookup and a list splice. Not thread-safe.
#pragma once

#include <list>
#include <string>
#include <unordered_map>

#include "smtpgate/state/limiter_store.hpp"

namespace smtpgate::state {

class memory_store final : public limiter_store {
  public:
    explicit memory_store(std::size_t max_entries);

    cell& at(std::string_view key, time_point now) override;
    const cell* peek(std::string_view key) const override;
    std::size_t size() const override { return index_.size(); }
    std::size_t capacity() const override { return max_entries_; }
    std::uint64_t evictions() const override { return evictions_; }

  private:
    struct entry {
        std::string key;
        cell value;
    };
    using list = std::list<entry>;

    void drop_expired(time_point now, int budget);

    std::size_t max_entries_;
    list lru_;  // front: most recently used
    std::unordered_map<std::string_view, list::iterator> index_;
    std::uint64_t evictions_ = 0;
};

}  // namespace smtpgate::state
