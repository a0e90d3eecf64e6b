// The in-memory limiter store (bounded, expiring LRU) and the concurrency table.
#include "smtpgate/state/memory_store.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

using namespace smtpgate;
using namespace std::chrono_literals;
using state::time_point;

namespace {

const time_point t0{std::chrono::hours(1000)};

/// A cell that still carries state at `now`: written by a check, idle only at `until`.
state::cell& touch(state::memory_store& store, const std::string& key, time_point now,
                   time_point until) {
    auto& c = store.at(key, now);
    c.stamp = now;
    c.idle_at = until;
    return c;
}

std::string key_of(int i) {
    return "k" + std::to_string(i);
}

}  // namespace

TEST_CASE("state/memory_store - rejects a zero capacity") {
    CHECK_THROWS_AS(state::memory_store(0), std::invalid_argument);
    const state::memory_store one(1);
    CHECK(one.capacity() == 1);
    CHECK(one.size() == 0);
    CHECK(one.evictions() == 0);
}

TEST_CASE("state/memory_store - at() creates a fresh cell, then returns the same one") {
    state::memory_store store(8);
    auto& created = store.at("r-192.0.2.1", t0);
    CHECK(created.stamp == time_point{});
    CHECK(created.idle_at == time_point{});
    CHECK(store.size() == 1);
    created.stamp = t0 + 5s;
    created.idle_at = t0 + 1h;

    auto& again = store.at("r-192.0.2.1", t0 + 1s);
    CHECK(&again == &created);
    CHECK(again.stamp == t0 + 5s);
    CHECK(again.idle_at == t0 + 1h);
    CHECK(store.size() == 1);

    // Keys are bytes: an embedded NUL and a long key (no small-string buffer) both work.
    const std::string with_nul("h6\0\x01", 4);
    const std::string long_key(200, 'x');
    touch(store, with_nul, t0, t0 + 1h).stamp = t0 + 7s;
    touch(store, long_key, t0, t0 + 1h).stamp = t0 + 8s;
    CHECK(store.size() == 3);
    CHECK(store.at(with_nul, t0 + 2s).stamp == t0 + 7s);
    CHECK(store.at(long_key, t0 + 2s).stamp == t0 + 8s);
    CHECK(store.peek(std::string("h6", 2)) == nullptr);
}

TEST_CASE("state/memory_store - peek() neither creates nor refreshes") {
    state::memory_store store(2);
    CHECK(store.peek("a") == nullptr);
    CHECK(store.size() == 0);

    touch(store, "a", t0, t0 + 1h);
    touch(store, "b", t0, t0 + 1h);
    const auto* a = store.peek("a");
    REQUIRE(a != nullptr);
    CHECK(a->idle_at == t0 + 1h);
    // "a" is still the least recently used: peeking did not move it to the front.
    touch(store, "c", t0, t0 + 1h);
    CHECK(store.peek("a") == nullptr);
    CHECK(store.peek("b") != nullptr);
    CHECK(store.peek("c") != nullptr);
    CHECK(store.evictions() == 1);
}

TEST_CASE("state/memory_store - never holds more than max_entries") {
    constexpr std::size_t capacity = 100;
    state::memory_store store(capacity);
    // Ten times the capacity of distinct keys, all still carrying state.
    for (int i = 0; i < static_cast<int>(10 * capacity); ++i) {
        touch(store, key_of(i), t0 + i * 1ms, t0 + 1h);
        if (store.size() > capacity) {
            INFO("after " << i + 1 << " keys: got size " << store.size() << ", want at most "
                          << capacity);
            FAIL();
        }
    }
    CHECK(store.size() == capacity);
    CHECK(store.evictions() == 9 * capacity);
    // The survivors are the most recent keys.
    for (int i = 0; i < static_cast<int>(10 * capacity); ++i) {
        const bool want = i >= static_cast<int>(9 * capacity);
        if ((store.peek(key_of(i)) != nullptr) != want) {
            INFO("key " << key_of(i) << ": got present=" << !want << ", want present=" << want);
            FAIL();
        }
    }
}

TEST_CASE("state/memory_store - reuses an expired cell without counting an eviction") {
    state::memory_store store(3);
    touch(store, "old", t0, t0 + 1s);  // the back of the table, expired at t0+1s
    touch(store, "b", t0, t0 + 1h);
    touch(store, "c", t0, t0 + 1h);
    REQUIRE(store.size() == 3);

    auto& d = store.at("d", t0 + 2s);
    CHECK(d.stamp == time_point{});
    CHECK(store.size() == 3);
    CHECK(store.peek("old") == nullptr);
    CHECK(store.peek("b") != nullptr);
    CHECK(store.peek("c") != nullptr);
    INFO("got evictions " << store.evictions() << ", want 0");
    CHECK(store.evictions() == 0);
}

