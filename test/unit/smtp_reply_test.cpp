// The reply parser, specified by tables: single and multi-line replies, every way a backend
// line can be malformed, the line-count bound, reuse after either outcome, and the wire form
// written back by append_reply.
#include "smtpgate/smtp/reply.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate::smtp;

namespace {

std::string_view status_name(reply_status s) {
    switch (s) {
        case reply_status::need_more: return "need_more";
        case reply_status::complete: return "complete";
        case reply_status::malformed: return "malformed";
    }
    return "?";
}

/// Feeds the lines in order; every line but the last must ask for more.
/// Returns the status after the last line.
std::string_view feed_all(reply_parser& parser, const std::vector<std::string>& lines) {
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
        INFO("line " << i + 1 << ": \"" << lines[i] << "\"");
        REQUIRE(status_name(parser.feed(lines[i])) == "need_more");
    }
    return status_name(parser.feed(lines.back()));
}

/// The reply's lines in wire form, without the CRLFs.
std::vector<std::string> wire_lines(const reply& r) {
    std::string wire;
    append_reply(wire, r);
    std::vector<std::string> lines;
    for (std::size_t pos = 0; pos < wire.size();) {
        const auto crlf = wire.find("\r\n", pos);
        REQUIRE(crlf != std::string::npos);
        lines.push_back(wire.substr(pos, crlf - pos));
        pos = crlf + 2;
    }
    return lines;
}

std::vector<std::string> repeat(std::string_view line, std::size_t n, std::string_view last) {
    std::vector<std::string> lines(n - 1, std::string(line));
    lines.emplace_back(last);
    return lines;
}

}  // namespace

TEST_CASE("smtp/reply - parses single and multi-line replies") {
    struct row {
        std::vector<std::string> lines;
        int code;
        std::vector<std::string> texts;
    };
    const std::vector<row> rows{
        {{"250 2.0.0 Ok"}, 250, {"2.0.0 Ok"}},
        {{"250"}, 250, {""}},  // RFC 5321 4.2: the text is optional
        {{"250 "}, 250, {""}},
        {{"220 mx.example ESMTP Postfix"}, 220, {"mx.example ESMTP Postfix"}},
        {{"354 End data with <CR><LF>.<CR><LF>"}, 354, {"End data with <CR><LF>.<CR><LF>"}},
        {{"421 4.3.0 bye"}, 421, {"4.3.0 bye"}},
        {{"200 lowest"}, 200, {"lowest"}},
        {{"559 highest"}, 559, {"highest"}},
        {{"250-mx.example", "250-PIPELINING", "250-SIZE 10240000", "250 8BITMIME"},
         250,
         {"mx.example", "PIPELINING", "SIZE 10240000", "8BITMIME"}},
        {{"550-5.1.1 first", "550 5.1.1 second"}, 550, {"5.1.1 first", "5.1.1 second"}},
        {{"250-", "250"}, 250, {"", ""}},
        {{"250-a", "250 "}, 250, {"a", ""}},
        {{"250-x  spaces kept  ", "250 y"}, 250, {"x  spaces kept  ", "y"}},
    };
    for (const auto& r : rows) {
        INFO("first line: \"" << r.lines.front() << "\", " << r.lines.size() << " lines");
        reply_parser parser;
        CHECK(feed_all(parser, r.lines) == "complete");
        CHECK(parser.result().code == r.code);
        CHECK(parser.result().lines == r.texts);
        CHECK(parser.result().kind() == r.code / 100);
        CHECK(parser.result().positive() == (r.code < 400));
    }
}

