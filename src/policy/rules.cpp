#include "smtpgate/policy/rules.hpp"

#include <algorithm>
#include <functional>
#include <stdexcept>

namespace smtpgate::policy {

std::string rule_table::key_of(const client_address& masked, int prefix) {
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
        const auto net = network::parse(r.match);
        if (!net) throw std::invalid_argument(r.origin + ": not a network: " + r.match);
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

const config::rule* rule_table::find(const client_address& a) const {
    for (const int prefix : a.ipv6 ? v6_prefixes_ : v4_prefixes_) {
        const auto it = index_.find(key_of(a.masked(prefix), prefix));
        if (it != index_.end()) return &rules_[it->second];
    }
    return nullptr;
}

}  // namespace smtpgate::policy
