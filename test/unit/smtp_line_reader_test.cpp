// Line framing, specified: where a line ends (CRLF, bare LF, bare CR), reads that cut a line or
// its terminator anywhere, and the length bound that throws an over-long line away as it
// arrives instead of buffering it.
#include "smtpgate/smtp/line_reader.hpp"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>
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
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\\' || c == '"') {
            out += fmt::format("\\{}", c);
        } else if (u < 0x20 || u >= 0x7f) {
            out += fmt::format("\\x{:02x}", u);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

/// Copies `bytes` into the buffer's free space, as one socket read would.
void feed(input_buffer& in, std::string_view bytes) {
    const auto space = in.prepare();
    REQUIRE(bytes.size() <= space.size());
    std::copy(bytes.begin(), bytes.end(), space.begin());
    in.commit(bytes.size());
}

/// One event as the tables spell it: `line "abc"`, `bare "abc"`, `too_long`, `too_long bare`.
std::string describe(const line_event& ev) {
    switch (ev.status) {
        case line_status::line:
            return fmt::format("{} \"{}\"", ev.bare_newline ? "bare" : "line", escape(ev.text));
        case line_status::too_long: return ev.bare_newline ? "too_long bare" : "too_long";
        case line_status::need_more: break;
    }
    return "need_more";
}

using events = std::vector<std::string>;

/// Every event the buffered bytes give, up to the first need_more.
events drain(line_reader& reader, input_buffer& in) {
    events got;
    for (auto ev = reader.next(in); ev.status != line_status::need_more; ev = reader.next(in)) {
        got.push_back(describe(ev));
        REQUIRE(got.size() < 100000);  // a reader that stops consuming would loop forever
    }
    return got;
}

/// Feeds `input` as separate reads cut at `cuts` (ascending), draining after each read.
events read_cut(std::string_view input, std::size_t max_length,
                const std::vector<std::size_t>& cuts = {}) {
    input_buffer in(input.size() + 2);
    line_reader reader(max_length);
    events got;
    std::size_t start = 0;
    auto stops = cuts;
    stops.push_back(input.size());
    for (const auto stop : stops) {
        feed(in, input.substr(start, stop - start));
        const auto more = drain(reader, in);
        got.insert(got.end(), more.begin(), more.end());
        start = stop;
    }
    return got;
}

struct framing_case {
    std::string_view name;
    std::string input;
    events want;
    std::string_view left;  ///< what stays buffered for the next read
};

const std::vector<framing_case>& framing_cases() {
    static const std::vector<framing_case> cases{
        {"CRLF", "MAIL FROM:<a@b>\r\n", {R"(line "MAIL FROM:<a@b>")"}, ""},
        {"an empty line", "\r\n", {R"(line "")"}, ""},
        {"bare LF", "abc\n", {R"(bare "abc")"}, ""},
        {"bare CR with a byte after it", "abc\rdef\r\n", {R"(bare "abc")", R"(line "def")"}, ""},
        {"CR CR LF: a bare CR, then an empty CRLF line",
         "a\r\r\n",
         {R"(bare "a")", R"(line "")"},
         ""},
        {"LF CR: two bare endings", "a\n\rb\r\n", {R"(bare "a")", R"(bare "")", R"(line "b")"}, ""},
        {"several lines in one read",
         "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n",
         {R"(line "EHLO x")", R"(line "MAIL FROM:<a@b>")", R"(line "RCPT TO:<c@d>")"},
         ""},
        {"no terminator yet", "abc", {}, "abc"},
        {"a complete line, then part of the next", "a\r\nbc", {R"(line "a")"}, "bc"},
        {"a CR as the last buffered byte waits for the next read", "abc\r", {}, "abc\r"},
        {"a lone CR waits too", "a\r\n\r", {R"(line "a")"}, "\r"},
        {"8-bit, NUL and TAB are text",
         "caf\xc3\xa9\0\tx\r\n"s,
         {R"(line "caf\xc3\xa9\x00\x09x")"},
         ""},
    };
    return cases;
}

}  // namespace

TEST_CASE("smtp/line_reader - ends a line at CRLF, bare LF or bare CR") {
    for (const auto& c : framing_cases()) {
        INFO(c.name << ": \"" << escape(c.input) << "\"");
        input_buffer in(64);
        line_reader reader(32);
        feed(in, c.input);
        const events got = drain(reader, in);
        CHECK(got == c.want);
        CHECK(escape(in.data()) == escape(c.left));
    }
}

TEST_CASE("smtp/line_reader - the events do not depend on where reads cut the bytes") {
    for (const auto& c : framing_cases()) {
        const events whole = read_cut(c.input, 32);
        REQUIRE(whole == c.want);
        for (std::size_t cut = 0; cut <= c.input.size(); ++cut) {
            INFO(c.name << ", cut after " << cut << " bytes: \"" << escape(c.input) << "\"");
            CHECK(read_cut(c.input, 32, {cut}) == c.want);
        }
        std::vector<std::size_t> every_byte;
        for (std::size_t i = 1; i < c.input.size(); ++i) {
            every_byte.push_back(i);
        }
        INFO(c.name << ", one byte per read");
        CHECK(read_cut(c.input, 32, every_byte) == c.want);
    }
}

