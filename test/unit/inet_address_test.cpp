// Client addresses, networks and the per-network counting keys (inet/address). The cases keep
// the names they had as policy/address, so test filters and earlier results still match.
#include "smtpgate/inet/address.hpp"

#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate::inet;

namespace {

struct address_case {
    std::string_view text;
    /// nullopt: rejected; otherwise the family and the canonical text it reads back as.
    std::optional<bool> want_ipv6;
    std::string_view want_text;
};

struct mask_case {
    std::string_view address;
    int prefix;
    std::string_view want;
};

struct network_case {
    std::string_view text;
    std::optional<std::string_view> want;  ///< to_string() of the parsed network
};

client_address addr(std::string_view text) {
    const auto a = client_address::parse(text);
    INFO("test setup: " << text << " must parse");
    REQUIRE(a);
    return *a;
}

std::string show(const std::optional<client_address>& a) {
    if (!a) return "nullopt";
    return (a->ipv6 ? "IPv6 " : "IPv4 ") + a->to_string();
}

std::string show(const std::optional<network>& n) {
    return n ? n->to_string() : "nullopt";
}

std::string hex(const std::string& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 0xf]);
    }
    return out;
}

}  // namespace

TEST_CASE("policy/address - parse accepts IPv4 and IPv6 literals only") {
    const std::vector<address_case> cases{
        {"192.0.2.1", false, "192.0.2.1"},
        {"0.0.0.0", false, "0.0.0.0"},
        {"255.255.255.255", false, "255.255.255.255"},
        {"2001:db8::1", true, "2001:db8::1"},
        {"2001:DB8:0:0:0:0:0:1", true, "2001:db8::1"},
        {"::1", true, "::1"},
        {"::", true, "::"},
        {"fe80::1", true, "fe80::1"},
        // IPv4-mapped IPv6 is the IPv4 client (dual-stack sockets report it this way).
        {"::ffff:192.0.2.1", false, "192.0.2.1"},
        {"::FFFF:c000:201", false, "192.0.2.1"},
        {"0000:0000:0000:0000:0000:ffff:255.255.255.255", false, "255.255.255.255"},
        // Not mapped: IPv4-compatible and NAT64 forms stay IPv6.
        {"::192.0.2.1", true, "::192.0.2.1"},
        {"64:ff9b::192.0.2.1", true, "64:ff9b::c000:201"},
        // Rejected.
        {"", std::nullopt, ""},
        {"192.0.2", std::nullopt, ""},
        {"192.0.2.256", std::nullopt, ""},
        {"192.0.2.1.5", std::nullopt, ""},
        {"192.0.2.01", std::nullopt, ""},
        {"0x7f.0.0.1", std::nullopt, ""},
        {"192.0.2.1/32", std::nullopt, ""},
        {" 192.0.2.1", std::nullopt, ""},
        {"192.0.2.1 ", std::nullopt, ""},
        {"[2001:db8::1]", std::nullopt, ""},
        {"2001:db8::1%eth0", std::nullopt, ""},
        {"2001:db8:::1", std::nullopt, ""},
        {"2001:db8::1::2", std::nullopt, ""},
        {"12345::1", std::nullopt, ""},
        {"::ffff:192.0.2.256", std::nullopt, ""},
        {"mx.example.org", std::nullopt, ""},
        {"localhost", std::nullopt, ""},
        {"0000:0000:0000:0000:0000:ffff:255.255.255.255 ", std::nullopt, ""},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.text));
        const auto got = client_address::parse(c.text);
        std::optional<client_address> want;
        if (c.want_ipv6) {
            want = client_address::parse(c.want_text);
            REQUIRE(want);
            REQUIRE(want->ipv6 == *c.want_ipv6);
        }
        INFO("got " << show(got) << ", want " << show(want));
        CHECK(got.has_value() == want.has_value());
        if (got && want) {
            CHECK(got->ipv6 == want->ipv6);
            CHECK(got->to_string() == c.want_text);
            CHECK(*got == *want);
        }
    }
}

TEST_CASE("policy/address - parse rejects text with an embedded NUL") {
    // The text is a string_view, not a C string: what follows a NUL is part of the input and
    // makes it malformed. A TOML string may hold "\u0000", and the loader passes a rule's
    // match to network::parse as is: match = "10.0.0.0\u0000 office/8" must be an error.
    using namespace std::string_view_literals;
    for (const auto text : {"192.0.2.1\0junk"sv, "2001:db8::1\0"sv, "10.0.0.0\0/8"sv}) {
        CAPTURE(std::string(text));
        const auto got = client_address::parse(text);
        INFO("got " << show(got) << ", want nullopt");
        CHECK_FALSE(got);
    }
    const auto net = network::parse("10.0.0.0\0 office/8"sv);
    INFO("network: got " << show(net) << ", want nullopt");
    CHECK_FALSE(net);
}

