#include "smtpgate/config/loader.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>
#include <utility>

#include "field.hpp"
#include "key_table.hpp"
#include "smtpgate/inet/address.hpp"

namespace smtpgate::config {

namespace {

/// Larger files are refused unread: a configuration is a few kilobytes.
constexpr std::size_t max_file_size = 1024 * 1024;

std::vector<std::string_view> table_names() {
    std::vector<std::string_view> names;
    for (const auto& spec : table_keys()) {
        if (std::find(names.begin(), names.end(), spec.table) == names.end()) {
            names.push_back(spec.table);
        }
    }
    return names;
}

const key_spec* find_key(std::string_view table, std::string_view name) {
    for (const auto& spec : table_keys()) {
        if (spec.table == table && spec.name == name) return &spec;
    }
    return nullptr;
}

/// A table that holds a key of this name, other than `except`.
std::optional<std::string_view> table_holding(std::string_view name, std::string_view except) {
    for (const auto& spec : table_keys()) {
        if (spec.name == name && spec.table != except) return spec.table;
    }
    return std::nullopt;
}

std::string unknown_key_problem(std::string_view table, std::string_view name) {
    std::vector<std::string_view> siblings;
    for (const auto& spec : table_keys()) {
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
    // A rule that matches by name needs reverse lookups, or it would never match.
    if (!out.server.reverse_lookup) {
        for (const auto& r : out.rules) {
            if (!inet::network::parse(r.match)) {
                const auto colon = r.origin.rfind(':');
                const std::size_t line =
                    colon == std::string::npos ? 0 : std::stoul(r.origin.substr(colon + 1));
                problems.push_back({std::string(source_name), line, 1, "rule.match",
                                    "matches the host name " + quote_value(r.match)
                                        + ", which needs server.reverse_lookup = true"});
            }
        }
    }
    // STARTTLS needs both halves of the key pair; one alone is a half-done edit.
    if (out.tls.certificate.empty() != out.tls.key.empty()) {
        const auto* tls = root.get("tls");
        const auto where = tls != nullptr ? tls->source().begin : toml::source_position{};
        problems.push_back(at(source_name, where, "tls",
                              out.tls.key.empty()
                                  ? "certificate is set but key is not; STARTTLS needs both"
                                  : "key is set but certificate is not; STARTTLS needs both"));
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

}  // namespace smtpgate::config
