// The command parser, specified by tables: every verb in any case, MAIL/RCPT paths and
// parameters, the syntax errors the proxy answers itself, control characters, and the
// lines that are not SMTP at all (postscreen's non-SMTP command test).
#include "smtpgate/smtp/command.hpp"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate::smtp;
using namespace std::string_literals;

namespace {

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

std::string_view error_name(command_error e) {
    switch (e) {
        case command_error::none: return "none";
        case command_error::syntax: return "syntax";
        case command_error::invalid_character: return "invalid_character";
    }
    return "?";
}

/// The line with its first word (the verb) rewritten by `f`; the arguments stay as they are.
template <typename F>
std::string with_verb(std::string_view line, F f) {
    std::string out(line);
    const auto end = std::min(out.find_first_of(" \t"), out.size());
    for (std::size_t i = 0; i < end; ++i) {
        out[i] = f(i, static_cast<unsigned char>(out[i]));
    }
    return out;
}

std::string upper(std::string_view line) {
    return with_verb(line, [](std::size_t, unsigned char c) { return char(std::toupper(c)); });
}
std::string lower(std::string_view line) {
    return with_verb(line, [](std::size_t, unsigned char c) { return char(std::tolower(c)); });
}
std::string mixed(std::string_view line) {
    return with_verb(line, [](std::size_t i, unsigned char c) {
        return char(i % 2 ? std::tolower(c) : std::toupper(c));
    });
}

}  // namespace

TEST_CASE("smtp/command - recognizes every verb in any case") {
    struct row {
        std::string_view line;
        std::string_view kind;
        std::string_view args;
    };
    const std::vector<row> rows{
        {"HELO client.example", "helo", "client.example"},
        {"EHLO client.example", "ehlo", "client.example"},
        {"EHLO [192.0.2.1]", "ehlo", "[192.0.2.1]"},
        {"MAIL FROM:<a@example.org>", "mail", "FROM:<a@example.org>"},
        {"RCPT TO:<b@example.net>", "rcpt", "TO:<b@example.net>"},
        {"DATA", "data", ""},
        {"RSET", "rset", ""},
        {"NOOP", "noop", ""},
        {"NOOP whatever", "noop", "whatever"},  // RFC 5321 4.1.1.9: a parameter is allowed
        {"QUIT", "quit", ""},
        {"VRFY postmaster", "vrfy", "postmaster"},
        {"EXPN staff", "expn", "staff"},
        {"HELP", "help", ""},
        {"HELP MAIL", "help", "MAIL"},
        {"ETRN example.org", "etrn", "example.org"},
        {"AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ=", "auth", "PLAIN dGVzdAB0ZXN0ADEyMzQ="},
        {"STARTTLS", "starttls", ""},
        {"BDAT 100 LAST", "bdat", "100 LAST"},
        {"XCLIENT ADDR=192.0.2.1 NAME=spike.example", "xclient",
         "ADDR=192.0.2.1 NAME=spike.example"},
        {"XFORWARD ADDR=192.0.2.1", "xforward", "ADDR=192.0.2.1"},
        {"PROXY TCP4 192.0.2.1 198.51.100.1 56324 25", "proxy",
         "TCP4 192.0.2.1 198.51.100.1 56324 25"},
        {"HELO\tclient.example", "helo", "client.example"},  // TAB separates too
        {"DATA   ", "data", ""},                             // trailing spaces carry nothing
        {"EHLO   client.example  ", "ehlo", "client.example"},
    };
    for (const auto& r : rows) {
        for (const auto& line : {upper(r.line), lower(r.line), mixed(r.line)}) {
            INFO("line: \"" << escape(line) << "\"");
            const command cmd = parse_command(line);
            CHECK(verb_name(cmd.kind) == r.kind);
            CHECK(error_name(cmd.error) == "none");
            CHECK(cmd.name == line.substr(0, line.find_first_of(" \t")));  // the verb as sent
            CHECK(cmd.args == r.args);
        }
    }
}

