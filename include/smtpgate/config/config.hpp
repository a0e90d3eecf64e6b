// Typed configuration: what the TOML file says, after validation.
//
// These structs hold only values that passed the strict loader (config/loader.hpp); every
// member has the documented default, so a default-constructed `settings` is the built-in
// configuration. No I/O here and no global state: a reload builds a new `settings` and the
// caller swaps it in.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace smtpgate::config {

using duration = std::chrono::milliseconds;
using namespace std::chrono_literals;

/// A listen or backend address. `host` is an IP literal (IPv6 without brackets) for listen
/// addresses; a backend may also name a host to resolve at connect time.
struct endpoint {
    std::string host;
    std::uint16_t port = 0;

    /// "192.0.2.1:25", "[2001:db8::1]:25", "mx.example:25".
    std::string to_string() const;
    friend bool operator==(const endpoint&, const endpoint&) = default;
};

/// How the real client is identified to the backend.
enum class identity_mode { none, proxy_v1, proxy_v2 };

/// What to do with a bare CR or LF in a command or in message content.
enum class bare_newline_mode { normalize, reject };

enum class log_format { text, json };
enum class log_target { stderr_stream, syslog };
enum class log_level { debug, info, warning, error };

struct server_settings {
    std::vector<endpoint> listen{{"0.0.0.0", 25}};
    /// Name in the proxy's own replies; empty means the system host name.
    std::string hostname;
    /// Global cap on concurrent client sessions.
    std::size_t max_connections = 2000;
    /// SIGTERM: how long sessions may run on before they are closed with 421 4.3.2.
    duration shutdown_grace = 30s;
};

struct backend_settings {
    endpoint address{"127.0.0.1", 10025};
    identity_mode identity = identity_mode::none;
    duration connect_timeout = 10s;
    /// Deadline for each backend reply, except the one after end-of-data.
    duration reply_timeout = 5min;
    /// Deadline for the backend's reply to end-of-data (content filters may be slow).
    duration data_reply_timeout = 10min;
};

struct timeout_settings {
    /// Deadline for each whole command line from the client (not per read).
    duration command = 5min;
    /// Deadline for the whole message body, from the 354 to the final dot.
    duration data = 10min;
    /// Cap on a whole session.
    duration session = 1h;
};

struct smtp_settings {
    /// Longest command line accepted, without CRLF; longer lines get 500 5.5.2.
    std::size_t max_line_length = 2048;
    bare_newline_mode bare_newline = bare_newline_mode::normalize;
};

struct log_settings {
    log_format format = log_format::text;
    log_target target = log_target::stderr_stream;
    log_level level = log_level::info;
};

struct settings {
    server_settings server;
    backend_settings backend;
    timeout_settings timeouts;
    smtp_settings smtp;
    log_settings log;
    /// Where these settings came from (file path, or "<defaults>").
    std::string source = "<defaults>";
};

}  // namespace smtpgate::config
