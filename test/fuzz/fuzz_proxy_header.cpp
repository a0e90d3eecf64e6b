// Fuzz target: parse_proxy_header on arbitrary first bytes of a connection, as the listener
// would see them from a load balancer (or from anyone, if misconfigured).
//
// Invariants: the answer is the same every time; complete means a length within the input and
// within its version's bound, and no more bytes change it; every shorter prefix of a complete
// header or of a need_more input is need_more (a read boundary never turns a good header bad);
// need_more is never the answer at the bound (the connection would wait forever); refusals
// carry a reason token and nothing else does; decoded addresses are the bytes their text
// names, and a v2 TCP header without TLVs is exactly what the encoder writes for them.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "smtpgate/smtp/proxy_header.hpp"

using namespace smtpgate::smtp;

namespace {

bool same(const proxy_address& a, const proxy_address& b) {
    return a.ipv6 == b.ipv6 && a.bytes == b.bytes && a.port == b.port && a.text == b.text;
}

bool same(const proxy_parse_result& a, const proxy_parse_result& b) {
    return a.status == b.status && a.length == b.length && a.error == b.error
           && a.header.has_addresses == b.header.has_addresses
           && a.header.version == b.header.version && a.header.ssl == b.header.ssl
           && same(a.header.source, b.header.source)
           && same(a.header.destination, b.header.destination);
}

/// The text parses back to the bytes (and nothing past the 4th byte for IPv4).
void check_address(const proxy_address& a) {
    std::array<std::uint8_t, 16> back{};
    if (a.text.empty() || a.text.size() >= INET6_ADDRSTRLEN) __builtin_trap();
    if (inet_pton(a.ipv6 ? AF_INET6 : AF_INET, a.text.c_str(), back.data()) != 1) __builtin_trap();
    if (back != a.bytes) __builtin_trap();
}

void check_need_more_below(std::string_view bytes, std::size_t end) {
    // Every prefix is cheap for short inputs; for long ones, a spread of cuts.
    const std::size_t step = end <= 128 ? 1 : end / 64;
    for (std::size_t k = 0; k < end; k += step) {
        if (parse_proxy_header(bytes.substr(0, k)).status != proxy_status::need_more) {
            __builtin_trap();
        }
    }
    if (end > 0 && parse_proxy_header(bytes.substr(0, end - 1)).status != proxy_status::need_more) {
        __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const proxy_parse_result r = parse_proxy_header(bytes);
    if (!same(r, parse_proxy_header(bytes))) __builtin_trap();

    const bool v1 = !bytes.empty() && bytes[0] == 'P';
    const std::size_t bound = v1 ? max_proxy_v1_length : max_proxy_v2_length;
    switch (r.status) {
        case proxy_status::need_more:
            if (!r.error.empty() || r.length != 0) __builtin_trap();
            if (bytes.size() >= bound) __builtin_trap();
            check_need_more_below(bytes, bytes.size());
            break;
        case proxy_status::malformed:
        case proxy_status::oversized:
            if (r.error.empty()) __builtin_trap();
            if ((r.status == proxy_status::oversized) != (r.error == "oversized")) __builtin_trap();
            break;
        case proxy_status::complete: {
            if (!r.error.empty()) __builtin_trap();
            if (r.length == 0 || r.length > bytes.size() || r.length > bound) __builtin_trap();
            if (r.header.version != (v1 ? 1 : 2)) __builtin_trap();
            if (r.header.ssl && r.header.version != 2) __builtin_trap();
            // The header alone gives the same answer: nothing after it was read.
            if (!same(r, parse_proxy_header(bytes.substr(0, r.length)))) __builtin_trap();
            check_need_more_below(bytes, r.length);
            if (r.header.has_addresses) {
                const proxy_address& s = r.header.source;
                const proxy_address& d = r.header.destination;
                if (s.ipv6 != d.ipv6) __builtin_trap();
                check_address(s);
                check_address(d);
                // Round trips through the encoder: v1 in canonical text, v2 byte for byte
                // when there are no TLVs.
                const proxy_parse_result again = parse_proxy_header(
                    r.header.version == 1 ? encode_proxy_v1(s, d) : encode_proxy_v2(s, d));
                if (again.status != proxy_status::complete || !again.header.has_addresses
                    || !same(again.header.source, s) || !same(again.header.destination, d)) {
                    __builtin_trap();
                }
                const std::size_t tcp_length = s.ipv6 ? 52 : 28;
                if (r.header.version == 2 && r.length == tcp_length
                    && encode_proxy_v2(s, d) != bytes.substr(0, r.length)) {
                    __builtin_trap();
                }
            }
            break;
        }
    }
    return 0;
}