TEST_CASE("policy/address - an IPv4-mapped IPv6 address is the same client as the IPv4 address") {
    const auto mapped = addr("::ffff:192.0.2.1");
    const auto plain = addr("192.0.2.1");
    CHECK_FALSE(mapped.ipv6);
    CHECK(mapped.width() == 32);
    CHECK(mapped == plain);
    // Only the first four bytes carry an IPv4 address; the rest stays zero so equality and
    // keys cannot see the mapping prefix.
    for (std::size_t i = 4; i < mapped.bytes.size(); ++i) {
        CAPTURE(i);
        CHECK(mapped.bytes[i] == 0);
    }
    const key_prefixes prefixes;
    CHECK(client_key(mapped, prefixes) == client_key(plain, prefixes));
    CHECK(client_key_text(mapped, prefixes) == "192.0.2.1");
}

TEST_CASE("policy/address - masked clears every bit after the prefix") {
    const std::vector<mask_case> cases{
        {"255.255.255.255", 0, "0.0.0.0"},
        {"255.255.255.255", 7, "254.0.0.0"},
        {"255.255.255.255", 8, "255.0.0.0"},
        {"255.255.255.255", 24, "255.255.255.0"},
        {"255.255.255.255", 31, "255.255.255.254"},
        {"255.255.255.255", 32, "255.255.255.255"},
        {"192.0.2.131", 0, "0.0.0.0"},
        {"192.0.2.131", 7, "192.0.0.0"},
        {"193.0.2.131", 7, "192.0.0.0"},
        {"192.0.2.131", 8, "192.0.0.0"},
        {"192.0.2.131", 24, "192.0.2.0"},
        {"192.0.2.131", 25, "192.0.2.128"},
        {"192.0.2.131", 31, "192.0.2.130"},
        {"192.0.2.131", 32, "192.0.2.131"},
        {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 0, "::"},
        {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 32, "2001:db8::"},
        {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 48, "2001:db8:aaaa::"},
        {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 56, "2001:db8:aaaa:bb00::"},
        {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 60, "2001:db8:aaaa:bbb0::"},
        {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 64, "2001:db8:aaaa:bbbb::"},
        {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 127, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:fffe"},
        {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 128, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.address), c.prefix);
        const auto a = addr(c.address);
        const auto got = a.masked(c.prefix);
        INFO("got " << got.to_string() << ", want " << c.want);
        CHECK(got.to_string() == c.want);
        CHECK(got.ipv6 == a.ipv6);
        // Masking is idempotent.
        CHECK(got.masked(c.prefix) == got);
    }
}

TEST_CASE("policy/address - network parse takes CIDR with the host bits clear") {
    const std::vector<network_case> cases{
        {"192.0.2.0/24", "192.0.2.0/24"},
        {"192.0.2.7", "192.0.2.7/32"},
        {"192.0.2.7/32", "192.0.2.7/32"},
        {"192.0.2.6/31", "192.0.2.6/31"},
        {"0.0.0.0/0", "0.0.0.0/0"},
        {"10.0.0.0/8", "10.0.0.0/8"},
        {"2001:db8::/32", "2001:db8::/32"},
        {"2001:DB8:0::/32", "2001:db8::/32"},
        {"2001:db8:1:2::/64", "2001:db8:1:2::/64"},
        {"2001:db8::1", "2001:db8::1/128"},
        {"::/0", "::/0"},
        // Host bits set: almost always a typo for the network or the host.
        {"192.0.2.1/24", std::nullopt},
        {"192.0.2.7/31", std::nullopt},
        {"10.0.0.1/0", std::nullopt},
        {"2001:db8::1/64", std::nullopt},
        {"2001:db8:8000::/32", std::nullopt},
        // Prefix out of range or malformed.
        {"192.0.2.0/33", std::nullopt},
        {"2001:db8::/129", std::nullopt},
        {"192.0.2.0/-1", std::nullopt},
        {"192.0.2.0/+24", std::nullopt},
        {"192.0.2.0/", std::nullopt},
        {"192.0.2.0/24x", std::nullopt},
        {"192.0.2.0/ 24", std::nullopt},
        {"192.0.2.0 /24", std::nullopt},
        {"192.0.2.0/24/24", std::nullopt},
        {"192.0.2.0/0x18", std::nullopt},
        {"192.0.2.0/99999999999999999999", std::nullopt},
        {"/24", std::nullopt},
        {"", std::nullopt},
        {"192.0.2/24", std::nullopt},
        {"example.org/24", std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.text));
        const auto got = network::parse(c.text);
        INFO("got " << show(got) << ", want " << (c.want ? *c.want : "nullopt"));
        REQUIRE(got.has_value() == c.want.has_value());
        if (got) {
            CHECK(got->to_string() == *c.want);
            CHECK(got->base.masked(got->prefix) == got->base);
        }
    }
}

