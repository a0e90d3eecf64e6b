#include "smtpgate/net/admin_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <chrono>
#include <string>
#include <system_error>

#include "client_session_helpers.hpp"
#include "smtpgate/net/accept_errors.hpp"
#include "smtpgate/net/server.hpp"
#include "smtpgate/net/spawn.hpp"
#include "smtpgate/ops/log.hpp"

namespace smtpgate::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t max_connections = 32;
constexpr std::uint32_t header_limit = 8 * 1024;
constexpr auto exchange_timeout = std::chrono::seconds(5);

struct active_guard {
    std::size_t& count;
    explicit active_guard(std::size_t& c) : count(c) { ++count; }
    ~active_guard() { --count; }
    active_guard(const active_guard&) = delete;
    active_guard& operator=(const active_guard&) = delete;
};

}  // namespace

admin_server::admin_server(asio::io_context& io, server& owner, const config::endpoint& listen)
    : io_(io), owner_(owner), listen_(listen), acceptor_(io) {}

void admin_server::start() {
    const tcp::endpoint endpoint(asio::ip::make_address(listen_.host), listen_.port);
    error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(64, ec);
    if (ec) throw std::system_error(ec, "admin.listen " + listen_.to_string());
    ops::log(ops::level::info, "admin_listen").kv("address", listen_.to_string());
    asio::co_spawn(io_, accept_loop(), logged("admin accept_loop"));
}

void admin_server::stop() {
    error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> admin_server::accept_loop() {
    asio::steady_timer backoff(io_);
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        // stop() closes the listener; during a back-off that shows as a closed acceptor.
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        if (ec) {
            owner_.accept_failures().log(ec);
            co_await accept_errors::back_off(ec, backoff);
            continue;
        }
        if (active_ >= max_connections) {
            error_code ignored;
            socket.close(ignored);
            continue;
        }
        asio::co_spawn(io_, serve(std::move(socket)), logged("admin request"));
    }
}

asio::awaitable<void> admin_server::serve(tcp::socket socket) {
    const active_guard guard(active_);
    beast::tcp_stream stream(std::move(socket));
    stream.expires_after(exchange_timeout);
    beast::flat_buffer buffer(header_limit);
    http::request_parser<http::empty_body> parser;
    parser.header_limit(header_limit);
    auto [read_ec, read_n] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (read_ec) co_return;  // a scraper that went away, a timeout, junk: nothing to answer
    const auto& request = parser.get();

    http::response<http::string_body> response;
    response.version(request.version());
    response.keep_alive(false);
    response.set(http::field::server, "smtpgate");
    response.set(http::field::content_type, "text/plain; charset=utf-8");
    const auto target = request.target();
    const auto path = target.substr(0, target.find('?'));
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
        response.result(http::status::method_not_allowed);
        response.set(http::field::allow, "GET, HEAD");
        response.body() = "method not allowed\n";
    } else if (path == "/metrics") {
        response.result(http::status::ok);
        response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        response.body() = owner_.render_metrics();
    } else if (path == "/healthz") {
        response.result(http::status::ok);
        response.body() = "ok\n";
    } else if (path == "/readyz") {
        const bool ready = co_await owner_.ready();
        response.result(ready ? http::status::ok : http::status::service_unavailable);
        response.body() =
            ready ? "ready\n" : (owner_.draining() ? "draining\n" : "backend unreachable\n");
    } else {
        response.result(http::status::not_found);
        response.body() = "not found\n";
    }
    response.prepare_payload();
    if (request.method() == http::verb::head) response.body().clear();
    stream.expires_after(exchange_timeout);
    co_await http::async_write(stream, response, use_tuple);
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace smtpgate::net
