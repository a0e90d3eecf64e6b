// Counters for the Prometheus endpoint: every logged event by name and reason, plus the
// figures the log does not carry per event (delays, bytes, backend connect latency, reloads).
//
// The log is the event contract (docs/logging.md); the metrics count the same events, so a
// dashboard and a log search always agree: every `reject` line is one increment of
// smtpgate_refusals_total{reason, action}, every `would_reject` one of
// smtpgate_would_refusals_total{reason}, every event one of smtpgate_events_total. The log
// feeds them itself (log_line's destructor), whatever the log level.
// Does not: serve HTTP (net/admin_server), or know about sessions and tables (the server adds
// its gauges when it renders).
// Threading: a mutex guards the counters; in practice only the I/O thread counts.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

namespace smtpgate::ops {

class metrics {
  public:
    /// The process-wide instance.
    static metrics& global();

    /// One logged event; `reason` is the event's reason (or phase, or status), `action` its
    /// action key; either may be empty.
    void count_event(std::string_view event, std::string_view reason, std::string_view action);
    /// A throttle delay actually waited before a reply.
    void count_delay(double seconds);
    /// A finished session's totals.
    void count_session(std::uint64_t messages, std::uint64_t bytes_in, std::uint64_t bytes_out);
    /// A backend connection attempt: its duration when it succeeded, a failure otherwise.
    void backend_connected(double seconds);
    void backend_connect_failed();
    /// A configuration reload (SIGHUP) and its outcome.
    void config_reload(bool ok, double unix_time);

    /// Appends every counter in the Prometheus text format (version 0.0.4).
    void render(std::string& out) const;

    static constexpr std::array<double, 10> connect_buckets{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025,  0.05,  0.1,    0.5,   2.5};

  private:
    mutable std::mutex mutex_;
    std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> events_;
    std::uint64_t delays_ = 0;
    double delay_seconds_ = 0;
    std::uint64_t sessions_ = 0;
    std::uint64_t messages_ = 0;
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
    std::array<std::uint64_t, connect_buckets.size()> connect_bucket_counts_{};
    std::uint64_t connects_ = 0;
    double connect_seconds_ = 0;
    std::uint64_t connect_failures_ = 0;
    std::uint64_t reloads_ok_ = 0;
    std::uint64_t reloads_failed_ = 0;
    double last_reload_ok_time_ = 0;
};

/// Appends one sample line: `name{labels} value`.
void append_sample(std::string& out, std::string_view name, std::string_view labels, double value);
/// Appends the `# HELP` and `# TYPE` lines of a metric family.
void append_family(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help);
/// A label value escaped for the text format (backslash, double quote, newline).
std::string label_value(std::string_view value);

}  // namespace smtpgate::ops
