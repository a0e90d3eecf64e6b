#include "smtpgate/config/loader.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "smtpgate/config/units.hpp"
#include "smtpgate/policy/address.hpp"

namespace smtpgate::config {

namespace {

/// Larger files are refused unread: a configuration is a few kilobytes.
constexpr std::size_t max_file_size = 1024 * 1024;

/// Thrown by `field` when a value is unusable; the driver collects it and reads on.
struct field_error {
    toml::source_position where;
    std::string key;
    std::string problem;
};

/// User text made safe for a one-line message: printable ASCII kept, the rest as \xNN,
/// long values cut short.
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

/// The "got ..." part of a message: strings quoted, other scalars with their type.
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

/// One value from the file on its way into `settings`: reading it checks type and range.
class field {
  public:
    field(const toml::node& node, std::string key) : node_(node), key_(std::move(key)) {}

    const toml::node& node() const { return node_; }

    [[noreturn]] void fail(std::string problem) const {
        throw field_error{node_.source().begin, key_, std::move(problem)};
    }

    const std::string& text(std::string_view expected) const {
        if (const auto* s = node_.as_string()) return s->get();
        fail("expected " + std::string(expected) + ", got " + describe(node_));
    }

    duration duration_in(duration low, duration high) const {
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

    std::int64_t integer_in(std::int64_t low, std::int64_t high) const {
        const auto* number = node_.as_integer();
        if (number == nullptr) fail("expected an integer, got " + describe(node_));
        const std::int64_t value = number->get();
        if (value < low || value > high) {
            fail(range_problem(std::to_string(low), std::to_string(high), true,
                               std::to_string(value)));
        }
        return value;
    }

    template <typename Enum>
    Enum choice(std::initializer_list<std::pair<std::string_view, Enum>> choices) const {
        std::string expected = "one of";
        const char* separator = " ";
        for (const auto& choice_entry : choices) {
            expected += separator + quote_value(choice_entry.first);
            separator = ", ";
        }
        const auto& value = text(expected);
        for (const auto& [name, result] : choices) {
            if (name == value) return result;
        }
        fail("expected " + expected + ", got " + quote_value(value));
    }

    endpoint address(bool allow_hostname) const {
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

    /// A non-empty array of IP-literal endpoints without duplicates.
    std::vector<endpoint> listen_addresses() const {
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
                element.fail(quote_value(parsed.to_string()) + " is listed twice (also " + key_
                             + "[" + std::to_string(first) + "])");
            }
            result.push_back(std::move(parsed));
        }
        return result;
    }

    std::string domain_name_or_empty() const {
        const auto& value = text(R"(a domain name or "")");
        if (!value.empty() && !is_domain_name(value)) {
            fail(
                "expected a domain name (letters, digits, '-' and '.', at most 253 characters)"
                R"( or "", got )"
                + quote_value(value));
        }
        return value;
    }

    bool boolean() const {
        if (const auto* b = node_.as_boolean()) return b->get();
        fail("expected true or false, got " + describe(node_));
    }

    /// "N/window" or "off" (also "0"): unlimited.
    rate rate_or_off() const {
        constexpr std::string_view expected = R"(a rate like "10/60s" or "off")";
        const auto& value = text(expected);
        if (value == "off" || value == "0") return rate{};
        const auto parsed = parse_rate(value);
        if (!parsed) fail("expected " + std::string(expected) + ", got " + quote_value(value));
        if (parsed->window > 24h) fail("the window must be at most 24h, got " + quote_value(value));
        return *parsed;
    }

    check_mode mode() const {
        return choice<check_mode>({{"enforce", check_mode::enforce},
                                   {"observe", check_mode::observe},
                                   {"off", check_mode::off}});
    }

    /// An IPv4/IPv6 address or network in CIDR form, host bits clear.
    std::string network_text() const {
        const auto& value = text(R"(an address or network like "192.0.2.0/24")");
        if (!policy::network::parse(value)) {
            fail(R"(expected an IP address or network like "192.0.2.0/24" or "2001:db8::/32")"
                 R"( with the host bits clear, got )"
                 + quote_value(value));
        }
        return value;
    }

