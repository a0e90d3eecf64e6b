// SMTP reply parser (RFC 5321 4.2): reply lines in, one complete (multi-line) reply out.
//
// Lines come from a line_reader on the backend connection. The parser checks what the proxy
// relies on: a three-digit code 2xx-5xx, the same code on every line, '-' on all but the
// last line, and a bound on the number of lines. Anything else is `malformed`, and the session
// treats the backend as broken rather than relaying something it did not understand.
//
// Pure and incremental; no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace smtpgate::smtp {

struct reply {
    int code = 0;
    /// Text of each line, after the code and its separator.
    std::vector<std::string> lines;

    int kind() const { return code / 100; }  ///< 2, 3, 4 or 5
    bool positive() const { return code >= 200 && code < 400; }
};

/// Appends the reply in wire form: "250-a\r\n250 b\r\n".
void append_reply(std::string& out, const reply& r);

enum class reply_status { need_more, complete, malformed };

class reply_parser {
  public:
    static constexpr std::size_t max_lines = 128;

    /// Feeds one line. After `complete`, `result()` holds the reply until the next feed.
    reply_status feed(std::string_view line);

    const reply& result() const { return reply_; }
    reply& result() { return reply_; }

  private:
    reply reply_;
    bool in_progress_ = false;
};

}  // namespace smtpgate::smtp
