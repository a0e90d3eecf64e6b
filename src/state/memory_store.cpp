#include "smtpgate/state/memory_store.hpp"

#include <algorithm>
#include <stdexcept>

namespace smtpgate::state {

using policy::op_kind;

memory_store::memory_store(std::size_t max_entries) : max_entries_(max_entries) {
    if (max_entries_ == 0) throw std::invalid_argument("memory_store: max_entries must be > 0");
    index_.reserve(std::min<std::size_t>(max_entries_, 1 << 16));
}

bool memory_store::apply(const policy::plan& p, std::vector<policy::outcome>& out, time_point now,
                         completion*) {
    out.assign(p.size(), policy::outcome{});
    deferred_.clear();
    bool refused = false;  // an enforced operation refused: the step does not pass
    for (std::size_t i = 0; i < p.size(); ++i) {
        const policy::operation& op = p[i];
        policy::outcome& o = out[i];
        o.applied = true;
        switch (op.kind) {
            case op_kind::rate: {
                cell& c = at(op.key, now);
                time_point tat = c.stamp;
                const auto d = policy::gcra_consume(tat, op.rate, now);
                o.allowed = d.allowed;
                o.observed = d.observed;
                if (!d.allowed) break;
                if (op.commit_on_pass) {
                    deferred_.push_back({i, &c, erased_, tat, d.idle_at});
                } else {
                    c.stamp = tat;
                    c.idle_at = std::max(c.idle_at, d.idle_at);
                }
                break;
            }
            case op_kind::interval: {
                cell& c = at(op.key, now);
                const auto d = policy::interval_observe(c.stamp, op.interval, now);
                c.idle_at = d.idle_at;
                o.allowed = d.allowed;
                o.observed = d.observed.count();
                break;
            }
            case op_kind::read_until: {
                const cell* c = peek(op.key);
                if (c != nullptr && c->stamp > now) {
                    o.allowed = false;
                    o.observed = std::chrono::ceil<policy::duration>(c->stamp - now).count();
                }
                break;
            }
            case op_kind::set_until: {
                const auto cause = static_cast<std::size_t>(op.if_refused);
                o.applied = op.if_refused >= 0 && cause < i && out[cause].applied
                            && !out[cause].allowed && p[cause].enforce;
                if (!o.applied) break;
                cell& c = at(op.key, now);
                c.stamp = now + op.interval;
                c.idle_at = c.stamp;
                break;
            }
            case op_kind::acquire: {
                const std::uint32_t held = slots_.acquire(op.key);
                o.observed = held;
                o.allowed = op.limit == 0 || held <= op.limit;
                break;
            }
        }
        if (o.allowed || !op.enforce) continue;
        refused = true;
        if (op.gate) {
            // Everything after a gate that closed is skipped: not applied, nothing recorded.
            for (std::size_t j = i + 1; j < p.size(); ++j)
                out[j] = policy::outcome{.applied = false};
            break;
        }
    }
    if (!refused) {
        for (const auto& d : deferred_) {
            // The cell itself, unless the table dropped a cell since (then it may be gone).
            cell& c = d.erased == erased_ ? *d.where : at(p[d.op].key, now);
            c.stamp = d.tat;
            c.idle_at = std::max(c.idle_at, d.idle_at);
        }
    }
    return true;
}

void memory_store::release(std::string_view key, std::string_view) {
    slots_.release(key);
}

void memory_store::drop_expired(time_point now, int budget) {
    while (budget-- > 0 && !lru_.empty() && lru_.back().value.idle_at <= now) {
        index_.erase(lru_.back().key);
        lru_.pop_back();
        ++erased_;
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
        ++erased_;
    }
    lru_.push_front(entry{std::string(key), cell{}});
    index_.emplace(lru_.front().key, lru_.begin());
    return lru_.front().value;
}

const cell* memory_store::peek(std::string_view key) const {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->value;
}

void memory_store::for_each(const std::function<void(std::string_view key, const cell&)>& f) const {
    for (const auto& e : lru_)
        f(e.key, e.value);
}

std::uint32_t concurrency_table::acquire(std::string_view key) {
    // One hash probe, found or new. Slot keys are short (a prefix byte and at most 16 address
    // bytes), so the temporary key stays in the string's own buffer.
    return ++counts_[std::string(key)];
}

void concurrency_table::release(std::string_view key) {
    const auto it = counts_.find(key);
    if (it == counts_.end()) return;
    if (--it->second == 0) counts_.erase(it);
}

std::uint32_t concurrency_table::count(std::string_view key) const {
    const auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
}

}  // namespace smtpgate::state