TEST_CASE("smtp/reply - malformed lines: bad codes, bad separators, mismatched codes") {
    struct row {
        std::vector<std::string> lines;  ///< the last one is the malformed one
    };
    const std::vector<row> rows{
        {{"199 too low"}},
        {{"100 informational"}},
        {{"600 too high"}},
        {{"260 second digit over 5"}},  // RFC 5321 4.2: %x32-35 %x30-35 %x30-39
        {{"25x ok"}},
        {{"2x0 ok"}},
        {{"250x"}},
        {{"2500 ok"}},
        {{"250\tok"}},
        {{"250_ok"}},
        {{"25"}},
        {{""}},
        {{" 250 ok"}},
        {{"abc"}},
        {{"HTTP/1.1 200 OK"}},
        {{"250-a", "251 b"}},
        {{"250-a", "550 b"}},
        {{"250-a", "250-b", "220 c"}},
        {{"250-a", "25"}},
        {{"250-a", "250x"}},
        {{"250-a", ""}},
    };
    for (const auto& r : rows) {
        INFO("malformed line: \"" << r.lines.back() << "\"");
        reply_parser parser;
        CHECK(feed_all(parser, r.lines) == "malformed");
    }
}

TEST_CASE("smtp/reply - at most max_lines lines") {
    {
        reply_parser parser;
        const auto lines = repeat("250-x", reply_parser::max_lines, "250 last");
        CHECK(feed_all(parser, lines) == "complete");
        CHECK(parser.result().lines.size() == reply_parser::max_lines);
    }
    {
        reply_parser parser;
        const auto lines = repeat("250-x", reply_parser::max_lines + 1, "250 last");
        CHECK(feed_all(parser, lines) == "malformed");
    }
    {
        // A backend that never ends its reply is cut off at the bound, not buffered forever.
        reply_parser parser;
        const auto lines = repeat("250-x", reply_parser::max_lines + 1, "250-x");
        CHECK(feed_all(parser, lines) == "malformed");
    }
}

TEST_CASE("smtp/reply - the parser starts afresh after a complete reply") {
    reply_parser parser;
    CHECK(feed_all(parser, {"250-mx.example", "250 PIPELINING"}) == "complete");
    CHECK(feed_all(parser, {"354 go ahead"}) == "complete");
    CHECK(parser.result().code == 354);
    CHECK(parser.result().lines == std::vector<std::string>{"go ahead"});
}

TEST_CASE("smtp/reply - the parser starts afresh after a malformed reply") {
    struct row {
        std::vector<std::string> bad;
    };
    const std::vector<row> rows{
        {{"250-a", "550 b"}},
        {{"199 x"}},
        {{"250-a", "garbage"}},
        {repeat("250-x", reply_parser::max_lines + 1, "250-x")},
    };
    for (const auto& r : rows) {
        INFO("after malformed \"" << r.bad.back() << "\"");
        reply_parser parser;
        REQUIRE(feed_all(parser, r.bad) == "malformed");
        CHECK(feed_all(parser, {"220-mx.example", "220 ready"}) == "complete");
        CHECK(parser.result().code == 220);
        CHECK(parser.result().lines == std::vector<std::string>{"mx.example", "ready"});
    }
}

TEST_CASE("smtp/reply - append_reply writes the wire form and parses back to the same reply") {
    struct row {
        reply r;
        std::string wire;
    };
    const std::vector<row> rows{
        {{250, {"2.0.0 Ok"}}, "250 2.0.0 Ok\r\n"},
        {{250, {"mx.example", "PIPELINING", "8BITMIME"}},
         "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"},
        {{250, {""}}, "250\r\n"},
        {{250, {"", ""}}, "250-\r\n250\r\n"},
        {{354, {"End data with <CR><LF>.<CR><LF>"}}, "354 End data with <CR><LF>.<CR><LF>\r\n"},
        {{550, {"5.1.1 a", "5.1.1 b"}}, "550-5.1.1 a\r\n550 5.1.1 b\r\n"},
    };
    for (const auto& row : rows) {
        std::string wire = "before|";
        append_reply(wire, row.r);
        CHECK(wire == "before|" + row.wire);  // appends, never overwrites

        reply_parser parser;
        CHECK(feed_all(parser, wire_lines(row.r)) == "complete");
        CHECK(parser.result().code == row.r.code);
        CHECK(parser.result().lines == row.r.lines);
    }
}
