#include "smtpgate/policy/transaction.hpp"

#include <algorithm>

namespace smtpgate::policy {

namespace replies = smtp::replies;

namespace {

// Key prefixes of the cells in the limiter store.
constexpr char helo_cell = 'e';
constexpr char sender_cell = 's';
constexpr char message_cell = 'm';
constexpr char recipient_cell = 'n';
constexpr char sender_message_cell = 'M';
constexpr char sender_recipient_cell = 'N';

// Settles a check: observe mode reports and passes.
verdict settle(verdict v, config::check_mode m) {
    if (v.passed()) return v;
    return with_mode(v, m);
}

}  // namespace

exception_table::exception_table(const std::vector<config::interval_exception>& entries) {
    for (const auto& e : entries) {
        const std::string m = lower_ascii(e.match);
        if (m.starts_with('@')) {
            domains_[m.substr(1)] = e.interval;
        } else if (m.find('@') != std::string::npos) {
            addresses_[m] = e.interval;
        } else {
            names_[m] = e.interval;
        }
    }
}

std::optional<duration> exception_table::for_domain(std::string_view domain) const {
    // The name itself, then each parent: "a.b.example.org", "b.example.org", "example.org"...
    std::string d = lower_ascii(domain);
    for (;;) {
        if (const auto it = names_.find(d); it != names_.end()) return it->second;
        const auto dot = d.find('.');
        if (dot == std::string::npos) return std::nullopt;
        d.erase(0, dot + 1);
    }
}

std::optional<duration> exception_table::for_helo(std::string_view name) const {
    if (names_.empty()) return std::nullopt;
    return for_domain(name);
}

std::optional<duration> exception_table::for_sender(std::string_view address) const {
    const std::string a = lower_ascii(address);
    if (const auto it = addresses_.find(a); it != addresses_.end()) return it->second;
    const auto at = a.rfind('@');
    if (at == std::string::npos) return std::nullopt;
    const std::string domain = a.substr(at + 1);
    if (const auto it = domains_.find(domain); it != domains_.end()) return it->second;
    return for_domain(domain);
}

transaction_checks::transaction_checks(const config::settings& settings,
                                       state::limiter_store& store)
    : intervals_(settings.interval),
      limits_(settings.limits),
      modes_(settings.modes),
      exceptions_(settings.exceptions),
      store_(store) {}

verdict transaction_checks::interval_check(char kind, const std::string& subject, duration interval,
                                           config::check_mode m, const smtp::named_reply& reply,
                                           std::string_view reason, time_point now) {
    if (m == config::check_mode::off || interval.count() == 0) return {};
    auto& cell = store_.at(std::string(1, kind) + subject, now);
    const auto d = interval_observe(cell.stamp, interval, now);
    cell.idle_at = d.idle_at;
    if (d.allowed) return {};
    verdict v;
    v.act = action::tempfail;
    v.reply = &reply;
    v.reason = reason;
    v.observed = d.observed.count();
    v.limit = interval.count();
    v.in_ms = true;
    return settle(v, m);
}

verdict transaction_checks::rate_check(char kind, const std::string& subject, const config::rate& r,
                                       config::check_mode m, const smtp::named_reply& reply,
                                       std::string_view reason, time_point now) {
    if (m == config::check_mode::off || r.off()) return {};
    auto& cell = store_.at(std::string(1, kind) + subject, now);
    const auto d = gcra_consume(cell.stamp, r, now);
    cell.idle_at = std::max(cell.idle_at, d.idle_at);
    if (d.allowed) return {};
    verdict v;
    v.act = action::tempfail;
    v.reply = &reply;
    v.reason = reason;
    v.observed = d.observed;
    v.limit = r.count;
    return settle(v, m);
}

verdict transaction_checks::helo(const admission_result& client, std::string_view name,
                                 time_point now) {
    const config::rule* r = client.rule;
    if (r != nullptr && r->action == config::rule_action::allow) return {};
    duration interval = intervals_.helo;
    if (r != nullptr && r->helo_interval) interval = *r->helo_interval;
    if (const auto e = exceptions_.for_helo(name)) interval = *e;
    return interval_check(helo_cell, lower_ascii(name), interval, modes_.helo_interval,
                          replies::helo_throttled, "helo_interval", now);
}

verdict transaction_checks::mail(const admission_result& client, std::string_view sender,
                                 time_point now) {
    const config::rule* r = client.rule;
    if (r != nullptr && r->action == config::rule_action::allow) return {};
    // The null sender (bounces) is not one sender: it is never throttled by address.
    if (!sender.empty()) {
        duration interval = intervals_.sender;
        if (r != nullptr && r->sender_interval) interval = *r->sender_interval;
        if (const auto e = exceptions_.for_sender(sender)) interval = *e;
        auto v = interval_check(sender_cell, lower_ascii(sender), interval, modes_.sender_interval,
                                replies::sender_throttled, "sender_interval", now);
        if (!v.passed() || v.would_block) return v;
    }
    auto v = rate_check(message_cell, client.key, limits_.message_rate, modes_.message_rate,
                        replies::message_rate_exceeded, "message_rate", now);
    if (!v.passed() || v.would_block || sender.empty()) return v;
    return rate_check(sender_message_cell, lower_ascii(sender), limits_.sender_message_rate,
                      modes_.message_rate, replies::sender_rate_exceeded, "sender_message_rate",
                      now);
}

verdict transaction_checks::rcpt(const admission_result& client, std::string_view sender,
                                 time_point now) {
    const config::rule* r = client.rule;
    if (r != nullptr && r->action == config::rule_action::allow) return {};
    auto v = rate_check(recipient_cell, client.key, limits_.recipient_rate, modes_.recipient_rate,
                        replies::recipient_rate_exceeded, "recipient_rate", now);
    if (!v.passed() || v.would_block || sender.empty()) return v;
    return rate_check(sender_recipient_cell, lower_ascii(sender), limits_.sender_recipient_rate,
                      modes_.recipient_rate, replies::sender_rate_exceeded, "sender_recipient_rate",
                      now);
}

}  // namespace smtpgate::policy
