// Fuzz target: backend bytes through line_reader and reply_parser, as the session reads them:
// a small input_buffer filled in chunks whose size comes from the first input byte.
//
// Invariants: the reader never leaves the buffer full (the connection would stall), lines are
// within the limit and hold no CR or LF, and every complete reply has a code of 200-559, at
// least one and at most max_lines lines, and survives append_reply and a second parse intact.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtpgate/smtp/input_buffer.hpp"
#include "smtpgate/smtp/line_reader.hpp"
#include "smtpgate/smtp/reply.hpp"

using namespace smtpgate::smtp;

namespace {

constexpr std::size_t max_length = 64;
constexpr std::size_t capacity = max_length + 16;

void check_round_trip(const reply& r) {
    std::string wire;
    append_reply(wire, r);
    reply_parser again;
    reply_status status = reply_status::need_more;
    std::string_view rest = wire;
    while (!rest.empty()) {
        const auto crlf = rest.find("\r\n");
        if (crlf == std::string_view::npos || status != reply_status::need_more) __builtin_trap();
        status = again.feed(rest.substr(0, crlf));
        rest.remove_prefix(crlf + 2);
    }
    if (status != reply_status::complete) __builtin_trap();
    if (again.result().code != r.code || again.result().lines != r.lines) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t chunk = 1 + data[0] % 32;
    std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

    input_buffer in(capacity);
    line_reader reader(max_length);
    reply_parser parser;
    while (!bytes.empty()) {
        const auto space = in.prepare();
        if (space.empty()) __builtin_trap();  // stuck: a full buffer the reader did not drain
        const std::size_t n = std::min({chunk, space.size(), bytes.size()});
        std::copy_n(bytes.begin(), n, space.begin());
        in.commit(n);
        bytes.remove_prefix(n);

        for (line_event ev = reader.next(in); ev.status != line_status::need_more;
             ev = reader.next(in)) {
            if (ev.status != line_status::line) continue;
            if (ev.text.size() > max_length) __builtin_trap();
            if (ev.text.find_first_of("\r\n") != std::string_view::npos) __builtin_trap();
            if (parser.feed(ev.text) != reply_status::complete) continue;
            const reply& r = parser.result();
            if (r.code < 200 || r.code > 559) __builtin_trap();
            if (r.lines.empty() || r.lines.size() > reply_parser::max_lines) __builtin_trap();
            check_round_trip(r);
        }
    }
    return 0;
}
