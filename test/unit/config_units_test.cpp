// Value syntaxes of the configuration file: durations, rates, host names, endpoints.
#include "smtpgate/config/units.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate::config;

namespace {

constexpr auto second = duration{1000};

struct duration_case {
    std::string_view text;
    std::optional<duration> want;
};

struct rate_case {
    std::string_view text;
    std::optional<rate> want;
};

struct endpoint_case {
    std::string_view text;
    bool allow_hostname;
    std::optional<endpoint> want;
};

std::string show(const std::optional<duration>& d) {
    return d ? std::to_string(d->count()) + "ms" : "nullopt";
}

std::string show(const std::optional<rate>& r) {
    return r ? std::to_string(r->count) + "/" + std::to_string(r->window.count()) + "ms"
             : "nullopt";
}

std::string show(const std::optional<endpoint>& e) {
    return e ? e->to_string() : "nullopt";
}

}  // namespace

TEST_CASE("config - durations are a whole number and one unit") {
    const std::vector<duration_case> cases{
        {"700ms", duration{700}},
        {"0ms", duration{0}},
        {"0s", duration{0}},
        {"10s", 10 * second},
        {"5m", 5 * 60 * second},
        {"1h", 3600 * second},
        {"2d", 2 * 86400 * second},
        {"90s", 90 * second},
        {"007s", 7 * second},
        {"9223372036854775807ms", duration{9223372036854775807}},
        {"106751991167d", duration{106751991167LL * 86400000}},
        // A unit is required, even for zero.
        {"0", std::nullopt},
        {"30", std::nullopt},
        {"", std::nullopt},
        {"s", std::nullopt},
        {"ms", std::nullopt},
        // No signs, spaces, fractions, compounds, other spellings.
        {"-5s", std::nullopt},
        {"+5s", std::nullopt},
        {" 5s", std::nullopt},
        {"5s ", std::nullopt},
        {"5 s", std::nullopt},
        {"1.5s", std::nullopt},
        {"1m30s", std::nullopt},
        {"5M", std::nullopt},
        {"5S", std::nullopt},
        {"5min", std::nullopt},
        {"5sec", std::nullopt},
        {"5us", std::nullopt},
        {"5w", std::nullopt},
        {"5 minutes", std::nullopt},
        {"0x10s", std::nullopt},
        // Overflow of 64-bit milliseconds, in the number and in the multiplication.
        {"9223372036854775808ms", std::nullopt},
        {"106751991168d", std::nullopt},
        {"99999999999999999999999s", std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto got = parse_duration(c.text);
        INFO("got " << show(got) << ", want " << show(c.want));
        CHECK(got == c.want);
    }
}

TEST_CASE("config - durations format as the largest exact unit and read back") {
    const std::vector<std::pair<duration, std::string_view>> cases{
        {duration{0}, "0s"},
        {duration{1}, "1ms"},
        {duration{700}, "700ms"},
        {duration{1500}, "1500ms"},
        {second, "1s"},
        {90 * second, "90s"},
        {60 * second, "1m"},
        {150 * 60 * second, "150m"},
        {7200 * second, "2h"},
        {86400 * second, "1d"},
        {36 * 3600 * second, "36h"},
        {-5 * second, "-5s"},
    };
    for (const auto& [value, want] : cases) {
        CAPTURE(value.count(), want);
        CHECK(format_duration(value) == want);
        if (value.count() >= 0) CHECK(parse_duration(format_duration(value)) == value);
    }
}

TEST_CASE("config - rates are a count per window") {
    const std::vector<rate_case> cases{
        {"10/60s", rate{10, 60 * second}},
        {"100/1h", rate{100, 3600 * second}},
        {"5/s", rate{5, second}},
        {"5/m", rate{5, 60 * second}},
        {"1/ms", rate{1, duration{1}}},
        {"3/2d", rate{3, 2 * 86400 * second}},
        {"4294967295/1s", rate{4294967295U, second}},
        // Count at least 1 and fitting 32 bits; window above zero.
        {"0/1s", std::nullopt},
        {"4294967296/1s", std::nullopt},
        {"10/0s", std::nullopt},
        {"10/0ms", std::nullopt},
        // Malformed.
        {"", std::nullopt},
        {"10", std::nullopt},
        {"10/", std::nullopt},
        {"/1s", std::nullopt},
        {"10/60", std::nullopt},
        {"10 / 60s", std::nullopt},
        {"10/ 60s", std::nullopt},
        {"-1/1s", std::nullopt},
        {"1.5/s", std::nullopt},
        {"10/1s/1s", std::nullopt},
        {"10/sec", std::nullopt},
        {"10/S", std::nullopt},
        {"10/-1s", std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto got = parse_rate(c.text);
        INFO("got " << show(got) << ", want " << show(c.want));
        CHECK(got == c.want);
    }
}

TEST_CASE("config - domain names are letter-digit-hyphen labels") {
    const std::string label63(63, 'a');
    const std::string name253 =
        label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    const std::vector<std::pair<std::string, bool>> cases{
        {"postfix", true},
        {"localhost", true},
        {"mx.example.org", true},
        {"MX-1.Example.ORG", true},
        {"a", true},
        {"1a.example", true},
        {"example.123a", true},
        {label63 + ".example", true},
        {name253, true},
        {"", false},
        {label63 + "a.example", false},
        {name253 + "b", false},
        {"mx.example.org.", false},
        {".example", false},
        {"mx..example", false},
        {"-mx.example", false},
        {"mx-.example", false},
        {"mail_host", false},
        {"mx example", false},
        {"192.0.2.300", false},
        {"123", false},
        {"bücher.example", false},
    };
    for (const auto& [text, want] : cases) {
        CAPTURE(text);
        CHECK(is_domain_name(text) == want);
    }
}

TEST_CASE("config - endpoints are an IP literal or host name and a port") {
    const std::vector<endpoint_case> cases{
        {"127.0.0.1:25", false, endpoint{"127.0.0.1", 25}},
        {"0.0.0.0:2525", false, endpoint{"0.0.0.0", 2525}},
        {"[::1]:25", false, endpoint{"::1", 25}},
        {"[::]:25", false, endpoint{"::", 25}},
        {"[2001:db8::1]:2525", false, endpoint{"2001:db8::1", 2525}},
        {"[2001:DB8:0:0:0:0:0:1]:25", false, endpoint{"2001:db8::1", 25}},
        {"[::ffff:192.0.2.1]:25", false, endpoint{"::ffff:192.0.2.1", 25}},
        {"192.0.2.1:1", false, endpoint{"192.0.2.1", 1}},
        {"192.0.2.1:65535", false, endpoint{"192.0.2.1", 65535}},
        {"192.0.2.1:00025", false, endpoint{"192.0.2.1", 25}},
        // Host names only when allowed.
        {"postfix:25", true, endpoint{"postfix", 25}},
        {"mx.example.org:10025", true, endpoint{"mx.example.org", 10025}},
        {"127.0.0.1:10025", true, endpoint{"127.0.0.1", 10025}},
        {"[::1]:10025", true, endpoint{"::1", 10025}},
        {"postfix:25", false, std::nullopt},
        {"localhost:25", false, std::nullopt},
        // Ports.
        {"192.0.2.1:0", true, std::nullopt},
        {"192.0.2.1:65536", true, std::nullopt},
        {"192.0.2.1:000025", true, std::nullopt},
        {"192.0.2.1:", true, std::nullopt},
        {"192.0.2.1", true, std::nullopt},
        {"192.0.2.1:+25", true, std::nullopt},
        {"192.0.2.1:-1", true, std::nullopt},
        {"192.0.2.1:25 ", true, std::nullopt},
        {"192.0.2.1:smtp", true, std::nullopt},
        {"[::1]", true, std::nullopt},
        {"[::1]:", true, std::nullopt},
        {"[::1]25", true, std::nullopt},
        // IPv6 needs brackets; brackets are for IPv6 only.
        {"::1:25", true, std::nullopt},
        {"2001:db8::1:25", true, std::nullopt},
        {"[192.0.2.1]:25", true, std::nullopt},
        {"[postfix]:25", true, std::nullopt},
        {"[::1:25", true, std::nullopt},
        {"[fe80::1%eth0]:25", true, std::nullopt},
        // Malformed IPv4 is not a host name either.
        {"192.0.2.300:25", true, std::nullopt},
        {"192.0.2:25", true, std::nullopt},
        {"192.0.02.1:25", false, std::nullopt},
        {" 192.0.2.1:25", true, std::nullopt},
        {"", true, std::nullopt},
        {":25", true, std::nullopt},
        {"mail_host:25", true, std::nullopt},
        {"mx.example.org.:25", true, std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text, c.allow_hostname);
        const auto got = parse_endpoint(c.text, c.allow_hostname);
        INFO("got " << show(got) << ", want " << show(c.want));
        CHECK(got == c.want);
    }
}

TEST_CASE("config - endpoints print IPv6 in brackets") {
    CHECK(endpoint{"192.0.2.1", 25}.to_string() == "192.0.2.1:25");
    CHECK(endpoint{"2001:db8::1", 2525}.to_string() == "[2001:db8::1]:2525");
    CHECK(endpoint{"mx.example", 25}.to_string() == "mx.example:25");
    for (const std::string_view text : {"127.0.0.1:25", "[::1]:25", "postfix:10025"}) {
        CAPTURE(text);
        const auto parsed = parse_endpoint(text, true);
        REQUIRE(parsed);
        CHECK(parsed->to_string() == text);
    }
}
