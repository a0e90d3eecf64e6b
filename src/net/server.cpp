#include "smtpgate/net/server.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <system_error>

#include "smtpgate/net/client_session.hpp"
#include "smtpgate/ops/log.hpp"
#include "smtpgate/smtp/replies.hpp"

namespace smtpgate::net {

using boost::system::error_code;
namespace errc = boost::asio::error;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr int listen_backlog = 1024;
// After EMFILE/ENFILE the accept loop pauses so running sessions can finish and free
// descriptors, instead of spinning on a full table (OpenSMTPD does the same).
constexpr auto accept_backoff = std::chrono::milliseconds(100);

void log_escaped(std::string_view what, std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        ops::log(ops::level::error, "internal_error").kv("where", what).kv("error", ex.what());
    } catch (...) {
        ops::log(ops::level::error, "internal_error").kv("where", what).kv("error", "unknown");
    }
}

}  // namespace

server::server(asio::io_context& io, config::settings settings)
    : io_(io),
      settings_(std::make_shared<const config::settings>(std::move(settings))),
      signals_(io, SIGTERM, SIGINT, SIGHUP),
      grace_timer_(io),
      store_(settings_->state.max_entries),
      admission_(*settings_, store_, connections_),
      transactions_(*settings_, store_) {
    if (settings_->server.reverse_lookup) {
        // At most 64 lookups waiting per thread: past that, clients go nameless rather than
        // queueing behind a dead DNS server.
        resolver_ = std::make_unique<reverse_resolver>(io, settings_->server.resolver_threads,
                                                       settings_->server.resolver_threads * 64);
    }
    if (settings_->tls.enabled()) tls_ = std::make_unique<tls_context_source>(settings_->tls);
    if (settings_->backend.tls == config::backend_tls_mode::starttls)
        backend_tls_ = make_backend_context(settings_->backend.tls_ca_file);
    for (const auto& text : settings_->server.trusted_proxies) {
        if (auto n = policy::network::parse(text)) trusted_proxies_.push_back(*n);
    }
    hostname_ =
        settings_->server.hostname.empty() ? asio::ip::host_name() : settings_->server.hostname;
    error_code ec;
    const auto addr = asio::ip::make_address(settings_->backend.address.host, ec);
    if (!ec) backend_endpoint_ = tcp::endpoint(addr, settings_->backend.address.port);
    const auto now = std::chrono::system_clock::now().time_since_epoch().count();
    id_prefix_ =
        static_cast<std::uint32_t>((now ^ (static_cast<long long>(::getpid()) << 20)) & 0xffffff);
}

std::shared_ptr<asio::ssl::context> server::tls_context() {
    return tls_ ? tls_->current(std::chrono::steady_clock::now()) : nullptr;
}

bool server::trusted_proxy(const policy::client_address& peer) const {
    return std::any_of(trusted_proxies_.begin(), trusted_proxies_.end(),
                       [&](const policy::network& n) { return n.contains(peer); });
}

server::~server() {
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void server::start() {
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (const auto& ep : settings_->server.listen) {
        const tcp::endpoint endpoint(asio::ip::make_address(ep.host), ep.port);
        auto acceptor = std::make_unique<tcp::acceptor>(io_);
        error_code ec;
        acceptor->open(endpoint.protocol(), ec);
        if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
        // "[::]:25" next to "0.0.0.0:25" must not collide: IPv6 sockets take IPv6 only.
        if (!ec && endpoint.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
        if (!ec) acceptor->bind(endpoint, ec);
        if (!ec) acceptor->listen(listen_backlog, ec);
        if (ec) throw std::system_error(ec, "listen " + ep.to_string());
        ops::log(ops::level::info, "listen").kv("address", ep.to_string());
        acceptors_.push_back(std::move(acceptor));
    }
    for (auto& acceptor : acceptors_) {
        asio::co_spawn(io_, accept_loop(*acceptor),
                       [](std::exception_ptr e) { log_escaped("accept_loop", e); });
    }
    asio::co_spawn(io_, watch_signals(), [](std::exception_ptr e) { log_escaped("signals", e); });
}

asio::awaitable<void> server::accept_loop(tcp::acceptor& acceptor) {
    asio::steady_timer backoff(io_);
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
        if (draining_ || ec == errc::operation_aborted) co_return;
        if (ec) {
            const bool out_of_descriptors = ec == errc::no_descriptors || ec.value() == ENFILE;
            log_accept_error(ec);
            if (out_of_descriptors) refuse_with_reserve(acceptor);
            if (out_of_descriptors || ec == errc::no_buffer_space || ec == errc::no_memory) {
                backoff.expires_after(accept_backoff);
                co_await backoff.async_wait(use_tuple);
            }
            continue;
        }
        if (settings_->server.accept_rate > 0) co_await pace_accepts(backoff);
        if (sessions_.size() >= settings_->server.max_connections
            && settings_->modes.max_connections != config::check_mode::off) {
            const bool observe = settings_->modes.max_connections == config::check_mode::observe;
            refuse(socket, observe);
            if (!observe) continue;
        }
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto session = std::make_shared<client_session>(*this, std::move(socket), settings_,
                                                        next_session_id());
        asio::co_spawn(io_, session->run(), [session](std::exception_ptr e) {
            log_escaped("session " + session->id(), e);
        });
    }
}

void server::log_accept_error(const error_code& ec) {
    // Descriptor exhaustion repeats every back-off: one line a second, with the count.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_accept_error_log_ < std::chrono::seconds(1)) {
        ++accept_errors_suppressed_;
        return;
    }
    ops::log(ops::level::warning, "accept_error")
        .kv("error", ec.message())
        .kv("suppressed", accept_errors_suppressed_);
    last_accept_error_log_ = now;
    accept_errors_suppressed_ = 0;
}

