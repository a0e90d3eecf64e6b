#include "smtpgate/ops/learn.hpp"

#include <fmt/format.h>

#include "smtpgate/config/units.hpp"

namespace smtpgate::ops {

namespace {

// A JSON string body starting at `pos` (just after the opening quote); advances `pos` past
// the closing quote. Our logs escape \" \\ \n \r \t and \u00XX only.
std::optional<std::string> json_string(std::string_view s, std::size_t& pos) {
    std::string out;
    while (pos < s.size()) {
        const char c = s[pos++];
        if (c == '"') return out;
        if (c != '\\') {
            out.push_back(c);
            continue;
        }
        if (pos >= s.size()) return std::nullopt;
        const char e = s[pos++];
        switch (e) {
            case 'n': out.push_back('\n'); break;
            case 'r': out.push_back('\r'); break;
            case 't': out.push_back('\t'); break;
            case 'u': {
                if (pos + 4 > s.size()) return std::nullopt;
                out.push_back(
                    static_cast<char>(std::stoi(std::string(s.substr(pos, 4)), nullptr, 16)));
                pos += 4;
                break;
            }
            default: out.push_back(e);
        }
    }
    return std::nullopt;
}

std::optional<std::map<std::string, std::string>> parse_json(std::string_view s) {
    std::map<std::string, std::string> out;
    std::size_t pos = 1;
    while (pos < s.size()) {
        while (pos < s.size() && (s[pos] == ',' || s[pos] == ' '))
            ++pos;
        if (pos < s.size() && s[pos] == '}') return out;
        if (pos >= s.size() || s[pos++] != '"') return std::nullopt;
        auto key = json_string(s, pos);
        if (!key || pos >= s.size() || s[pos++] != ':') return std::nullopt;
        if (pos < s.size() && s[pos] == '"') {
            ++pos;
            auto value = json_string(s, pos);
            if (!value) return std::nullopt;
            out[*key] = *value;
        } else {
            const auto end = s.find_first_of(",}", pos);
            if (end == std::string_view::npos) return std::nullopt;
            out[*key] = std::string(s.substr(pos, end - pos));
            pos = end;
        }
    }
    return std::nullopt;
}

std::optional<std::map<std::string, std::string>> parse_text(std::string_view s) {
    // "<ts> <level> <event> key=value key="quoted value"..." (docs/logging.md); syslog lines
    // carry no timestamp, so the event is the first word after the level.
    std::map<std::string, std::string> out;
    auto next_word = [&]() {
        const auto space = s.find(' ');
        std::string_view w = s.substr(0, space);
        s = space == std::string_view::npos ? std::string_view{} : s.substr(space + 1);
        return w;
    };
    std::string_view first = next_word();
    if (first != "debug" && first != "info" && first != "warning" && first != "error") {
        first = next_word();  // that was the timestamp
    }
    out["level"] = first;
    out["event"] = next_word();
    while (!s.empty()) {
        const auto eq = s.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        const std::string key(s.substr(0, eq));
        s.remove_prefix(eq + 1);
        std::string value;
        if (!s.empty() && s.front() == '"') {
            std::size_t i = 1;
            for (; i < s.size() && s[i] != '"'; ++i) {
                if (s[i] == '\\' && i + 1 < s.size()) ++i;
                value.push_back(s[i]);
            }
            s.remove_prefix(std::min(s.size(), i + 1));
            if (!s.empty() && s.front() == ' ') s.remove_prefix(1);
        } else {
            value = std::string(next_word());
        }
        out[key] = value;
    }
    return out;
}

// A TOML basic string: the subject comes from the network.
std::string toml_quote(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (u < 0x20 || u == 0x7f) {
            out += fmt::format("\\u{:04x}", u);
        } else {
            out.push_back(c);
        }
    }
    return out + "\"";
}

}  // namespace

std::optional<std::map<std::string, std::string>> parse_log_line(std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.remove_suffix(1);
    if (line.empty()) return std::nullopt;
    return line.front() == '{' ? parse_json(line) : parse_text(line);
}

void interval_learner::add_line(std::string_view line) {
    const auto kv = parse_log_line(line);
    if (!kv) return;
    const auto get = [&](const char* k) {
        const auto it = kv->find(k);
        return it == kv->end() ? std::string{} : it->second;
    };
    if (get("event") != "would_reject") return;
    const std::string reason = get("reason");
    std::string kind;
    std::string subject;
    if (reason == "helo_interval" || reason == "sender_interval") {
        kind = reason == "helo_interval" ? "helo" : "sender";
        subject = get("detail");
    } else if (reason == "host_interval") {
        kind = "host";
        subject = get("key");
    } else {
        return;
    }
    const auto observed = config::parse_duration(get("observed"));
    if (subject.empty() || !observed) return;
    auto& s = seen_[{kind, subject}];
    ++s.count;
    s.shortest = std::min(s.shortest, *observed);
    ++used_;
}

void interval_learner::add_stream(std::istream& in) {
    std::string line;
    while (std::getline(in, line))
        add_line(line);
}

std::string interval_learner::suggestions(std::size_t min_count) const {
    std::string out = fmt::format(
        "# smtpgate learn: {} would_reject line(s) from the interval throttles.\n"
        "# Each entry below would have been throttled at least {} time(s); its interval is the\n"
        "# shortest one observed, rounded down to the second. Review before adding them.\n",
        used_, min_count);
    for (const auto& [key, s] : seen_) {
        if (s.count < min_count) continue;
        const auto& [kind, subject] = key;
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(s.shortest);
        const std::string interval = config::format_duration(config::duration(seconds));
        out += fmt::format("\n# {} {}: {} observation(s) too soon, shortest interval {}\n", kind,
                           toml_quote(subject), s.count, config::format_duration(s.shortest));
        if (kind == "host") {
            out += fmt::format("[[rule]]\nmatch = {}\nhost_interval = \"{}\"\n",
                               toml_quote(subject), interval);
        } else {
            out += fmt::format("[[exception]]\nmatch = {}\ninterval = \"{}\"\n",
                               toml_quote(subject), interval);
        }
    }
    return out;
}

}  // namespace smtpgate::ops
