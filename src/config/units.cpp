#include "smtpgate/config/units.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <charconv>
#include <limits>
#include <system_error>

namespace smtpgate::config {

namespace {

struct unit {
    std::string_view suffix;
    std::int64_t milliseconds;
};

// Largest first: format_duration picks the first unit that divides the value.
constexpr std::array<unit, 5> units{{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

std::optional<std::int64_t> unit_milliseconds(std::string_view suffix) {
    for (const auto& u : units) {
        if (u.suffix == suffix) return u.milliseconds;
    }
    return std::nullopt;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::size_t count_leading_digits(std::string_view text) {
    std::size_t n = 0;
    while (n < text.size() && is_digit(text[n])) {
        ++n;
    }
    return n;
}

/// Unsigned decimal; the whole of `digits` must be digits and fit in T.
template <typename T>
std::optional<T> parse_unsigned(std::string_view digits) {
    if (digits.empty() || count_leading_digits(digits) != digits.size()) return std::nullopt;
    T value{};
    const auto* end = digits.data() + digits.size();
    auto [ptr, ec] = std::from_chars(digits.data(), end, value);
    if (ec != std::errc{} || ptr != end) return std::nullopt;
    return value;
}

bool is_ldh_label(std::string_view label) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-';
        if (!ok) return false;
    }
    return true;
}

/// Canonical text of an IP literal of `family`, or nullopt when inet_pton refuses it.
std::optional<std::string> canonical_ip(std::string_view text, int family) {
    // inet_pton wants a terminated string; INET6_ADDRSTRLEN bounds any valid literal.
    if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    const std::string terminated(text);
    std::array<unsigned char, sizeof(in6_addr)> binary{};
    if (inet_pton(family, terminated.c_str(), binary.data()) != 1) return std::nullopt;
    std::array<char, INET6_ADDRSTRLEN> out{};
    if (inet_ntop(family, binary.data(), out.data(), out.size()) == nullptr) return std::nullopt;
    return std::string(out.data());
}

}  // namespace

std::optional<duration> parse_duration(std::string_view text) {
    const std::size_t digits = count_leading_digits(text);
    if (digits == 0) return std::nullopt;
    const auto multiplier = unit_milliseconds(text.substr(digits));
    if (!multiplier) return std::nullopt;
    const auto count = parse_unsigned<std::uint64_t>(text.substr(0, digits));
    if (!count) return std::nullopt;
    const auto limit = static_cast<std::uint64_t>(std::numeric_limits<duration::rep>::max());
    if (*count > limit / static_cast<std::uint64_t>(*multiplier)) return std::nullopt;
    return duration{static_cast<duration::rep>(*count) * *multiplier};
}

std::string format_duration(duration value) {
    const auto ms = value.count();
    if (ms == 0) return "0s";
    if (ms < 0) {
        // -ms overflows for the minimum; that value is never a configured duration.
        if (ms == std::numeric_limits<duration::rep>::min()) return "-" + std::to_string(ms) + "ms";
        return "-" + format_duration(duration{-ms});
    }
    for (const auto& u : units) {
        if (ms % u.milliseconds == 0) {
            return std::to_string(ms / u.milliseconds) + std::string(u.suffix);
        }
    }
    return std::to_string(ms) + "ms";  // unreachable: the last unit is 1 ms
}

std::optional<rate> parse_rate(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const auto count = parse_unsigned<std::uint32_t>(text.substr(0, slash));
    if (!count || *count == 0) return std::nullopt;

    const auto window_text = text.substr(slash + 1);
    std::optional<duration> window;
    if (!window_text.empty() && !is_digit(window_text.front())) {
        // "5/s": a bare unit means one of it.
        if (const auto ms = unit_milliseconds(window_text)) window = duration{*ms};
    } else {
        window = parse_duration(window_text);
    }
    if (!window || window->count() <= 0) return std::nullopt;
    return rate{*count, *window};
}

bool is_domain_name(std::string_view text) {
    if (text.empty() || text.size() > 253) return false;
    std::string_view last;
    std::string_view rest = text;
    while (true) {
        const auto dot = rest.find('.');
        const auto label = rest.substr(0, dot);
        if (!is_ldh_label(label)) return false;
        if (dot == std::string_view::npos) {
            last = label;
            break;
        }
        rest.remove_prefix(dot + 1);
    }
    // An all-digit top label is a mistyped IPv4 literal, not a name (RFC 3696 section 2).
    return count_leading_digits(last) != last.size();
}

std::optional<endpoint> parse_endpoint(std::string_view text, bool allow_hostname) {
    std::string_view host;
    std::string_view port_text;
    std::optional<std::string> canonical;

    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
        // Brackets are for IPv6 only: "[192.0.2.1]:25" and "[mx]:25" are mistakes.
        canonical = canonical_ip(host, AF_INET6);
        if (!canonical) return std::nullopt;
    } else {
        const auto colon = text.find(':');
        // A second colon means an unbracketed IPv6 address, whose port cannot be told apart.
        if (colon == std::string_view::npos
            || text.find(':', colon + 1) != std::string_view::npos) {
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        canonical = canonical_ip(host, AF_INET);
        if (!canonical) {
            if (!allow_hostname || !is_domain_name(host)) return std::nullopt;
            canonical = std::string(host);
        }
    }

    if (port_text.size() > 5) return std::nullopt;
    const auto port = parse_unsigned<std::uint32_t>(port_text);
    if (!port || *port == 0 || *port > 65535) return std::nullopt;
    return endpoint{std::move(*canonical), static_cast<std::uint16_t>(*port)};
}

std::string endpoint::to_string() const {
    const auto port_text = std::to_string(port);
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
    return host + ":" + port_text;
}

}  // namespace smtpgate::config
