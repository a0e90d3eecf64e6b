#include "smtpgate/smtp/proxy_header.hpp"

#include <fmt/format.h>

namespace smtpgate::smtp {

std::string encode_proxy_v1(const proxy_address& source, const proxy_address& destination) {
    return fmt::format("PROXY {} {} {} {} {}\r\n", source.ipv6 ? "TCP6" : "TCP4", source.text,
                       destination.text, source.port, destination.port);
}

std::string encode_proxy_v2(const proxy_address& source, const proxy_address& destination) {
    // Section 2.2: 12-byte signature, version 2 + PROXY command, family/transport, length.
    static constexpr char signature[] = "\r\n\r\n\0\r\nQUIT\n";
    std::string out(signature, 12);
    const std::size_t addr_len = source.ipv6 ? 16 : 4;
    out.push_back('\x21');
    out.push_back(source.ipv6 ? '\x21' : '\x11');  // AF_INET6 or AF_INET, STREAM
    const auto length = static_cast<std::uint16_t>(2 * addr_len + 4);
    out.push_back(static_cast<char>(length >> 8));
    out.push_back(static_cast<char>(length & 0xff));
    out.append(reinterpret_cast<const char*>(source.bytes.data()), addr_len);
    out.append(reinterpret_cast<const char*>(destination.bytes.data()), addr_len);
    for (const std::uint16_t port : {source.port, destination.port}) {
        out.push_back(static_cast<char>(port >> 8));
        out.push_back(static_cast<char>(port & 0xff));
    }
    return out;
}

}  // namespace smtpgate::smtp
