// The PROXY protocol codec, checked against the HAProxy specification
// (doc/proxy-protocol.txt): the encoder's v1 text line (section 2.1) and v2 binary header
// (section 2.2), byte by byte; the decoder's answers by table (what each header decodes to,
// which refusal each defect gets), at every read boundary, and against the encoder.
#include "smtpgate/smtp/proxy_header.hpp"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate::smtp;
using namespace std::string_literals;

namespace {

proxy_address v4(std::array<std::uint8_t, 4> b, std::uint16_t port, std::string text) {
    proxy_address a;
    // Bytes past the fourth must not leak into an IPv4 header: fill them with a marker.
    a.bytes.fill(0xEE);
    std::copy(b.begin(), b.end(), a.bytes.begin());
    a.port = port;
    a.text = std::move(text);
    return a;
}

proxy_address v6(std::array<std::uint8_t, 16> b, std::uint16_t port, std::string text) {
    proxy_address a;
    a.ipv6 = true;
    a.bytes = b;
    a.port = port;
    a.text = std::move(text);
    return a;
}

/// "0d 0a 0d 0a ...", so a failing comparison shows the bytes.
std::string hex(std::string_view bytes) {
    std::string out;
    for (const char c : bytes) {
        if (!out.empty()) out.push_back(' ');
        out += fmt::format("{:02x}", static_cast<unsigned char>(c));
    }
    return out;
}

std::string bytes(const std::vector<int>& values) {
    std::string out;
    for (const int v : values) {
        out.push_back(static_cast<char>(v));
    }
    return out;
}

// 2.2: "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
const std::vector<int> signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

const proxy_address client4 = v4({192, 0, 2, 1}, 56324, "192.0.2.1");
const proxy_address server4 = v4({198, 51, 100, 25}, 25, "198.51.100.25");
const proxy_address client6 =
    v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01}, 56324, "2001:db8::1");
const proxy_address server6 =
    v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25}, 587, "2001:db8::25");

}  // namespace

