// The PROXY protocol encoder, checked against the HAProxy specification
// (doc/proxy-protocol.txt): the v1 text line (section 2.1) and the v2 binary header
// (section 2.2), byte by byte.
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

TEST_CASE("smtp/proxy_header - v1 is one text line: family, addresses, ports, CRLF") {
    CHECK(encode_proxy_v1(client4, server4) == "PROXY TCP4 192.0.2.1 198.51.100.25 56324 25\r\n");
    CHECK(encode_proxy_v1(client6, server6) == "PROXY TCP6 2001:db8::1 2001:db8::25 56324 587\r\n");
    // 2.1: the line is at most 107 bytes with the longest addresses and ports.
    const auto longest = v6({}, 65535, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    const std::string line = encode_proxy_v1(longest, longest);
    CHECK(line.size() <= 107);
}

TEST_CASE("smtp/proxy_header - v2 over IPv4 is the 28 bytes of section 2.2") {
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

TEST_CASE("smtp/proxy_header - v2 over IPv6 is the 52 bytes of section 2.2") {
    std::vector<int> want = signature;
    want.insert(want.end(), {0x21, 0x21, 0x00, 0x24});  // version 2 PROXY, AF_INET6 STREAM, 36
    want.insert(want.end(), client6.bytes.begin(), client6.bytes.end());
    want.insert(want.end(), server6.bytes.begin(), server6.bytes.end());
    want.insert(want.end(), {0xDC, 0x04, 0x02, 0x4B});  // ports 56324 and 587
    CHECK(hex(encode_proxy_v2(client6, server6)) == hex(bytes(want)));
}

TEST_CASE("smtp/proxy_header - v2 fields read back as the spec lays them out") {
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

TEST_CASE("smtp/proxy_header - v2 ports at the edges of 16 bits") {
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
