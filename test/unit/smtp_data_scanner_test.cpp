// The end-of-data scanner, specified. One table of message bodies holds what the backend must
// receive and where the message ends; the same table is then fed cut at every position and
// one byte at a time, and scanned in reject mode. A property check over random bodies made of
// the bytes that matter ('\r', '\n', '.', NUL and a letter) closes the gaps between the rows.
//
// What is at stake is SMTP smuggling (CVE-2023-51764/51765/51766): if the proxy and the
// backend disagree about where a message ends, a client can hide a second message inside the
// first. The backend must see exactly one <CRLF>.<CRLF>, at the end the proxy found.
#include "smtpgate/smtp/data_scanner.hpp"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cstddef>
#include <optional>
#include <random>
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

std::string_view status_name(data_status s) {
    switch (s) {
        case data_status::need_more: return "need_more";
        case data_status::done: return "done";
        case data_status::bare_newline: return "bare_newline";
    }
    return "?";
}

/// What a session sees from scanning one message: the bytes for the backend, how the scan
/// ended, and where the next command starts.
struct outcome {
    std::string out;
    std::string_view status = "need_more";
    std::size_t consumed = 0;
};

/// Feeds `input` to a fresh scanner as separate reads cut at `cuts` (ascending), and stops at
/// the first result that is not need_more, as the session does.
outcome scan_cut(std::string_view input, bool normalize, const std::vector<std::size_t>& cuts) {
    data_scanner scanner(normalize);
    outcome o;
    std::size_t start = 0;
    auto stops = cuts;
    stops.push_back(input.size());
    for (const auto stop : stops) {
        const auto piece = input.substr(start, stop - start);
        const data_result r = scanner.scan(piece, o.out);
        REQUIRE(r.consumed <= piece.size());
        o.status = status_name(r.status);
        o.consumed = start + r.consumed;
        if (r.status != data_status::need_more) return o;
        REQUIRE(r.consumed == piece.size());  // need_more takes everything it was given
        start = stop;
    }
    return o;
}

outcome scan_whole(std::string_view input, bool normalize) {
    return scan_cut(input, normalize, {});
}

std::vector<std::size_t> every_byte(std::size_t size) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < size; ++i) {
        cuts.push_back(i);
    }
    return cuts;
}

struct scan_case {
    std::string_view name;
    std::string body;   ///< the message as the client sent it, with its end if it has one
    std::string after;  ///< pipelined bytes after the end: never consumed
    std::string want;   ///< what the backend receives
    std::string_view status;
    /// A bare CR or LF before the end: reject mode refuses the message.
    bool bare = false;

    std::string input() const { return body + after; }
    std::size_t want_consumed() const { return body.size(); }
};

const std::string long_line(4096, 'x');

