// Strict TOML loader: configuration text in, validated `settings` out.
//
// Every key the program knows is declared once, in a table of key descriptors in key_table.cpp
// that drives both reading and the unknown-key check. Strict by design (STYLE.md rule 11):
// an unknown table or key, a wrong type or an out-of-range value is an error naming the
// file, line, column and dotted key; a missing key keeps the default from config.hpp; there
// is no silent fallback on a typo. All problems found are reported together, in file order.
// Does not: watch files, merge several files, read the environment, or apply settings.
// Called at start-up and on reload; no shared state, safe from any thread.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/config/config.hpp"

namespace smtpgate::config {

/// One problem in a configuration source.
struct diagnostic {
    std::string source;      ///< file path or source name
    std::size_t line = 0;    ///< 1-based; 0 when the problem has no position (unreadable file)
    std::size_t column = 0;  ///< 1-based, in characters
    std::string key;  ///< dotted key path ("timeouts.command", "server.listen[1]"); may be empty
    std::string problem;  ///< what is wrong, with the offending value quoted

    /// "<source>:<line>:<column>: <key>: <problem>"; the position and key parts are left
    /// out when unknown.
    std::string to_string() const;
};

/// Thrown by load_file and load_string. what() is one diagnostic per line, in file order:
/// `smtpgate.toml:12:11: timeouts.command: expected a duration like "30s" or "5m", got
/// "5 minutes"`.
class load_error : public std::runtime_error {
  public:
    explicit load_error(std::vector<diagnostic> diagnostics);

    /// At least one entry; a TOML syntax error or unreadable file gives exactly one.
    const std::vector<diagnostic>& diagnostics() const noexcept { return diagnostics_; }

  private:
    std::vector<diagnostic> diagnostics_;
};

/// Reads and validates the file at `path`; settings.source is `path`.
/// Throws load_error when the file cannot be read or is not a valid configuration.
settings load_file(const std::string& path);

/// Validates `toml_text`; `source_name` is used in messages and as settings.source.
/// Throws load_error when the text is not a valid configuration.
settings load_string(std::string_view toml_text, std::string_view source_name);

/// Every key the loader accepts, dotted ("server.listen", ...), in declaration order.
std::vector<std::string> known_keys();

}  // namespace smtpgate::config
