// xtext (RFC 3461 section 4) and XCLIENT command lines, specified: which bytes are encoded
// and how, and how attributes are packed into lines under the 512-byte command line limit
// (RFC 5321 4.5.3.1.4) without reordering or splitting any.
#include "smtpgate/smtp/xtext.hpp"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate::smtp;
using namespace std::string_literals;

namespace {

/// The bytes as a C string literal would show them, so failure messages are readable.
std::string escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f) {
            out += fmt::format("\\x{:02x}", u);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

/// "NAME=" and filler up to `size` bytes.
std::string attribute(std::string_view name, std::size_t size) {
    std::string a = fmt::format("{}=", name);
    REQUIRE(a.size() <= size);
    a.append(size - a.size(), 'x');
    return a;
}

/// The lines joined with " | " and CRLF shown as \r\n, for one-line comparisons.
std::string show(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& line : lines) {
        if (!out.empty()) out += " | ";
        out += fmt::format("{} [{}]", escape(line), line.size());
    }
    return out;
}

}  // namespace

TEST_CASE("smtp/xtext - bytes outside ! to ~, and + and =, become +XX", "[xtext]") {
    struct row {
        std::string value;
        std::string_view want;
    };
    const std::vector<row> rows{
        {"", ""},
        {"client.example", "client.example"},
        // Postfix XCLIENT's special values pass as they are.
        {"[UNAVAILABLE]", "[UNAVAILABLE]"},
        {"[TEMPUNAVAIL]", "[TEMPUNAVAIL]"},
        {"+", "+2B"},
        {"=", "+3D"},
        {"a+b=c", "a+2Bb+3Dc"},
        {" ", "+20"},
        {"two words", "two+20words"},
        {"\r\n", "+0D+0A"},
        {"\0"s, "+00"},
        {"\t\x1f\x7f", "+09+1F+7F"},
        // 8-bit bytes, each byte of UTF-8 on its own, upper case hex.
        {"\x80\xff", "+80+FF"},
        {"caf\xc3\xa9", "caf+C3+A9"},
        // The printable edges stay.
        {"!~\"#/:;<>?@[\\]^_`{|}", "!~\"#/:;<>?@[\\]^_`{|}"},
    };
    for (const auto& r : rows) {
        INFO("value: \"" << escape(r.value) << "\"");
        CHECK(xtext_encode(r.value) == r.want);
    }
}

TEST_CASE("smtp/xtext - every byte value encodes to one xchar or one +XX", "[xtext]") {
    for (int b = 0; b < 256; ++b) {
        const std::string value(1, static_cast<char>(b));
        const std::string got = xtext_encode(value);
        INFO(fmt::format("byte 0x{:02X}: \"{}\"", b, escape(got)));
        if (b >= '!' && b <= '~' && b != '+' && b != '=') {
            CHECK(got == value);
        } else {
            CHECK(got == fmt::format("+{:02X}", b));
        }
    }
}

TEST_CASE("smtp/xtext - XCLIENT lines start with XCLIENT, end in CRLF, keep the order", "[xtext]") {
    const std::vector<std::string> attributes{"NAME=client.example", "ADDR=192.0.2.1", "PORT=56324",
                                              "HELO=client.example", "PROTO=ESMTP"};
    CHECK(show(xclient_lines(attributes))
          == show({"XCLIENT NAME=client.example ADDR=192.0.2.1 PORT=56324 HELO=client.example "
                   "PROTO=ESMTP\r\n"}));
    CHECK(xclient_lines({}).empty());
    CHECK(show(xclient_lines({"NAME=[UNAVAILABLE]"})) == show({"XCLIENT NAME=[UNAVAILABLE]\r\n"}));
}

TEST_CASE("smtp/xtext - XCLIENT lines are split at the line limit, CRLF included", "[xtext]") {
    // "XCLIENT " (8) + attributes + CRLF (2): one attribute fills a 512-byte line at 502 bytes.
    struct row {
        std::string_view name;
        std::vector<std::size_t> sizes;       // attribute sizes, in order
        std::vector<std::size_t> want_lines;  // sizes of the lines, CRLF included
    };
    const std::vector<row> rows{
        {"one attribute, 511 bytes", {501}, {511}},
        {"one attribute, exactly 512 bytes", {502}, {512}},
        {"two attributes, 511 bytes", {250, 250}, {511}},
        {"two attributes, exactly 512 bytes", {250, 251}, {512}},
        {"two attributes, 513 bytes: the second starts a line", {250, 252}, {260, 262}},
        {"a full line, then one more", {502, 5}, {512, 15}},
        {"three lines", {300, 300, 300}, {310, 310, 310}},
        {"greedy in order: five fill a line, the next two start another",
         {100, 100, 100, 100, 98, 3, 100},
         {512, 114}},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        std::vector<std::string> attributes;
        for (std::size_t i = 0; i < r.sizes.size(); ++i) {
            attributes.push_back(attribute(fmt::format("A{}", i), r.sizes[i]));
        }
        const auto lines = xclient_lines(attributes);
        INFO("lines: " << show(lines));
        std::vector<std::size_t> got;
        std::string rejoined;
        for (const auto& line : lines) {
            got.push_back(line.size());
            CHECK(line.starts_with("XCLIENT "));
            CHECK(line.ends_with("\r\n"));
            CHECK(line.size() <= 512);
            rejoined += line.substr(8, line.size() - 10) + " ";
        }
        CHECK(got == r.want_lines);
        // Every attribute once, whole, in the given order.
        const std::string want_joined =
            std::accumulate(attributes.begin(), attributes.end(), std::string{},
                            [](std::string acc, const std::string& a) { return acc + a + " "; });
        CHECK(rejoined == want_joined);
    }
}

TEST_CASE("smtp/xtext - XCLIENT lines follow a smaller limit", "[xtext]") {
    CHECK(show(xclient_lines({"A=1", "B=2", "C=3"}, 15))
          == show({"XCLIENT A=1\r\n", "XCLIENT B=2\r\n", "XCLIENT C=3\r\n"}));
    CHECK(show(xclient_lines({"A=1", "B=2", "C=3"}, 17))
          == show({"XCLIENT A=1 B=2\r\n", "XCLIENT C=3\r\n"}));
}

TEST_CASE("smtp/xtext - an attribute that cannot be sent is a programming error", "[xtext]") {
    // Alone over the limit: no line can carry it.
    CHECK_THROWS_AS(xclient_lines({attribute("NAME", 503)}), std::length_error);
    CHECK_THROWS_AS(xclient_lines({"A=1", attribute("NAME", 503)}), std::length_error);
    CHECK_THROWS_AS(xclient_lines({"A=1"}, 12), std::length_error);
    // Not encoded: a space would split it, a CRLF would end the command.
    for (const std::string& bad :
         {""s, "NAME=two words"s, "NAME=x\r\nRSET"s, "NAME=\x80"s, "NAME=\0"s}) {
        INFO("attribute: \"" << escape(bad) << "\"");
        CHECK_THROWS_AS(xclient_lines({"ADDR=192.0.2.1", bad}), std::invalid_argument);
    }
}
