// vthrottle's whitelist for the HELO and sender interval checks (policy/checks/): [[exception]]
// entries for HELO names and domains, sender addresses and sender domains, most specific
// first.
//
// Pure; built once per configuration, read-only afterwards.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "smtpgate/config/config.hpp"
#include "smtpgate/policy/rate.hpp"

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

}  // namespace smtpgate::policy
