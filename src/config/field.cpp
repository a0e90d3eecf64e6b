#include "field.hpp"

#include <pwd.h>

#include <cstring>
#include <sstream>
#include <vector>

#include "smtpgate/config/units.hpp"
#include "smtpgate/inet/address.hpp"

namespace smtpgate::config {

namespace {

std::string range_problem(const std::string& low, const std::string& high, bool has_low,
                          const std::string& got) {
    if (!has_low) return "must be at most " + high + ", got " + got;
    return "must be between " + low + " and " + high + ", got " + got;
}

/// Why an address did not parse, for the common mistakes.
std::string endpoint_hint(std::string_view text) {
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons == 0) return " (the port is required)";
    if (colons > 1 && text.front() != '[') return R"( (IPv6 addresses go in brackets: "[::1]:25"))";
    return "";
}

}  // namespace

std::string printable(std::string_view text) {
    constexpr std::size_t max_shown = 80;
    std::string out;
    for (std::size_t i = 0; i < text.size() && i < max_shown; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            constexpr std::string_view hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    if (text.size() > max_shown) out += "...";
    return out;
}

std::string quote_value(std::string_view text) {
    return "\"" + printable(text) + "\"";
}

std::string describe(const toml::node& node) {
    if (const auto* s = node.as_string()) return quote_value(s->get());
    if (const auto* i = node.as_integer()) return "integer " + std::to_string(i->get());
    if (const auto* b = node.as_boolean()) return b->get() ? "boolean true" : "boolean false";
    if (const auto* f = node.as_floating_point()) {
        std::ostringstream text;
        text << f->get();
        return "float " + text.str();
    }
    if (node.is_array()) return "an array";
    if (node.is_table()) return "a table";
    return "a date/time";
}

diagnostic at(std::string_view source, const toml::source_position& where, std::string key,
              std::string problem) {
    return {std::string(source), where.line, where.column, std::move(key), std::move(problem)};
}

void field::fail(std::string problem) const {
    throw field_error{node_.source().begin, key_, std::move(problem)};
}

const std::string& field::text(std::string_view expected) const {
    if (const auto* s = node_.as_string()) return s->get();
    fail("expected " + std::string(expected) + ", got " + describe(node_));
}

duration field::duration_in(duration low, duration high) const {
    constexpr std::string_view expected = R"(a duration like "30s" or "5m")";
    if (node_.is_number()) {
        fail("expected " + std::string(expected) + ", got " + describe(node_)
             + " (a duration is a string with a unit: ms, s, m, h, d)");
    }
    const auto& value = text(expected);
    const auto parsed = parse_duration(value);
    if (!parsed) fail("expected " + std::string(expected) + ", got " + quote_value(value));
    if (*parsed < low || *parsed > high) {
        fail(range_problem(format_duration(low), format_duration(high), low.count() > 0,
                           quote_value(value)));
    }
    return *parsed;
}

std::int64_t field::integer_in(std::int64_t low, std::int64_t high) const {
    const auto* number = node_.as_integer();
    if (number == nullptr) fail("expected an integer, got " + describe(node_));
    const std::int64_t value = number->get();
    if (value < low || value > high) {
        fail(range_problem(std::to_string(low), std::to_string(high), true, std::to_string(value)));
    }
    return value;
}

endpoint field::address(bool allow_hostname) const {
    const std::string expected =
        allow_hostname ? R"(a host and port like "127.0.0.1:10025" or "postfix:10025")"
                       : R"(an IP address and port like "192.0.2.1:25" or "[2001:db8::1]:25")";
    const auto& value = text(expected);
    if (auto parsed = parse_endpoint(value, allow_hostname)) return std::move(*parsed);
    if (!allow_hostname && parse_endpoint(value, true)) {
        fail("must be an IP address, not a host name (nothing is resolved at start-up), got "
             + quote_value(value));
    }
    fail("expected " + expected + ", got " + quote_value(value) + endpoint_hint(value));
}

std::vector<endpoint> field::listen_addresses() const {
    const auto* array = node_.as_array();
    if (array == nullptr) {
        fail(R"(expected an array of addresses like ["0.0.0.0:25", "[::]:25"], got )"
             + describe(node_));
    }
    if (array->empty()) fail("must list at least one address");
    std::vector<endpoint> result;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const field element((*array)[i], key_ + "[" + std::to_string(i) + "]");
        auto parsed = element.address(false);
        const auto twin = std::find(result.begin(), result.end(), parsed);
        if (twin != result.end()) {
            const auto first = static_cast<std::size_t>(twin - result.begin());
            element.fail(quote_value(parsed.to_string()) + " is listed twice (also " + key_ + "["
                         + std::to_string(first) + "])");
        }
        result.push_back(std::move(parsed));
    }
    return result;
}

