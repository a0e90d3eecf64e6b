// What an accept loop does when accept() fails, the SMTP listeners' and the admin endpoint's
// alike: log it, at most one line a second, and pause before the next accept when retrying at
// once cannot succeed. Out of descriptors, Linux fails every accept() at once (it takes the
// descriptor before it looks at the queue), so without the pause the loop spins at full CPU
// while the sessions that could free descriptors wait their turn (OpenSMTPD pauses too).
// Does not: answer the waiting client (the SMTP listener refuses one with 421 through its spare
// descriptor; a scraper of the admin endpoint just retries), or end a loop (its caller does,
// when the listener is closed).
// Threading/time: one instance per server, used on its I/O thread; the log's rate limit reads
// the steady clock.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>

namespace smtpgate::net {

/// EMFILE or ENFILE: the process, or the whole system, has no descriptor left to accept with.
bool out_of_descriptors(const boost::system::error_code& ec);

class accept_errors {
  public:
    /// Logs `accept_error` (`error`, and `suppressed`: failures not logged since the last line),
    /// at most one line a second for all the listeners that share this instance.
    void log(const boost::system::error_code& ec);

    /// After a failure that an immediate retry cannot fix (out of descriptors, ENOBUFS, ENOMEM)
    /// waits 100 ms on `timer`; after any other (a client that reset while queued, say) returns
    /// at once, as the next accept can succeed.
    static boost::asio::awaitable<void> back_off(boost::system::error_code ec,
                                                 boost::asio::steady_timer& timer);

  private:
    std::chrono::steady_clock::time_point last_log_{};
    std::uint64_t suppressed_ = 0;
};

}  // namespace smtpgate::net
