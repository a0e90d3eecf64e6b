// Reverse lookups of client addresses, forward-confirmed, on a small pool of threads.
//
// getnameinfo/getaddrinfo block (they follow nsswitch: /etc/hosts, DNS), so they run on
// `threads` threads of their own, never on the I/O thread. A lookup that does not finish by
// its deadline leaves the client nameless; its thread finishes in the background and the late
// answer is dropped. Lookups beyond `max_pending` are not started at all (the client stays
// nameless), so a DNS outage cannot queue work without bound. A name counts only when one of
// its addresses is the client's (forward-confirmed, as Postfix's "unknown" when not).
//
// Threading: reverse_name() is called and its handler runs on the I/O thread, never inside the
// call; only the blocking calls run on the pool.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace smtpgate::net {

namespace asio = boost::asio;

class reverse_resolver {
  public:
    reverse_resolver(asio::io_context& io, std::size_t threads, std::size_t max_pending);
    ~reverse_resolver();
    reverse_resolver(const reverse_resolver&) = delete;
    reverse_resolver& operator=(const reverse_resolver&) = delete;

    /// Calls `done` with the confirmed lower-case host name of `address`, or "" (no PTR, not
    /// confirmed, past `deadline`, or too many lookups in flight); exactly once, on the I/O
    /// thread, never from inside this call.
    void reverse_name(asio::ip::address address, std::chrono::steady_clock::time_point deadline,
                      std::function<void(std::string)> done);

    /// The blocking lookup itself (exposed for tests).
    static std::string confirmed_name(const asio::ip::address& address);

  private:
    asio::io_context& io_;
    asio::thread_pool pool_;
    std::size_t max_pending_;
    std::size_t pending_ = 0;  // lookups whose thread has not finished; I/O thread only
};

}  // namespace smtpgate::net
