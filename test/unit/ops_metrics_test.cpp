// The metrics registry and the log-to-metrics hook, without sockets.
#include <catch2/catch.hpp>

#include <string>

#include "smtpgate/ops/log.hpp"
#include "smtpgate/ops/metrics.hpp"

using smtpgate::ops::metrics;

namespace {

std::string rendered(const metrics& m) {
    std::string out;
    m.render(out);
    return out;
}

}  // namespace

TEST_CASE("ops/metrics - events become labelled counters; rejects also refusals by action") {
    metrics m;
    m.count_event("reject", "connection_rate", "");
    m.count_event("reject", "connection_rate", "");
    m.count_event("reject", "concurrent_per_client", "tempfail");
    m.count_event("would_reject", "pregreet", "");
    m.count_event("bad_recipient", "unknown_user", "");
    const auto text = rendered(m);
    CHECK_THAT(text, Catch::Contains(
                         "smtpgate_events_total{event=\"reject\",reason=\"connection_rate\"} 2\n"));
    CHECK_THAT(text, Catch::Contains("smtpgate_refusals_total{reason=\"connection_rate\","
                                     "action=\"refuse\"} 2\n"));
    CHECK_THAT(text, Catch::Contains("smtpgate_refusals_total{reason=\"concurrent_per_client\","
                                     "action=\"tempfail\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("smtpgate_would_refusals_total{reason=\"pregreet\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("smtpgate_bad_recipients_total 1\n"));
    CHECK_THAT(text, Catch::Contains("# TYPE smtpgate_refusals_total counter\n"));
}

TEST_CASE("ops/metrics - the connect histogram is cumulative and label values are escaped") {
    metrics m;
    m.backend_connected(0.0004);
    m.backend_connected(0.03);
    m.backend_connected(9.0);
    m.count_event("weird", "a\"b\\c\nd", "");
    const auto text = rendered(m);
    CHECK_THAT(text, Catch::Contains("smtpgate_backend_connect_seconds_bucket{le=\"0.0005\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("smtpgate_backend_connect_seconds_bucket{le=\"0.05\"} 2\n"));
    CHECK_THAT(text, Catch::Contains("smtpgate_backend_connect_seconds_bucket{le=\"2.5\"} 2\n"));
    CHECK_THAT(text, Catch::Contains("smtpgate_backend_connect_seconds_bucket{le=\"+Inf\"} 3\n"));
    CHECK_THAT(text, Catch::Contains("smtpgate_backend_connect_seconds_count 3\n"));
    CHECK_THAT(text, Catch::Contains("reason=\"a\\\"b\\\\c\\nd\""));
}

TEST_CASE("ops/metrics - log lines are counted whatever the log level") {
    smtpgate::config::log_settings quiet;
    quiet.level = smtpgate::config::log_level::error;
    smtpgate::ops::configure_logging(quiet);
    const auto before = rendered(metrics::global());
    smtpgate::ops::log(smtpgate::ops::level::info, "reject")
        .kv("session", "x")
        .kv("reason", "unit_test_reason")
        .kv("action", "tempfail");
    smtpgate::ops::log(smtpgate::ops::level::warning, "timeout").kv("phase", "unit_test_phase");
    smtpgate::ops::configure_logging({});
    const auto after = rendered(metrics::global());
    CHECK_THAT(before, !Catch::Contains("unit_test_reason"));
    CHECK_THAT(after, Catch::Contains("smtpgate_refusals_total{reason=\"unit_test_reason\","
                                      "action=\"tempfail\"} 1\n"));
    CHECK_THAT(
        after,
        Catch::Contains("smtpgate_events_total{event=\"timeout\",reason=\"unit_test_phase\"} 1\n"));
}
