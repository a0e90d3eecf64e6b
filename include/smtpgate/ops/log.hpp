// Structured event log: one line per event, `key=value` text or JSON, to stderr or syslog.
//
// Usage: `ops::log(ops::level::info, "connect").kv("session", id).kv("client", addr);`
// The line is written when the temporary goes out of scope, and counted in the metrics
// (event, reason, action) whether or not its level is logged. Event names and keys are a
// documented contract (docs/logging.md): log shippers and fail2ban filters depend on them.
//
// Threading: configure() once at start-up or between reloads on the I/O thread; lines are
// written with one write(2) each, so concurrent writers never interleave within a line.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtpgate/config/config.hpp"

namespace smtpgate::ops {

using level = config::log_level;

void configure_logging(const config::log_settings& settings);
bool log_enabled(level l);

class log_line {
  public:
    log_line(level l, std::string_view event);
    ~log_line();
    log_line(const log_line&) = delete;
    log_line& operator=(const log_line&) = delete;

    log_line& kv(std::string_view key, std::string_view value);
    log_line& kv(std::string_view key, const char* value) {
        return kv(key, std::string_view{value});
    }
    log_line& kv(std::string_view key, const std::string& value) {
        return kv(key, std::string_view{value});
    }
    template <std::integral T>
    log_line& kv(std::string_view key, T value) {
        return number(key, static_cast<std::int64_t>(value));
    }

  private:
    log_line& number(std::string_view key, std::int64_t value);

    std::string line_;
    // For the metrics (ops/metrics.hpp), kept whatever the log level.
    std::string_view event_;
    std::string reason_;
    std::string action_;
    level level_;
    bool enabled_;
};

/// Starts a log line; it is written at the end of the full expression.
inline log_line log(level l, std::string_view event) {
    return log_line{l, event};
}

}  // namespace smtpgate::ops
