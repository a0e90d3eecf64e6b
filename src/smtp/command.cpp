#include "smtpgate/smtp/command.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace smtpgate::smtp {

using namespace std::string_view_literals;

namespace {

constexpr char to_upper(char c) {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return to_upper(x) == to_upper(y);
           });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

struct verb_entry {
    std::string_view name;
    verb kind;
};

constexpr std::array verbs{
    verb_entry{"HELO", verb::helo},         verb_entry{"EHLO", verb::ehlo},
    verb_entry{"MAIL", verb::mail},         verb_entry{"RCPT", verb::rcpt},
    verb_entry{"DATA", verb::data},         verb_entry{"RSET", verb::rset},
    verb_entry{"NOOP", verb::noop},         verb_entry{"QUIT", verb::quit},
    verb_entry{"VRFY", verb::vrfy},         verb_entry{"EXPN", verb::expn},
    verb_entry{"HELP", verb::help},         verb_entry{"ETRN", verb::etrn},
    verb_entry{"AUTH", verb::auth},         verb_entry{"STARTTLS", verb::starttls},
    verb_entry{"BDAT", verb::bdat},         verb_entry{"XCLIENT", verb::xclient},
    verb_entry{"XFORWARD", verb::xforward}, verb_entry{"PROXY", verb::proxy},
};

// Request methods of HTTP and of forward proxies: a browser or proxy scanner on port 25.
constexpr std::array non_smtp_verbs{"GET"sv,     "POST"sv,   "HEAD"sv,  "PUT"sv,  "CONNECT"sv,
                                    "OPTIONS"sv, "DELETE"sv, "TRACE"sv, "PATCH"sv};

bool is_header_name(std::string_view word) {
    // "Host:", "User-Agent:" (RFC 5322 field name, as postscreen's non-SMTP test sees it).
    if (word.size() < 2 || word.back() != ':') return false;
    word.remove_suffix(1);
    return std::all_of(word.begin(), word.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
               || c == '-' || c == '_';
    });
}

bool has_control_character(std::string_view line) {
    return std::any_of(line.begin(), line.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && u != '\t') || u == 0x7f;
    });
}

std::string_view trim_left(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    return s;
}

// Splits "<path> params" or "path params" after "FROM:" / "TO:" (RFC 5321 4.1.2). A quoted
// local part may contain '>' and spaces.
bool split_path(std::string_view rest, command& cmd) {
    rest = trim_left(rest);
    if (rest.empty()) return false;
    if (rest.front() != '<') {
        // Postfix and sendmail accept a bare address; so does the proxy, and the backend judges.
        const auto space = rest.find_first_of(" \t");
        cmd.path = rest.substr(0, space);
        cmd.params =
            space == std::string_view::npos ? std::string_view{} : trim_left(rest.substr(space));
        return true;
    }
    bool quoted = false;
    for (std::size_t i = 1; i < rest.size(); ++i) {
        const char c = rest[i];
        if (c == '\\' && quoted) {
            ++i;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (c == '>' && !quoted) {
            cmd.path = rest.substr(1, i - 1);
            cmd.params = trim_left(rest.substr(i + 1));
            return true;
        }
    }
    return false;
}

}  // namespace

command parse_command(std::string_view line) {
    command cmd;
    const auto space = line.find_first_of(" \t");
    cmd.name = line.substr(0, space);
    cmd.args = space == std::string_view::npos ? std::string_view{} : trim_left(line.substr(space));
    // Trailing spaces carry no meaning in any verb's syntax; some clients send them.
    while (!cmd.args.empty() && (cmd.args.back() == ' ' || cmd.args.back() == '\t')) {
        cmd.args.remove_suffix(1);
    }

    if (std::any_of(non_smtp_verbs.begin(), non_smtp_verbs.end(),
                    [&](std::string_view v) { return iequals(cmd.name, v); })
        || is_header_name(cmd.name)) {
        cmd.kind = verb::non_smtp;
        return cmd;
    }
    const auto* entry = std::find_if(
        verbs.begin(), verbs.end(), [&](const verb_entry& e) { return iequals(cmd.name, e.name); });
    cmd.kind = entry == verbs.end() ? verb::unknown : entry->kind;

    if (has_control_character(line)) {
        cmd.error = command_error::invalid_character;
        return cmd;
    }

    bool ok = true;
    switch (cmd.kind) {
        case verb::helo:
        case verb::ehlo:
        case verb::vrfy:
        case verb::expn:
        case verb::etrn:
        case verb::auth: ok = !cmd.args.empty(); break;
        case verb::mail:
            ok = istarts_with(cmd.args, "FROM:") && split_path(cmd.args.substr(5), cmd);
            break;
        case verb::rcpt:
            ok = istarts_with(cmd.args, "TO:") && split_path(cmd.args.substr(3), cmd)
                 && !cmd.path.empty();
            break;
        // RFC 5321 4.1.1.4, 4.1.1.5, 4.1.1.10; RFC 3207 4: no parameters.
        case verb::data:
        case verb::rset:
        case verb::quit:
        case verb::starttls: ok = cmd.args.empty(); break;
        default: break;
    }
    if (!ok) cmd.error = command_error::syntax;
    return cmd;
}

std::string_view verb_name(verb v) {
    switch (v) {
        case verb::helo: return "helo";
        case verb::ehlo: return "ehlo";
        case verb::mail: return "mail";
        case verb::rcpt: return "rcpt";
        case verb::data: return "data";
        case verb::rset: return "rset";
        case verb::noop: return "noop";
        case verb::quit: return "quit";
        case verb::vrfy: return "vrfy";
        case verb::expn: return "expn";
        case verb::help: return "help";
        case verb::etrn: return "etrn";
        case verb::auth: return "auth";
        case verb::starttls: return "starttls";
        case verb::bdat: return "bdat";
        case verb::xclient: return "xclient";
        case verb::xforward: return "xforward";
        case verb::proxy: return "proxy";
        case verb::unknown: return "unknown";
        case verb::non_smtp: return "non_smtp";
    }
    return "unknown";
}

}  // namespace smtpgate::smtp
