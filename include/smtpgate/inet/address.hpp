// Client addresses, networks, and the keys limits count them by.
//
// Limits count per client network, not per address: the key is the address masked to a
// configurable prefix (default /32 for IPv4, /64 for IPv6), so rotating through a /64 does not
// buy a fresh budget. IPv4-mapped IPv6 addresses are treated as IPv4.
//
// The lowest layer: plain values that config/ (rule validation), policy/ (rule matching,
// counting keys), session/ and net/ all share. It includes nothing from the project and
// decides nothing: which networks are allowed or how many connections one may open is policy/.
// Pure; text conversion with inet_pton/inet_ntop only, no sockets, no name resolution.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace smtpgate::inet {

struct client_address {
    bool ipv6 = false;
    /// Network order; IPv4 uses the first 4 bytes.
    std::array<std::uint8_t, 16> bytes{};

    /// "192.0.2.1", "2001:db8::1"; "::ffff:192.0.2.1" becomes IPv4.
    static std::optional<client_address> parse(std::string_view text);
    std::string to_string() const;
    /// Bits in the address: 32 or 128.
    int width() const { return ipv6 ? 128 : 32; }
    /// The address with all bits after `prefix` cleared.
    client_address masked(int prefix) const;
    friend bool operator==(const client_address&, const client_address&) = default;
};

/// A network: an address and a prefix length ("192.0.2.0/24", or a single address).
struct network {
    client_address base;  ///< already masked
    int prefix = 0;

    /// "192.0.2.0/24", "2001:db8::/32", "192.0.2.7" (= /32). Host bits must be zero.
    static std::optional<network> parse(std::string_view text);
    bool contains(const client_address& a) const {
        return a.ipv6 == base.ipv6 && a.masked(prefix) == base;
    }
    std::string to_string() const;
};

/// Prefix lengths that group addresses into one client for counting.
struct key_prefixes {
    int ipv4 = 32;
    int ipv6 = 64;
};

/// The counting key of a client: its network under `prefixes`, as compact bytes
/// (family, prefix, masked address) suitable for a hash table or a Redis key.
std::string client_key(const client_address& a, const key_prefixes& prefixes);

/// The same key, readable: "192.0.2.1" or "2001:db8:1:2::/64".
std::string client_key_text(const client_address& a, const key_prefixes& prefixes);

/// ASCII lower case: host names, domains and the keys made from them compare
/// case-insensitively (RFC 5321 2.4); other bytes are left alone.
std::string lower_ascii(std::string_view text);

}  // namespace smtpgate::inet