TEST_CASE("state/memory_store - counts an eviction when the idlest cell still has state") {
    state::memory_store store(3);
    touch(store, "a", t0, t0 + 1h);
    touch(store, "b", t0, t0 + 1h);
    touch(store, "c", t0, t0 + 1h);
    touch(store, "a", t0 + 1s, t0 + 1h);  // "b" is now the idlest

    touch(store, "d", t0 + 2s, t0 + 1h);
    CHECK(store.size() == 3);
    CHECK(store.evictions() == 1);
    CHECK(store.peek("b") == nullptr);
    CHECK(store.peek("a") != nullptr);
    CHECK(store.peek("c") != nullptr);
    CHECK(store.peek("d") != nullptr);

    // A cell that was never written (a fresh, expired cell) carries no state: dropping it is
    // not an eviction.
    store.at("fresh", t0 + 3s);  // evicts "c" (state), stays fresh
    CHECK(store.evictions() == 2);
    touch(store, "a", t0 + 4s, t0 + 1h);
    touch(store, "d", t0 + 4s, t0 + 1h);
    touch(store, "e", t0 + 4s, t0 + 1h);  // "fresh" is the idlest now
    CHECK(store.peek("fresh") == nullptr);
    CHECK(store.evictions() == 2);
}

TEST_CASE("state/memory_store - keeps a busy key while a flood of new keys passes through") {
    // The product's promise: an abuser who keeps connecting keeps its budget; a flood of
    // fresh addresses evicts idle clients, not the abuser's cell.
    constexpr std::size_t capacity = 100;
    state::memory_store store(capacity);
    const std::string abuser = "r-abuser";
    touch(store, abuser, t0, t0 + 1h).stamp = t0 + 42min;  // a GCRA TAT far ahead

    auto now = t0;
    for (int i = 0; i < 100 * static_cast<int>(capacity); ++i) {
        now += 1ms;
        touch(store, key_of(i), now, now + 1h);
        if (i % 50 == 49) {
            // The abuser comes back twice per table's worth of new keys.
            auto& c = store.at(abuser, now);
            if (c.stamp != t0 + 42min) {
                INFO("after " << i + 1 << " new keys the abuser's state was reset");
                FAIL();
            }
        }
        if (store.size() > capacity) {
            INFO("after " << i + 1 << " new keys: got size " << store.size() << ", want at most "
                          << capacity);
            FAIL();
        }
    }
    const auto* c = store.peek(abuser);
    REQUIRE(c != nullptr);
    CHECK(c->stamp == t0 + 42min);
    CHECK(c->idle_at == t0 + 1h);
    CHECK(store.evictions() >= 100 * capacity - capacity);
}

TEST_CASE("state/memory_store - drops expired cells as time passes") {
    state::memory_store store(1000);
    for (int i = 0; i < 50; ++i)
        touch(store, key_of(i), t0, t0 + 1s);
    touch(store, "live", t0, t0 + 1h);
    REQUIRE(store.size() == 51);

    // Before they expire nothing goes.
    store.at("live", t0 + 999ms);
    CHECK(store.size() == 51);

    // After, every access drops a few from the back: the size shrinks steadily, never grows.
    std::size_t previous = store.size();
    for (int i = 0; i < 50; ++i) {
        store.at("live", t0 + 2s + i * 1ms);
        CHECK(store.size() <= previous);
        previous = store.size();
    }
    INFO("got size " << store.size() << ", want 1 (only the live key)");
    CHECK(store.size() == 1);
    CHECK(store.peek("live") != nullptr);
    CHECK(store.peek("live")->idle_at == t0 + 1h);
    CHECK(store.evictions() == 0);
}

TEST_CASE("state/memory_store - an expired cell is as good as new when its key comes back") {
    state::memory_store store(4);
    touch(store, "a", t0, t0 + 1s).stamp = t0 + 1s;
    // Long after its idle time the key may have been forgotten; at() returns either the old
    // cell or a fresh one, and both must be expired.
    auto& c = store.at("a", t0 + 1h);
    CHECK(c.idle_at <= t0 + 1h);
    CHECK(store.size() == 1);
}

TEST_CASE("state/concurrency_table - counts open connections per key") {
    state::concurrency_table table;
    CHECK(table.count("a") == 0);
    CHECK(table.size() == 0);

    CHECK(table.acquire("a") == 1);
    CHECK(table.acquire("a") == 2);
    CHECK(table.acquire("b") == 1);
    CHECK(table.acquire("a") == 3);
    CHECK(table.count("a") == 3);
    CHECK(table.count("b") == 1);
    CHECK(table.size() == 2);

    table.release("a");
    CHECK(table.count("a") == 2);
    CHECK(table.size() == 2);

    // At zero the entry disappears: the table holds no more entries than open sessions.
    table.release("b");
    CHECK(table.count("b") == 0);
    CHECK(table.size() == 1);
    table.release("a");
    table.release("a");
    CHECK(table.count("a") == 0);
    CHECK(table.size() == 0);

    // Releasing what is not held does nothing (no underflow, no entry).
    table.release("a");
    table.release("never");
    CHECK(table.count("a") == 0);
    CHECK(table.size() == 0);
    CHECK(table.acquire("a") == 1);
}

TEST_CASE("state/concurrency_table - is bounded by the open connections") {
    state::concurrency_table table;
    for (int i = 0; i < 1000; ++i)
        table.acquire(key_of(i));
    CHECK(table.size() == 1000);
    for (int i = 0; i < 1000; ++i)
        table.release(key_of(i));
    INFO("got size " << table.size() << ", want 0 once every connection closed");
    CHECK(table.size() == 0);
}
