#include "smtpgate/smtp/ehlo_filter.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace smtpgate::smtp {
namespace {

using namespace std::string_view_literals;

constexpr std::array hidden{"XCLIENT"sv, "XFORWARD"sv, "CHUNKING"sv, "BINARYMIME"sv, "STARTTLS"sv};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x >= 'a' && x <= 'z' ? x - 32 : x) == (y >= 'a' && y <= 'z' ? y - 32 : y);
           });
}

bool alnum(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool keep(std::string_view line) {
    std::string_view keyword = line.substr(0, line.find(' '));
    // "AUTH=LOGIN PLAIN" is the pre-RFC 4954 form some clients still need (Postfix
    // broken_sasl_auth_clients); it relays AUTH, which the proxy handles.
    if (keyword.size() > 5 && iequals(keyword.substr(0, 5), "AUTH=")) return true;
    // RFC 5321 4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    if (keyword.empty() || !alnum(keyword.front())
        || !std::all_of(keyword.begin(), keyword.end(),
                        [](char c) { return alnum(c) || c == '-'; })) {
        return false;
    }
    return std::none_of(hidden.begin(), hidden.end(),
                        [&](std::string_view h) { return iequals(keyword, h); });
}

}  // namespace

void filter_ehlo(reply& r, const ehlo_policy& policy) {
    if (r.code != 250 || r.lines.empty()) return;
    r.lines.erase(std::remove_if(r.lines.begin() + 1, r.lines.end(),
                                 [](const std::string& l) { return !keep(l); }),
                  r.lines.end());
    if (policy.offer_starttls) r.lines.emplace(r.lines.begin() + 1, "STARTTLS");
}

}  // namespace smtpgate::smtp
