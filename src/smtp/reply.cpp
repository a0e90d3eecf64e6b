#include "smtpgate/smtp/reply.hpp"

namespace smtpgate::smtp {

void append_reply(std::string& out, const reply& r) {
    const std::string code = std::to_string(r.code);
    for (std::size_t i = 0; i < r.lines.size(); ++i) {
        const bool last = i + 1 == r.lines.size();
        out.append(code);
        if (!last || !r.lines[i].empty()) out.push_back(last ? ' ' : '-');
        out.append(r.lines[i]);
        out.append("\r\n");
    }
}

reply_status reply_parser::feed(std::string_view line) {
    if (!in_progress_) {
        reply_.code = 0;
        reply_.lines.clear();
        in_progress_ = true;
    }
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    // RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5'
        || !digit(line[2]) || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
        in_progress_ = false;
        return reply_status::malformed;
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (reply_.lines.empty()) {
        reply_.code = code;
    } else if (code != reply_.code || reply_.lines.size() >= max_lines) {
        in_progress_ = false;
        return reply_status::malformed;
    }
    reply_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view{});
    if (line.size() > 3 && line[3] == '-') return reply_status::need_more;
    in_progress_ = false;
    return reply_status::complete;
}

}  // namespace smtpgate::smtp