TEST_CASE("smtp/line_reader - a CRLF split across two reads is one CRLF") {
    input_buffer in(64);
    line_reader reader(32);
    feed(in, "QUIT\r");
    CHECK(drain(reader, in).empty());
    feed(in, "\nNOOP\r\n");
    CHECK(drain(reader, in) == events{R"(line "QUIT")", R"(line "NOOP")"});
}

TEST_CASE("smtp/line_reader - a CR last in one read and no LF first in the next is a bare CR") {
    input_buffer in(64);
    line_reader reader(32);
    feed(in, "QUIT\r");
    CHECK(drain(reader, in).empty());
    feed(in, "NOOP\r\n");
    CHECK(drain(reader, in) == events{R"(bare "QUIT")", R"(line "NOOP")"});
}

TEST_CASE("smtp/line_reader - a line of exactly the limit passes, one byte more is too_long") {
    struct row {
        std::string input;
        events want;
    };
    const std::vector<row> rows{
        {"12345678\r\n", {R"(line "12345678")"}},
        {"123456789\r\n", {"too_long"}},
        {"123456789\n", {"too_long bare"}},
        {"123456789\rX\r\n", {"too_long bare", R"(line "X")"}},
        {"12345678\n", {R"(bare "12345678")"}},
    };
    for (const auto& r : rows) {
        INFO("limit 8: \"" << escape(r.input) << "\"");
        input_buffer in(64);
        line_reader reader(8);
        feed(in, r.input);
        CHECK(drain(reader, in) == r.want);
        CHECK_FALSE(reader.discarding());
    }
}

TEST_CASE("smtp/line_reader - an over-long line is reported once, when it ends, not before") {
    input_buffer in(64);
    line_reader reader(16);
    const std::string chunk(30, 'x');

    feed(in, chunk);
    CHECK(drain(reader, in).empty());
    CHECK(reader.discarding());
    CHECK(in.size() <= 16);  // discarded as it arrives, never buffered whole

    feed(in, chunk);
    CHECK(drain(reader, in).empty());
    CHECK(reader.discarding());
    CHECK(in.size() <= 16);

    feed(in, "yy\r\nQUIT\r\n");
    CHECK(drain(reader, in) == events{"too_long", R"(line "QUIT")"});
    CHECK_FALSE(reader.discarding());
}

TEST_CASE(
    "smtp/line_reader - an over-long line whose CRLF is split across reads ends at that CRLF") {
    input_buffer in(64);
    line_reader reader(16);
    feed(in, std::string(30, 'x') + "\r");
    CHECK(drain(reader, in).empty());
    // The CR is kept while the rest is discarded: the LF that follows completes a CRLF, not a
    // bare LF and not an empty line.
    feed(in, "\nQUIT\r\n");
    CHECK(drain(reader, in) == events{"too_long", R"(line "QUIT")"});
}

TEST_CASE("smtp/line_reader - the line after a too-long line is intact") {
    for (const std::string_view ending : {"\r\n", "\n", "\r"}) {
        INFO("the long line ends with \"" << escape(ending) << "\"");
        input_buffer in(128);
        line_reader reader(16);
        feed(in, std::string(40, 'x') + std::string(ending) + "MAIL FROM:<a@b>\r\n");
        const std::string long_line = ending == "\r\n" ? "too_long" : "too_long bare";
        CHECK(drain(reader, in) == events{long_line, R"(line "MAIL FROM:<a@b>")"});
    }
}

TEST_CASE("smtp/line_reader - a 1 MB line goes through a small buffer that never fills") {
    constexpr std::size_t capacity = 1024;
    constexpr std::size_t max_length = 1000;
    constexpr std::size_t line_size = 1024 * 1024;
    input_buffer in(capacity);
    line_reader reader(max_length);

    std::size_t sent = 0;
    std::size_t reads = 0;
    while (sent < line_size) {
        const auto space = in.prepare();
        // A buffer with no room while discarding would stall the connection for good.
        REQUIRE(!space.empty());
        const std::size_t n = std::min({space.size(), std::size_t{700}, line_size - sent});
        std::fill_n(space.begin(), n, static_cast<char>('a' + reads % 26));
        in.commit(n);
        sent += n;
        ++reads;
        const events got = drain(reader, in);
        INFO("after " << sent << " bytes of the line");
        REQUIRE(got.empty());
        REQUIRE(in.size() <= capacity);
        REQUIRE_FALSE(in.full());
    }
    CHECK(reader.discarding());
    feed(in, "\r\nQUIT\r\n");
    CHECK(drain(reader, in) == events{"too_long", R"(line "QUIT")"});
    CHECK(in.empty());
}
