// End-of-data scanner for the DATA phase (RFC 5321 4.1.1.4, 4.5.2).
//
// Streams message content from the client to the backend and finds the end of the message,
// at any read boundary (state carries over between calls). The only end-of-data it accepts is
// <CRLF>.<CRLF>; it makes sure the backend can see no other:
//  - normalize: a bare CR or bare LF becomes CRLF, and a line holding a single dot that a
//    bare line ending touches is sent as "..", content, never as an end (SMTP smuggling,
//    CVE-2023-51764/51765/51766). Everything else passes byte for byte: dot-stuffing, 8-bit,
//    NUL, long lines.
//  - reject: the first bare CR or LF stops the scan with `bare_newline`; the caller must
//    abandon the message (its end is ambiguous).
//
// Pure, incremental, O(1) state; no allocation beyond the caller's output string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace smtpgate::smtp {

enum class data_status {
    need_more,     ///< all input consumed; the message goes on
    done,          ///< end of data found; the final ".\r\n" has been written to out
    bare_newline,  ///< reject mode found a bare CR or LF
};

struct data_result {
    data_status status = data_status::need_more;
    /// Input bytes used; on `done`, bytes after this belong to the next command.
    std::size_t consumed = 0;
};

class data_scanner {
  public:
    explicit data_scanner(bool normalize = true) : normalize_(normalize) {}

    /// Scans `in` and appends to `out` the bytes to send to the backend.
    data_result scan(std::string_view in, std::string& out);

    /// Back to the start of a message (the first line begins right after the 354).
    void reset() { state_ = state::bol; }

  private:
    enum class state : std::uint8_t { bol, bol_bare, mid, cr, dot, dot_bare, dot_cr, dot_bare_cr };
    state state_ = state::bol;
    bool normalize_;
};

}  // namespace smtpgate::smtp
