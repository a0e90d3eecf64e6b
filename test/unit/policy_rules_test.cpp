// Access rules: the most specific network wins, per address family.
#include "smtpgate/policy/rules.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate;
using inet::client_address;
using policy::rule_table;

namespace {

config::rule make_rule(std::string match, std::string origin,
                       config::rule_action action = config::rule_action::limit) {
    config::rule r;
    r.match = std::move(match);
    r.action = action;
    r.origin = std::move(origin);
    return r;
}

client_address addr(std::string_view text) {
    const auto a = client_address::parse(text);
    INFO("test setup: " << text << " must parse");
    REQUIRE(a);
    return *a;
}

/// The origin of the matching rule, or "none".
std::string found(const rule_table& table, std::string_view address) {
    // value(): a typo in a test address throws instead of counting an assertion per lookup.
    const auto* r = table.find(client_address::parse(address).value());
    return r == nullptr ? "none" : r->origin;
}

struct lookup_case {
    std::string_view address;
    std::string_view want;  ///< origin of the rule, or "none"
};

void check_lookups(const rule_table& table, const std::vector<lookup_case>& cases) {
    for (const auto& c : cases) {
        CAPTURE(std::string(c.address));
        const auto got = found(table, c.address);
        INFO("got " << got << ", want " << c.want);
        CHECK(got == c.want);
    }
}

std::string ipv4(std::uint32_t n) {
    return std::to_string(n >> 24) + "." + std::to_string((n >> 16) & 0xff) + "."
           + std::to_string((n >> 8) & 0xff) + "." + std::to_string(n & 0xff);
}

}  // namespace

TEST_CASE("policy/rules - an empty table matches nothing") {
    const rule_table table;
    CHECK(table.size() == 0);
    check_lookups(table, {{"192.0.2.1", "none"}, {"2001:db8::1", "none"}, {"::", "none"}});
}

TEST_CASE("policy/rules - the most specific IPv4 network wins") {
    // Declared out of order: precedence is by prefix length, not by position.
    const rule_table table({
        make_rule("192.0.2.0/24", "slash24"),
        make_rule("192.0.2.7", "slash32"),
        make_rule("0.0.0.0/0", "slash0"),
        make_rule("192.0.0.0/16", "slash16"),
        make_rule("192.0.2.128/25", "slash25"),
    });
    REQUIRE(table.size() == 5);
    check_lookups(table, {
                             {"192.0.2.7", "slash32"},
                             {"::ffff:192.0.2.7", "slash32"},
                             {"192.0.2.6", "slash24"},
                             {"192.0.2.8", "slash24"},
                             {"192.0.2.0", "slash24"},
                             {"192.0.2.127", "slash24"},
                             {"192.0.2.128", "slash25"},
                             {"192.0.2.255", "slash25"},
                             {"192.0.3.1", "slash16"},
                             {"192.0.255.255", "slash16"},
                             {"192.1.0.0", "slash0"},
                             {"10.0.0.1", "slash0"},
                             {"0.0.0.0", "slash0"},
                             {"255.255.255.255", "slash0"},
                         });
}

TEST_CASE("policy/rules - the most specific IPv6 network wins") {
    const rule_table table({
        make_rule("2001:db8::/32", "slash32"),
        make_rule("2001:db8:1:2::/64", "slash64"),
        make_rule("2001:db8:1:2::25", "slash128"),
        make_rule("2001:db8:1::/48", "slash48"),
    });
    check_lookups(table, {
                             {"2001:db8:1:2::25", "slash128"},
                             {"2001:db8:1:2::26", "slash64"},
                             {"2001:db8:1:2:ffff:ffff:ffff:ffff", "slash64"},
                             {"2001:db8:1:3::25", "slash48"},
                             {"2001:db8:2::1", "slash32"},
                             {"2001:db8:ffff::1", "slash32"},
                             {"2001:db9::1", "none"},
                             {"2001:db7:ffff::1", "none"},
                             {"::1", "none"},
                         });
}

TEST_CASE("policy/rules - IPv4 rules never match IPv6 clients and vice versa") {
    SECTION("IPv4 catch-all") {
        const rule_table table({make_rule("0.0.0.0/0", "all-v4")});
        check_lookups(table, {
                                 {"192.0.2.1", "all-v4"},
                                 {"::ffff:192.0.2.1", "all-v4"},
                                 {"2001:db8::1", "none"},
                                 {"::", "none"},
                                 {"::192.0.2.1", "none"},
                             });
    }
    SECTION("IPv6 catch-all") {
        const rule_table table({make_rule("::/0", "all-v6")});
        check_lookups(table, {
                                 {"2001:db8::1", "all-v6"},
                                 {"::", "all-v6"},
                                 {"192.0.2.1", "none"},
                                 {"0.0.0.0", "none"},
                                 {"::ffff:192.0.2.1", "none"},
                             });
    }
    SECTION("same bytes and prefix in both families") {
        // c000:200::/24 and 192.0.2.0/24 share their first three bytes.
        const rule_table table({make_rule("192.0.0.0/16", "v4"), make_rule("c000::/16", "v6")});
        check_lookups(table, {
                                 {"192.0.2.1", "v4"},
                                 {"c000:201::", "v6"},
                                 {"c001::", "none"},
                                 {"193.0.0.1", "none"},
                             });
    }
}

