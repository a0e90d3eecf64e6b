// xtext (RFC 3461 section 4) and XCLIENT command lines (Postfix XCLIENT_README).
//
// XCLIENT tells a Postfix backend who the real client is: "XCLIENT NAME=... ADDR=...". Its
// attribute values are xtext, so a host name or HELO argument with a space, "+", "=" or a
// control byte cannot break the command apart. This module encodes values and packs
// "NAME=value" attributes into command lines under the SMTP line limit.
//
// Not here: which attributes to send (that follows the backend's EHLO XCLIENT list), and
// reading the backend's reply. Pure: no I/O, no state; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace smtpgate::smtp {

/// xtext-encodes `value` (RFC 3461 section 4): bytes outside "!" (33) .. "~" (126), and "+"
/// and "=", become "+XX" with two uppercase hex digits; every other byte stays as it is, so
/// "[UNAVAILABLE]" and "[TEMPUNAVAIL]" pass unchanged.
std::string xtext_encode(std::string_view value);

/// Packs XCLIENT attributes (each "NAME=xtext-value", already encoded) into command lines
/// "XCLIENT a b c\r\n", in the given order, each line at most `max_line` bytes including CRLF
/// (default 512, RFC 5321 4.5.3.1.4). No attributes give no lines.
/// Throws std::length_error for an attribute that alone would not fit in a line, and
/// std::invalid_argument for an empty attribute or one holding a byte outside "!".."~" (a
/// space or CRLF would split or end the command): both are programming errors.
std::vector<std::string> xclient_lines(const std::vector<std::string>& attributes,
                                       std::size_t max_line = 512);

}  // namespace smtpgate::smtp
