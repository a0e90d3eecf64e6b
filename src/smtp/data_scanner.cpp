#include "smtpgate/smtp/data_scanner.hpp"

namespace smtpgate::smtp {

data_result data_scanner::scan(std::string_view in, std::string& out) {
    const char* const begin = in.data();
    const char* const end = begin + in.size();
    const char* p = begin;
    auto result = [&](data_status s) {
        return data_result{s, static_cast<std::size_t>(p - begin)};
    };

    while (p < end) {
        const char c = *p;
        switch (state_) {
            case state::mid: {
                // Fast path: copy the run up to the next CR or LF in one append.
                const char* q = p;
                while (q < end && *q != '\r' && *q != '\n')
                    ++q;
                out.append(p, q);
                p = q;
                if (p == end) break;
                if (*p == '\r') {
                    state_ = state::cr;
                } else {
                    if (!normalize_) return result(data_status::bare_newline);
                    out.append("\r\n");
                    state_ = state::bol_bare;
                }
                ++p;
                break;
            }
            case state::bol:
            case state::bol_bare:
                if (c == '.') {
                    state_ = state_ == state::bol ? state::dot : state::dot_bare;
                } else if (c == '\r') {
                    state_ = state::cr;
                } else if (c == '\n') {
                    if (!normalize_) return result(data_status::bare_newline);
                    out.append("\r\n");
                    state_ = state::bol_bare;
                } else {
                    out.push_back(c);
                    state_ = state::mid;
                }
                ++p;
                break;
            case state::cr:
                if (c == '\n') {
                    out.append("\r\n");
                    state_ = state::bol;
                    ++p;
                } else {
                    // Bare CR: end the line here and look at c again as the next line's start.
                    if (!normalize_) return result(data_status::bare_newline);
                    out.append("\r\n");
                    state_ = state::bol_bare;
                }
                break;
            case state::dot:
            case state::dot_bare:
                if (c == '\r') {
                    state_ = state_ == state::dot ? state::dot_cr : state::dot_bare_cr;
                    ++p;
                } else if (c == '\n') {
                    // ".\n": a lone dot with a bare ending is content, stuffed so the backend
                    // cannot read it as the end.
                    if (!normalize_) return result(data_status::bare_newline);
                    out.append("..\r\n");
                    state_ = state::bol_bare;
                    ++p;
                } else {
                    // ".x" or "..": an ordinary line, relayed as sent.
                    out.push_back('.');
                    state_ = state::mid;
                }
                break;
            case state::dot_cr:
                if (c == '\n') {
                    ++p;
                    out.append(".\r\n");
                    state_ = state::bol;
                    return result(data_status::done);
                }
                if (!normalize_) return result(data_status::bare_newline);
                out.append("..\r\n");
                state_ = state::bol_bare;
                break;
            case state::dot_bare_cr:
                // The dot line started after a bare ending: content, whatever ends it.
                if (c == '\n') {
                    out.append("..\r\n");
                    state_ = state::bol;
                    ++p;
                } else {
                    if (!normalize_) return result(data_status::bare_newline);
                    out.append("..\r\n");
                    state_ = state::bol_bare;
                }
                break;
        }
    }
    return result(data_status::need_more);
}

}  // namespace smtpgate::smtp
