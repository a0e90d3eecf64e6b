#include "smtpgate/policy/transaction.hpp"

#include "smtpgate/inet/address.hpp"

namespace smtpgate::policy {

exception_table::exception_table(const std::vector<config::interval_exception>& entries) {
    for (const auto& e : entries) {
        const std::string m = inet::lower_ascii(e.match);
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
    std::string d = inet::lower_ascii(domain);
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
    const std::string a = inet::lower_ascii(address);
    if (const auto it = addresses_.find(a); it != addresses_.end()) return it->second;
    const auto at = a.rfind('@');
    if (at == std::string::npos) return std::nullopt;
    const std::string domain = a.substr(at + 1);
    if (const auto it = domains_.find(domain); it != domains_.end()) return it->second;
    return for_domain(domain);
}

}  // namespace smtpgate::policy
