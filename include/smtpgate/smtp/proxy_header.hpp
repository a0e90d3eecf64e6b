// PROXY protocol encoder (HAProxy PROXY protocol v1 and v2, sections 2.1 and 2.2).
//
// The proxy sends one header first on each backend connection so the MTA sees the real
// client (Postfix smtpd_upstream_proxy_protocol = haproxy, Exim hosts_proxy). Addresses are
// given as raw bytes (network order) plus their text form; no socket types here.
//
// Pure; no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace smtpgate::smtp {

struct proxy_address {
    bool ipv6 = false;
    /// Network-order address; the first 4 bytes for IPv4.
    std::array<std::uint8_t, 16> bytes{};
    std::uint16_t port = 0;
    /// "192.0.2.1" or "2001:db8::1" (no brackets).
    std::string text;
};

/// "PROXY TCP4 <src> <dst> <sport> <dport>\r\n". Source and destination must share a family.
std::string encode_proxy_v1(const proxy_address& source, const proxy_address& destination);

/// The v2 binary header, PROXY command over TCP, no TLVs.
std::string encode_proxy_v2(const proxy_address& source, const proxy_address& destination);

}  // namespace smtpgate::smtp