    /// An inline table whose keys are all in `names`; `read` gets each key and its field.
    template <typename Read>
    void inline_table(std::initializer_list<std::string_view> names, Read read) const {
        const auto* table = node_.as_table();
        if (table == nullptr)
            fail("expected an inline table like { after = 2, delay = \"1s\" }, got "
                 + describe(node_));
        for (const auto& [key, value] : *table) {
            if (std::find(names.begin(), names.end(), key.str()) == names.end()) {
                std::string known;
                for (const auto n : names)
                    known += (known.empty() ? "" : ", ") + std::string(n);
                throw field_error{key.source().begin, key_ + "." + printable(key.str()),
                                  "unknown key; the keys are " + known};
            }
            read(key.str(), field(value, key_ + "." + std::string(key.str())));
        }
    }

  private:
    const toml::node& node_;
    std::string key_;
};

void read_identity(const field& f, settings& s) {
    // XCLIENT needs the backend's EHLO capability check and its own reply handling.
    if (const auto* v = f.node().as_string(); v != nullptr && v->get() == "xclient") {
        f.fail(R"("xclient" is not implemented in this version; use "none", "proxy-v1" or )"
               R"("proxy-v2")");
    }
    s.backend.identity = f.choice<identity_mode>({{"none", identity_mode::none},
                                                  {"proxy-v1", identity_mode::proxy_v1},
                                                  {"proxy-v2", identity_mode::proxy_v2}});
}

/// One configuration key: where it lives and how its value is read into `settings`.
struct key_spec {
    std::string_view table;
    std::string_view name;
    void (*read)(const field&, settings&);
};

// The one list of keys: reading, the unknown-key check and known_keys() all use it.
// Ranges and defaults are documented in docs/configuration.md and config/smtpgate.toml.
constexpr std::array key_table{
    key_spec{"server", "listen",
             [](const field& f, settings& s) { s.server.listen = f.listen_addresses(); }},
    key_spec{"server", "hostname",
             [](const field& f, settings& s) { s.server.hostname = f.domain_name_or_empty(); }},
    key_spec{"server", "max_connections",
             [](const field& f, settings& s) {
                 s.server.max_connections = static_cast<std::size_t>(f.integer_in(1, 1'000'000));
             }},
    key_spec{"server", "shutdown_grace",
             [](const field& f, settings& s) { s.server.shutdown_grace = f.duration_in(0s, 1h); }},
    key_spec{"server", "accept_rate",
             [](const field& f, settings& s) {
                 s.server.accept_rate = static_cast<std::uint32_t>(f.integer_in(0, 1'000'000));
             }},

    key_spec{"backend", "address",
             [](const field& f, settings& s) { s.backend.address = f.address(true); }},
    key_spec{"backend", "identity", read_identity},
    key_spec{
        "backend", "connect_timeout",
        [](const field& f, settings& s) { s.backend.connect_timeout = f.duration_in(1s, 5min); }},
    key_spec{"backend", "reply_timeout",
             [](const field& f, settings& s) { s.backend.reply_timeout = f.duration_in(1s, 1h); }},
    key_spec{
        "backend", "data_reply_timeout",
        [](const field& f, settings& s) { s.backend.data_reply_timeout = f.duration_in(1s, 2h); }},

    key_spec{"timeouts", "command",
             [](const field& f, settings& s) { s.timeouts.command = f.duration_in(1s, 1h); }},
    key_spec{"timeouts", "data",
             [](const field& f, settings& s) { s.timeouts.data = f.duration_in(1s, 24h); }},
    key_spec{"timeouts", "session",
             [](const field& f, settings& s) { s.timeouts.session = f.duration_in(1s, 7 * 24h); }},

    key_spec{"smtp", "max_line_length",
             [](const field& f, settings& s) {
                 s.smtp.max_line_length = static_cast<std::size_t>(f.integer_in(512, 65536));
             }},
    key_spec{"smtp", "bare_newline",
             [](const field& f, settings& s) {
                 s.smtp.bare_newline =
                     f.choice<bare_newline_mode>({{"normalize", bare_newline_mode::normalize},
                                                  {"reject", bare_newline_mode::reject}});
             }},

    key_spec{"log", "format",
             [](const field& f, settings& s) {
                 s.log.format =
                     f.choice<log_format>({{"text", log_format::text}, {"json", log_format::json}});
             }},
    key_spec{"log", "target",
             [](const field& f, settings& s) {
                 s.log.target = f.choice<log_target>(
                     {{"stderr", log_target::stderr_stream}, {"syslog", log_target::syslog}});
             }},
    key_spec{"log", "level",
             [](const field& f, settings& s) {
                 s.log.level = f.choice<log_level>({{"debug", log_level::debug},
                                                    {"info", log_level::info},
                                                    {"warning", log_level::warning},
                                                    {"error", log_level::error}});
             }},

    key_spec{"limits", "client_key_ipv4_prefix",
             [](const field& f, settings& s) {
                 s.limits.client_key_ipv4_prefix = static_cast<int>(f.integer_in(8, 32));
             }},
    key_spec{"limits", "client_key_ipv6_prefix",
             [](const field& f, settings& s) {
                 s.limits.client_key_ipv6_prefix = static_cast<int>(f.integer_in(16, 128));
             }},
    key_spec{"limits", "on_exceed",
             [](const field& f, settings& s) {
                 s.limits.on_exceed =
                     f.choice<exceed_action>({{"terminate", exceed_action::terminate},
                                              {"tempfail", exceed_action::tempfail}});
             }},
    key_spec{"limits", "connection_rate",
             [](const field& f, settings& s) { s.limits.connection_rate = f.rate_or_off(); }},
    key_spec{"limits", "concurrent_per_client",
             [](const field& f, settings& s) {
                 s.limits.concurrent_per_client =
                     static_cast<std::uint32_t>(f.integer_in(0, 100'000));
             }},

    key_spec{"limits", "recipients_per_message",
             [](const field& f, settings& s) {
                 // RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients.
                 s.limits.recipients_per_message =
                     static_cast<std::uint32_t>(f.integer_in(100, 100'000));
             }},
    key_spec{"limits", "bad_recipient_throttle",
             [](const field& f, settings& s) {
                 f.inline_table({"after", "delay"}, [&](std::string_view name, const field& v) {
                     if (name == "after") {
                         s.limits.bad_recipient_after =
                             static_cast<std::uint32_t>(v.integer_in(0, 10'000));
                     } else {
                         s.limits.bad_recipient_delay = v.duration_in(0s, 60s);
                     }
                 });
             }},
    key_spec{"limits", "bad_recipient_rate",
             [](const field& f, settings& s) {
                 f.inline_table({"throttle", "limit", "block_for"}, [&](std::string_view name,
                                                                        const field& v) {
                     if (name == "throttle") {
                         s.limits.bad_recipient_throttle_rate = v.rate_or_off();
                     } else if (name == "limit") {
                         s.limits.bad_recipient_limit = v.rate_or_off();
                     } else {
                         s.limits.bad_recipient_block_for = v.duration_in(1s, 7 * 24h);
                     }
                 });
             }},
    key_spec{"limits", "message_rate",
             [](const field& f, settings& s) { s.limits.message_rate = f.rate_or_off(); }},
    key_spec{"limits", "recipient_rate",
             [](const field& f, settings& s) { s.limits.recipient_rate = f.rate_or_off(); }},
    key_spec{"limits", "sender_message_rate",
             [](const field& f, settings& s) { s.limits.sender_message_rate = f.rate_or_off(); }},
    key_spec{"limits", "sender_recipient_rate",
             [](const field& f, settings& s) { s.limits.sender_recipient_rate = f.rate_or_off(); }},
    key_spec{"limits", "soft_errors",
             [](const field& f, settings& s) {
                 s.limits.soft_errors = static_cast<std::uint32_t>(f.integer_in(0, 10'000));
             }},
    key_spec{"limits", "error_delay",
             [](const field& f, settings& s) { s.limits.error_delay = f.duration_in(0s, 60s); }},
    key_spec{"limits", "max_errors",
             [](const field& f, settings& s) {
                 s.limits.max_errors = static_cast<std::uint32_t>(f.integer_in(0, 10'000));
             }},
    key_spec{"limits", "max_delay",
             [](const field& f, settings& s) { s.limits.max_delay = f.duration_in(0s, 1h); }},

    // RFC 5321 4.5.3.2.1: a client waits 5 minutes for the greeting; a longer pause only loses
    // mail.
    key_spec{"greet_pause", "delay",
             [](const field& f, settings& s) { s.greet_pause.delay = f.duration_in(0s, 300s); }},
    key_spec{"greet_pause", "teaser",
             [](const field& f, settings& s) { s.greet_pause.teaser = f.boolean(); }},
    key_spec{"greet_pause", "on_pregreet",
             [](const field& f, settings& s) {
                 s.greet_pause.on_pregreet =
                     f.choice<pregreet_action>({{"nullserver", pregreet_action::nullserver},
                                                {"drop", pregreet_action::drop}});
             }},

    key_spec{"interval", "host",
             [](const field& f, settings& s) { s.interval.host = f.duration_in(0s, 24h); }},
    key_spec{"interval", "helo",
             [](const field& f, settings& s) { s.interval.helo = f.duration_in(0s, 24h); }},
    key_spec{"interval", "sender",
             [](const field& f, settings& s) { s.interval.sender = f.duration_in(0s, 24h); }},

    key_spec{"modes", "max_connections",
             [](const field& f, settings& s) { s.modes.max_connections = f.mode(); }},
    key_spec{"modes", "access", [](const field& f, settings& s) { s.modes.access = f.mode(); }},
    key_spec{"modes", "concurrent_per_client",
             [](const field& f, settings& s) { s.modes.concurrent_per_client = f.mode(); }},
    key_spec{"modes", "connection_rate",
             [](const field& f, settings& s) { s.modes.connection_rate = f.mode(); }},
    key_spec{"modes", "host_interval",
             [](const field& f, settings& s) { s.modes.host_interval = f.mode(); }},
    key_spec{"modes", "greet_pause",
             [](const field& f, settings& s) { s.modes.greet_pause = f.mode(); }},
    key_spec{"modes", "recipients_per_message",
             [](const field& f, settings& s) { s.modes.recipients_per_message = f.mode(); }},
    key_spec{"modes", "bad_recipient_throttle",
             [](const field& f, settings& s) { s.modes.bad_recipient_throttle = f.mode(); }},
    key_spec{"modes", "errors", [](const field& f, settings& s) { s.modes.errors = f.mode(); }},
    key_spec{"modes", "bad_recipient_rate",
             [](const field& f, settings& s) { s.modes.bad_recipient_rate = f.mode(); }},
    key_spec{"modes", "helo_interval",
             [](const field& f, settings& s) { s.modes.helo_interval = f.mode(); }},
    key_spec{"modes", "sender_interval",
             [](const field& f, settings& s) { s.modes.sender_interval = f.mode(); }},
    key_spec{"modes", "message_rate",
             [](const field& f, settings& s) { s.modes.message_rate = f.mode(); }},
    key_spec{"modes", "recipient_rate",
             [](const field& f, settings& s) { s.modes.recipient_rate = f.mode(); }},

    key_spec{"state", "store",
             [](const field& f, settings&) {
                 // Only the in-memory store exists in this version; say so rather than ignore it.
                 if (f.choice<int>({{"memory", 0}, {"redis", 1}}) == 1) {
                     f.fail(R"("redis" is not implemented in this version; use "memory")");
                 }
             }},
    key_spec{"state", "max_entries",
             [](const field& f, settings& s) {
                 s.state.max_entries = static_cast<std::size_t>(f.integer_in(1000, 100'000'000));
             }},
};

/// The keys of one [[rule]] entry; `settings&` is unused, the rule is the target.
struct rule_key_spec {
    std::string_view name;
    void (*read)(const field&, rule&);
};

constexpr std::array rule_key_table{
    rule_key_spec{"match", [](const field& f, rule& r) { r.match = f.network_text(); }},
    rule_key_spec{"action",
                  [](const field& f, rule& r) {
                      r.action = f.choice<rule_action>({{"limit", rule_action::limit},
                                                        {"allow", rule_action::allow},
                                                        {"deny", rule_action::deny}});
                  }},
    rule_key_spec{"connection_rate",
                  [](const field& f, rule& r) { r.connection_rate = f.rate_or_off(); }},
    rule_key_spec{"concurrent_per_client",
                  [](const field& f, rule& r) {
                      r.concurrent_per_client =
                          static_cast<std::uint32_t>(f.integer_in(0, 100'000));
                  }},
    rule_key_spec{"greet_pause",
                  [](const field& f, rule& r) { r.greet_pause = f.duration_in(0s, 300s); }},
    rule_key_spec{"host_interval",
                  [](const field& f, rule& r) { r.host_interval = f.duration_in(0s, 24h); }},
    rule_key_spec{"helo_interval",
                  [](const field& f, rule& r) { r.helo_interval = f.duration_in(0s, 24h); }},
    rule_key_spec{"sender_interval",
                  [](const field& f, rule& r) { r.sender_interval = f.duration_in(0s, 24h); }},
};

std::vector<std::string_view> table_names() {
    std::vector<std::string_view> names;
    for (const auto& spec : key_table) {
        if (std::find(names.begin(), names.end(), spec.table) == names.end()) {
            names.push_back(spec.table);
        }
    }
    return names;
}

const key_spec* find_key(std::string_view table, std::string_view name) {
    for (const auto& spec : key_table) {
        if (spec.table == table && spec.name == name) return &spec;
    }
    return nullptr;
}

/// Levenshtein distance, for "did you mean" on typos.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
            row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
            diagonal = above;
        }
    }
    return row[b.size()];
}

/// The closest candidate within edit distance 2; the first one on a tie.
std::optional<std::string_view> closest(std::string_view word,
                                        const std::vector<std::string_view>& candidates) {
    constexpr std::size_t max_distance = 2;
    if (word.size() > 64) return std::nullopt;  // no key is that long; skip the quadratic work
    std::optional<std::string_view> best;
    std::size_t best_distance = max_distance + 1;
    for (const auto candidate : candidates) {
        const auto d = edit_distance(word, candidate);
        if (d < best_distance) {
            best = candidate;
            best_distance = d;
        }
    }
    return best;
}

/// A table that holds a key of this name, other than `except`.
std::optional<std::string_view> table_holding(std::string_view name, std::string_view except) {
    for (const auto& spec : key_table) {
        if (spec.name == name && spec.table != except) return spec.table;
    }
    return std::nullopt;
}

std::string unknown_key_problem(std::string_view table, std::string_view name) {
    std::vector<std::string_view> siblings;
    for (const auto& spec : key_table) {
        if (spec.table == table) siblings.push_back(spec.name);
    }
    std::string problem = "unknown key in [" + std::string(table) + "]";
    if (const auto near = closest(name, siblings)) {
        problem += "; did you mean '" + std::string(*near) + "'?";
    } else if (const auto home = table_holding(name, table)) {
        problem += "; '" + printable(name) + "' belongs in [" + std::string(*home) + "]";
    }
    return problem;
}

std::string unknown_table_problem(std::string_view name, bool is_table) {
    const auto tables = table_names();
    std::string problem = is_table ? "unknown table" : "unknown top-level key";
    if (const auto near = closest(name, tables)) {
        problem += "; did you mean [" + std::string(*near) + "]?";
    } else if (const auto home = table_holding(name, "")) {
        problem += "; '" + printable(name) + "' belongs in [" + std::string(*home) + "]";
    } else {
        problem += "; the tables are";
        for (const auto table : tables) {
            problem += " [" + std::string(table) + "]";
        }
    }
    return problem;
}

diagnostic at(std::string_view source, const toml::source_position& where, std::string key,
              std::string problem) {
    return {std::string(source), where.line, where.column, std::move(key), std::move(problem)};
}

std::string_view trim_left(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    return s;
}

/// Best effort, for syntax errors: the dotted key assigned on `line` ("timeouts.command"),
/// qualified by the last plain [table] header above it; empty when the line assigns none.
std::string key_on_line(std::string_view text, std::size_t line) {
    const auto is_bare_key_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
               || c == '_' || c == '-' || c == '.';
    };
    std::string table;
    for (std::size_t number = 1; number <= line && !text.empty(); ++number) {
        const auto end = text.find('\n');
        const auto current = trim_left(text.substr(0, end));
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (current.starts_with('[') && !current.starts_with("[[")) {
            const auto close = current.find(']');
            const auto name = current.substr(1, close == std::string_view::npos ? 0 : close - 1);
            const bool simple =
                !name.empty() && std::all_of(name.begin(), name.end(), is_bare_key_char);
            table = simple ? std::string(name) : std::string();
            if (number == line) return "";
            continue;
        }
        if (number != line) continue;
        const auto key_end = std::find_if_not(current.begin(), current.end(), is_bare_key_char);
        const auto key = current.substr(0, static_cast<std::size_t>(key_end - current.begin()));
        if (key.empty() || !trim_left(current.substr(key.size())).starts_with('=')) return "";
        return table.empty() ? std::string(key) : table + "." + std::string(key);
    }
    return "";
}

std::string lower_first(std::string_view text) {
    std::string out(text);
    if (!out.empty() && out[0] >= 'A' && out[0] <= 'Z') {
        out[0] = static_cast<char>(out[0] - 'A' + 'a');
    }
    return out;
}

/// Reads the [[rule]] array; problems are appended to `problems`.
void read_rules(std::string_view source, const toml::node& node, settings& out,
                std::vector<diagnostic>& problems) {
    const auto* array = node.as_array();
    if (array == nullptr || !array->is_array_of_tables()) {
        problems.push_back(
            at(source, node.source().begin, "rule",
               "expected [[rule]] entries (an array of tables), got " + describe(node)));
        return;
    }
    std::unordered_map<std::string, std::string> seen;  // network -> origin
    seen.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
        const auto& table = *(*array)[i].as_table();
        const std::string prefix = "rule[" + std::to_string(i) + "]";
        rule r;
        r.origin = std::string(source) + ":" + std::to_string(table.source().begin.line);
        bool has_match = false;
        for (const auto& [key, value] : table) {
            const std::string path = prefix + "." + printable(key.str());
            const auto* spec =
                std::find_if(rule_key_table.begin(), rule_key_table.end(),
                             [name = key.str()](const auto& k) { return k.name == name; });
            if (spec == rule_key_table.end()) {
                std::vector<std::string_view> names;
                for (const auto& k : rule_key_table)
                    names.push_back(k.name);
                std::string problem = "unknown key in [[rule]]";
                if (const auto near = closest(key.str(), names)) {
                    problem += "; did you mean '" + std::string(*near) + "'?";
                }
                problems.push_back(at(source, key.source().begin, path, problem));
                continue;
            }
            try {
                spec->read(field(value, path), r);
                has_match = has_match || key.str() == "match";
            } catch (const field_error& e) {
                problems.push_back(at(source, e.where, e.key, e.problem));
            }
        }
        if (!has_match) {
            problems.push_back(at(source, table.source().begin, prefix + ".match",
                                  "every [[rule]] needs a match"));
            continue;
        }
        // One rule per network, found in a hash set: tens of thousands of rules load in
        // linear time.
        const auto [twin, fresh] =
            seen.emplace(policy::network::parse(r.match)->to_string(), r.origin);
        if (!fresh) {
            problems.push_back(at(
                source, table.source().begin, prefix + ".match",
                "the network " + quote_value(r.match) + " already has a rule at " + twin->second));
            continue;
        }
        out.rules.push_back(std::move(r));
    }
}

/// Reads the [[exception]] array (vthrottle's whitelist with per-entry intervals).
void read_exceptions(std::string_view source, const toml::node& node, settings& out,
                     std::vector<diagnostic>& problems) {
    const auto* array = node.as_array();
    if (array == nullptr || !array->is_array_of_tables()) {
        problems.push_back(
            at(source, node.source().begin, "exception",
               "expected [[exception]] entries (an array of tables), got " + describe(node)));
        return;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
        const auto& table = *(*array)[i].as_table();
        const std::string prefix = "exception[" + std::to_string(i) + "]";
        interval_exception e;
        e.origin = std::string(source) + ":" + std::to_string(table.source().begin.line);
        bool has_match = false;
        bool has_interval = false;
        for (const auto& [key, value] : table) {
            const std::string path = prefix + "." + printable(key.str());
            try {
                const field f(value, path);
                if (key.str() == "match") {
                    // "mx.example.org" (a HELO name or domain, also a sender domain),
                    // "user@example.org" (a sender), "@example.org" (every sender there).
                    const auto& text = f.text(R"(a host name, "user@domain" or "@domain")");
                    const auto at_sign = text.rfind('@');
                    const std::string domain =
                        at_sign == std::string::npos ? text : text.substr(at_sign + 1);
                    if (!is_domain_name(domain)
                        || (at_sign != std::string::npos && at_sign != 0
                            && text.find_first_of(" \t<>") != std::string::npos)) {
                        f.fail(R"(expected a host name, "user@domain" or "@domain", got )"
                               + quote_value(text));
                    }
                    e.match = text;
                    has_match = true;
                } else if (key.str() == "interval") {
                    e.interval = f.duration_in(0s, 24h);
                    has_interval = true;
                } else {
                    problems.push_back(
                        at(source, key.source().begin, path,
                           "unknown key in [[exception]]; the keys are match, interval"));
                }
            } catch (const field_error& err) {
                problems.push_back(at(source, err.where, err.key, err.problem));
            }
        }
        if (!has_match || !has_interval) {
            problems.push_back(at(source, table.source().begin, prefix,
                                  "every [[exception]] needs a match and an interval"));
            continue;
        }
        out.exceptions.push_back(std::move(e));
    }
}

/// Reads one [table]; problems are appended to `problems`.
void read_table(std::string_view source, std::string_view table_name, const toml::table& table,
                settings& out, std::vector<diagnostic>& problems) {
    for (const auto& [key, value] : table) {
        const std::string path = std::string(table_name) + "." + printable(key.str());
        const key_spec* spec = find_key(table_name, key.str());
        if (spec == nullptr) {
            problems.push_back(
                at(source, key.source().begin, path, unknown_key_problem(table_name, key.str())));
            continue;
        }
        try {
            spec->read(field(value, path), out);
        } catch (const field_error& e) {
            problems.push_back(at(source, e.where, e.key, e.problem));
        }
    }
}

std::string join_lines(const std::vector<diagnostic>& diagnostics) {
    std::string out;
    for (const auto& d : diagnostics) {
        if (!out.empty()) out += '\n';
        out += d.to_string();
    }
    return out;
}

}  // namespace

std::string diagnostic::to_string() const {
    std::string out = source;
    if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
    if (!key.empty()) out += key + ": ";
    out += problem;
    return out;
}

load_error::load_error(std::vector<diagnostic> diagnostics)
    : std::runtime_error(join_lines(diagnostics)), diagnostics_(std::move(diagnostics)) {}

settings load_string(std::string_view toml_text, std::string_view source_name) {
    toml::table root;
    try {
        root = toml::parse(toml_text, std::string(source_name));
    } catch (const toml::parse_error& e) {
        const auto where = e.source().begin;
        throw load_error({at(source_name, where, key_on_line(toml_text, where.line),
                             "invalid TOML: " + lower_first(e.description()))});
    }

    settings out;
    out.source = std::string(source_name);
    std::vector<diagnostic> problems;
    const auto tables = table_names();
    for (const auto& [key, value] : root) {
        const std::string name = printable(key.str());
        const bool known = std::find(tables.begin(), tables.end(), key.str()) != tables.end();
        if (key.str() == "rule") {
            read_rules(source_name, value, out, problems);
        } else if (key.str() == "exception") {
            read_exceptions(source_name, value, out, problems);
        } else if (!known) {
            problems.push_back(at(source_name, key.source().begin, name,
                                  unknown_table_problem(key.str(), value.is_table())));
        } else if (const auto* table = value.as_table()) {
            read_table(source_name, key.str(), *table, out, problems);
        } else {
            problems.push_back(at(source_name, value.source().begin, name,
                                  "expected a table [" + name + "], got " + describe(value)));
        }
    }
    if (!problems.empty()) {
        std::stable_sort(problems.begin(), problems.end(), [](const auto& a, const auto& b) {
            return std::pair{a.line, a.column} < std::pair{b.line, b.column};
        });
        throw load_error(std::move(problems));
    }
    return out;
}

settings load_file(const std::string& path) {
    const auto fail = [&path](std::string problem) {
        return load_error({diagnostic{path, 0, 0, "", std::move(problem)}});
    };
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw fail("cannot read: is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw fail("cannot read: " + std::generic_category().message(errno));
    std::string text(max_file_size + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) throw fail("cannot read: " + std::generic_category().message(errno));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_file_size) {
        throw fail("larger than " + std::to_string(max_file_size) + " bytes; not a configuration");
    }
    return load_string(text, path);
}

std::vector<std::string> known_keys() {
    std::vector<std::string> keys;
    keys.reserve(key_table.size() + rule_key_table.size());
    for (const auto& spec : key_table) {
        keys.push_back(std::string(spec.table) + "." + std::string(spec.name));
    }
    for (const auto& spec : rule_key_table)
        keys.push_back("rule." + std::string(spec.name));
    keys.push_back("exception.match");
    keys.push_back("exception.interval");
    return keys;
}

}  // namespace smtpgate::config
