// Learn mode (vthrottle's vmeasure): suggested interval exceptions from observe-mode logs.
//
// Run the interval throttles in `observe` mode for a while; every observation that would have
// been throttled is logged as a `would_reject` line with the observed interval. `smtpgate
// learn` reads those logs (text or JSON, as written by the proxy) and prints a TOML block:
// an [[exception]] per HELO name or sender and a [[rule]] per client network that observe mode
// would have throttled repeatedly, with the shortest interval it showed, so enforcement can be
// turned on without hurting regular senders.
//
// Pure aggregation over lines; the caller opens the files.
#pragma once

#include <cstddef>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "smtpgate/config/config.hpp"

namespace smtpgate::ops {

/// The key=value pairs of one log line, text or JSON; nullopt when it is neither.
std::optional<std::map<std::string, std::string>> parse_log_line(std::string_view line);

class interval_learner {
  public:
    /// Feeds one log line; lines other than interval would_rejects are ignored.
    void add_line(std::string_view line);
    void add_stream(std::istream& in);

    /// The suggestions as TOML, for subjects seen at least `min_count` times.
    std::string suggestions(std::size_t min_count) const;
    std::size_t lines_used() const { return used_; }

  private:
    struct seen {
        std::size_t count = 0;
        config::duration shortest = config::duration::max();
    };
    // (kind, subject) -> what was seen; kind is "helo", "sender" or "host".
    std::map<std::pair<std::string, std::string>, seen> seen_;
    std::size_t used_ = 0;
};

}  // namespace smtpgate::ops
