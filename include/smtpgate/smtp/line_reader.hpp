// Line framing for SMTP commands and replies, incremental and bounded.
//
// A line ends at CRLF, or at a bare LF or bare CR (reported as `bare_newline` so the session
// can normalize or refuse it: SMTP smuggling, CVE-2023-51764 class). A CR that is the last
// buffered byte waits for the next read, so a CRLF split across reads is still one CRLF.
// A line longer than the limit is discarded as it arrives (never buffered whole) and reported
// once, as `too_long`, when its end is seen.
//
// Pure: no I/O, no clock. Not thread-safe; one reader per connection direction.
#pragma once

#include <cstddef>
#include <string_view>

#include "smtpgate/smtp/input_buffer.hpp"

namespace smtpgate::smtp {

enum class line_status {
    need_more,  ///< no complete line buffered; read more
    line,       ///< `text` is the next line, without its terminator
    too_long,   ///< a line over the limit ended; it was discarded
};

struct line_event {
    line_status status = line_status::need_more;
    /// Valid until the buffer's next prepare().
    std::string_view text;
    /// The line ended with a bare CR or LF instead of CRLF.
    bool bare_newline = false;
};

class line_reader {
  public:
    explicit line_reader(std::size_t max_length) : max_length_(max_length) {}

    /// Takes the next line from `in`, consuming it and its terminator.
    line_event next(input_buffer& in);

    /// Inside an over-long line that has not ended yet.
    bool discarding() const { return discarding_; }
    void reset() { discarding_ = false; }

  private:
    std::size_t max_length_;
    bool discarding_ = false;
};

}  // namespace smtpgate::smtp