TEST_CASE("policy/address - an IPv4-mapped network is the IPv4 network") {
    // A mapped address is read as IPv4, so its prefix must be too: ::ffff:0:0/96 is all of
    // IPv4 and ::ffff:192.0.2.0/120 is 192.0.2.0/24. Read as an IPv4 prefix instead, the
    // /120 is out of range and a /24 silently widens to a different network.
    const std::vector<network_case> cases{
        {"::ffff:192.0.2.0/120", "192.0.2.0/24"},
        {"::ffff:192.0.2.7/128", "192.0.2.7/32"},
        {"::ffff:0.0.0.0/96", "0.0.0.0/0"},
        {"::ffff:192.0.2.7", "192.0.2.7/32"},
        // As an IPv6 network these have host bits set.
        {"::ffff:192.0.2.0/24", std::nullopt},
        {"::ffff:10.0.0.0/8", std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.text));
        const auto got = network::parse(c.text);
        INFO("got " << show(got) << ", want " << (c.want ? *c.want : "nullopt"));
        CHECK(got.has_value() == c.want.has_value());
        if (got && c.want) CHECK(got->to_string() == *c.want);
    }
}

TEST_CASE("policy/address - a network contains the addresses of its own family under its prefix") {
    struct contains_case {
        std::string_view net;
        std::string_view address;
        bool want;
    };
    const std::vector<contains_case> cases{
        {"192.0.2.0/24", "192.0.2.0", true},
        {"192.0.2.0/24", "192.0.2.255", true},
        {"192.0.2.0/24", "192.0.3.0", false},
        {"192.0.2.0/24", "192.0.1.255", false},
        {"192.0.2.0/24", "::ffff:192.0.2.9", true},
        {"192.0.2.7", "192.0.2.7", true},
        {"192.0.2.7", "192.0.2.6", false},
        {"192.0.2.6/31", "192.0.2.7", true},
        {"0.0.0.0/0", "203.0.113.9", true},
        {"0.0.0.0/0", "::", false},
        {"0.0.0.0/0", "2001:db8::1", false},
        {"::/0", "2001:db8::1", true},
        {"::/0", "0.0.0.0", false},
        {"::/0", "::ffff:192.0.2.1", false},
        {"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"2001:db8::/32", "2001:db9::", false},
        // Same bytes, other family: an IPv4 network never contains an IPv6 address.
        {"192.0.2.0/24", "c000:200::", false},
        {"c000:200::/24", "192.0.2.1", false},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.net), std::string(c.address));
        const auto n = network::parse(c.net);
        REQUIRE(n);
        const bool got = n->contains(addr(c.address));
        INFO("got " << got << ", want " << c.want);
        CHECK(got == c.want);
    }
}

TEST_CASE("policy/address - IPv6 clients in one /64 share a key, other /64s do not") {
    const key_prefixes prefixes;  // 32 and 64
    const auto first = client_key(addr("2001:db8:1:2::1"), prefixes);
    for (const auto* same : {"2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff",
                             "2001:db8:1:2:1234:5678:9abc:def0", "2001:db8:1:2::"}) {
        CAPTURE(same);
        const auto got = client_key(addr(same), prefixes);
        INFO("got " << hex(got) << ", want " << hex(first));
        CHECK(got == first);
    }
    for (const auto* other : {"2001:db8:1:3::1", "2001:db8:1:1:ffff:ffff:ffff:ffff",
                              "2001:db8:2:2::1", "2001:db9:1:2::1"}) {
        CAPTURE(other);
        const auto got = client_key(addr(other), prefixes);
        INFO("got " << hex(got) << ", must differ from " << hex(first));
        CHECK(got != first);
    }
    // A /64 key stays small enough for the string's inline buffer (header promise).
    CHECK(first.size() == 10);
}

