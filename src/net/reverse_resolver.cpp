#include "smtpgate/net/reverse_resolver.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstring>
#include <functional>
#include <memory>

#include "smtpgate/inet/address.hpp"

namespace smtpgate::net {

namespace {

struct lookup_state {
    lookup_state(asio::io_context& io, std::function<void(std::string)> h)
        : deadline(io), handler(std::move(h)) {}
    asio::steady_timer deadline;
    std::function<void(std::string)> handler;  // empty once called

    void finish(std::string name) {
        if (!handler) return;
        auto h = std::move(handler);
        handler = nullptr;
        deadline.cancel();
        h(std::move(name));
    }
};

}  // namespace

reverse_resolver::reverse_resolver(asio::io_context& io, std::size_t threads,
                                   std::size_t max_pending)
    : io_(io), pool_(threads), max_pending_(max_pending) {}

reverse_resolver::~reverse_resolver() {
    pool_.stop();
    pool_.join();
}

std::string reverse_resolver::confirmed_name(const asio::ip::address& address) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    if (address.is_v4()) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
        sin->sin_family = AF_INET;
        const auto bytes = address.to_v4().to_bytes();
        std::memcpy(&sin->sin_addr, bytes.data(), bytes.size());
        length = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
        sin6->sin6_family = AF_INET6;
        const auto bytes = address.to_v6().to_bytes();
        std::memcpy(&sin6->sin6_addr, bytes.data(), bytes.size());
        length = sizeof(sockaddr_in6);
    }
    char host[NI_MAXHOST] = {};
    if (getnameinfo(reinterpret_cast<sockaddr*>(&storage), length, host, sizeof host, nullptr, 0,
                    NI_NAMEREQD)
        != 0) {
        return {};
    }
    // Forward confirmation: a PTR anyone can publish; the A/AAAA of the name must lead back.
    addrinfo hints{};
    hints.ai_family = address.is_v4() ? AF_INET : AF_INET6;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host, nullptr, &hints, &found) != 0) return {};
    bool confirmed = false;
    for (const addrinfo* ai = found; ai != nullptr && !confirmed; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET && address.is_v4()) {
            const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
            confirmed = std::memcmp(&sin->sin_addr, address.to_v4().to_bytes().data(), 4) == 0;
        } else if (ai->ai_family == AF_INET6 && address.is_v6()) {
            const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
            confirmed = std::memcmp(&sin6->sin6_addr, address.to_v6().to_bytes().data(), 16) == 0;
        }
    }
    freeaddrinfo(found);
    if (!confirmed) return {};
    return inet::lower_ascii(host);
}

void reverse_resolver::reverse_name(asio::ip::address address,
                                    std::chrono::steady_clock::time_point deadline,
                                    std::function<void(std::string)> done) {
    if (pending_ >= max_pending_) {
        asio::post(io_, [done = std::move(done)] { done({}); });
        return;
    }
    ++pending_;
    auto state = std::make_shared<lookup_state>(io_, std::move(done));
    state->deadline.expires_at(deadline);
    state->deadline.async_wait([state](const boost::system::error_code& ec) {
        if (!ec) state->finish({});  // too late: the client stays nameless
    });
    asio::post(pool_, [this, state, address] {
        std::string name = confirmed_name(address);
        asio::post(io_, [this, state, name = std::move(name)]() mutable {
            --pending_;
            state->finish(std::move(name));
        });
    });
}

}  // namespace smtpgate::net