// Every row is what normalize mode must produce. The smuggling rows carry a fake end and a
// pipelined "MAIL FROM" that a confused backend would take as a second transaction.
const std::vector<scan_case>& cases() {
    static const std::vector<scan_case> rows{
        // --- Clean bodies pass byte for byte ---------------------------------------------
        {"plain CRLF body", "Subject: hi\r\n\r\nHello.\r\n.\r\n", "",
         "Subject: hi\r\n\r\nHello.\r\n.\r\n", "done"},
        {"empty message", ".\r\n", "", ".\r\n", "done"},
        {"one empty line", "\r\n.\r\n", "", "\r\n.\r\n", "done"},
        {"dot-stuffed lines pass as sent", "..x\r\n..\r\n...\r\n.\r\n", "",
         "..x\r\n..\r\n...\r\n.\r\n", "done"},
        {"dots that do not start a line", "a.\r\nb.c\r\n .\r\n.\r\n", "",
         "a.\r\nb.c\r\n .\r\n.\r\n", "done"},
        {"8-bit and NUL bytes", "caf\xc3\xa9\0\xff\r\n\0\r\n\x80.\r\n.\r\n"s, "",
         "caf\xc3\xa9\0\xff\r\n\0\r\n\x80.\r\n.\r\n"s, "done"},
        {"a very long line", long_line + "\r\n.\r\n", "", long_line + "\r\n.\r\n", "done"},
        {"NUL before a dot is content", "a\r\n\0.\r\nb\r\n.\r\n"s, "QUIT\r\n",
         "a\r\n\0.\r\nb\r\n.\r\n"s, "done"},
        // --- The end, and what comes after it ------------------------------------------------
        {"pipelined commands after the end are not consumed", "a\r\n.\r\n",
         "MAIL FROM:<b@example.org>\r\nQUIT\r\n", "a\r\n.\r\n", "done"},
        {"empty message, then QUIT", ".\r\n", "QUIT\r\n", ".\r\n", "done"},
        {"a second end in the pipelined bytes", "a\r\n.\r\n", ".\r\n", "a\r\n.\r\n", "done"},
        // --- Smuggling: a lone dot touched by a bare ending is content ----------------------
        {"\\n.\\n", "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"\\r.\\r", "a\r.\rMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"\\r\\n.\\n", "a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"\\n.\\r\\n", "a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"\\r.\\r\\n", "a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"\\r\\n.\\r, then CRLF", "a\r\n.\r\r\nMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\n\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"\\r\\n.\\rX", "a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {".\\n at the start", ".\nMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {".\\r at the start", ".\rMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"\\n.\\r\\n at the start", "\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"\\r.\\r\\n at the start", "\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", "QUIT\r\n",
         "\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "done", true},
        {"two smuggled dots in a row, then the real end", "a\n.\n.\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\n..\r\n.\r\n", "done", true},
        {"a smuggled dot right before the real end", "a\n.\r\n.\r\n", "QUIT\r\n",
         "a\r\n..\r\n.\r\n", "done", true},
        // --- Bare line endings become CRLF ----------------------------------------------------
        {"bare LF", "a\nb\r\n.\r\n", "", "a\r\nb\r\n.\r\n", "done", true},
        {"bare CR", "a\rb\r\n.\r\n", "", "a\r\nb\r\n.\r\n", "done", true},
        {"CR CR LF", "a\r\r\n.\r\n", "", "a\r\n\r\n.\r\n", "done", true},
        {"LF CR", "a\n\rb\r\n.\r\n", "", "a\r\n\r\nb\r\n.\r\n", "done", true},
        {"LF LF", "a\n\nb\r\n.\r\n", "", "a\r\n\r\nb\r\n.\r\n", "done", true},
        {"bare endings around NUL and 8-bit", "\0\n\xff\r\xc3\xa9\r\n.\r\n"s, "",
         "\0\r\n\xff\r\n\xc3\xa9\r\n.\r\n"s, "done", true},
        // --- No end yet: everything consumed, nothing that could end the message sent --------
        {"no end yet", "a\r\nb\r\n", "", "a\r\nb\r\n", "need_more"},
        {"a dot at the start of a line is held", "a\r\n.", "", "a\r\n", "need_more"},
        {"a dot and CR are held", "a\r\n.\r", "", "a\r\n", "need_more"},
        {"a CR at the end is held", "a\r", "", "a", "need_more"},
        {"a lone dot after a bare LF does not end the message", "a\n.\r\n", "", "a\r\n..\r\n",
         "need_more", true},
        {"a lone dot after a bare CR does not end the message", "a\r.\r\n", "", "a\r\n..\r\n",
         "need_more", true},
        {"a lone dot ended by a bare LF does not end the message", "a\r\n.\n", "", "a\r\n..\r\n",
         "need_more", true},
    };
    return rows;
}

}  // namespace

TEST_CASE("smtp/data_scanner - normalize: what the backend receives and where the message ends") {
    for (const auto& c : cases()) {
        INFO(c.name << ": \"" << escape(c.input()) << "\"");
        const outcome got = scan_whole(c.input(), true);
        CHECK(got.status == c.status);
        CHECK(escape(got.out) == escape(c.want));
        CHECK(got.consumed == c.want_consumed());
    }
}

TEST_CASE("smtp/data_scanner - normalize: any cut of the reads gives the same result") {
    for (const auto& c : cases()) {
        const std::string input = c.input();
        for (std::size_t cut = 0; cut <= input.size(); ++cut) {
            const outcome got = scan_cut(input, true, {cut});
            if (got.status == c.status && got.out == c.want && got.consumed == c.want_consumed()) {
                continue;  // a long row has thousands of cuts: only failures are reported
            }
            INFO(c.name << ", cut after " << cut << " bytes: \"" << escape(input) << "\"");
            CHECK(got.status == c.status);
            CHECK(escape(got.out) == escape(c.want));
            CHECK(got.consumed == c.want_consumed());
        }
        INFO(c.name << ", one byte per read: \"" << escape(input) << "\"");
        const outcome got = scan_cut(input, true, every_byte(input.size()));
        CHECK(got.status == c.status);
        CHECK(escape(got.out) == escape(c.want));
        CHECK(got.consumed == c.want_consumed());
    }
}

TEST_CASE("smtp/data_scanner - reject: a bare CR or LF stops the scan, clean bodies as normalize") {
    for (const auto& c : cases()) {
        const std::string input = c.input();
        INFO(c.name << ": \"" << escape(input) << "\"");
        std::vector<std::vector<std::size_t>> ways{{}, every_byte(input.size())};
        for (std::size_t cut = 0; cut <= input.size(); cut += input.size() > 200 ? 997 : 1) {
            ways.push_back({cut});
        }
        for (const auto& cuts : ways) {
            INFO("reads cut " << (cuts.empty()      ? std::string("nowhere")
                                  : cuts.size() > 1 ? std::string("after every byte")
                                                    : "after " + std::to_string(cuts[0])));
            const outcome got = scan_cut(input, false, cuts);
            if (c.bare) {
                CHECK(got.status == "bare_newline");
                CHECK(got.consumed <= input.size());
                // Nothing sent so far may end the message or carry a bare line ending.
                CHECK(got.out.find("\r\n.\r\n") == std::string::npos);
                CHECK_FALSE(got.out.starts_with(".\r\n"));
            } else {
                CHECK(got.status == c.status);
                CHECK(escape(got.out) == escape(c.want));
                CHECK(got.consumed == c.want_consumed());
            }
        }
    }
}

TEST_CASE("smtp/data_scanner - reject: a CR last in one read is judged by the next byte") {
    {
        data_scanner scanner(false);
        std::string out;
        CHECK(status_name(scanner.scan("a\r", out).status) == "need_more");
        const auto r = scanner.scan("b\r\n.\r\n", out);
        CHECK(status_name(r.status) == "bare_newline");
    }
    {
        data_scanner scanner(false);
        std::string out;
        CHECK(status_name(scanner.scan("a\r", out).status) == "need_more");
        const auto r = scanner.scan("\n.\r\nQUIT\r\n", out);
        CHECK(status_name(r.status) == "done");
        CHECK(r.consumed == 4);
        CHECK(escape(out) == escape("a\r\n.\r\n"));
    }
}

TEST_CASE("smtp/data_scanner - reset starts a new message at the beginning of a line") {
    data_scanner scanner;
    std::string out;
    REQUIRE(status_name(scanner.scan("a\r\n.\r\n", out).status) == "done");
    out.clear();
    scanner.reset();
    const auto r = scanner.scan(".\r\nQUIT\r\n", out);
    CHECK(status_name(r.status) == "done");
    CHECK(r.consumed == 3);
    CHECK(out == ".\r\n");

    // reset() also forgets a message abandoned in the middle of a line.
    out.clear();
    REQUIRE(status_name(scanner.scan("half a line\r", out).status) == "need_more");
    scanner.reset();
    out.clear();
    CHECK(status_name(scanner.scan(".\r\n", out).status) == "done");
    CHECK(out == ".\r\n");
}

namespace {

/// Lines ended by CRLF, a bare CR or a bare LF; `text` ends with a line ending.
std::vector<std::string> split_any(std::string_view text) {
    std::vector<std::string> lines;
    while (!text.empty()) {
        const auto end = text.find_first_of("\r\n");
        REQUIRE(end != std::string_view::npos);
        lines.emplace_back(text.substr(0, end));
        const bool crlf = text.substr(end).starts_with("\r\n");
        text.remove_prefix(end + (crlf ? 2 : 1));
    }
    return lines;
}

/// Lines ended by CRLF; nullopt if `text` holds a bare CR or LF or does not end with CRLF.
std::optional<std::vector<std::string>> split_crlf(std::string_view text) {
    std::vector<std::string> lines;
    while (!text.empty()) {
        const auto end = text.find("\r\n");
        if (end == std::string_view::npos) return std::nullopt;
        const auto line = text.substr(0, end);
        if (line.find_first_of("\r\n") != std::string_view::npos) return std::nullopt;
        lines.emplace_back(line);
        text.remove_prefix(end + 2);
    }
    return lines;
}

/// RFC 5321 4.5.2: the receiver drops the first dot of a line that starts with one.
std::string unstuff(std::string_view line) {
    return std::string(line.starts_with('.') ? line.substr(1) : line);
}

/// Where the backend sees the end of data: ".\r\n" as the first line, or the first
/// "\r\n.\r\n". Returns the size of `text` up to and including it, or npos.
std::size_t end_of_data(std::string_view text) {
    if (text.starts_with(".\r\n")) return 3;
    const auto pos = text.find("\r\n.\r\n");
    return pos == std::string_view::npos ? pos : pos + 5;
}

}  // namespace

TEST_CASE("smtp/data_scanner - random bodies: one end, at the very end, and every line relayed") {
    std::mt19937 rng(5321);  // fixed seed: a failure reproduces
    const std::string alphabet{'\r', '\n', '.', 'a', '\0'};
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::uniform_int_distribution<std::size_t> length(0, 24);

    for (int i = 0; i < 20000; ++i) {
        std::string body;
        for (std::size_t n = length(rng); n > 0; --n) {
            body.push_back(alphabet[pick(rng)]);
        }
        // A real end follows the random bytes, so every message ends; it may end earlier.
        const std::string input = body + "\r\n.\r\n" + "QUIT\r\n";
        INFO("input: \"" << escape(input) << "\"");

        const outcome got = scan_whole(input, true);
        REQUIRE(got.status == "done");
        // The client's end is the first CRLF-framed lone dot: CR LF is always a CRLF, so the
        // first "\r\n.\r\n" of the input (or ".\r\n" first) is where the message ends.
        CHECK(got.consumed == end_of_data(input));

        // The backend sees exactly one end, at the very end of what it receives.
        CHECK(end_of_data(got.out) == got.out.size());

        // Line by line: every line of the client's message is relayed as sent, ended by CRLF,
        // except a lone dot that is not the end, which is stuffed to "..".
        const std::string_view sent = std::string_view(input).substr(0, got.consumed);
        REQUIRE(got.out.ends_with(".\r\n"));
        const auto got_lines = split_crlf(got.out.substr(0, got.out.size() - 3));
        REQUIRE(got_lines.has_value());  // no bare CR or LF reaches the backend
        const auto sent_lines = split_any(sent.substr(0, sent.size() - 3));
        std::vector<std::string> want_lines;
        for (const auto& line : sent_lines) {
            want_lines.push_back(line == "." ? ".." : line);
        }
        CHECK(*got_lines == want_lines);

        // So what the backend stores (its lines, dot-unstuffed) is what the client sent (its
        // lines, dot-unstuffed, a lone dot that did not end the message being a dot of text).
        std::vector<std::string> stored;
        std::vector<std::string> meant;
        for (const auto& line : *got_lines) {
            stored.push_back(unstuff(line));
        }
        for (const auto& line : sent_lines) {
            meant.push_back(line == "." ? line : unstuff(line));
        }
        CHECK(stored == meant);

        // Any cut of the reads gives the same.
        const std::size_t cut = std::uniform_int_distribution<std::size_t>(0, input.size())(rng);
        const outcome split = scan_cut(input, true, {cut});
        INFO("cut after " << cut << " bytes");
        CHECK(split.status == got.status);
        CHECK(escape(split.out) == escape(got.out));
        CHECK(split.consumed == got.consumed);

        // Reject mode refuses exactly the messages normalize had to change a line ending in.
        const outcome rejected = scan_whole(input, false);
        const bool had_bare = split_crlf(sent) == std::nullopt;
        if (had_bare) {
            CHECK(rejected.status == "bare_newline");
        } else {
            CHECK(rejected.status == got.status);
            CHECK(escape(rejected.out) == escape(got.out));
            CHECK(rejected.consumed == got.consumed);
        }
    }
}
