#include "smtpgate/smtp/proxy_header.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>
#include <tuple>
#include <utility>

#include <arpa/inet.h>
#include <sys/socket.h>

namespace smtpgate::smtp {

std::string encode_proxy_v1(const proxy_address& source, const proxy_address& destination) {
    return fmt::format("PROXY {} {} {} {} {}\r\n", source.ipv6 ? "TCP6" : "TCP4", source.text,
                       destination.text, source.port, destination.port);
}

std::string encode_proxy_v2(const proxy_address& source, const proxy_address& destination) {
    // Section 2.2: 12-byte signature, version 2 + PROXY command, family/transport, length.
    static constexpr char signature[] = "\r\n\r\n\0\r\nQUIT\n";
    std::string out(signature, 12);
    const std::size_t addr_len = source.ipv6 ? 16 : 4;
    out.push_back('\x21');
    out.push_back(source.ipv6 ? '\x21' : '\x11');  // AF_INET6 or AF_INET, STREAM
    const auto length = static_cast<std::uint16_t>(2 * addr_len + 4);
    out.push_back(static_cast<char>(length >> 8));
    out.push_back(static_cast<char>(length & 0xff));
    out.append(reinterpret_cast<const char*>(source.bytes.data()), addr_len);
    out.append(reinterpret_cast<const char*>(destination.bytes.data()), addr_len);
    for (const std::uint16_t port : {source.port, destination.port}) {
        out.push_back(static_cast<char>(port >> 8));
        out.push_back(static_cast<char>(port & 0xff));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Decoder

namespace {

constexpr std::string_view v1_signature = "PROXY ";
constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t v2_fixed_length = 16;

// Section 2.2.
constexpr unsigned v2_version = 0x2;
constexpr unsigned v2_command_local = 0x0;
constexpr unsigned v2_command_proxy = 0x1;
constexpr unsigned pp2_type_ssl = 0x20;
constexpr unsigned pp2_client_ssl = 0x01;
constexpr std::size_t pp2_ssl_fixed_length = 5;  // client (1) + verify (4)
constexpr std::size_t tlv_header_length = 3;     // type (1) + length (2)

proxy_parse_result refuse(proxy_status status, std::string_view reason) {
    proxy_parse_result r;
    r.status = status;
    r.error = reason;
    return r;
}

proxy_parse_result malformed(std::string_view reason) {
    return refuse(proxy_status::malformed, reason);
}

proxy_parse_result oversized() {
    return refuse(proxy_status::oversized, "oversized");
}

/// `bytes` and `expected` agree over the shorter of the two.
bool agrees(std::string_view bytes, std::string_view expected) {
    const std::size_t n = std::min(bytes.size(), expected.size());
    return bytes.substr(0, n) == expected.substr(0, n);
}

unsigned byte_at(std::string_view s, std::size_t i) {
    return static_cast<unsigned char>(s[i]);
}

unsigned be16_at(std::string_view s, std::size_t i) {
    return byte_at(s, i) << 8 | byte_at(s, i + 1);
}

/// Canonical text of the address bytes, as inet_ntop writes it.
void fill_text(proxy_address& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (inet_ntop(a.ipv6 ? AF_INET6 : AF_INET, a.bytes.data(), buf, sizeof buf) != nullptr) {
        a.text = buf;
    }
}

// --- v1 (section 2.1) ------------------------------------------------------------------------

/// A decimal number up to `max`: digits only, no sign, and no heading zero ("to avoid any
/// possible confusion with octal numbers").
std::optional<unsigned> parse_decimal(std::string_view s, unsigned max) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    unsigned value = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > max) return std::nullopt;
    return value;
}

/// "exactly 4 integers in the range [0..255] ... separated by exactly one dot", no heading
/// zeroes. Written out rather than left to inet_pton, whose leniency varies by libc.
bool parse_ipv4(std::string_view s, proxy_address& out) {
    for (std::size_t i = 0; i < 4; ++i) {
        const std::size_t dot = s.find('.');
        const std::string_view part = i < 3 ? s.substr(0, dot) : s;
        if (i < 3 && dot == std::string_view::npos) return false;
        const auto value = parse_decimal(part, 255);
        if (!value) return false;
        out.bytes[i] = static_cast<std::uint8_t>(*value);
        if (i < 3) s.remove_prefix(dot + 1);
    }
    out.ipv6 = false;
    return true;
}

/// Hex groups with at most one "::", by inet_pton (which also takes a dotted IPv4 tail such
/// as "::ffff:192.0.2.1", as HAProxy's own receiver does).
bool parse_ipv6(std::string_view s, proxy_address& out) {
    char terminated[INET6_ADDRSTRLEN] = {};
    // inet_pton stops at a NUL: "::1\0junk" must not pass as ::1.
    if (s.size() >= sizeof terminated || s.find('\0') != std::string_view::npos) return false;
    std::copy(s.begin(), s.end(), terminated);
    if (inet_pton(AF_INET6, terminated, out.bytes.data()) != 1) return false;
    out.ipv6 = true;
    return true;
}

/// Fields of a whole line, without its CRLF, starting after "PROXY ".
proxy_parse_result parse_v1_fields(std::string_view rest, std::size_t length) {
    proxy_parse_result r;
    r.header.version = 1;
    r.length = length;
    r.status = proxy_status::complete;

    // "the receiver must ignore anything presented before the CRLF is found".
    if (rest == "UNKNOWN" || rest.starts_with("UNKNOWN ")) return r;

    // TCP4|TCP6 SP src SP dst SP sport SP dport, exactly one space between fields.
    std::array<std::string_view, 5> fields;
    for (std::size_t i = 0; i + 1 < fields.size(); ++i) {
        const std::size_t space = rest.find(' ');
        if (space == std::string_view::npos) return malformed("v1_syntax");
        fields[i] = rest.substr(0, space);
        rest.remove_prefix(space + 1);
    }
    fields.back() = rest;
    if (rest.find(' ') != std::string_view::npos
        || std::any_of(fields.begin(), fields.end(), [](auto f) { return f.empty(); })) {
        return malformed("v1_syntax");  // a double, leading or trailing space, or a 6th field
    }
    const auto& [family, source, destination, source_port, destination_port] = fields;
    if (family != "TCP4" && family != "TCP6") return malformed("v1_syntax");

    // "The advertised protocol family dictates what format to use."
    const bool ipv6 = family == "TCP6";
    auto& h = r.header;
    for (const auto& [text, address] :
         {std::pair{source, &h.source}, std::pair{destination, &h.destination}}) {
        if (!(ipv6 ? parse_ipv6(text, *address) : parse_ipv4(text, *address))) {
            return malformed("v1_address");
        }
        fill_text(*address);
    }
    const auto sport = parse_decimal(source_port, 65535);
    const auto dport = parse_decimal(destination_port, 65535);
    if (!sport || !dport) return malformed("v1_port");
    h.source.port = static_cast<std::uint16_t>(*sport);
    h.destination.port = static_cast<std::uint16_t>(*dport);
    h.has_addresses = true;
    return r;
}

proxy_parse_result parse_v1(std::string_view bytes) {
    if (!agrees(bytes, v1_signature)) return malformed("signature");

    // Refuse a wrong protocol word as soon as it shows ("abort the connection as soon as
    // possible"); the fields after it wait for the CRLF ("the receiver must wait for the CRLF
    // sequence before starting to decode the addresses").
    if (bytes.size() > v1_signature.size()) {
        const std::string_view word = bytes.substr(v1_signature.size());
        if (!agrees(word, "TCP4 ") && !agrees(word, "TCP6 ") && !agrees(word, "UNKNOWN ")
            && !agrees(word, "UNKNOWN\r\n")) {
            return malformed("v1_syntax");
        }
    }

    // "If the CRLF sequence is not found in the first 107 characters, the receiver should
    // declare the line invalid", and "must not tolerate a single CR or LF character to end
    // the line".
    const std::string_view window = bytes.substr(0, max_proxy_v1_length);
    const std::size_t end = window.find_first_of("\r\n");
    if (end == std::string_view::npos) {
        return window.size() == max_proxy_v1_length ? oversized() : proxy_parse_result{};
    }
    if (bytes[end] == '\n') return malformed("v1_syntax");
    if (end + 2 > max_proxy_v1_length) return oversized();  // the LF would be byte 108
    if (end + 1 == bytes.size()) return {};                 // the LF may be in the next read
    if (bytes[end + 1] != '\n') return malformed("v1_syntax");
    return parse_v1_fields(bytes.substr(v1_signature.size(), end - v1_signature.size()), end + 2);
}

// --- v2 (section 2.2) ------------------------------------------------------------------------

/// Section 2.2.1 and after: type-length-value records that fill `region` exactly. Sets
/// `ssl` from PP2_TYPE_SSL; every other type (ALPN, AUTHORITY, CRC32C, NOOP, UNIQUE_ID,
/// NETNS, 0xE0-0xEF custom, unassigned) is skipped. CRC32C is not verified: the header comes
/// from a trusted proxy over TCP, and a checksum would not make an untrusted one safe.
/// False if a record does not fit, including 1 or 2 trailing bytes.
bool walk_tlvs(std::string_view region, bool nested, bool& ssl) {
    while (!region.empty()) {
        if (region.size() < tlv_header_length) return false;
        const unsigned type = byte_at(region, 0);
        const std::size_t length = be16_at(region, 1);
        if (region.size() - tlv_header_length < length) return false;
        const std::string_view value = region.substr(tlv_header_length, length);
        if (!nested && type == pp2_type_ssl) {
            // struct pp2_tlv_ssl { uint8_t client; uint32_t verify; struct pp2_tlv sub_tlv[0]; }
            if (value.size() < pp2_ssl_fixed_length) return false;
            if ((byte_at(value, 0) & pp2_client_ssl) != 0) ssl = true;
            if (!walk_tlvs(value.substr(pp2_ssl_fixed_length), true, ssl)) return false;
        }
        region.remove_prefix(tlv_header_length + length);
    }
    return true;
}

/// The size of the address block for a family/transport byte under the PROXY command, or
/// nullopt for a byte this receiver refuses.
std::optional<std::size_t> v2_address_size(unsigned family) {
    switch (family) {
        case 0x00: return 0;   // UNSPEC: use the connection's addresses
        case 0x11: return 12;  // TCP over IPv4: 2 * 4 + 2 * 2
        case 0x21: return 36;  // TCP over IPv6: 2 * 16 + 2 * 2
        case 0x31:             // UNIX stream and datagram: 2 * 108; the connection's
        case 0x32:
            return 216;  // addresses stand, as the spec's fallback to UNSPEC allows
        // UDP (0x12, 0x22) cannot carry SMTP; every other value is unassigned.
        default: return std::nullopt;
    }
}

proxy_parse_result parse_v2(std::string_view bytes) {
    if (!agrees(bytes, v2_signature)) return malformed("signature");
    if (bytes.size() <= 12) return {};

    // "The highest four bits contains the version ... the receiver must only accept this
    // value"; commands other than LOCAL and PROXY: "Receivers must drop connections".
    const unsigned version_command = byte_at(bytes, 12);
    if (version_command >> 4 != v2_version) return malformed("v2_version");
    const unsigned command = version_command & 0xF;
    if (command != v2_command_local && command != v2_command_proxy) {
        return malformed("v2_command");
    }
    const bool local = command == v2_command_local;
    if (bytes.size() <= 13) return {};

    // LOCAL: "discard the protocol block including the family which is ignored".
    const unsigned family = byte_at(bytes, 13);
    const auto address_size = v2_address_size(family);
    if (!local && !address_size) return malformed("v2_family");
    if (bytes.size() < v2_fixed_length) return {};

    // "the length of the protocol header in bytes is always exactly 16 + this value"; judged
    // before the rest arrives so an oversized header is refused without buffering it.
    const std::size_t total = v2_fixed_length + be16_at(bytes, 14);
    if (total > max_proxy_v2_length) return oversized();
    if (!local && total - v2_fixed_length < *address_size) return malformed("v2_length");
    if (bytes.size() < total) return {};

    proxy_parse_result r;
    r.status = proxy_status::complete;
    r.length = total;
    r.header.version = 2;
    // LOCAL and UNSPEC: ignore the address information; with UNSPEC its size is not known,
    // so neither is where TLVs would start.
    if (local || family == 0x00) return r;

    const std::string_view block = bytes.substr(v2_fixed_length, total - v2_fixed_length);
    auto& h = r.header;
    if (family == 0x11 || family == 0x21) {
        const bool ipv6 = family == 0x21;
        const std::size_t n = ipv6 ? 16 : 4;
        for (const auto& [address, offset, port_offset] :
             {std::tuple{&h.source, std::size_t{0}, 2 * n},
              std::tuple{&h.destination, n, 2 * n + 2}}) {
            address->ipv6 = ipv6;
            std::copy_n(block.begin() + static_cast<std::ptrdiff_t>(offset), n,
                        address->bytes.begin());
            address->port = static_cast<std::uint16_t>(be16_at(block, port_offset));
            fill_text(*address);
        }
        h.has_addresses = true;
    }
    if (!walk_tlvs(block.substr(*address_size), false, h.ssl)) return malformed("tlv_overrun");
    return r;
}

}  // namespace

proxy_parse_result parse_proxy_header(std::string_view bytes) {
    if (bytes.empty()) return {};
    if (bytes[0] == v1_signature[0]) return parse_v1(bytes);
    if (bytes[0] == v2_signature[0]) return parse_v2(bytes);
    return malformed("signature");
}

bool looks_like_proxy_header(std::string_view bytes) {
    return !bytes.empty() && (agrees(bytes, v1_signature) || agrees(bytes, v2_signature));
}

}  // namespace smtpgate::smtp
