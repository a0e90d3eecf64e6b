// The keys the loader knows: the one table of [table] keys, the keys of a [[rule]] entry and
// of an [[exception]] entry, and how each value is read and range-checked into `settings`.
//
// Every key is declared once, in key_table.cpp; reading, the unknown-key check and
// known_keys() all use that declaration. Ranges and defaults are documented in
// docs/configuration.md and config/smtpgate.toml. The [[rule]] and [[exception]] readers
// check their own entries (unknown or missing keys, one rule per network) and append
// diagnostics. closest() is the "did you mean" matcher for every unknown name.
// Does not: parse TOML, walk the top level, word the problem for an unknown [table] or
// [table] key, or sort diagnostics (all loader.cpp); nor check value syntax (field.hpp).
// Private to the loader: nothing outside src/config/ includes it.
// Threading/time: constant tables and pure functions; no state, no clock.
#pragma once

#include <toml++/toml.h>

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "field.hpp"
#include "smtpgate/config/config.hpp"
#include "smtpgate/config/loader.hpp"

namespace smtpgate::config {

/// One configuration key: where it lives and how its value is read into `settings`.
struct key_spec {
    std::string_view table;
    std::string_view name;
    void (*read)(const field&, settings&);
};

/// Every key of the plain [tables], in declaration order.
std::span<const key_spec> table_keys();

/// The closest candidate within edit distance 2; the first one on a tie.
std::optional<std::string_view> closest(std::string_view word,
                                        const std::vector<std::string_view>& candidates);

/// Reads the [[rule]] array; problems are appended to `problems`.
void read_rules(std::string_view source, const toml::node& node, settings& out,
                std::vector<diagnostic>& problems);

/// Reads the [[exception]] array (vthrottle's whitelist with per-entry intervals); problems
/// are appended to `problems`.
void read_exceptions(std::string_view source, const toml::node& node, settings& out,
                     std::vector<diagnostic>& problems);

}  // namespace smtpgate::config