TEST_CASE("smtp/command - MAIL and RCPT: path without brackets, and parameters") {
    struct row {
        std::string_view line;
        std::string_view kind;
        std::string_view path;
        std::string_view params;
    };
    const std::vector<row> rows{
        {"MAIL FROM:<a@b> SIZE=10", "mail", "a@b", "SIZE=10"},
        {"MAIL FROM:<a@b>", "mail", "a@b", ""},
        {"mail from:<a@b> size=10", "mail", "a@b", "size=10"},
        {"MAIL FROM:<>", "mail", "", ""},  // the null reverse-path (RFC 5321 4.5.5)
        {"MAIL FROM:<> SIZE=10 BODY=8BITMIME", "mail", "", "SIZE=10 BODY=8BITMIME"},
        {"MAIL FROM: <a@b>", "mail", "a@b", ""},  // a space after the colon (Postfix allows it)
        {"MAIL FROM: <a@b> SIZE=10", "mail", "a@b", "SIZE=10"},
        {"MAIL FROM:a@b", "mail", "a@b", ""},  // a bare address, as Postfix and sendmail take it
        {"MAIL FROM:a@b SIZE=10", "mail", "a@b", "SIZE=10"},
        {"MAIL FROM:<a@b>  SIZE=10  BODY=8BITMIME  ", "mail", "a@b", "SIZE=10  BODY=8BITMIME"},
        {"MAIL FROM:<a@b>\tSIZE=10", "mail", "a@b", "SIZE=10"},
        {R"(MAIL FROM:<"a>b c"@example.org> SIZE=10)", "mail", R"("a>b c"@example.org)", "SIZE=10"},
        {R"(MAIL FROM:<"a\"> b"@example.org>)", "mail", R"("a\"> b"@example.org)", ""},
        {"MAIL FROM:<j\xc3\xb6rg@\xe4\xbe\x8b.jp> SMTPUTF8", "mail", "j\xc3\xb6rg@\xe4\xbe\x8b.jp",
         "SMTPUTF8"},  // RFC 6531: 8-bit is not a control character
        {"RCPT TO:<b@example.net>", "rcpt", "b@example.net", ""},
        {"rcpt to:<b@example.net> NOTIFY=NEVER", "rcpt", "b@example.net", "NOTIFY=NEVER"},
        {"RCPT TO: <Postmaster>", "rcpt", "Postmaster", ""},
        {"RCPT TO:b@example.net", "rcpt", "b@example.net", ""},
    };
    for (const auto& r : rows) {
        INFO("line: \"" << escape(r.line) << "\"");
        const command cmd = parse_command(r.line);
        CHECK(verb_name(cmd.kind) == r.kind);
        CHECK(error_name(cmd.error) == "none");
        CHECK(cmd.path == r.path);
        CHECK(cmd.params == r.params);
    }
}

TEST_CASE("smtp/command - syntax errors: missing or forbidden arguments") {
    struct row {
        std::string_view line;
        std::string_view kind;
    };
    const std::vector<row> rows{
        {"RCPT TO:<>", "rcpt"},  // RFC 5321 4.1.1.3: a forward-path is never null
        {"RCPT TO: <>", "rcpt"},
        {"RCPT TO:", "rcpt"},
        {"RCPT", "rcpt"},
        {"RCPT <b@example.net>", "rcpt"},
        {"RCPT FROM:<b@example.net>", "rcpt"},
        {"RCPT TO <b@example.net>", "rcpt"},
        {"MAIL", "mail"},
        {"MAIL <a@b>", "mail"},
        {"MAIL FROM:", "mail"},
        {"MAIL FROM:   ", "mail"},
        {"MAIL FROM <a@b>", "mail"},
        {"MAIL TO:<a@b>", "mail"},
        {"MAIL FROM:<a@b", "mail"},         // no closing bracket
        {R"(MAIL FROM:<"a>b@c>)", "mail"},  // the quote never closes, so neither does the path
        {"HELO", "helo"},
        {"HELO ", "helo"},
        {"EHLO", "ehlo"},
        {"ehlo   ", "ehlo"},
        {"VRFY", "vrfy"},
        {"EXPN", "expn"},
        {"ETRN", "etrn"},
        {"AUTH", "auth"},
        {"DATA x", "data"},          // RFC 5321 4.1.1.4
        {"RSET x", "rset"},          // RFC 5321 4.1.1.5
        {"QUIT now", "quit"},        // RFC 5321 4.1.1.10
        {"STARTTLS x", "starttls"},  // RFC 3207 4
        {"starttls x", "starttls"},
    };
    for (const auto& r : rows) {
        INFO("line: \"" << escape(r.line) << "\"");
        const command cmd = parse_command(r.line);
        CHECK(verb_name(cmd.kind) == r.kind);
        CHECK(error_name(cmd.error) == "syntax");
    }
}

