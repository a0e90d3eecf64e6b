// Transaction checks: vthrottle's HELO and sender intervals, and message and recipient rates
// per client network and per envelope sender (Postfix anvil, Exim ratelimit).
//
// The session engine asks before it forwards HELO/EHLO, MAIL and RCPT; a check that fails
// in enforce mode answers the command locally with a 4xx, so a legitimate MTA queues and
// retries while the backend never sees the command. Intervals have exceptions: [[rule]]
// netblock overrides, and [[exception]] entries for HELO names and domains, sender addresses
// and sender domains (vthrottle's whitelist), most specific first.
//
// Pure decisions over the limiter store; `now` comes from the caller. Not thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "smtpgate/config/config.hpp"
#include "smtpgate/policy/admission.hpp"
#include "smtpgate/policy/rate.hpp"
#include "smtpgate/policy/verdict.hpp"
#include "smtpgate/state/limiter_store.hpp"

namespace smtpgate::policy {

/// The most specific [[exception]] interval for a HELO name or a sender address.
class exception_table {
  public:
    exception_table() = default;
    explicit exception_table(const std::vector<config::interval_exception>& entries);

    /// HELO name: the exact name, then each parent domain ("mx1.example.org", "example.org").
    std::optional<duration> for_helo(std::string_view name) const;
    /// Sender: the exact address, then "@domain", then each parent domain of it.
    std::optional<duration> for_sender(std::string_view address) const;

  private:
    std::optional<duration> for_domain(std::string_view domain) const;

    std::unordered_map<std::string, duration> names_;      // lower-case host or domain
    std::unordered_map<std::string, duration> addresses_;  // lower-case "user@domain"
    std::unordered_map<std::string, duration> domains_;    // from "@domain" entries
};

class transaction_checks {
  public:
    /// Keeps a reference to the store; it must outlive this object.
    transaction_checks(const config::settings& settings, state::limiter_store& store);

    /// HELO/EHLO `name` from `client`: the HELO interval.
    verdict helo(const admission_result& client, std::string_view name, time_point now);
    /// MAIL FROM `sender`: the sender interval, message rate per client and per sender.
    verdict mail(const admission_result& client, std::string_view sender, time_point now);
    /// RCPT in a transaction from `sender`: recipient rate per client and per sender.
    verdict rcpt(const admission_result& client, std::string_view sender, time_point now);

  private:
    verdict interval_check(char kind, const std::string& subject, duration interval,
                           config::check_mode m, const smtp::named_reply& reply,
                           std::string_view reason, time_point now);
    verdict rate_check(char kind, const std::string& subject, const config::rate& r,
                       config::check_mode m, const smtp::named_reply& reply,
                       std::string_view reason, time_point now);

    config::interval_settings intervals_;
    config::limits_settings limits_;
    config::mode_settings modes_;
    exception_table exceptions_;
    state::limiter_store& store_;
};

}  // namespace smtpgate::policy
