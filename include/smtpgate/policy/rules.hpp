// Access rules: per-network allow, deny or limit overrides; the most specific match wins.
//
// A rule (config::rule, from [[rule]]) matches an IPv4/IPv6 address or network and either
// allows the client (no limits, no greet pause unless the rule sets one), denies it
// (554 5.7.1), or overrides some limits for it (sendmail's ClientRate:/ClientConn:/GreetPause:
// access entries; 0 means unlimited).
//
// A rule may also match the client's verified host name ("mx.example.org") or a domain
// ("example.org" matches every host under it), when reverse lookups are on. Precedence, most
// specific first: a rule for the exact address, then the host name, then its parent domains,
// then the longest network prefix (sendmail's access db checks names before networks).
//
// Lookup is one hash probe per distinct prefix length in the table, longest first: at most 33
// probes for IPv4 and 129 for IPv6 whatever the number of rules, plus one per label of the
// name, so tens of thousands of entries cost nothing per connection.
//
// Pure; built once per configuration, read-only afterwards.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "smtpgate/config/config.hpp"
#include "smtpgate/inet/address.hpp"

namespace smtpgate::policy {

class rule_table {
  public:
    rule_table() = default;
    /// Throws std::invalid_argument for a match that is not a network, or naming both origins
    /// when two rules match the same network (the loader reports both first).
    explicit rule_table(std::vector<config::rule> rules);

    /// The most specific rule for `a` and its verified host name (empty when unknown), or null.
    const config::rule* find(const inet::client_address& a, std::string_view hostname = {}) const;
    /// Some rule matches by name: reverse lookups are needed.
    bool has_name_rules() const { return !names_.empty(); }
    /// Whether `a`'s host name could change what find() says for it: some rule matches by
    /// name and none matches the exact address (which would win). When false the decision
    /// need not wait for the reverse lookup.
    bool name_may_matter(const inet::client_address& a) const;
    std::size_t size() const { return rules_.size(); }

  private:
    static std::string key_of(const inet::client_address& masked, int prefix);

    std::vector<config::rule> rules_;
    std::unordered_map<std::string, std::size_t> index_;
    std::unordered_map<std::string, std::size_t> names_;  // lower-case host or domain
    std::vector<int> v4_prefixes_;                        // distinct, longest first
    std::vector<int> v6_prefixes_;
};

}  // namespace smtpgate::policy
