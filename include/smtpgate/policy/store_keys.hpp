// The one registry of store keys: which check a piece of state belongs to.
//
// A key is one byte naming the state, then its subject: a client network's counting key, a
// lower-case HELO name, a lower-case sender address. Every check takes its byte from here, so
// two checks cannot share state by accident; the static_assert below refuses a duplicate. A
// networked store puts these bytes in its key names, so they are a stored format: never reuse
// a retired byte.
//
// Pure.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace smtpgate::policy {

enum class store_key : char {
    connection_rate = 'r',
    host_interval = 'h',
    concurrency = 'c',
    penalty = 'p',
    bad_recipient_throttle = 't',
    bad_recipient_limit = 'b',
    helo_interval = 'e',
    sender_interval = 's',
    message_rate = 'm',
    sender_message_rate = 'M',
    recipient_rate = 'n',
    sender_recipient_rate = 'N',
};

inline constexpr std::array all_store_keys{
    store_key::connection_rate,
    store_key::host_interval,
    store_key::concurrency,
    store_key::penalty,
    store_key::bad_recipient_throttle,
    store_key::bad_recipient_limit,
    store_key::helo_interval,
    store_key::sender_interval,
    store_key::message_rate,
    store_key::sender_message_rate,
    store_key::recipient_rate,
    store_key::sender_recipient_rate,
};

namespace detail {
constexpr bool distinct_store_keys() {
    for (std::size_t i = 0; i < all_store_keys.size(); ++i)
        for (std::size_t j = i + 1; j < all_store_keys.size(); ++j)
            if (all_store_keys[i] == all_store_keys[j]) return false;
    return true;
}
}  // namespace detail
static_assert(detail::distinct_store_keys(), "two kinds of state share a store key byte");

/// Sets `out` to the key of `kind` for `subject`, reusing its buffer.
inline void make_key(std::string& out, store_key kind, std::string_view subject) {
    out.assign(1, static_cast<char>(kind));
    out.append(subject);
}

/// Which state a key holds.
inline store_key kind_of_key(std::string_view key) {
    return static_cast<store_key>(key.front());
}

}  // namespace smtpgate::policy
