#include "smtpgate/ops/log.hpp"

#include <fmt/format.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>

#include "smtpgate/ops/metrics.hpp"

namespace smtpgate::ops {
namespace {

struct log_state {
    std::atomic<config::log_format> format{config::log_format::text};
    std::atomic<config::log_target> target{config::log_target::stderr_stream};
    std::atomic<level> min_level{level::info};
};

log_state& state() {
    static log_state s;
    return s;
}

std::string_view level_name(level l) {
    switch (l) {
        case level::debug: return "debug";
        case level::info: return "info";
        case level::warning: return "warning";
        case level::error: return "error";
    }
    return "info";
}

int syslog_priority(level l) {
    switch (l) {
        case level::debug: return LOG_DEBUG;
        case level::info: return LOG_INFO;
        case level::warning: return LOG_WARNING;
        case level::error: return LOG_ERR;
    }
    return LOG_INFO;
}

void append_timestamp(std::string& out) {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::system_clock::to_time_t(now);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count()
        % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ms);
}

void append_json_string(std::string& out, std::string_view s) {
    out.push_back('"');
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
            case '"': out.append("\\\""); break;
            case '\\': out.append("\\\\"); break;
            case '\n': out.append("\\n"); break;
            case '\r': out.append("\\r"); break;
            case '\t': out.append("\\t"); break;
            default:
                if (u < 0x20 || u >= 0x7f) {
                    // Network input is not trusted to be UTF-8: escape every non-ASCII byte.
                    fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
                } else {
                    out.push_back(c);
                }
        }
    }
    out.push_back('"');
}

bool needs_quotes(std::string_view s) {
    if (s.empty()) return true;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == '"' || c == '=' || c == '\\') return true;
    }
    return false;
}

void append_text_value(std::string& out, std::string_view s) {
    if (!needs_quotes(s)) {
        out.append(s);
        return;
    }
    out.push_back('"');
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (u < 0x20 || u >= 0x7f) {
            fmt::format_to(std::back_inserter(out), "\\x{:02x}", u);
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

}  // namespace

void configure_logging(const config::log_settings& settings) {
    auto& s = state();
    s.format = settings.format;
    s.min_level = settings.level;
    if (settings.target == config::log_target::syslog
        && s.target.load() != config::log_target::syslog) {
        openlog("smtpgate", LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
    s.target = settings.target;
}

bool log_enabled(level l) {
    return l >= state().min_level.load(std::memory_order_relaxed);
}

log_line::log_line(level l, std::string_view event)
    : event_(event), level_(l), enabled_(log_enabled(l)) {
    if (!enabled_) return;
    line_.reserve(256);
    const auto& s = state();
    const bool to_syslog = s.target.load() == config::log_target::syslog;
    if (s.format.load() == config::log_format::json) {
        line_.append("{");
        if (!to_syslog) {
            line_.append("\"ts\":\"");
            append_timestamp(line_);
            line_.append("\",");
        }
        line_.append("\"level\":\"");
        line_.append(level_name(l));
        line_.append("\",\"event\":");
        append_json_string(line_, event);
    } else {
        if (!to_syslog) {
            append_timestamp(line_);
            line_.push_back(' ');
        }
        line_.append(level_name(l));
        line_.push_back(' ');
        line_.append(event);
    }
}

log_line& log_line::kv(std::string_view key, std::string_view value) {
    // The label of the metric: the reason, or for timeouts the phase, for reloads the status.
    if (reason_.empty() && (key == "reason" || key == "phase" || key == "status"))
        reason_.assign(value);
    if (key == "action") action_.assign(value);
    if (!enabled_) return *this;
    if (state().format.load() == config::log_format::json) {
        line_.push_back(',');
        append_json_string(line_, key);
        line_.push_back(':');
        append_json_string(line_, value);
    } else {
        line_.push_back(' ');
        line_.append(key);
        line_.push_back('=');
        append_text_value(line_, value);
    }
    return *this;
}

log_line& log_line::number(std::string_view key, std::int64_t value) {
    if (!enabled_) return *this;
    if (state().format.load() == config::log_format::json) {
        line_.push_back(',');
        append_json_string(line_, key);
        fmt::format_to(std::back_inserter(line_), ":{}", value);
    } else {
        fmt::format_to(std::back_inserter(line_), " {}={}", key, value);
    }
    return *this;
}

log_line::~log_line() {
    metrics::global().count_event(event_, reason_, action_);
    if (!enabled_) return;
    const auto& s = state();
    if (s.format.load() == config::log_format::json) line_.push_back('}');
    if (s.target.load() == config::log_target::syslog) {
        ::syslog(syslog_priority(level_), "%s", line_.c_str());
        return;
    }
    line_.push_back('\n');
    // One write per line; a short write on a pipe to a log collector is retried.
    const char* p = line_.data();
    std::size_t left = line_.size();
    while (left > 0) {
        const ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n <= 0) break;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

}  // namespace smtpgate::ops