TEST_CASE("policy/rules - the matching rule is returned with its settings") {
    config::rule slow = make_rule("192.0.2.0/24", "slow");
    slow.concurrent_per_client = 3;
    slow.greet_pause = std::chrono::seconds(5);
    const rule_table table({make_rule("192.0.2.9", "allow", config::rule_action::allow),
                            make_rule("198.51.100.0/24", "deny", config::rule_action::deny), slow});
    const auto* r = table.find(addr("192.0.2.1"));
    REQUIRE(r != nullptr);
    CHECK(r->match == "192.0.2.0/24");
    CHECK(r->action == config::rule_action::limit);
    CHECK(r->concurrent_per_client == std::optional<std::uint32_t>(3));
    CHECK(r->greet_pause == std::optional<config::duration>(std::chrono::seconds(5)));
    REQUIRE(table.find(addr("192.0.2.9")) != nullptr);
    CHECK(table.find(addr("192.0.2.9"))->action == config::rule_action::allow);
    REQUIRE(table.find(addr("198.51.100.200")) != nullptr);
    CHECK(table.find(addr("198.51.100.200"))->action == config::rule_action::deny);
}

TEST_CASE("policy/rules - two rules for one network throw naming both origins") {
    struct duplicate_case {
        std::string first;
        std::string second;
    };
    const std::vector<duplicate_case> cases{
        {"192.0.2.0/24", "192.0.2.0/24"},     {"192.0.2.7", "192.0.2.7/32"},
        {"2001:db8::/32", "2001:DB8:0::/32"}, {"2001:db8::1", "2001:db8:0:0:0:0:0:1/128"},
        {"0.0.0.0/0", "0.0.0.0/0"},           {"::ffff:192.0.2.7", "192.0.2.7"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.first, c.second);
        std::string message;
        try {
            const rule_table table({make_rule("10.0.0.0/8", "smtpgate.toml:3"),
                                    make_rule(c.first, "smtpgate.toml:10"),
                                    make_rule(c.second, "smtpgate.toml:20")});
            FAIL("no exception; want std::invalid_argument naming both origins");
        } catch (const std::invalid_argument& e) {
            message = e.what();
        }
        INFO("message: " << message);
        CHECK(message.find("smtpgate.toml:10") != std::string::npos);
        CHECK(message.find("smtpgate.toml:20") != std::string::npos);
        CHECK(message.find("smtpgate.toml:3") == std::string::npos);
    }
}

TEST_CASE("policy/rules - a match that is not a network throws naming its origin") {
    for (const std::string bad :
         {"192.0.2.1/24", "192.0.2.0/33", "not a name", "", "2001:db8::1/64", "a@b.example"}) {
        CAPTURE(bad);
        std::string message;
        try {
            const rule_table table({make_rule(bad, "smtpgate.toml:42")});
            FAIL("no exception; want std::invalid_argument");
        } catch (const std::invalid_argument& e) {
            message = e.what();
        }
        INFO("message: " << message);
        CHECK(message.find("smtpgate.toml:42") != std::string::npos);
    }
}

TEST_CASE("policy/rules - different prefixes of one base address are different networks") {
    const rule_table table({make_rule("192.0.2.0/24", "slash24"),
                            make_rule("192.0.2.0/25", "slash25"),
                            make_rule("192.0.2.0/23", "slash23"), make_rule("192.0.2.0", "host")});
    check_lookups(table, {
                             {"192.0.2.0", "host"},
                             {"192.0.2.1", "slash25"},
                             {"192.0.2.200", "slash24"},
                             {"192.0.3.1", "slash23"},
                             {"192.0.4.1", "none"},
                         });
}

