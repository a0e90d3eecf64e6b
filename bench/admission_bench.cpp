// Admission cost per connection: a large rule set and a full limiter table versus no rules and
// an empty table, measured in the same run (the machine is shared; only ratios are stable).
//
// Usage: admission_bench [rules] [table_entries] [connections]
// Defaults: 50000 rules, 1000000 entries, 2000000 connections.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_set>
#include <vector>

#include "smtpgate/config/config.hpp"
#include "smtpgate/session/screening.hpp"
#include "smtpgate/state/memory_store.hpp"

using namespace smtpgate;
using steady = std::chrono::steady_clock;

namespace {

inet::client_address ipv4(std::uint32_t n) {
    inet::client_address a;
    a.bytes[0] = static_cast<std::uint8_t>(n >> 24);
    a.bytes[1] = static_cast<std::uint8_t>(n >> 16);
    a.bytes[2] = static_cast<std::uint8_t>(n >> 8);
    a.bytes[3] = static_cast<std::uint8_t>(n);
    return a;
}

struct result {
    double ns_per_admission;
    std::size_t table_size;
    std::uint64_t evictions;
    std::size_t refused;
};

result run(const config::settings& settings, std::size_t table_fill, std::size_t connections) {
    state::memory_store store(settings.state.max_entries);
    session::admission admission(settings, store);
    const policy::time_point start_time{std::chrono::hours(24 * 365 * 50)};
    const policy::time_point now = start_time;
    // Fill the table with other clients first (the "full table" case).
    for (std::size_t i = 0; i < table_fill; ++i) {
        auto r = admission.admit(ipv4(0x0a000000u + static_cast<std::uint32_t>(i)), now);
        admission.release(r);
    }
    std::size_t refused = 0;
    const auto start = steady::now();
    for (std::size_t i = 0; i < connections; ++i) {
        // A flood from many addresses, each connecting a few times, 20 new connections per ms.
        const auto at = start_time + policy::duration(static_cast<std::int64_t>(i / 20));
        const auto client =
            ipv4(0xc0000000u + static_cast<std::uint32_t>((i * 2654435761u) % 400000));
        auto r = admission.admit(client, at);
        refused += r.decision.passed() ? 0 : 1;
        admission.release(r);
    }
    const auto elapsed = std::chrono::duration<double, std::nano>(steady::now() - start).count();
    return {elapsed / static_cast<double>(connections), store.size(), store.evictions(), refused};
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t rules = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 50000;
    const std::size_t entries = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1000000;
    const std::size_t connections = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 2000000;

    config::settings base;
    base.limits.connection_rate = config::rate{10, std::chrono::seconds(60)};
    base.interval.host = std::chrono::seconds(1);
    base.state.max_entries = entries;

    config::settings loaded = base;
    for (std::size_t i = 0; i < rules; ++i) {
        config::rule r;
        const auto n = static_cast<std::uint32_t>(0xc0000000u + i * 7);
        // Mostly /32 entries with a sprinkling of /24 and /16 networks, as an access db grows.
        const int prefix = i % 50 == 0 ? 16 : (i % 10 == 0 ? 24 : 32);
        r.match = ipv4(n).masked(prefix).to_string() + "/" + std::to_string(prefix);
        r.connection_rate = config::rate{5, std::chrono::seconds(60)};
        r.origin = "bench:" + std::to_string(i);
        loaded.rules.push_back(r);
    }
    // Duplicated networks (several /16 or /24 from the same base) are dropped, as the loader would.
    {
        std::vector<config::rule> unique;
        std::unordered_set<std::string> seen;
        for (auto& r : loaded.rules) {
            if (seen.insert(inet::network::parse(r.match)->to_string()).second) {
                unique.push_back(std::move(r));
            }
        }
        loaded.rules = std::move(unique);
    }

    // Alternate baseline and loaded runs; report each pair's ratio.
    std::printf(
        "admission cost per connection (%zu rules, table of %zu, %zu connections per run)\n",
        loaded.rules.size(), entries, connections);
    std::printf("%-6s %14s %14s %8s %12s %12s\n", "round", "baseline ns", "loaded ns", "ratio",
                "table size", "evictions");
    for (int round = 1; round <= 3; ++round) {
        const auto b = run(base, 0, connections);
        const auto l = run(loaded, entries, connections);
        std::printf("%-6d %14.1f %14.1f %8.2f %12zu %12llu\n", round, b.ns_per_admission,
                    l.ns_per_admission, l.ns_per_admission / b.ns_per_admission, l.table_size,
                    static_cast<unsigned long long>(l.evictions));
    }
    return 0;
}
