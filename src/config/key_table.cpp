#include "key_table.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>

#include "smtpgate/config/units.hpp"
#include "smtpgate/inet/address.hpp"

namespace smtpgate::config {

namespace {

void read_identity(const field& f, settings& s) {
    s.backend.identity = f.choice<identity_mode>({{"none", identity_mode::none},
                                                  {"proxy-v1", identity_mode::proxy_v1},
                                                  {"proxy-v2", identity_mode::proxy_v2},
                                                  {"xclient", identity_mode::xclient}});
}

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
    key_spec{"server", "reverse_lookup",
             [](const field& f, settings& s) { s.server.reverse_lookup = f.boolean(); }},
    key_spec{"server", "reverse_lookup_timeout",
             [](const field& f, settings& s) {
                 s.server.reverse_lookup_timeout = f.duration_in(100ms, 60s);
             }},
    key_spec{"server", "resolver_threads",
             [](const field& f, settings& s) {
                 s.server.resolver_threads = static_cast<std::size_t>(f.integer_in(1, 64));
             }},
    key_spec{"server", "accept_rate",
             [](const field& f, settings& s) {
                 s.server.accept_rate = static_cast<std::uint32_t>(f.integer_in(0, 1'000'000));
             }},

    key_spec{"server", "trusted_proxies",
             [](const field& f, settings& s) { s.server.trusted_proxies = f.networks(); }},
    key_spec{"server", "proxy_header_timeout",
             [](const field& f, settings& s) {
                 s.server.proxy_header_timeout = f.duration_in(100ms, 60s);
             }},
    key_spec{"server", "user",
             [](const field& f, settings& s) { s.server.user = f.system_user_or_empty(); }},

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

    key_spec{"backend", "tls",
             [](const field& f, settings& s) {
                 s.backend.tls = f.choice<backend_tls_mode>(
                     {{"off", backend_tls_mode::off}, {"starttls", backend_tls_mode::starttls}});
             }},
    key_spec{"backend", "tls_verify",
             [](const field& f, settings& s) { s.backend.tls_verify = f.boolean(); }},
    key_spec{"backend", "tls_ca_file",
             [](const field& f, settings& s) { s.backend.tls_ca_file = f.path_or_empty(); }},

    key_spec{"admin", "listen",
             [](const field& f, settings& s) {
                 // "" turns the endpoint off.
                 if (const auto* v = f.node().as_string(); v != nullptr && v->get().empty()) {
                     s.admin.listen.reset();
                 } else {
                     s.admin.listen = f.address(false);
                 }
             }},

    key_spec{"tls", "certificate",
             [](const field& f, settings& s) { s.tls.certificate = f.path_or_empty(); }},
    key_spec{"tls", "key", [](const field& f, settings& s) { s.tls.key = f.path_or_empty(); }},
    key_spec{"tls", "min_version",
             [](const field& f, settings& s) {
                 s.tls.min_version = f.choice<tls_version>(
                     {{"1.2", tls_version::v1_2}, {"1.3", tls_version::v1_3}});
             }},
    key_spec{
        "tls", "handshake_timeout",
        [](const field& f, settings& s) { s.tls.handshake_timeout = f.duration_in(1s, 5min); }},

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

}  // namespace

std::span<const key_spec> table_keys() {
    return key_table;
}

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
        const auto net = inet::network::parse(r.match);
        const std::string canonical = net ? net->to_string() : inet::lower_ascii(r.match);
        const auto [twin, fresh] = seen.emplace(canonical, r.origin);
        if (!fresh) {
            problems.push_back(at(
                source, table.source().begin, prefix + ".match",
                "the network " + quote_value(r.match) + " already has a rule at " + twin->second));
            continue;
        }
        out.rules.push_back(std::move(r));
    }
}

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
