#include "smtpgate/smtp/replies.hpp"

#include <fmt/format.h>

namespace smtpgate::smtp {

namespace {

void append_with(std::string& out, const named_reply& r, std::string_view hostname,
                 char separator) {
    fmt::format_to(std::back_inserter(out), "{}{}", r.code, separator);
    std::string_view text = r.text;
    for (auto pos = text.find("%h"); pos != std::string_view::npos; pos = text.find("%h")) {
        out.append(text.substr(0, pos));
        out.append(hostname);
        text.remove_prefix(pos + 2);
    }
    out.append(text);
    out.append("\r\n");
}

}  // namespace

void append_reply(std::string& out, const named_reply& r, std::string_view hostname) {
    append_with(out, r, hostname, ' ');
}

void append_reply_continued(std::string& out, const named_reply& r, std::string_view hostname) {
    append_with(out, r, hostname, '-');
}

}  // namespace smtpgate::smtp
