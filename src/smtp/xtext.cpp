#include "smtpgate/smtp/xtext.hpp"

#include <algorithm>
#include <stdexcept>

namespace smtpgate::smtp {

namespace {

constexpr std::string_view xclient_verb = "XCLIENT";
constexpr std::string_view crlf = "\r\n";

/// RFC 3461 section 4: xchar = any ASCII CHAR between "!" (33) and "~" (126) inclusive.
bool printable(char c) {
    return c >= '!' && c <= '~';
}

}  // namespace

std::string xtext_encode(std::string_view value) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        // xchar excludes "+" and "="; hexchar is "+" and two upper case hex digits.
        if (printable(c) && c != '+' && c != '=') {
            out.push_back(c);
            continue;
        }
        const auto u = static_cast<unsigned char>(c);
        out.push_back('+');
        out.push_back(hex[u >> 4]);
        out.push_back(hex[u & 0xF]);
    }
    return out;
}

std::vector<std::string> xclient_lines(const std::vector<std::string>& attributes,
                                       std::size_t max_line) {
    std::vector<std::string> lines;
    std::string line;
    auto finish = [&] {
        line += crlf;
        lines.push_back(std::move(line));
        line.clear();
    };
    for (const auto& attribute : attributes) {
        if (attribute.empty() || !std::all_of(attribute.begin(), attribute.end(), printable)) {
            throw std::invalid_argument("XCLIENT attribute is empty or not encoded: "
                                        + xtext_encode(attribute));
        }
        // RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF.
        if (xclient_verb.size() + 1 + attribute.size() + crlf.size() > max_line) {
            throw std::length_error("XCLIENT attribute longer than a command line: "
                                    + attribute.substr(0, 32));
        }
        if (!line.empty() && line.size() + 1 + attribute.size() + crlf.size() > max_line) {
            finish();
        }
        if (line.empty()) line = xclient_verb;
        line += ' ';
        line += attribute;
    }
    if (!line.empty()) finish();
    return lines;
}

}  // namespace smtpgate::smtp
