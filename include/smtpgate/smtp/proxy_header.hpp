// PROXY protocol codec (HAProxy PROXY protocol v1 and v2, doc/proxy-protocol.txt, sections 2.1
// and 2.2).
//
// Encoder: the proxy sends one header first on each backend connection so the MTA sees the
// real client (Postfix smtpd_upstream_proxy_protocol = haproxy, Exim hosts_proxy).
// Decoder: a trusted load balancer in front of the proxy sends one header first on each
// inbound connection. The decoder is incremental in the sans-I/O sense: give it everything
// the peer sent so far and it answers need_more, complete (with the header's length) or a
// refusal with a reason token. It never looks past a complete header, so the bytes after it
// (the client's first SMTP command, if it pipelined) stay with the caller.
//
// Not here: deciding which peers may send a header (section 2: a receiver must only accept it
// from trusted proxies and must not guess), timeouts, and reading the socket. Addresses are
// raw bytes (network order) plus their text form; no socket types.
//
// Pure: no I/O, no clock, no state between calls; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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

enum class proxy_status {
    need_more,  ///< a valid prefix; read more bytes
    complete,   ///< a whole valid header; `length` bytes of it to consume
    malformed,  ///< not a valid header: bad signature, syntax, version, command, family, address
                ///< text, TLVs that overrun, ...
    oversized,  ///< longer than the bound (v1: 107 bytes with CRLF; v2: max_proxy_v2_length)
};

/// Section 2.1: the longest v1 line, "PROXY UNKNOWN" with two full IPv6 addresses, with CRLF.
inline constexpr std::size_t max_proxy_v1_length = 107;
/// The largest v2 header accepted: 16-byte fixed part + address block + TLVs. The format
/// allows 16 + 65535; real senders stay far below (TLVs carry a few names and IDs).
inline constexpr std::size_t max_proxy_v2_length = 4096;

struct proxy_header {
    /// false for v1 "PROXY UNKNOWN" and v2 LOCAL command or AF_UNSPEC/AF_UNIX: the
    /// connection's own addresses stand.
    bool has_addresses = false;
    int version = 0;       ///< 1 or 2
    proxy_address source;  ///< the client; set only with has_addresses
    proxy_address destination;
    bool ssl = false;  ///< v2 PP2_TYPE_SSL TLV present with PP2_CLIENT_SSL set
};

struct proxy_parse_result {
    proxy_status status = proxy_status::need_more;
    std::size_t length = 0;  ///< bytes of the header when complete
    proxy_header header;
    /// Stable reason token when malformed or oversized, empty otherwise: "signature",
    /// "v1_syntax", "v1_address", "v1_port", "v2_version", "v2_command", "v2_family",
    /// "v2_length", "tlv_overrun", "oversized".
    std::string_view error;
};

/// Parses the start of `bytes` (everything the peer sent so far). Never reads past a complete
/// header. A header is recognised by its first byte: 'P' starts v1, '\r' starts v2; anything
/// else is malformed ("signature"). Wrong fixed fields are refused as soon as they arrive
/// (section 2.1: abort as soon as possible); addresses and TLVs are judged once the whole
/// header is there, so every prefix of a valid header is need_more. need_more is never the
/// answer for max_proxy_v1_length (v1) or max_proxy_v2_length (v2) bytes or more.
proxy_parse_result parse_proxy_header(std::string_view bytes);

/// True if `bytes` could be the start of a PROXY header: a prefix of "PROXY " or of the v2
/// signature, compared over the bytes available (empty gives false). For spotting a header
/// sent by a peer that is not trusted to send one; note that a bare "\r\n" matches.
bool looks_like_proxy_header(std::string_view bytes);

}  // namespace smtpgate::smtp