TEST_CASE("policy/address - IPv4 clients are grouped by the configured prefix") {
    SECTION("default /32: every address is its own client") {
        const key_prefixes prefixes;
        CHECK(client_key(addr("192.0.2.1"), prefixes) != client_key(addr("192.0.2.2"), prefixes));
        CHECK(client_key(addr("192.0.2.1"), prefixes) == client_key(addr("192.0.2.1"), prefixes));
        CHECK(client_key(addr("192.0.2.1"), prefixes).size() == 6);
    }
    SECTION("/24: a whole /24 is one client") {
        const key_prefixes prefixes{24, 64};
        const auto key = client_key(addr("192.0.2.1"), prefixes);
        for (const auto* same : {"192.0.2.0", "192.0.2.128", "192.0.2.255"}) {
            CAPTURE(same);
            const auto got = client_key(addr(same), prefixes);
            INFO("got " << hex(got) << ", want " << hex(key));
            CHECK(got == key);
        }
        for (const auto* other : {"192.0.3.1", "192.0.1.255", "193.0.2.1"}) {
            CAPTURE(other);
            CHECK(client_key(addr(other), prefixes) != key);
        }
    }
    SECTION("/20: prefixes that are not whole bytes") {
        const key_prefixes prefixes{20, 60};
        CHECK(client_key(addr("192.0.16.1"), prefixes)
              == client_key(addr("192.0.31.255"), prefixes));
        CHECK(client_key(addr("192.0.16.1"), prefixes) != client_key(addr("192.0.32.0"), prefixes));
        CHECK(client_key(addr("2001:db8:1:20::1"), prefixes)
              == client_key(addr("2001:db8:1:2f::1"), prefixes));
        CHECK(client_key(addr("2001:db8:1:20::1"), prefixes)
              != client_key(addr("2001:db8:1:30::1"), prefixes));
    }
}

TEST_CASE("policy/address - IPv4 and IPv6 keys never collide") {
    // Pairs whose masked bytes are equal: only the family tells them apart.
    struct pair_case {
        key_prefixes prefixes;
        std::string_view v4;
        std::string_view v6;
    };
    const std::vector<pair_case> cases{
        {{32, 32}, "192.0.2.1", "c000:201::"}, {{32, 64}, "0.0.0.0", "::"},
        {{24, 24}, "192.0.2.0", "c000:200::"}, {{16, 16}, "10.1.0.0", "a01::"},
        {{8, 8}, "10.0.0.0", "a00::"},         {{0, 0}, "192.0.2.1", "2001:db8::1"},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.v4), std::string(c.v6), c.prefixes.ipv4, c.prefixes.ipv6);
        const auto k4 = client_key(addr(c.v4), c.prefixes);
        const auto k6 = client_key(addr(c.v6), c.prefixes);
        INFO("IPv4 key " << hex(k4) << ", IPv6 key " << hex(k6));
        CHECK(k4 != k6);
    }
    // And over a sample where every IPv6 address has the bytes of an IPv4 one (a00:5:: and
    // 10.0.0.5 under /32 and /32), no key is shared.
    const key_prefixes prefixes{32, 32};
    std::set<std::string> v4_keys;
    std::set<std::string> v6_keys;
    for (int i = 0; i < 256; ++i) {
        const auto v4 = client_address::parse("10.0.0." + std::to_string(i)).value();
        const auto v6 = client_address::parse("a00:" + std::to_string(i) + "::").value();
        v4_keys.insert(client_key(v4, prefixes));
        v6_keys.insert(client_key(v6, prefixes));
    }
    std::size_t shared = 0;
    for (const auto& k : v4_keys)
        shared += v6_keys.count(k);
    INFO("got " << shared << " keys shared by IPv4 and IPv6, want 0");
    CHECK(shared == 0);
    CHECK(v4_keys.size() == 256);
    CHECK(v6_keys.size() == 256);
}

TEST_CASE("policy/address - key text is the address, or the network when grouped") {
    struct text_case {
        key_prefixes prefixes;
        std::string_view address;
        std::string_view want;
    };
    const std::vector<text_case> cases{
        {{32, 64}, "192.0.2.1", "192.0.2.1"},
        {{32, 64}, "::ffff:192.0.2.1", "192.0.2.1"},
        {{24, 64}, "192.0.2.77", "192.0.2.0/24"},
        {{20, 64}, "192.0.31.77", "192.0.16.0/20"},
        {{0, 64}, "192.0.2.77", "0.0.0.0/0"},
        {{32, 64}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
        {{32, 48}, "2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"},
        {{32, 128}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"},
        {{32, 64}, "::1", "::/64"},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.address), c.prefixes.ipv4, c.prefixes.ipv6);
        const auto got = client_key_text(addr(c.address), c.prefixes);
        INFO("got " << got << ", want " << c.want);
        CHECK(got == c.want);
    }
}

TEST_CASE("inet address - IPv4 text is the dotted quad for every byte value", "[address]") {
    // Written out by hand for speed: every octet value in every position, against inet_ntop's.
    for (unsigned v = 0; v < 256; ++v) {
        for (int pos = 0; pos < 4; ++pos) {
            client_address a;
            a.bytes[static_cast<std::size_t>(pos)] = static_cast<std::uint8_t>(v);
            a.bytes[static_cast<std::size_t>((pos + 1) % 4)] = static_cast<std::uint8_t>(255 - v);
            char want[INET_ADDRSTRLEN] = {};
            REQUIRE(inet_ntop(AF_INET, a.bytes.data(), want, sizeof want) != nullptr);
            CAPTURE(v, pos);
            REQUIRE(a.to_string() == want);
        }
    }
}