std::string field::domain_name_or_empty() const {
    const auto& value = text(R"(a domain name or "")");
    if (!value.empty() && !is_domain_name(value)) {
        fail(
            "expected a domain name (letters, digits, '-' and '.', at most 253 characters)"
            R"( or "", got )"
            + quote_value(value));
    }
    return value;
}

bool field::boolean() const {
    if (const auto* b = node_.as_boolean()) return b->get();
    fail("expected true or false, got " + describe(node_));
}

rate field::rate_or_off() const {
    constexpr std::string_view expected = R"(a rate like "10/60s" or "off")";
    const auto& value = text(expected);
    if (value == "off" || value == "0") return rate{};
    const auto parsed = parse_rate(value);
    if (!parsed) fail("expected " + std::string(expected) + ", got " + quote_value(value));
    if (parsed->window > 24h) fail("the window must be at most 24h, got " + quote_value(value));
    return *parsed;
}

check_mode field::mode() const {
    return choice<check_mode>({{"enforce", check_mode::enforce},
                               {"observe", check_mode::observe},
                               {"off", check_mode::off}});
}

std::string field::network_text() const {
    const auto& value = text(R"(an address, network or host name like "192.0.2.0/24")");
    // A host name or domain ("mx.example.org", "example.org") matches the client's verified
    // reverse name; it needs server.reverse_lookup (checked after the whole file is read).
    if (!inet::network::parse(value) && !is_domain_name(value)) {
        fail(R"(expected an IP address or network like "192.0.2.0/24" or "2001:db8::/32")"
             R"( with the host bits clear, or a host or domain name, got )"
             + quote_value(value));
    }
    return value;
}

std::vector<std::string> field::networks() const {
    const auto* array = node_.as_array();
    if (array == nullptr) {
        fail(R"(expected an array of networks like ["10.0.0.0/8", "2001:db8::/32"], got )"
             + describe(node_));
    }
    std::vector<std::string> result;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const field element((*array)[i], key_ + "[" + std::to_string(i) + "]");
        const auto& value = element.text(R"(an address or network like "10.0.0.0/8")");
        const auto parsed = inet::network::parse(value);
        if (!parsed) {
            element.fail(R"(expected an IP address or network like "10.0.0.0/8" with the host )"
                         R"(bits clear, got )"
                         + quote_value(value));
        }
        if (std::find(result.begin(), result.end(), value) != result.end())
            element.fail(quote_value(value) + " is listed twice");
        result.push_back(value);
    }
    return result;
}

std::string field::path_or_empty() const {
    const auto& value = text("a file path");
    if (value.find('\0') != std::string::npos) fail("a path cannot contain NUL");
    return value;
}

std::string field::system_user_or_empty() const {
    const auto& value = text("a user name");
    if (value.empty()) return value;
    if (value.find('\0') != std::string::npos) fail("a user name cannot contain NUL");
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    const int error = getpwnam_r(value.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (found == nullptr) {
        fail("no user " + quote_value(value) + " on this system"
             + (error != 0 ? std::string(" (") + std::strerror(error) + ")" : std::string()));
    }
    return value;
}

}  // namespace smtpgate::config
