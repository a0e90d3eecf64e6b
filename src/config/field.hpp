// One TOML value on its way into `settings`: typed, range-checked reads, and the wording of
// what is wrong with a value.
//
// A `field` is a TOML node plus its dotted key path ("timeouts.command", "server.listen[1]").
// Each read checks the type and the range and returns the typed value, or throws
// `field_error` naming the position, the key and the problem with the offending value quoted
// (`printable`, `quote_value`, `describe`). The loader's driver catches it, records a
// diagnostic and reads on, so every problem in a file is reported together.
// Does not: know which keys exist (key_table.cpp), parse TOML or order diagnostics
// (loader.cpp), or parse value syntaxes itself (units.hpp does, and only says yes or no).
// Private to the loader: nothing outside src/config/ includes it.
// Threading/time: no state, no clock; a field refers to a node it does not own and lives
// only while the parsed table does.
#pragma once

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smtpgate/config/config.hpp"
#include "smtpgate/config/loader.hpp"

namespace smtpgate::config {

/// Thrown by `field` when a value is unusable; the driver collects it and reads on.
struct field_error {
    toml::source_position where;
    std::string key;
    std::string problem;
};

/// User text made safe for a one-line message: printable ASCII kept, the rest as \xNN,
/// long values cut short.
std::string printable(std::string_view text);

/// `text` made printable, in double quotes.
std::string quote_value(std::string_view text);

/// The "got ..." part of a message: strings quoted, other scalars with their type.
std::string describe(const toml::node& node);

/// A diagnostic for `key` at `where` in `source`.
diagnostic at(std::string_view source, const toml::source_position& where, std::string key,
              std::string problem);

/// One value from the file on its way into `settings`: reading it checks type and range.
class field {
  public:
    field(const toml::node& node, std::string key) : node_(node), key_(std::move(key)) {}

    const toml::node& node() const { return node_; }

    [[noreturn]] void fail(std::string problem) const;

    const std::string& text(std::string_view expected) const;

    duration duration_in(duration low, duration high) const;

    std::int64_t integer_in(std::int64_t low, std::int64_t high) const;

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

    endpoint address(bool allow_hostname) const;

    /// A non-empty array of IP-literal endpoints without duplicates.
    std::vector<endpoint> listen_addresses() const;

    std::string domain_name_or_empty() const;

    bool boolean() const;

    /// "N/window" or "off" (also "0"): unlimited.
    rate rate_or_off() const;

    check_mode mode() const;

    /// An IPv4/IPv6 address or network in CIDR form, host bits clear.
    std::string network_text() const;

    /// An array of IPv4/IPv6 addresses or CIDR networks (host bits clear), without duplicates.
    std::vector<std::string> networks() const;

    /// A file path (not checked for existence: the files are read where they are used), or "".
    std::string path_or_empty() const;

    /// The name of a user that exists on this system (the password database), or "".
    std::string system_user_or_empty() const;

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

}  // namespace smtpgate::config