TEST_CASE("smtp/command - control characters are invalid, TAB and 8-bit are not") {
    struct row {
        std::string line;
        std::string_view kind;
        std::string_view error;
    };
    const std::vector<row> rows{
        {"MAIL FROM:<a\0@b>"s, "mail", "invalid_character"},
        {"\0"s, "unknown", "invalid_character"},
        {"HELO a\x01"
         "b",
         "helo", "invalid_character"},
        {"NOOP\x7f", "unknown", "invalid_character"},  // DEL glued to the verb: no verb at all
        {"NOOP \x7f", "noop", "invalid_character"},
        {"RCPT TO:<b@c>\x1b[0m", "rcpt", "invalid_character"},
        {"EHLO x\x1f", "ehlo", "invalid_character"},
        {"FOO\x02 bar", "unknown", "invalid_character"},
        {"DATA\x00"s, "unknown", "invalid_character"},
        {"HELO\tclient.example", "helo", "none"},
        {"MAIL FROM:<a@b>\tSIZE=10", "mail", "none"},
        {"EHLO caf\xc3\xa9.example", "ehlo", "none"},
        {"VRFY \xff\xfe", "vrfy", "none"},
    };
    for (const auto& r : rows) {
        INFO("line: \"" << escape(r.line) << "\"");
        const command cmd = parse_command(r.line);
        CHECK(verb_name(cmd.kind) == r.kind);
        CHECK(error_name(cmd.error) == r.error);
    }
}

TEST_CASE("smtp/command - HTTP requests and header lines are non-SMTP, in any case") {
    const std::vector<std::string_view> lines{
        "GET / HTTP/1.1",
        "get / http/1.0",
        "Get /index.html HTTP/1.1",
        "POST /cgi-bin/x HTTP/1.1",
        "post / HTTP/1.0",
        "HEAD / HTTP/1.0",
        "head /",
        "CONNECT mail.example.org:25 HTTP/1.1",
        "connect 198.51.100.1:25 HTTP/1.0",
        "PUT /x HTTP/1.1",
        "OPTIONS * HTTP/1.1",
        "GET",
        "Host: mx.example.org",
        "host: x",
        "HOST: x",
        "User-Agent: y",
        "user-agent: curl/8.0",
        "Accept: */*",
        "Content-Length: 0",
        "X_Forwarded_For: 192.0.2.1",
    };
    for (const auto line : lines) {
        INFO("line: \"" << escape(line) << "\"");
        CHECK(verb_name(parse_command(line).kind) == "non_smtp");
    }
}

TEST_CASE("smtp/command - unknown words are unknown verbs, not errors of a known one") {
    const std::vector<std::string_view> lines{
        "FOO",
        "FOO bar",
        "HELLO client.example",
        "MAILFROM:<a@b>",
        "EHLOclient.example",
        "RCPTTO:<b@c>",
        "STARTTLSX",
        "X-FOO bar",
        "",
        " MAIL FROM:<a@b>",  // a leading space leaves no verb
        "Host",              // a header name needs its colon
        ":",
    };
    for (const auto line : lines) {
        INFO("line: \"" << escape(line) << "\"");
        const command cmd = parse_command(line);
        CHECK(verb_name(cmd.kind) == "unknown");
        CHECK(error_name(cmd.error) == "none");
    }
}

TEST_CASE("smtp/command - verb_name is the lower-case verb for logs") {
    struct row {
        verb kind;
        std::string_view name;
    };
    const std::vector<row> rows{
        {verb::helo, "helo"},       {verb::ehlo, "ehlo"},         {verb::mail, "mail"},
        {verb::rcpt, "rcpt"},       {verb::data, "data"},         {verb::rset, "rset"},
        {verb::noop, "noop"},       {verb::quit, "quit"},         {verb::vrfy, "vrfy"},
        {verb::expn, "expn"},       {verb::help, "help"},         {verb::etrn, "etrn"},
        {verb::auth, "auth"},       {verb::starttls, "starttls"}, {verb::bdat, "bdat"},
        {verb::xclient, "xclient"}, {verb::xforward, "xforward"}, {verb::proxy, "proxy"},
        {verb::unknown, "unknown"}, {verb::non_smtp, "non_smtp"},
    };
    for (const auto& r : rows) {
        CHECK(verb_name(r.kind) == r.name);
    }
}
