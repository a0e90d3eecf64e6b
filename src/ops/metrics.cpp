#include "smtpgate/ops/metrics.hpp"

#include <fmt/format.h>

#include <cmath>

namespace smtpgate::ops {

metrics& metrics::global() {
    static metrics m;
    return m;
}

void metrics::count_event(std::string_view event, std::string_view reason,
                          std::string_view action) {
    const std::lock_guard lock(mutex_);
    ++events_[{std::string(event), std::string(reason), std::string(action)}];
}

void metrics::count_delay(double seconds) {
    const std::lock_guard lock(mutex_);
    ++delays_;
    delay_seconds_ += seconds;
}

void metrics::count_session(std::uint64_t messages, std::uint64_t bytes_in,
                            std::uint64_t bytes_out) {
    const std::lock_guard lock(mutex_);
    ++sessions_;
    messages_ += messages;
    bytes_in_ += bytes_in;
    bytes_out_ += bytes_out;
}

void metrics::backend_connected(double seconds) {
    const std::lock_guard lock(mutex_);
    ++connects_;
    connect_seconds_ += seconds;
    for (std::size_t i = 0; i < connect_buckets.size(); ++i) {
        if (seconds <= connect_buckets[i]) ++connect_bucket_counts_[i];
    }
}

void metrics::backend_connect_failed() {
    const std::lock_guard lock(mutex_);
    ++connect_failures_;
}

void metrics::config_reload(bool ok, double unix_time) {
    const std::lock_guard lock(mutex_);
    if (ok) {
        ++reloads_ok_;
        last_reload_ok_time_ = unix_time;
    } else {
        ++reloads_failed_;
    }
}

std::string label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\' || c == '"') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out.append("\\n");
        } else {
            out.push_back(c);
        }
    }
    return out;
}

void append_family(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void append_sample(std::string& out, std::string_view name, std::string_view labels, double value) {
    out.append(name);
    if (!labels.empty()) {
        out.push_back('{');
        out.append(labels);
        out.push_back('}');
    }
    if (value == std::floor(value) && std::fabs(value) < 1e15) {
        fmt::format_to(std::back_inserter(out), " {}\n", static_cast<long long>(value));
    } else {
        fmt::format_to(std::back_inserter(out), " {}\n", value);
    }
}

void metrics::render(std::string& out) const {
    const std::lock_guard lock(mutex_);
    append_family(out, "smtpgate_events_total", "counter",
                  "Logged events by name and reason (docs/logging.md).");
    for (const auto& [key, n] : events_) {
        const auto& [event, reason, action] = key;
        append_sample(
            out, "smtpgate_events_total",
            fmt::format("event=\"{}\",reason=\"{}\"", label_value(event), label_value(reason)),
            static_cast<double>(n));
    }
    append_family(out, "smtpgate_refusals_total", "counter",
                  "Clients or commands the proxy refused, by check and action.");
    for (const auto& [key, n] : events_) {
        const auto& [event, reason, action] = key;
        if (event != "reject") continue;
        append_sample(out, "smtpgate_refusals_total",
                      fmt::format("reason=\"{}\",action=\"{}\"", label_value(reason),
                                  action.empty() ? std::string("refuse") : label_value(action)),
                      static_cast<double>(n));
    }
    append_family(out, "smtpgate_would_refusals_total", "counter",
                  "Refusals a check in observe mode would have made.");
    for (const auto& [key, n] : events_) {
        const auto& [event, reason, action] = key;
        if (event != "would_reject") continue;
        append_sample(out, "smtpgate_would_refusals_total",
                      fmt::format("reason=\"{}\"", label_value(reason)), static_cast<double>(n));
    }
    std::uint64_t bad = 0;
    for (const auto& [key, n] : events_) {
        if (std::get<0>(key) == "bad_recipient") bad += n;
    }
    append_family(out, "smtpgate_bad_recipients_total", "counter",
                  "RCPT commands the backend rejected as unknown users.");
    append_sample(out, "smtpgate_bad_recipients_total", "", static_cast<double>(bad));

    append_family(out, "smtpgate_delays_total", "counter", "Throttle delays applied to replies.");
    append_sample(out, "smtpgate_delays_total", "", static_cast<double>(delays_));
    append_family(out, "smtpgate_delay_seconds_total", "counter", "Time spent in throttle delays.");
    append_sample(out, "smtpgate_delay_seconds_total", "", delay_seconds_);

    append_family(out, "smtpgate_sessions_total", "counter", "Client sessions that ended.");
    append_sample(out, "smtpgate_sessions_total", "", static_cast<double>(sessions_));
    append_family(out, "smtpgate_messages_total", "counter",
                  "Messages the backend accepted (2xx after the final dot).");
    append_sample(out, "smtpgate_messages_total", "", static_cast<double>(messages_));
    append_family(out, "smtpgate_bytes_total", "counter", "Bytes relayed, by direction.");
    append_sample(out, "smtpgate_bytes_total", "direction=\"in\"", static_cast<double>(bytes_in_));
    append_sample(out, "smtpgate_bytes_total", "direction=\"out\"",
                  static_cast<double>(bytes_out_));

    append_family(out, "smtpgate_backend_connect_seconds", "histogram",
                  "Time to connect to the backend.");
    for (std::size_t i = 0; i < connect_buckets.size(); ++i) {
        append_sample(out, "smtpgate_backend_connect_seconds_bucket",
                      fmt::format("le=\"{}\"", connect_buckets[i]),
                      static_cast<double>(connect_bucket_counts_[i]));
    }
    append_sample(out, "smtpgate_backend_connect_seconds_bucket", "le=\"+Inf\"",
                  static_cast<double>(connects_));
    append_sample(out, "smtpgate_backend_connect_seconds_sum", "", connect_seconds_);
    append_sample(out, "smtpgate_backend_connect_seconds_count", "",
                  static_cast<double>(connects_));
    append_family(out, "smtpgate_backend_connect_failures_total", "counter",
                  "Backend connections that could not be made.");
    append_sample(out, "smtpgate_backend_connect_failures_total", "",
                  static_cast<double>(connect_failures_));

    append_family(out, "smtpgate_config_reloads_total", "counter",
                  "Configuration reloads (SIGHUP) by result.");
    append_sample(out, "smtpgate_config_reloads_total", "result=\"ok\"",
                  static_cast<double>(reloads_ok_));
    append_sample(out, "smtpgate_config_reloads_total", "result=\"failed\"",
                  static_cast<double>(reloads_failed_));
    append_family(out, "smtpgate_config_last_reload_success_timestamp_seconds", "gauge",
                  "When the configuration was last loaded successfully.");
    append_sample(out, "smtpgate_config_last_reload_success_timestamp_seconds", "",
                  last_reload_ok_time_);

    append_family(out, "smtpgate_build_info", "gauge", "The running version.");
    append_sample(out, "smtpgate_build_info",
                  fmt::format("version=\"{}\"", label_value(SMTPGATE_VERSION)), 1);
}

}  // namespace smtpgate::ops
