// Named replies: the wire form append_reply writes (code, separator, %h replaced, CRLF), and
// the shape every named reply must have for the client and for reply_parser.
#include "smtpgate/smtp/replies.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/smtp/reply.hpp"

using namespace smtpgate::smtp;

TEST_CASE("smtp/replies - append_reply writes code, space, text with %h replaced, CRLF") {
    struct row {
        named_reply reply;
        std::string_view host;
        std::string want;
    };
    const std::vector<row> rows{
        {replies::ok, "gate.example", "250 2.0.0 Ok\r\n"},
        {replies::timeout, "gate.example", "421 4.4.2 gate.example Error: timeout exceeded\r\n"},
        {replies::greeting, "gate.example", "220 gate.example ESMTP\r\n"},
        {replies::helo_ok, "gate.example", "250 gate.example\r\n"},
        {named_reply{250, "%h and %h"}, "gate.example", "250 gate.example and gate.example\r\n"},
        {named_reply{250, "%h%h"}, "g", "250 gg\r\n"},
        {named_reply{250, "100%"}, "g", "250 100%\r\n"},
        {named_reply{250, "%H is not %h"}, "g", "250 %H is not g\r\n"},
        // The host name is inserted, never scanned again: no loop, no double replacement.
        {named_reply{250, "%h"}, "%h", "250 %h\r\n"},
        {named_reply{250, "[%h]"}, "", "250 []\r\n"},
    };
    for (const auto& r : rows) {
        INFO("text \"" << r.reply.text << "\", host \"" << r.host << "\"");
        std::string got = "earlier\r\n";
        append_reply(got, r.reply, r.host);
        CHECK(got == "earlier\r\n" + r.want);  // appends, never overwrites
    }
}

TEST_CASE("smtp/replies - append_reply_continued writes a '-' continuation line") {
    std::string got;
    append_reply_continued(got, replies::greeting, "gate.example");
    append_reply(got, named_reply{220, "second line"}, "gate.example");
    CHECK(got == "220-gate.example ESMTP\r\n220 second line\r\n");
}

TEST_CASE("smtp/replies - every named reply is one well-formed line of its class") {
    struct row {
        std::string_view name;
        named_reply reply;
    };
    const std::vector<row> rows{
        {"backend_unreachable", replies::backend_unreachable},
        {"backend_failed", replies::backend_failed},
        {"timeout", replies::timeout},
        {"shutting_down", replies::shutting_down},
        {"too_many_connections", replies::too_many_connections},
        {"access_denied", replies::access_denied},
        {"too_many_client_connections", replies::too_many_client_connections},
        {"connection_rate_exceeded", replies::connection_rate_exceeded},
        {"connecting_too_often", replies::connecting_too_often},
        {"tempfail_command", replies::tempfail_command},
        {"greeting", replies::greeting},
        {"pregreet", replies::pregreet},
        {"nullserver_command", replies::nullserver_command},
        {"goodbye", replies::goodbye},
        {"ok", replies::ok},
        {"helo_ok", replies::helo_ok},
        {"too_many_errors", replies::too_many_errors},
        {"line_too_long", replies::line_too_long},
        {"bare_newline_command", replies::bare_newline_command},
        {"invalid_character", replies::invalid_character},
        {"unknown_command", replies::unknown_command},
        {"syntax_error", replies::syntax_error},
        {"bdat_not_offered", replies::bdat_not_offered},
        {"starttls_not_offered", replies::starttls_not_offered},
        {"not_authorized", replies::not_authorized},
        {"auth_syntax", replies::auth_syntax},
        {"non_smtp_command", replies::non_smtp_command},
        {"bare_newline_data", replies::bare_newline_data},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        std::string wire;
        append_reply(wire, r.reply, "gate.example");
        CHECK(wire.starts_with(std::to_string(r.reply.code) + " "));
        CHECK(wire.ends_with("\r\n"));
        CHECK(wire.find_first_of("\r\n") == wire.size() - 2);  // one line
        CHECK(wire.find("%h") == std::string::npos);

        reply_parser parser;
        CHECK(parser.feed(std::string_view(wire).substr(0, wire.size() - 2))
              == reply_status::complete);
        CHECK(parser.result().code == r.reply.code);

        // RFC 3463 2: the enhanced status code's class is the reply code's class.
        const char first = r.reply.text.front();
        if (first >= '0' && first <= '9') {
            CHECK(first == static_cast<char>('0' + r.reply.code / 100));
        }
        // RFC 5321 3.8: a reply after which the proxy closes is 221 or a 421, or a 5xx that
        // ends the session (RFC 7504 521, or 554 at connection time).
        if (r.reply.closes) {
            CHECK((r.reply.code == 221 || r.reply.code == 421 || r.reply.code == 521
                   || r.reply.code == 554));
        }
    }
}
