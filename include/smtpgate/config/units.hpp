// Value syntaxes of the configuration file: durations, rates, endpoints, host names.
//
// Pure parsers from text to typed values, shared by the TOML loader, the command line and
// the tests. Each returns std::nullopt on any malformed input; they never throw, never
// trim, never guess (no "5 minutes", no " 10s", no "1.5s"), and never resolve names.
// Error wording is the loader's business: these only say yes or no.
// Thread-safe: no state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "smtpgate/config/config.hpp"

namespace smtpgate::config {

/// "<digits><unit>" with unit ms, s, m, h or d: "700ms", "10s", "5m", "1h", "2d", "0s".
/// A unit is required ("0" alone is rejected), as is at least one digit. Rejects signs,
/// spaces, fractions, compound forms ("1m30s"), upper-case units, and values that do not
/// fit in `duration` (signed 64-bit milliseconds).
std::optional<duration> parse_duration(std::string_view text);

/// Shortest exact form that parse_duration reads back: the largest single unit that
/// divides the value, so 90 s is "90s" (never "1m30s"), 1500 ms is "1500ms", 0 is "0s",
/// 7200 s is "2h". Negative values get a leading '-' and do not parse back.
std::string format_duration(duration value);

/// An event budget: at most `count` events per `window`.
/// "<count>/<duration>" or "<count>/<unit>": "10/60s", "100/1h", "5/s" (5 per 1 s).
/// count is 1..4294967295, the window is a parse_duration value greater than zero.
/// No spaces anywhere.
std::optional<rate> parse_rate(std::string_view text);

/// True for a DNS name of letter-digit-hyphen labels: each label 1..63 characters, not
/// starting or ending with '-', at most 253 characters in all, no trailing dot. The last
/// label must not be all digits, so a mistyped IPv4 address ("192.0.2.300") is not taken
/// for a name. Single-label names ("postfix", "localhost") are accepted.
bool is_domain_name(std::string_view text);

/// "192.0.2.1:25", "[2001:db8::1]:2525"; with allow_hostname also "postfix:25" or
/// "mx.example.org:10025" (is_domain_name). The port is 1..65535, decimal, at most 5
/// digits. IPv6 must be bracketed and IPv4 must not be; IP literals are checked with
/// inet_pton and stored in canonical inet_ntop form without brackets ("[::0:1]:25" gives
/// host "::1"), so equal addresses compare equal. Zone ids ("%eth0") are rejected.
std::optional<endpoint> parse_endpoint(std::string_view text, bool allow_hostname);

}  // namespace smtpgate::config
