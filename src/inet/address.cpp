#include "smtpgate/inet/address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <string>

namespace smtpgate::inet {

std::optional<client_address> client_address::parse(std::string_view text) {
    // inet_pton stops at a NUL: "192.0.2.1\0junk" must not pass as 192.0.2.1.
    if (text.empty() || text.size() > INET6_ADDRSTRLEN
        || text.find('\0') != std::string_view::npos) {
        return std::nullopt;
    }
    const std::string s(text);
    client_address a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
    static constexpr std::array<std::uint8_t, 12> v4_mapped{0, 0, 0, 0, 0,    0,
                                                            0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(v4_mapped.begin(), v4_mapped.end(), a.bytes.begin())) {
        std::copy(a.bytes.begin() + 12, a.bytes.end(), a.bytes.begin());
        std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
        return a;
    }
    a.ipv6 = true;
    return a;
}

std::string client_address::to_string() const {
    if (ipv6) {
        char buf[INET6_ADDRSTRLEN] = {};
        inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
        return buf;
    }
    // Every admission names its client key, so the common case is written out: inet_ntop
    // goes through sprintf, which costs more than the rest of the admission decision.
    std::string out;
    out.reserve(15);
    for (int i = 0; i < 4; ++i) {
        if (i > 0) out.push_back('.');
        const unsigned b = bytes[static_cast<std::size_t>(i)];
        if (b >= 100) out.push_back(static_cast<char>('0' + b / 100));
        if (b >= 10) out.push_back(static_cast<char>('0' + b / 10 % 10));
        out.push_back(static_cast<char>('0' + b % 10));
    }
    return out;
}

client_address client_address::masked(int prefix) const {
    client_address m = *this;
    const int width_bytes = ipv6 ? 16 : 4;
    for (int i = 0; i < width_bytes; ++i) {
        const int bits = prefix - i * 8;
        if (bits >= 8) continue;
        m.bytes[i] = bits <= 0 ? 0 : static_cast<std::uint8_t>(m.bytes[i] & (0xff << (8 - bits)));
    }
    return m;
}

std::optional<network> network::parse(std::string_view text) {
    const auto slash = text.find('/');
    const auto address_text = text.substr(0, slash);
    const auto addr = client_address::parse(address_text);
    if (!addr) return std::nullopt;
    // "::ffff:192.0.2.0/120" is the IPv4 network 192.0.2.0/24: its prefix counts the 96 bits
    // of the mapping.
    const bool v4_mapped = !addr->ipv6 && address_text.find(':') != std::string_view::npos;
    network n{*addr, addr->width()};
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        int prefix = -1;
        const auto [end, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (v4_mapped) prefix -= 96;
        if (ec != std::errc{} || end != digits.data() + digits.size() || digits.empty()
            || prefix < 0 || prefix > addr->width()) {
            return std::nullopt;
        }
        n.prefix = prefix;
    }
    if (!(addr->masked(n.prefix) == *addr)) return std::nullopt;  // host bits set: a typo
    return n;
}

std::string network::to_string() const {
    return base.to_string() + "/" + std::to_string(prefix);
}

std::string client_key(const client_address& a, const key_prefixes& prefixes) {
    const int prefix = a.ipv6 ? prefixes.ipv6 : prefixes.ipv4;
    const auto m = a.masked(prefix);
    std::string key;
    // Only the bytes the prefix covers: an IPv6 /64 key is 10 bytes and fits the string's
    // inline buffer, which keeps a million-entry table free of extra allocations.
    key.push_back(a.ipv6 ? '6' : '4');
    key.push_back(static_cast<char>(prefix));
    key.append(reinterpret_cast<const char*>(m.bytes.data()),
               static_cast<std::size_t>((prefix + 7) / 8));
    return key;
}

std::string lower_ascii(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string client_key_text(const client_address& a, const key_prefixes& prefixes) {
    const int prefix = a.ipv6 ? prefixes.ipv6 : prefixes.ipv4;
    if (prefix == a.width()) return a.to_string();
    return network{a.masked(prefix), prefix}.to_string();
}

}  // namespace smtpgate::inet
