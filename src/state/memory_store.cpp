#include "smtpgate/state/memory_store.hpp"

#include <stdexcept>

namespace smtpgate::state {

memory_store::memory_store(std::size_t max_entries) : max_entries_(max_entries) {
    if (max_entries_ == 0) throw std::invalid_argument("memory_store: max_entries must be > 0");
    index_.reserve(std::min<std::size_t>(max_entries_, 1 << 16));
}

void memory_store::drop_expired(time_point now, int budget) {
    while (budget-- > 0 && !lru_.empty() && lru_.back().value.idle_at <= now) {
        index_.erase(lru_.back().key);
        lru_.pop_back();
    }
}

cell& memory_store::at(std::string_view key, time_point now) {
    drop_expired(now, 2);
    if (const auto it = index_.find(key); it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second->value;
    }
    if (index_.size() >= max_entries_) {
        // Full: reuse the idlest cell. It is expired unless every cell is busy.
        if (lru_.back().value.idle_at > now) ++evictions_;
        index_.erase(lru_.back().key);
        lru_.pop_back();
    }
    lru_.push_front(entry{std::string(key), cell{}});
    index_.emplace(lru_.front().key, lru_.begin());
    return lru_.front().value;
}

const cell* memory_store::peek(std::string_view key) const {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->value;
}

void concurrency_table::release(const std::string& key) {
    const auto it = counts_.find(key);
    if (it == counts_.end()) return;
    if (--it->second == 0) counts_.erase(it);
}

std::uint32_t concurrency_table::count(const std::string& key) const {
    const auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
}

}  // namespace smtpgate::state
