// Small free helpers shared by the translation units of client_session (client_session.cpp,
// client_session_io.cpp, client_session_admission.cpp, client_session_handoff.cpp) and the
// server's backend probe (server.cpp): the completion token for I/O with error codes, the
// conversion of a socket address to the policy layer's client address (and to a PROXY
// header's), the PROXY header backend.identity asks for, and the one wall-clock read that
// policies get as `now`.
//
// Does not: hold state, do I/O, or make policy decisions; nothing outside src/net/ includes it.
// Threading/time: pure conversions, except wall_now(), which reads the system clock; it is
// called once per event by the session's I/O driver (STYLE.md rule 2), never by policy code.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <string>

#include "smtpgate/config/config.hpp"
#include "smtpgate/config/units.hpp"
#include "smtpgate/inet/address.hpp"
#include "smtpgate/ops/log.hpp"
#include "smtpgate/policy/rate.hpp"
#include "smtpgate/smtp/proxy_header.hpp"

namespace smtpgate::net {

/// Network operations report errors as values (STYLE.md rule 4), never by exception.
inline constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

// IPv4-mapped IPv6 addresses (a dual-stack listener) are IPv4 for limits and headers.
inline boost::asio::ip::address unmapped(boost::asio::ip::address addr) {
    if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
        return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
    }
    return addr;
}

inline inet::client_address client_address_of(const boost::asio::ip::address& address) {
    inet::client_address a;
    const auto addr = unmapped(address);
    a.ipv6 = addr.is_v6();
    if (a.ipv6) {
        const auto b = addr.to_v6().to_bytes();
        std::copy(b.begin(), b.end(), a.bytes.begin());
    } else {
        const auto b = addr.to_v4().to_bytes();
        std::copy(b.begin(), b.end(), a.bytes.begin());
    }
    return a;
}

/// An endpoint as a PROXY header names it, IPv4-mapped addresses as IPv4.
inline smtp::proxy_address proxy_address_of(const boost::asio::ip::tcp::endpoint& ep) {
    const auto a = client_address_of(ep.address());
    smtp::proxy_address p;
    p.ipv6 = a.ipv6;
    p.bytes = a.bytes;
    p.port = ep.port();
    p.text = unmapped(ep.address()).to_string();
    return p;
}

/// Whether backend.identity is proxy-v1 or proxy-v2: a PROXY header goes first on the link.
inline bool sends_proxy_header(config::identity_mode identity) {
    return identity == config::identity_mode::proxy_v1
           || identity == config::identity_mode::proxy_v2;
}

/// The PROXY header of `identity` (v1 text or v2 binary) for a connection from `source` to
/// `destination`; empty when `identity` sends none (none, xclient).
inline std::string proxy_header_for(config::identity_mode identity,
                                    const boost::asio::ip::tcp::endpoint& source,
                                    const boost::asio::ip::tcp::endpoint& destination) {
    if (!sends_proxy_header(identity)) return {};
    const auto from = proxy_address_of(source);
    auto to = proxy_address_of(destination);
    if (from.ipv6 != to.ipv6) {
        // A v4 client through a v6 load balancer (or the reverse): the header needs one family;
        // the client's counts, the destination is then only a placeholder.
        to = proxy_address_of(boost::asio::ip::tcp::endpoint(
            from.ipv6 ? boost::asio::ip::address(boost::asio::ip::address_v6::any())
                      : boost::asio::ip::address(boost::asio::ip::address_v4::any()),
            destination.port()));
    }
    return identity == config::identity_mode::proxy_v1 ? smtp::encode_proxy_v1(from, to)
                                                       : smtp::encode_proxy_v2(from, to);
}

/// "192.0.2.1:25" or "[2001:db8::1]:25", IPv4-mapped addresses as IPv4.
inline std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep) {
    const auto addr = unmapped(ep.address());
    return addr.is_v6() ? "[" + addr.to_string() + "]:" + std::to_string(ep.port())
                        : addr.to_string() + ":" + std::to_string(ep.port());
}

/// The observed value and limit of a decision on its log line: durations for interval checks
/// ("observed=10s limit=1m", "none" when there was no earlier observation), counts otherwise.
inline void log_measure(ops::log_line& line, std::int64_t observed, std::int64_t limit,
                        bool in_ms) {
    if (in_ms) {
        line.kv("observed", observed < 0 ? std::string("none")
                                         : config::format_duration(policy::duration(observed)))
            .kv("limit", config::format_duration(policy::duration(limit)));
        return;
    }
    if (limit != 0 || observed != 0) line.kv("observed", observed);
    if (limit != 0) line.kv("limit", limit);
}

inline policy::time_point wall_now() {
    return std::chrono::time_point_cast<policy::time_point::duration>(
        std::chrono::system_clock::now());
}

}  // namespace smtpgate::net
