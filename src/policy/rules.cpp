#include "smtpgate/policy/rules.hpp"

#include <algorithm>
#include <functional>
#include <stdexcept>

namespace smtpgate::policy {

std::string rule_table::key_of(const inet::client_address& masked, int prefix) {
    std::string key;
    key.push_back(masked.ipv6 ? '6' : '4');
    key.push_back(static_cast<char>(prefix));
    key.append(reinterpret_cast<const char*>(masked.bytes.data()),
               static_cast<std::size_t>((prefix + 7) / 8));
    return key;
}

rule_table::rule_table(std::vector<config::rule> rules) : rules_(std::move(rules)) {
    index_.reserve(rules_.size());
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        const auto& r = rules_[i];
        const auto net = inet::network::parse(r.match);
        if (!net) {
            const std::string name = inet::lower_ascii(r.match);
            if (name.empty() || name.find_first_of(" /:@") != std::string::npos) {
                throw std::invalid_argument(r.origin + ": not a network or host name: " + r.match);
            }
            const auto [twin, fresh] = names_.emplace(name, i);
            if (!fresh) {
                throw std::invalid_argument(r.origin + ": rule for " + name
                                            + " repeats the rule at "
                                            + rules_[twin->second].origin);
            }
            continue;
        }
        const auto [it, inserted] = index_.emplace(key_of(net->base, net->prefix), i);
        if (!inserted) {
            throw std::invalid_argument(r.origin + ": rule for " + net->to_string()
                                        + " repeats the rule at " + rules_[it->second].origin);
        }
        auto& lengths = net->base.ipv6 ? v6_prefixes_ : v4_prefixes_;
        if (std::find(lengths.begin(), lengths.end(), net->prefix) == lengths.end()) {
            lengths.push_back(net->prefix);
        }
    }
    std::sort(v4_prefixes_.begin(), v4_prefixes_.end(), std::greater<>());
    std::sort(v6_prefixes_.begin(), v6_prefixes_.end(), std::greater<>());
}

bool rule_table::name_may_matter(const inet::client_address& a) const {
    if (names_.empty()) return false;
    const auto& prefixes = a.ipv6 ? v6_prefixes_ : v4_prefixes_;
    const int full = a.width();
    return prefixes.empty() || prefixes.front() != full || !index_.contains(key_of(a, full));
}

const config::rule* rule_table::find(const inet::client_address& a,
                                     std::string_view hostname) const {
    const auto& prefixes = a.ipv6 ? v6_prefixes_ : v4_prefixes_;
    const int full = a.width();
    if (!prefixes.empty() && prefixes.front() == full) {
        if (const auto it = index_.find(key_of(a, full)); it != index_.end())
            return &rules_[it->second];
    }
    if (!names_.empty() && !hostname.empty()) {
        const std::string name = inet::lower_ascii(hostname);
        // The host, then each parent domain: "mx1.example.org", "example.org", "org".
        for (std::string_view n = name;;) {
            if (const auto it = names_.find(std::string(n)); it != names_.end())
                return &rules_[it->second];
            const auto dot = n.find('.');
            if (dot == std::string_view::npos) break;
            n.remove_prefix(dot + 1);
        }
    }
    for (const int prefix : prefixes) {
        if (prefix == full) continue;
        const auto it = index_.find(key_of(a.masked(prefix), prefix));
        if (it != index_.end()) return &rules_[it->second];
    }
    return nullptr;
}

}  // namespace smtpgate::policy
