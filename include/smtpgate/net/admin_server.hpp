// The admin HTTP endpoint (Boost.Beast): GET /metrics (Prometheus text format), /healthz
// (the process answers), /readyz (accepting clients and the backend reachable: 200 or 503).
//
// A separate listener, loopback by default (admin.listen). Every request is bounded: 8 KiB of
// header, no body, 5 s for the whole exchange, one request per connection, at most 32
// connections at once (more are closed unanswered). The listener closes when the drain starts,
// so a shutting-down proxy is not scraped as healthy. Out of descriptors, accepting backs off
// as the SMTP listeners do (accept_errors.hpp).
// Does not: authenticate (bind it to loopback or a private network), or serve anything else
// (404).
// Threading: runs on the server's I/O thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstddef>

#include "smtpgate/config/config.hpp"

namespace smtpgate::net {

class server;

class admin_server {
  public:
    admin_server(boost::asio::io_context& io, server& owner, const config::endpoint& listen);

    /// Binds the listener (throws std::system_error naming the address) and starts accepting.
    void start();
    /// Closes the listener; requests in progress finish.
    void stop();

  private:
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

    boost::asio::io_context& io_;
    server& owner_;
    config::endpoint listen_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::size_t active_ = 0;
};

}  // namespace smtpgate::net