TEST_CASE("smtp/proxy_header - v1 is one text line: family, addresses, ports, CRLF", "[proxy]") {
    CHECK(encode_proxy_v1(client4, server4) == "PROXY TCP4 192.0.2.1 198.51.100.25 56324 25\r\n");
    CHECK(encode_proxy_v1(client6, server6) == "PROXY TCP6 2001:db8::1 2001:db8::25 56324 587\r\n");
    // 2.1: the line is at most 107 bytes with the longest addresses and ports.
    const auto longest = v6({}, 65535, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    const std::string line = encode_proxy_v1(longest, longest);
    CHECK(line.size() <= 107);
}

TEST_CASE("smtp/proxy_header - v2 over IPv4 is the 28 bytes of section 2.2", "[proxy]") {
    std::vector<int> want = signature;
    want.insert(want.end(), {
                                0x21,              // version 2, command PROXY
                                0x11,              // AF_INET, STREAM
                                0x00, 0x0C,        // 12 address bytes follow
                                192, 0, 2, 1,      // source address
                                198, 51, 100, 25,  // destination address
                                0xDC, 0x04,        // source port 56324
                                0x00, 0x19,        // destination port 25
                            });
    CHECK(hex(encode_proxy_v2(client4, server4)) == hex(bytes(want)));
}

TEST_CASE("smtp/proxy_header - v2 over IPv6 is the 52 bytes of section 2.2", "[proxy]") {
    std::vector<int> want = signature;
    want.insert(want.end(), {0x21, 0x21, 0x00, 0x24});  // version 2 PROXY, AF_INET6 STREAM, 36
    want.insert(want.end(), client6.bytes.begin(), client6.bytes.end());
    want.insert(want.end(), server6.bytes.begin(), server6.bytes.end());
    want.insert(want.end(), {0xDC, 0x04, 0x02, 0x4B});  // ports 56324 and 587
    CHECK(hex(encode_proxy_v2(client6, server6)) == hex(bytes(want)));
}

TEST_CASE("smtp/proxy_header - v2 fields read back as the spec lays them out", "[proxy]") {
    struct row {
        std::string_view name;
        proxy_address source;
        proxy_address destination;
        int family;
        std::size_t address_size;
    };
    const std::vector<row> rows{
        {"IPv4", client4, server4, 0x1, 4},
        {"IPv6", client6, server6, 0x2, 16},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        const std::string h = encode_proxy_v2(r.source, r.destination);
        auto byte = [&](std::size_t i) {
            return static_cast<int>(static_cast<unsigned char>(h[i]));
        };
        REQUIRE(h.size() >= 16);
        CHECK(hex(h.substr(0, 12)) == hex(bytes(signature)));
        CHECK(byte(12) >> 4 == 0x2);       // version
        CHECK((byte(12) & 0xF) == 0x1);    // PROXY (0x0 would be LOCAL)
        CHECK(byte(13) >> 4 == r.family);  // AF_INET or AF_INET6
        CHECK((byte(13) & 0xF) == 0x1);    // SOCK_STREAM
        const std::size_t length = static_cast<std::size_t>(byte(14) << 8 | byte(15));
        CHECK(length == 2 * r.address_size + 4);
        CHECK(h.size() == 16 + length);  // no TLVs
        const std::size_t ports = 16 + 2 * r.address_size;
        CHECK(hex(h.substr(16, r.address_size))
              == hex(std::string(r.source.bytes.begin(), r.source.bytes.begin() + r.address_size)));
        CHECK(hex(h.substr(16 + r.address_size, r.address_size))
              == hex(std::string(r.destination.bytes.begin(),
                                 r.destination.bytes.begin() + r.address_size)));
        CHECK((byte(ports) << 8 | byte(ports + 1)) == r.source.port);
        CHECK((byte(ports + 2) << 8 | byte(ports + 3)) == r.destination.port);
    }
}

TEST_CASE("smtp/proxy_header - v2 ports at the edges of 16 bits", "[proxy]") {
    for (const std::uint16_t port :
         std::initializer_list<std::uint16_t>{0, 1, 255, 256, 32767, 32768, 65535}) {
        INFO("port " << port);
        const std::string h = encode_proxy_v2(v4({10, 0, 0, 1}, port, "10.0.0.1"),
                                              v4({10, 0, 0, 2}, port, "10.0.0.2"));
        REQUIRE(h.size() == 28);
        const std::string want = bytes({port >> 8, port & 0xFF});
        CHECK(hex(h.substr(24, 2)) == hex(want));
        CHECK(hex(h.substr(26, 2)) == hex(want));
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder

namespace {

/// The bytes as a C string literal would show them, so failure messages are readable.
std::string escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (u < 0x20 || u >= 0x7f) {
            out += fmt::format("\\x{:02x}", u);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string endpoint(const proxy_address& a) {
    return a.ipv6 ? fmt::format("[{}]:{}", a.text, a.port) : fmt::format("{}:{}", a.text, a.port);
}

/// One answer as the tables spell it: `need_more`, `malformed v1_port`, `oversized oversized`,
/// `complete 47 v1 192.168.0.1:56324 192.168.0.11:443`, `complete 16 v2 own-addresses`, with
/// ` ssl` when the SSL TLV says the client used TLS.
std::string describe(const proxy_parse_result& r) {
    std::string out;
    switch (r.status) {
        case proxy_status::need_more: out = "need_more"; break;
        case proxy_status::malformed: out = "malformed"; break;
        case proxy_status::oversized: out = "oversized"; break;
        case proxy_status::complete:
            out = fmt::format("complete {} v{}", r.length, r.header.version);
            out += r.header.has_addresses
                       ? " " + endpoint(r.header.source) + " " + endpoint(r.header.destination)
                       : " own-addresses";
            if (r.header.ssl) out += " ssl";
            break;
    }
    if (!r.error.empty()) out += fmt::format(" {}", r.error);
    return out;
}

std::string parse(std::string_view bytes) {
    return describe(parse_proxy_header(bytes));
}

std::string be16(std::size_t n) {
    return bytes({static_cast<int>(n >> 8), static_cast<int>(n & 0xFF)});
}

/// The 16 fixed bytes of a v2 header: signature, version/command, family, length.
std::string v2_fixed(int version_command, int family, std::size_t length) {
    return bytes(signature) + bytes({version_command, family}) + be16(length);
}

/// A v2 header whose length field covers exactly `rest` (address block and TLVs).
std::string v2_header(int version_command, int family, std::string_view rest) {
    return v2_fixed(version_command, family, rest.size()) + std::string(rest);
}

std::string tlv(int type, std::string_view value) {
    return bytes({type}) + be16(value.size()) + std::string(value);
}

/// A PP2_TYPE_SSL value: client flags, verify result 0 (verified), then sub-TLVs.
std::string ssl_value(int client, std::string_view sub_tlvs) {
    return bytes({client, 0, 0, 0, 0}) + std::string(sub_tlvs);
}

constexpr int proxy_command = 0x21;  // version 2, PROXY
constexpr int local_command = 0x20;  // version 2, LOCAL
constexpr int tcp4 = 0x11;
constexpr int tcp6 = 0x21;

// Section 2.2 TLV types.
constexpr int pp2_type_alpn = 0x01;
constexpr int pp2_type_authority = 0x02;
constexpr int pp2_type_crc32c = 0x03;
constexpr int pp2_type_noop = 0x04;
constexpr int pp2_type_unique_id = 0x05;
constexpr int pp2_type_ssl = 0x20;
constexpr int pp2_subtype_ssl_version = 0x21;
constexpr int pp2_subtype_ssl_cn = 0x22;
constexpr int pp2_type_netns = 0x30;
constexpr int pp2_type_min_custom = 0xE0;

/// client4 -> server4: 192.0.2.1:56324 -> 198.51.100.25:25.
const std::string tcp4_block = bytes({192, 0, 2, 1, 198, 51, 100, 25, 0xDC, 0x04, 0x00, 0x19});
const std::string tcp4_endpoints = "192.0.2.1:56324 198.51.100.25:25";

const std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
/// Section 2.1's worst case, exactly 107 bytes.
const std::string v1_worst = "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n";

}  // namespace

TEST_CASE("smtp/proxy_header - v1 lines decode to the addresses and ports they carry", "[proxy]") {
    struct row {
        std::string line;
        std::string want;  // after "complete <line size>"
    };
    const std::vector<row> rows{
        // Section 2.1's example.
        {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
         "v1 192.168.0.1:56324 192.168.0.11:443"},
        {"PROXY TCP6 2001:db8::1 2001:db8::25 56324 587\r\n",
         "v1 [2001:db8::1]:56324 [2001:db8::25]:587"},
        // The longest TCP4 and TCP6 lines of section 2.1 (56 and 104 bytes).
        {"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
         "v1 255.255.255.255:65535 255.255.255.255:65535"},
        {"PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n",
         fmt::format("v1 [{}]:65535 [{}]:65535", ffff, ffff)},
        {"PROXY TCP4 0.0.0.0 10.0.0.1 0 1\r\n", "v1 0.0.0.0:0 10.0.0.1:1"},
        // Text comes back in inet_ntop's canonical form.
        {"PROXY TCP6 2001:DB8:0:0:0:0:0:1 0:0::1 25 25\r\n", "v1 [2001:db8::1]:25 [::1]:25"},
        // inet_pton's dotted tail for IPv4-mapped addresses is taken, as HAProxy does.
        {"PROXY TCP6 ::ffff:192.0.2.1 ::1 25 25\r\n", "v1 [::ffff:192.0.2.1]:25 [::1]:25"},
    };
    for (const auto& r : rows) {
        INFO("line: \"" << escape(r.line) << "\"");
        CHECK(parse(r.line) == fmt::format("complete {} {}", r.line.size(), r.want));
    }
}

TEST_CASE("smtp/proxy_header - v1 address bytes are network order, ports host order", "[proxy]") {
    for (const auto& [source, destination] : {std::pair{client4, server4}, {client6, server6}}) {
        const std::string line = encode_proxy_v1(source, destination);
        INFO("line: \"" << escape(line) << "\"");
        const auto got = parse_proxy_header(line);
        REQUIRE(describe(got)
                == fmt::format("complete {} v1 {} {}", line.size(), endpoint(source),
                               endpoint(destination)));
        const std::size_t n = source.ipv6 ? 16 : 4;
        for (const auto& [decoded, want] :
             {std::pair{&got.header.source, &source}, {&got.header.destination, &destination}}) {
            CHECK(decoded->ipv6 == want->ipv6);
            CHECK(hex(std::string(decoded->bytes.begin(), decoded->bytes.begin() + n))
                  == hex(std::string(want->bytes.begin(), want->bytes.begin() + n)));
        }
    }
}

TEST_CASE("smtp/proxy_header - v1 UNKNOWN keeps the connection's own addresses", "[proxy]") {
    const std::vector<std::string> lines{
        "PROXY UNKNOWN\r\n",  // section 2.1's short form, 15 bytes
        v1_worst,             // the long form, 107 bytes
        // "the receiver must ignore anything presented before the CRLF is found"
        "PROXY UNKNOWN anything, even \x01 or \xff\r\n",
    };
    for (const auto& line : lines) {
        INFO("line: \"" << escape(line) << "\"");
        CHECK(parse(line) == fmt::format("complete {} v1 own-addresses", line.size()));
    }
}

TEST_CASE("smtp/proxy_header - v1 is at most 107 bytes with its CRLF", "[proxy]") {
    REQUIRE(v1_worst.size() == max_proxy_v1_length);
    const std::string too_long = v1_worst.substr(0, 105) + "5\r\n";  // 108 bytes
    const std::string no_crlf(max_proxy_v1_length, '5');
    struct row {
        std::string_view name;
        std::string bytes;
        std::string want;
    };
    const std::vector<row> rows{
        {"107 bytes with CRLF", v1_worst, "complete 107 v1 own-addresses"},
        {"107 bytes with CRLF, then more", v1_worst + "EHLO x\r\n",
         "complete 107 v1 own-addresses"},
        {"108 bytes with CRLF", too_long, "oversized oversized"},
        // Refused at 107 bytes, without waiting for a CRLF.
        {"107 bytes, no CRLF yet", too_long.substr(0, 107), "oversized oversized"},
        {"106 bytes and a CR: the LF would be byte 108", too_long.substr(0, 106) + "\r",
         "oversized oversized"},
        {"106 bytes, no CRLF yet", too_long.substr(0, 106), "need_more"},
        {"106 bytes and the CR of a CRLF at 107", v1_worst.substr(0, 106), "need_more"},
        {"PROXY UNKNOWN and 101 more bytes", "PROXY UNKNOWN " + no_crlf, "oversized oversized"},
    };
    for (const auto& r : rows) {
        INFO(r.name << ": \"" << escape(r.bytes) << "\"");
        CHECK(parse(r.bytes) == r.want);
    }
}

TEST_CASE("smtp/proxy_header - v1 refusals name what is wrong", "[proxy]") {
    struct row {
        std::string_view name;
        std::string bytes;
        std::string_view want;
    };
    const std::string tail = " 198.51.100.25 56324 25\r\n";
    std::vector<row> rows{
        // Not a PROXY line at all; refused at the first byte that differs.
        {"lower case", "proxy TCP4 192.0.2.1" + tail, "malformed signature"},
        {"an SMTP command", "EHLO client.example\r\n", "malformed signature"},
        {"an HTTP request", "GET / HTTP/1.1\r\n", "malformed signature"},
        {"one wrong letter, before any CRLF", "PROXX", "malformed signature"},
        {"no space after PROXY", "PROXY\r\n", "malformed signature"},

        // Exactly one space between fields; TCP4, TCP6 or UNKNOWN.
        {"two spaces after PROXY", "PROXY  TCP4 192.0.2.1" + tail, "malformed v1_syntax"},
        {"another protocol", "PROXY TCP5 192.0.2.1" + tail, "malformed v1_syntax"},
        {"UDP", "PROXY UDP4 192.0.2.1" + tail, "malformed v1_syntax"},
        {"lower case protocol", "PROXY tcp4 192.0.2.1" + tail, "malformed v1_syntax"},
        {"wrong protocol, before any CRLF", "PROXY TCPX", "malformed v1_syntax"},
        {"UNKNOWN run into more letters", "PROXY UNKNOWNS\r\n", "malformed v1_syntax"},
        {"protocol and nothing else", "PROXY TCP4\r\n", "malformed v1_syntax"},
        {"two spaces between addresses", "PROXY TCP4 192.0.2.1 " + tail, "malformed v1_syntax"},
        {"a tab for a space", "PROXY TCP4 192.0.2.1\t198.51.100.25 56324 25\r\n",
         "malformed v1_syntax"},
        {"trailing space", "PROXY TCP4 192.0.2.1 198.51.100.25 56324 25 \r\n",
         "malformed v1_syntax"},
        {"no destination port", "PROXY TCP4 192.0.2.1 198.51.100.25 56324\r\n",
         "malformed v1_syntax"},
        {"a sixth field", "PROXY TCP4 192.0.2.1 198.51.100.25 56324 25 26\r\n",
         "malformed v1_syntax"},

        // "must not tolerate a single CR or LF character to end the line"
        {"bare LF", "PROXY TCP4 192.0.2.1 198.51.100.25 56324 25\n", "malformed v1_syntax"},
        {"bare LF after UNKNOWN", "PROXY UNKNOWN\n", "malformed v1_syntax"},
        {"bare LF inside UNKNOWN's rest", "PROXY UNKNOWN a\nb\r\n", "malformed v1_syntax"},
        {"bare CR", "PROXY TCP4 192.0.2.1 198.51.100.25 56324 25\rEHLO", "malformed v1_syntax"},
        {"LF CR", "PROXY TCP4 192.0.2.1 198.51.100.25 56324 25\n\r", "malformed v1_syntax"},
        {"bare CR inside UNKNOWN's rest", "PROXY UNKNOWN a\rb\r\n", "malformed v1_syntax"},

        // Addresses in the stated family's canonical format.
        {"IPv6 source on a TCP4 line", "PROXY TCP4 2001:db8::1" + tail, "malformed v1_address"},
        {"IPv6 destination on a TCP4 line", "PROXY TCP4 192.0.2.1 2001:db8::25 56324 25\r\n",
         "malformed v1_address"},
        {"IPv4 on a TCP6 line", "PROXY TCP6 192.0.2.1 2001:db8::25 56324 25\r\n",
         "malformed v1_address"},
        {"NUL after an IPv4 address", "PROXY TCP4 192.0.2.1\0"s + tail, "malformed v1_address"},
        {"NUL after an IPv6 address", "PROXY TCP6 ::1\0junk ::1 25 25\r\n"s,
         "malformed v1_address"},
    };
    for (const std::string_view address : {"01.2.3.4",
                                           "192.0.2.01",
                                           "192.00.2.1",
                                           "256.0.2.1",
                                           "192.0.2.1000",
                                           "192.0.2",
                                           "192.0.2.1.5",
                                           "192..2.1",
                                           ".192.0.2.1",
                                           "192.0.2.1.",
                                           "+192.0.2.1",
                                           "0xc0.0.2.1",
                                           "192.0.2.-1",
                                           "example.com",
                                           "2001::db8::1",
                                           "fe80::1%eth0",
                                           "[2001:db8::1]",
                                           "2001:db8::12345",
                                           "2001:db8:0:0:0:0:0:0:1",
                                           ":::1",
                                           "::g"}) {
        const bool v6 = address.find(':') != std::string_view::npos;
        rows.push_back({"bad address",
                        fmt::format("PROXY {} {} {}", v6 ? "TCP6" : "TCP4", address,
                                    v6 ? "::1 56324 25\r\n" : tail.substr(1)),
                        "malformed v1_address"});
    }
    // Ports: decimal 0..65535, no heading zero, no sign.
    for (const std::string_view port :
         {"65536", "99999", "123456", "01", "00", "+1", "-1", "0x19", "1a", "٣"}) {
        rows.push_back({"bad source port",
                        fmt::format("PROXY TCP4 192.0.2.1 198.51.100.25 {} 25\r\n", port),
                        "malformed v1_port"});
        rows.push_back({"bad destination port",
                        fmt::format("PROXY TCP4 192.0.2.1 198.51.100.25 25 {}\r\n", port),
                        "malformed v1_port"});
    }
    for (const auto& r : rows) {
        INFO(r.name << ": \"" << escape(r.bytes) << "\"");
        CHECK(parse(r.bytes) == r.want);
    }
}

TEST_CASE("smtp/proxy_header - v2 decodes what the encoder writes", "[proxy]") {
    std::vector<std::pair<proxy_address, proxy_address>> pairs{{client4, server4},
                                                               {client6, server6}};
    for (const std::uint16_t port : std::initializer_list<std::uint16_t>{0, 255, 256, 65535}) {
        pairs.push_back({v4({10, 0, 0, 1}, port, "10.0.0.1"), v4({10, 0, 0, 2}, port, "10.0.0.2")});
        pairs.push_back(
            {v6({0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, port, "fe80::1"),
             v6({}, port, "::")});
    }
    for (const auto& [source, destination] : pairs) {
        const std::string header = encode_proxy_v2(source, destination);
        INFO("header: " << hex(header));
        const auto got = parse_proxy_header(header);
        REQUIRE(describe(got)
                == fmt::format("complete {} v2 {} {}", header.size(), endpoint(source),
                               endpoint(destination)));
        const std::size_t n = source.ipv6 ? 16 : 4;
        for (const auto& [decoded, want] :
             {std::pair{&got.header.source, &source}, {&got.header.destination, &destination}}) {
            CHECK(decoded->ipv6 == want->ipv6);
            CHECK(hex(std::string(decoded->bytes.begin(), decoded->bytes.begin() + n))
                  == hex(std::string(want->bytes.begin(), want->bytes.begin() + n)));
        }
    }
}

TEST_CASE("smtp/proxy_header - v2 LOCAL keeps the connection's own addresses", "[proxy]") {
    // "The receiver must accept this connection as valid and must use the real connection
    // endpoints and discard the protocol block including the family which is ignored."
    struct row {
        std::string_view name;
        std::string header;
        std::string_view want;
    };
    const std::vector<row> rows{
        {"no address block", v2_header(local_command, 0x00, ""), "complete 16 v2 own-addresses"},
        {"an IPv4 block is skipped", v2_header(local_command, tcp4, tcp4_block),
         "complete 28 v2 own-addresses"},
        {"a block too short for its family is skipped", v2_header(local_command, tcp6, "abc"),
         "complete 19 v2 own-addresses"},
        {"an unassigned family is ignored", v2_header(local_command, 0xFF, ""),
         "complete 16 v2 own-addresses"},
        {"TLVs are not read", v2_header(local_command, tcp4, tcp4_block + "\x20"),
         "complete 29 v2 own-addresses"},
    };
    for (const auto& r : rows) {
        INFO(r.name << ": " << hex(r.header));
        CHECK(parse(r.header) == r.want);
    }
}

TEST_CASE("smtp/proxy_header - v2 UNSPEC and AF_UNIX keep the connection's own addresses",
          "[proxy]") {
    const std::string unix_block(216, 'u');  // two 108-byte socket paths
    struct row {
        std::string_view name;
        std::string header;
        std::string_view want;
    };
    const std::vector<row> rows{
        {"UNSPEC, no address block", v2_header(proxy_command, 0x00, ""),
         "complete 16 v2 own-addresses"},
        // Its size is unknown, so the block is skipped whole, TLV-looking bytes and all.
        {"UNSPEC, some address block", v2_header(proxy_command, 0x00, "\x20\xff"),
         "complete 18 v2 own-addresses"},
        {"UNIX stream", v2_header(proxy_command, 0x31, unix_block),
         "complete 232 v2 own-addresses"},
        {"UNIX datagram with an SSL TLV",
         v2_header(proxy_command, 0x32, unix_block + tlv(pp2_type_ssl, ssl_value(0x01, ""))),
         "complete 240 v2 own-addresses ssl"},
        {"UNIX stream, 215 bytes", v2_header(proxy_command, 0x31, unix_block.substr(1)),
         "malformed v2_length"},
    };
    for (const auto& r : rows) {
        INFO(r.name << ": " << hex(r.header));
        CHECK(parse(r.header) == r.want);
    }
}

TEST_CASE("smtp/proxy_header - v2 refusals name the field, as soon as it arrives", "[proxy]") {
    struct row {
        std::string name;
        std::string header;
        std::size_t decided_at;  // bytes needed for the answer; fewer give need_more
        std::string_view want;
    };
    const std::string good = encode_proxy_v2(client4, server4);
    std::vector<row> rows;
    for (std::size_t i = 0; i < 12; ++i) {
        std::string h = good;
        h[i] = static_cast<char>(h[i] ^ 0x20);
        rows.push_back(
            {fmt::format("signature byte {} wrong", i + 1), h, i + 1, "malformed signature"});
    }
    const std::vector<row> fields{
        // "it must always be sent as \x2 and the receiver must only accept this value"
        {"version 1", v2_header(0x11, tcp4, tcp4_block), 13, "malformed v2_version"},
        {"version 0", v2_header(0x01, tcp4, tcp4_block), 13, "malformed v2_version"},
        {"version 3", v2_header(0x31, tcp4, tcp4_block), 13, "malformed v2_version"},
        // "Receivers must drop connections presenting unexpected values here."
        {"command 0x2", v2_header(0x22, tcp4, tcp4_block), 13, "malformed v2_command"},
        {"command 0xF", v2_header(0x2F, tcp4, tcp4_block), 13, "malformed v2_command"},
        // SMTP is a stream: UDP is refused, like unassigned families and transports.
        {"UDP over IPv4", v2_header(proxy_command, 0x12, tcp4_block), 14, "malformed v2_family"},
        {"UDP over IPv6", v2_header(proxy_command, 0x22, std::string(36, '\0')), 14,
         "malformed v2_family"},
        {"AF_INET with UNSPEC transport", v2_header(proxy_command, 0x10, tcp4_block), 14,
         "malformed v2_family"},
        {"UNSPEC family with STREAM", v2_header(proxy_command, 0x01, ""), 14,
         "malformed v2_family"},
        {"family 0x4", v2_header(proxy_command, 0x41, tcp4_block), 14, "malformed v2_family"},
        {"transport 0x3", v2_header(proxy_command, 0x13, tcp4_block), 14, "malformed v2_family"},
        // The length must hold the family's address block.
        {"TCP4 with 11 bytes", v2_header(proxy_command, tcp4, tcp4_block.substr(0, 11)), 16,
         "malformed v2_length"},
        {"TCP4 with none", v2_header(proxy_command, tcp4, ""), 16, "malformed v2_length"},
        {"TCP6 with 35 bytes", v2_header(proxy_command, tcp6, std::string(35, '\0')), 16,
         "malformed v2_length"},
        // Refused from the 16 fixed bytes alone, without buffering the rest.
        {"4097 bytes", v2_fixed(proxy_command, tcp4, max_proxy_v2_length - 16 + 1), 16,
         "oversized oversized"},
        {"16 + 65535 bytes", v2_fixed(proxy_command, tcp4, 0xFFFF), 16, "oversized oversized"},
        {"LOCAL, 16 + 65535 bytes", v2_fixed(local_command, 0x00, 0xFFFF), 16,
         "oversized oversized"},
    };
    rows.insert(rows.end(), fields.begin(), fields.end());
    for (const auto& r : rows) {
        INFO(r.name << ": " << hex(r.header));
        for (std::size_t k = 0; k <= r.header.size(); ++k) {
            INFO("first " << k << " bytes");
            CHECK(parse(std::string_view(r.header).substr(0, k))
                  == (k < r.decided_at ? "need_more" : r.want));
        }
    }
}

TEST_CASE("smtp/proxy_header - v2 TLVs: SSL sets ssl, the others are skipped", "[proxy]") {
    struct row {
        std::string_view name;
        std::string tlvs;
        bool ssl;
    };
    const std::string ssl_subs =
        tlv(pp2_subtype_ssl_version, "TLSv1.3") + tlv(pp2_subtype_ssl_cn, "client.example");
    const std::vector<row> rows{
        {"none", "", false},
        {"NOOP and SSL with PP2_CLIENT_SSL",
         tlv(pp2_type_noop, "") + tlv(pp2_type_ssl, ssl_value(0x01, ssl_subs)), true},
        {"SSL, no sub-TLVs", tlv(pp2_type_ssl, ssl_value(0x01, "")), true},
        {"SSL, all client bits", tlv(pp2_type_ssl, ssl_value(0x07, ssl_subs)), true},
        {"SSL without PP2_CLIENT_SSL", tlv(pp2_type_ssl, ssl_value(0x00, ssl_subs)), false},
        {"SSL with only the certificate bits", tlv(pp2_type_ssl, ssl_value(0x06, "")), false},
        // The checksum is not verified: a wrong one passes.
        {"ALPN, AUTHORITY, CRC32C, UNIQUE_ID, NETNS, custom",
         tlv(pp2_type_alpn, "smtp") + tlv(pp2_type_authority, "mx.example")
             + tlv(pp2_type_crc32c, "\xde\xad\xbe\xef") + tlv(pp2_type_unique_id, "id-1")
             + tlv(pp2_type_netns, "blue") + tlv(pp2_type_min_custom, "vendor") + tlv(0xEF, ""),
         false},
        {"NOOP padding of 100 bytes", tlv(pp2_type_noop, std::string(100, '\0')), false},
    };
    for (const auto& r : rows) {
        const std::string header = v2_header(proxy_command, tcp4, tcp4_block + r.tlvs);
        INFO(r.name << ": " << hex(header));
        CHECK(parse(header)
              == fmt::format("complete {} v2 {}{}", header.size(), tcp4_endpoints,
                             r.ssl ? " ssl" : ""));
    }
}

TEST_CASE("smtp/proxy_header - v2 TLVs that do not fit the header are refused", "[proxy]") {
    struct row {
        std::string_view name;
        std::string tlvs;
    };
    const std::vector<row> rows{
        {"one byte past the header", bytes({pp2_type_noop}) + be16(3) + "ab"},
        {"a lone trailing byte", tlv(pp2_type_noop, "") + bytes({pp2_type_noop})},
        {"two trailing bytes", tlv(pp2_type_noop, "") + bytes({pp2_type_noop, 0})},
        {"an SSL TLV without room for client and verify", tlv(pp2_type_ssl, bytes({1, 0, 0, 0}))},
        {"an SSL sub-TLV past its SSL TLV",
         tlv(pp2_type_ssl,
             ssl_value(0x01, bytes({pp2_subtype_ssl_version}) + be16(8) + "TLSv1.3"))},
        {"a lone byte after the SSL sub-TLVs", tlv(pp2_type_ssl, ssl_value(0x01, "\x21"))},
    };
    for (const auto& r : rows) {
        const std::string header = v2_header(proxy_command, tcp4, tcp4_block + r.tlvs);
        INFO(r.name << ": " << hex(header));
        CHECK(parse(header) == "malformed tlv_overrun");
    }
}

TEST_CASE("smtp/proxy_header - v2 headers up to max_proxy_v2_length bytes", "[proxy]") {
    const std::size_t padding = max_proxy_v2_length - 28 - 3;  // NOOP TLV value to fill up
    const std::string largest =
        v2_header(proxy_command, tcp4, tcp4_block + tlv(pp2_type_noop, std::string(padding, 'p')));
    REQUIRE(largest.size() == max_proxy_v2_length);
    CHECK(parse(largest) == fmt::format("complete 4096 v2 {}", tcp4_endpoints));
    CHECK(parse(largest.substr(0, 16)) == "need_more");
    CHECK(parse(largest.substr(0, max_proxy_v2_length - 1)) == "need_more");

    const std::string one_more = v2_header(
        proxy_command, tcp4, tcp4_block + tlv(pp2_type_noop, std::string(padding + 1, 'p')));
    CHECK(parse(one_more) == "oversized oversized");
    CHECK(parse(one_more.substr(0, 16)) == "oversized oversized");
}

TEST_CASE("smtp/proxy_header - a header cut at any read boundary is need_more", "[proxy]") {
    const std::vector<std::string> headers{
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        encode_proxy_v1(client6, server6),
        "PROXY UNKNOWN\r\n",
        v1_worst,
        encode_proxy_v2(client4, server4),
        encode_proxy_v2(client6, server6),
        v2_header(local_command, 0x00, ""),
        v2_header(proxy_command, tcp4,
                  tcp4_block + tlv(pp2_type_noop, "") + tlv(pp2_type_ssl, ssl_value(0x01, ""))),
    };
    for (const auto& header : headers) {
        INFO("header: \"" << escape(header) << "\"");
        for (std::size_t k = 0; k < header.size(); ++k) {
            INFO("first " << k << " bytes");
            CHECK(parse(std::string_view(header).substr(0, k)) == "need_more");
        }
        const auto whole = parse_proxy_header(header);
        CHECK(whole.status == proxy_status::complete);
        CHECK(whole.length == header.size());
    }
}

TEST_CASE("smtp/proxy_header - bytes after the header are left to the caller", "[proxy]") {
    const std::string ehlo = "EHLO client.example\r\n";
    const std::vector<std::string> headers{
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY UNKNOWN\r\n",
        encode_proxy_v2(client6, server6),
        v2_header(local_command, 0x00, ""),
    };
    for (const auto& header : headers) {
        INFO("header: \"" << escape(header) << "\"");
        for (const std::string& after : {ehlo, "\r\n"s, "\n"s, "\x20\xff\xff"s, header}) {
            INFO("then: \"" << escape(after) << "\"");
            const auto r = parse_proxy_header(header + after);
            CHECK(r.status == proxy_status::complete);
            CHECK(r.length == header.size());
        }
    }
}

TEST_CASE("smtp/proxy_header - looks_like_proxy_header compares the bytes there are", "[proxy]") {
    struct row {
        std::string bytes;
        bool want;
    };
    const std::vector<row> rows{
        {"", false},
        {"P", true},
        {"PROXY", true},
        {"PROXY ", true},
        {"PROXY TCP4 192.0.2.1 198.51.100.25 56324 25\r\n", true},
        {"PROXY GARBAGE", true},  // only the signature counts
        {"PROXYX", false},
        {"proxy ", false},
        {"EHLO client.example\r\n", false},
        {"\r", true},
        {"\r\n", true},  // an empty line is a prefix of the v2 signature
        {"\r\n\r\n\0"s, true},
        {bytes(signature), true},
        {encode_proxy_v2(client4, server4), true},
        {"\r\n\r\n\0\r\nQUIX"s, false},
        {"\r\nEHLO", false},
        {"\n", false},
    };
    for (const auto& r : rows) {
        INFO("bytes: \"" << escape(r.bytes) << "\"");
        CHECK(looks_like_proxy_header(r.bytes) == r.want);
    }
}