void server::refuse_with_reserve(tcp::acceptor& acceptor) {
    // OpenSMTPD's descriptor reserve: give back the spare descriptor, accept one waiting
    // client with it, tell it to come back later, close, and take the spare again. Waiting
    // clients get a 421 instead of silence while the table is full.
    if (reserve_fd_ < 0) return;
    ::close(reserve_fd_);
    reserve_fd_ = -1;
    error_code ec;
    acceptor.non_blocking(true, ec);
    tcp::socket socket(io_);
    acceptor.accept(socket, ec);
    if (!ec) refuse(socket, false, "descriptors");
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

asio::awaitable<void> server::pace_accepts(asio::steady_timer& timer) {
    // sendmail ConnectionRateThrottle: past the rate, accepting waits its turn; connections
    // queue in the kernel's backlog instead of being refused. A GCRA with a burst of one
    // second's worth spaces them evenly.
    const config::rate rate{settings_->server.accept_rate, std::chrono::seconds(1)};
    const auto now = std::chrono::time_point_cast<policy::time_point::duration>(
        std::chrono::system_clock::now());
    const auto d = policy::gcra_consume(accept_tat_, rate, now);
    if (d.allowed) co_return;
    ops::log(ops::level::debug, "accept_paced").kv("wait_ms", d.retry_after.count());
    timer.expires_after(d.retry_after);
    co_await timer.async_wait(use_tuple);
    policy::gcra_consume(accept_tat_, rate, now + d.retry_after);
}

void server::refuse(tcp::socket& socket, bool observe_only, std::string_view reason) {
    error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    ops::log(ops::level::warning, observe_only ? "would_reject" : "reject")
        .kv("session", next_session_id())
        .kv("client", ec ? std::string("unknown") : remote.address().to_string())
        .kv("reason", reason)
        .kv("code", smtp::replies::too_many_connections.code)
        .kv("observed", sessions_.size())
        .kv("limit", settings_->server.max_connections);
    if (observe_only) return;
    // The reply is short and the socket new: one non-blocking write fits its send buffer.
    std::string reply;
    smtp::append_reply(reply, smtp::replies::too_many_connections, hostname_);
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(reply), ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
}

asio::awaitable<void> server::watch_signals() {
    for (;;) {
        auto [ec, signal] = co_await signals_.async_wait(use_tuple);
        if (ec) co_return;
        if (signal == SIGHUP) {
            ops::log(ops::level::warning, "reload")
                .kv("status", "unsupported")
                .kv("detail", "this version does not reload; restart to apply a new configuration");
            continue;
        }
        if (!draining_) {
            drain();
        } else {
            stop_sessions();
        }
        // Nothing left to wait for: returning lets io_context::run() finish. (With sessions
        // left, detach() cancels the next wait when the last one ends.)
        if (sessions_.empty()) co_return;
    }
}

void server::drain() {
    if (draining_) return;
    draining_ = true;
    error_code ignored;
    for (auto& acceptor : acceptors_)
        acceptor->close(ignored);
    ops::log(ops::level::info, "shutdown")
        .kv("phase", "drain")
        .kv("sessions", sessions_.size())
        .kv("grace_ms", settings_->server.shutdown_grace.count());
    if (sessions_.empty()) {
        signals_.cancel(ignored);
        return;
    }
    for (auto* s : sessions_)
        s->drain();
    grace_timer_.expires_after(settings_->server.shutdown_grace);
    grace_timer_.async_wait([this](const error_code& ec) {
        if (!ec) stop_sessions();
    });
}

void server::stop_sessions() {
    if (stopping_) return;
    stopping_ = true;
    ops::log(ops::level::info, "shutdown").kv("phase", "stop").kv("sessions", sessions_.size());
    for (auto* s : sessions_)
        s->stop();
}

std::list<client_session*>::iterator server::attach(client_session* s) {
    return sessions_.insert(sessions_.end(), s);
}

void server::detach(std::list<client_session*>::iterator it) {
    sessions_.erase(it);
    if (draining_ && sessions_.empty()) {
        // The last session is gone: nothing keeps the io_context running any more.
        error_code ignored;
        grace_timer_.cancel();
        signals_.cancel(ignored);
    }
}

std::string server::next_session_id() {
    return fmt::format("{:06x}{:06x}", id_prefix_, ++session_counter_);
}

int run(const config::settings& settings) {
    std::signal(SIGPIPE, SIG_IGN);
    // One thread runs everything; the hint lets Asio skip the reactor's per-descriptor
    // locking (the scheduler keeps its lock for the resolver's and signals' threads).
    asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
    server s(io, settings);
    s.start();
    ops::log(ops::level::info, "start")
        .kv("version", SMTPGATE_VERSION)
        .kv("backend", settings.backend.address.to_string())
        .kv("hostname", s.hostname())
        .kv("config", settings.source);
    io.run();
    ops::log(ops::level::info, "stopped");
    return 0;
}

}  // namespace smtpgate::net
