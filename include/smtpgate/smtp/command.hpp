// SMTP command parser (RFC 5321 4.1): one line in, a typed command out.
//
// The parser recognizes every verb the proxy forwards or refuses, splits MAIL/RCPT into path
// and parameters, and classifies lines that are not SMTP at all (HTTP requests, header lines:
// the postscreen non-SMTP test). It checks syntax only as far as the proxy relies on it; the
// backend still applies its own rules to what is forwarded.
//
// Pure: views into the given line, no allocation, no I/O.
#pragma once

#include <string_view>

namespace smtpgate::smtp {

enum class verb {
    helo,
    ehlo,
    mail,
    rcpt,
    data,
    rset,
    noop,
    quit,
    vrfy,
    expn,
    help,
    etrn,
    auth,
    starttls,
    bdat,
    xclient,
    xforward,
    proxy,
    unknown,   ///< a word that is no SMTP verb the proxy knows
    non_smtp,  ///< an HTTP request line or a header line sent to the SMTP port
};

enum class command_error {
    none,
    syntax,             ///< required argument missing or malformed (501 5.5.4)
    invalid_character,  ///< control character in the line (500 5.5.2)
};

struct command {
    verb kind = verb::unknown;
    std::string_view name;    ///< the verb as sent
    std::string_view args;    ///< everything after the verb and its separating spaces
    std::string_view path;    ///< MAIL/RCPT: the address without angle brackets ("" = null path)
    std::string_view params;  ///< MAIL/RCPT: ESMTP parameters after the path
    command_error error = command_error::none;
};

/// Parses one command line (without its line terminator).
command parse_command(std::string_view line);

/// Lower-case name for logs and metrics ("mail", "xclient", "unknown").
std::string_view verb_name(verb v);

}  // namespace smtpgate::smtp
