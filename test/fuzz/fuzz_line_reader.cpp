// Fuzz target: line_reader over arbitrary bytes, fed in chunks through a buffer just big enough
// for the limit, compared with the same reader given everything at once.
//
// The first input byte picks the limit and the chunk size. Invariants: the chunked reader never
// leaves its buffer full, line text is within the limit and holds no CR or LF, and the events
// (kind, text, bare ending) are the same however the reads cut the bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/smtp/input_buffer.hpp"
#include "smtpgate/smtp/line_reader.hpp"

using namespace smtpgate::smtp;

namespace {

struct event {
    line_status status;
    std::string text;
    bool bare;
    bool operator==(const event&) const = default;
};

void drain(line_reader& reader, input_buffer& in, std::size_t max_length, std::vector<event>& out) {
    for (line_event ev = reader.next(in); ev.status != line_status::need_more;
         ev = reader.next(in)) {
        if (ev.text.size() > max_length) __builtin_trap();
        if (ev.text.find_first_of("\r\n") != std::string_view::npos) __builtin_trap();
        if (ev.status == line_status::too_long && !ev.text.empty()) __builtin_trap();
        out.push_back({ev.status, std::string(ev.text), ev.bare_newline});
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t max_length = 1 + data[0] % 16;
    const std::size_t chunk = 1 + (data[0] >> 4);
    const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

    // Everything at once, in a buffer that holds it all.
    std::vector<event> whole;
    {
        input_buffer in(bytes.size() + 2);
        line_reader reader(max_length);
        const auto space = in.prepare();
        std::copy(bytes.begin(), bytes.end(), space.begin());
        in.commit(bytes.size());
        drain(reader, in, max_length, whole);
    }

    // In chunks, through the smallest buffer the limit allows (text, CR, LF).
    std::vector<event> chunked;
    {
        input_buffer in(max_length + 2);
        line_reader reader(max_length);
        std::string_view rest = bytes;
        while (!rest.empty()) {
            const auto space = in.prepare();
            if (space.empty()) __builtin_trap();  // stuck
            const std::size_t n = std::min({chunk, space.size(), rest.size()});
            std::copy_n(rest.begin(), n, space.begin());
            in.commit(n);
            rest.remove_prefix(n);
            drain(reader, in, max_length, chunked);
        }
    }
    if (whole != chunked) __builtin_trap();
    return 0;
}