TEST_CASE("policy/rules - twenty thousand rules build and resolve") {
    // /32 rules for the even addresses 10.0.0.0 .. 10.0.156.62, /24 rules for 172.16.0.0 ..
    // 172.16.99.0, and /24 rules over the first 50 /24s of 10.0.0.0 (the odd addresses in
    // them fall back to the /24; the even ones keep their /32).
    std::vector<config::rule> rules;
    constexpr std::uint32_t hosts = 20000;
    const std::uint32_t ten = 10U << 24;
    for (std::uint32_t i = 0; i < hosts; ++i) {
        rules.push_back(make_rule(ipv4(ten + 2 * i), "host" + std::to_string(i)));
    }
    for (std::uint32_t i = 0; i < 100; ++i) {
        rules.push_back(make_rule(ipv4((172U << 24) | (16U << 16) | (i << 8)) + "/24",
                                  "net172-" + std::to_string(i)));
    }
    for (std::uint32_t i = 0; i < 50; ++i) {
        rules.push_back(make_rule(ipv4(ten + (i << 8)) + "/24", "net10-" + std::to_string(i)));
    }
    const rule_table table(std::move(rules));
    REQUIRE(table.size() == hosts + 150);

    int wrong = 0;
    for (std::uint32_t n = ten; n < ten + 2 * hosts + 2; ++n) {
        const auto got = found(table, ipv4(n));
        std::string want = "none";
        if ((n - ten) % 2 == 0 && n - ten < 2 * hosts) {
            want = "host" + std::to_string((n - ten) / 2);
        } else if (((n - ten) >> 8) < 50) {
            want = "net10-" + std::to_string((n - ten) >> 8);
        }
        if (got != want && ++wrong <= 10) {
            INFO("address " << ipv4(n) << ": got " << got << ", want " << want);
            CHECK(got == want);
        }
    }
    CHECK(wrong == 0);
    check_lookups(table, {
                             {"10.0.156.62", "host19999"},
                             {"10.0.156.63", "none"},
                             {"10.0.156.64", "none"},
                             {"10.0.49.255", "net10-49"},
                             {"10.0.50.1", "none"},
                             {"10.1.0.0", "none"},
                             {"172.16.0.1", "net172-0"},
                             {"172.16.99.255", "net172-99"},
                             {"172.16.100.0", "none"},
                             {"192.0.2.1", "none"},
                             {"2001:db8::1", "none"},
                         });
}

TEST_CASE("policy/rules - a more specific rule wins over a /24 that also holds /32 rules") {
    // The /24 only matters for addresses in it without a /32 of their own.
    const rule_table table({make_rule("10.0.0.0/24", "net"), make_rule("10.0.0.5", "host5"),
                            make_rule("10.0.0.6", "host6")});
    check_lookups(table, {
                             {"10.0.0.5", "host5"},
                             {"10.0.0.6", "host6"},
                             {"10.0.0.7", "net"},
                             {"10.0.0.4", "net"},
                         });
}

TEST_CASE(
    "policy/rules - host and domain names: exact address, then name, then parents, then networks") {
    const rule_table table({make_rule("192.0.2.0/24", "net24"), make_rule("example.org", "domain"),
                            make_rule("MX1.Example.ORG", "host"), make_rule("192.0.2.7", "exact")});
    CHECK(table.has_name_rules());
    struct name_case {
        const char* address;
        const char* hostname;
        const char* want;
    };
    const std::vector<name_case> cases{
        {"192.0.2.7", "mx1.example.org", "exact"},     {"192.0.2.8", "mx1.example.org", "host"},
        {"192.0.2.8", "MX1.EXAMPLE.ORG", "host"},      {"192.0.2.8", "mx2.example.org", "domain"},
        {"192.0.2.8", "a.b.example.org", "domain"},    {"192.0.2.8", "example.org", "domain"},
        {"192.0.2.8", "example.net", "net24"},         {"192.0.2.8", "", "net24"},
        {"198.51.100.1", "mx9.example.org", "domain"}, {"198.51.100.1", "", nullptr},
        {"198.51.100.1", "badexample.org", nullptr},
    };
    for (const auto& c : cases) {
        const auto* got = table.find(*client_address::parse(c.address), c.hostname);
        INFO(c.address << " named " << c.hostname << ": got " << (got ? got->origin : "none")
                       << ", want " << (c.want ? c.want : "none"));
        CHECK((got == nullptr ? std::string("none") : got->origin) == (c.want ? c.want : "none"));
    }
}

TEST_CASE("policy/rules - the host name matters unless an exact-address rule decides first") {
    const rule_table table({make_rule("192.0.2.0/24", "net24"), make_rule("example.org", "domain"),
                            make_rule("192.0.2.7", "exact"), make_rule("2001:db8::7", "exact6")});
    // An exact rule wins over any name: the decision need not wait for the lookup.
    CHECK_FALSE(table.name_may_matter(addr("192.0.2.7")));
    CHECK_FALSE(table.name_may_matter(addr("2001:db8::7")));
    // A network rule is beaten by a name rule, and no rule at all may become one.
    CHECK(table.name_may_matter(addr("192.0.2.8")));
    CHECK(table.name_may_matter(addr("198.51.100.1")));
    CHECK(table.name_may_matter(addr("2001:db8::8")));

    // Without name rules the name never matters.
    const rule_table numeric({make_rule("192.0.2.0/24", "net24")});
    CHECK_FALSE(numeric.name_may_matter(addr("192.0.2.8")));
    CHECK_FALSE(numeric.name_may_matter(addr("198.51.100.1")));
}
