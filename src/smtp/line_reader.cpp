#include "smtpgate/smtp/line_reader.hpp"

#include <algorithm>

namespace smtpgate::smtp {

line_event line_reader::next(input_buffer& in) {
    const std::string_view data = in.data();
    const auto end =
        std::find_if(data.begin(), data.end(), [](char c) { return c == '\r' || c == '\n'; });
    const std::size_t text_len = static_cast<std::size_t>(end - data.begin());

    if (end == data.end() || (*end == '\r' && text_len + 1 == data.size())) {
        // No terminator yet, or a CR whose LF may be in the next read.
        if (discarding_ || text_len > max_length_) {
            discarding_ = true;
            in.consume(text_len);  // keep a trailing CR: it may start the CRLF
        }
        return {};
    }

    std::size_t terminator = 1;
    bool bare = true;
    if (*end == '\r' && data[text_len + 1] == '\n') {
        terminator = 2;
        bare = false;
    }
    line_event ev;
    ev.bare_newline = bare;
    if (discarding_ || text_len > max_length_) {
        discarding_ = false;
        ev.status = line_status::too_long;
    } else {
        ev.status = line_status::line;
        ev.text = data.substr(0, text_len);
    }
    in.consume(text_len + terminator);
    return ev;
}

}  // namespace smtpgate::smtp
