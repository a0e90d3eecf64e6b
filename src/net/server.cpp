#include "smtpgate/net/server.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <system_error>

#include "client_session_helpers.hpp"
#include "smtpgate/net/admin_server.hpp"
#include "smtpgate/net/client_session.hpp"
#include "smtpgate/net/privileges.hpp"
#include "smtpgate/net/spawn.hpp"
#include "smtpgate/ops/log.hpp"
#include "smtpgate/ops/metrics.hpp"
#include "smtpgate/smtp/line_reader.hpp"
#include "smtpgate/smtp/replies.hpp"
#include "smtpgate/smtp/reply.hpp"

namespace smtpgate::net {

using boost::system::error_code;
namespace errc = boost::asio::error;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

constexpr int listen_backlog = 1024;

// A one-line reply to a freshly accepted socket, then the close. The reply is short and the
// socket new: one non-blocking write fits its send buffer.
void answer_and_close(tcp::socket& socket, const smtp::named_reply& r, std::string_view hostname) {
    std::string reply;
    smtp::append_reply(reply, r, hostname);
    error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(reply), ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
}

// The readiness probe's whole exchange: connect, banner, QUIT.
constexpr auto probe_timeout = std::chrono::seconds(2);

// One reply on a probe connection: its code, or 0 on an error, the end, or nonsense.
asio::awaitable<int> read_probe_reply(tcp::socket& socket, smtp::input_buffer& in,
                                      smtp::line_reader& lines, smtp::reply_parser& parser) {
    for (;;) {
        for (auto line = lines.next(in); line.status != smtp::line_status::need_more;
             line = lines.next(in)) {
            if (line.status == smtp::line_status::too_long) co_return 0;
            const auto status = parser.feed(line.text);
            if (status == smtp::reply_status::malformed) co_return 0;
            if (status == smtp::reply_status::complete) co_return parser.result().code;
        }
        const auto space = in.prepare();
        if (space.empty()) co_return 0;
        auto [ec, n] =
            co_await socket.async_read_some(asio::buffer(space.data(), space.size()), use_tuple);
        if (ec) co_return 0;
        in.commit(n);
    }
}

}  // namespace

server::server(asio::io_context& io, config::settings settings, config_loader reload)
    : io_(io),
      settings_(std::make_shared<const config::settings>(std::move(settings))),
      reload_(std::move(reload)),
      signals_(io, SIGTERM, SIGINT, SIGHUP),
      grace_timer_(io),
      store_(settings_->state.max_entries) {
    if (settings_->server.reverse_lookup) {
        // At most 64 lookups waiting per thread: past that, clients go nameless rather than
        // queueing behind a dead DNS server.
        resolver_ = std::make_unique<reverse_resolver>(io, settings_->server.resolver_threads,
                                                       settings_->server.resolver_threads * 64);
    }
    if (settings_->tls.enabled()) tls_ = std::make_unique<tls_context_source>(settings_->tls);
    if (settings_->backend.tls == config::backend_tls_mode::starttls)
        backend_tls_ = make_backend_context(settings_->backend.tls_ca_file);
    apply(settings_);
    const auto now = std::chrono::system_clock::now().time_since_epoch().count();
    id_prefix_ =
        static_cast<std::uint32_t>((now ^ (static_cast<long long>(::getpid()) << 20)) & 0xffffff);
}

void server::apply(std::shared_ptr<const config::settings> fresh) {
    settings_ = std::move(fresh);
    policies_ = std::make_shared<policy_set>(*settings_);
    trusted_proxies_.clear();
    for (const auto& text : settings_->server.trusted_proxies) {
        if (auto n = inet::network::parse(text)) trusted_proxies_.push_back(*n);
    }
    hostname_ =
        settings_->server.hostname.empty() ? asio::ip::host_name() : settings_->server.hostname;
    error_code ec;
    const auto addr = asio::ip::make_address(settings_->backend.address.host, ec);
    backend_endpoint_.reset();
    if (!ec) backend_endpoint_ = tcp::endpoint(addr, settings_->backend.address.port);
    backend_ok_.reset();
}

bool server::reload() {
    const auto fail = [](const std::string& detail) {
        ops::log(ops::level::error, "reload").kv("status", "failed").kv("detail", detail);
        ops::metrics::global().config_reload(false, 0);
        return false;
    };
    if (!reload_) return fail("no configuration file to reload");
    std::shared_ptr<const config::settings> fresh;
    try {
        fresh = std::make_shared<const config::settings>(reload_());
    } catch (const std::exception& e) {
        return fail(e.what());
    }
    // What only a restart can change: the sockets, the table, the resolver threads.
    std::vector<std::string> restart;
    const auto& now = *settings_;
    if (fresh->server.listen != now.server.listen) restart.emplace_back("server.listen");
    if (fresh->admin.listen != now.admin.listen) restart.emplace_back("admin.listen");
    if (fresh->state.max_entries != now.state.max_entries)
        restart.emplace_back("state.max_entries");
    if (fresh->server.reverse_lookup != now.server.reverse_lookup)
        restart.emplace_back("server.reverse_lookup");
    if (fresh->server.resolver_threads != now.server.resolver_threads)
        restart.emplace_back("server.resolver_threads");
    if (fresh->server.user != now.server.user) restart.emplace_back("server.user");
    if (!restart.empty()) {
        std::string keys;
        for (const auto& k : restart)
            keys += (keys.empty() ? "" : ", ") + k;
        return fail(keys + " changed; these need a restart, nothing was applied");
    }
    // Certificates and CA files are loaded before anything is swapped: all or nothing.
    std::unique_ptr<tls_context_source> tls;
    std::shared_ptr<asio::ssl::context> backend_tls;
    try {
        if (fresh->tls.enabled()) tls = std::make_unique<tls_context_source>(fresh->tls);
        if (fresh->backend.tls == config::backend_tls_mode::starttls)
            backend_tls = make_backend_context(fresh->backend.tls_ca_file);
    } catch (const std::exception& e) {
        return fail(e.what());
    }
    tls_ = std::move(tls);
    backend_tls_ = std::move(backend_tls);
    ops::configure_logging(fresh->log);
    const std::string source = fresh->source;
    apply(std::move(fresh));
    ops::log(ops::level::info, "reload").kv("status", "ok").kv("config", source);
    ops::metrics::global().config_reload(
        true,
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    return true;
}

void server::backend_outcome(bool ok) {
    backend_ok_ = ok;
    backend_checked_ = std::chrono::steady_clock::now();
}

asio::awaitable<bool> server::ready() {
    if (draining_) co_return false;
    const auto now = std::chrono::steady_clock::now();
    if (backend_ok_ && now - backend_checked_ < std::chrono::seconds(10)) co_return *backend_ok_;
    co_return co_await probe_backend();
}

asio::awaitable<std::vector<tcp::endpoint>> server::backend_addresses(
    config::endpoint address, std::chrono::steady_clock::time_point deadline) {
    if (backend_endpoint_) co_return std::vector<tcp::endpoint>{*backend_endpoint_};
    tcp::resolver resolver(io_);
    asio::steady_timer timer(io_);
    timer.expires_at(deadline);
    auto r = co_await (resolver.async_resolve(address.host, std::to_string(address.port), use_tuple)
                       || timer.async_wait(use_tuple));
    std::vector<tcp::endpoint> candidates;
    if (r.index() == 0 && !std::get<0>(std::get<0>(r))) {
        for (const auto& entry : std::get<1>(std::get<0>(r)))
            candidates.push_back(entry.endpoint());
    }
    co_return candidates;
}

asio::awaitable<bool> server::probe_backend() {
    // Under traffic the sessions' own connections answer and no probe is made. One deadline
    // for the whole probe, the lookup of a host name included: /readyz answers within it.
    const auto deadline = std::chrono::steady_clock::now() + probe_timeout;
    auto candidates = co_await backend_addresses(settings_->backend.address, deadline);
    bool ok = false;
    if (!candidates.empty()) {
        tcp::socket socket(io_);
        asio::steady_timer timer(io_);
        timer.expires_at(deadline);
        const auto r =
            co_await (probe_greeting(socket, std::move(candidates)) || timer.async_wait(use_tuple));
        ok = r.index() == 0 && std::get<0>(r);
    }
    backend_outcome(ok);
    co_return ok;
}

asio::awaitable<bool> server::probe_greeting(tcp::socket& socket,
                                             std::vector<tcp::endpoint> candidates) {
    // A short SMTP session, not only a TCP connect: a backend that accepts connections but
    // refuses service (a 4xx or 5xx banner, or silence) is not ready. The probe introduces
    // itself as sessions do, with a PROXY header (naming the proxy's own address) when the
    // backend expects one, and ends with QUIT, so the backend logs an ordinary session rather
    // than a lost connection or a broken header.
    auto [ec, peer] = co_await asio::async_connect(socket, candidates, use_tuple);
    if (ec) co_return false;
    const auto identity = settings_->backend.identity;
    if (sends_proxy_header(identity)) {
        const auto local = socket.local_endpoint(ec);
        if (ec) co_return false;
        const std::string header = proxy_header_for(identity, local, peer);
        auto [wec, n] = co_await asio::async_write(socket, asio::buffer(header), use_tuple);
        if (wec) co_return false;
    }
    smtp::input_buffer in(4096);
    smtp::line_reader lines(1024);
    smtp::reply_parser parser;
    const int banner = co_await read_probe_reply(socket, in, lines, parser);
    if (banner == 0) co_return false;
    static constexpr std::string_view quit = "QUIT\r\n";
    auto [qec, qn] = co_await asio::async_write(socket, asio::buffer(quit), use_tuple);
    if (!qec) co_await read_probe_reply(socket, in, lines, parser);  // the 221, for a clean end
    co_return banner == 220;
}

std::string server::render_metrics() const {
    std::string out;
    out.reserve(8192);
    ops::metrics::global().render(out);
    ops::append_family(out, "smtpgate_sessions_active", "gauge", "Client sessions open now.");
    ops::append_sample(out, "smtpgate_sessions_active", "", static_cast<double>(sessions_.size()));
    ops::append_family(out, "smtpgate_draining", "gauge", "1 while shutting down.");
    ops::append_sample(out, "smtpgate_draining", "", draining_ ? 1 : 0);
    ops::append_family(out, "smtpgate_limiter_entries", "gauge",
                       "Entries in the limiter table (state.max_entries bounds it).");
    ops::append_sample(out, "smtpgate_limiter_entries", "", static_cast<double>(store_.size()));
    ops::append_family(out, "smtpgate_limiter_capacity", "gauge", "state.max_entries.");
    ops::append_sample(out, "smtpgate_limiter_capacity", "",
                       static_cast<double>(settings_->state.max_entries));
    ops::append_family(out, "smtpgate_limiter_evictions_total", "counter",
                       "Entries evicted from a full limiter table.");
    ops::append_sample(out, "smtpgate_limiter_evictions_total", "",
                       static_cast<double>(store_.evictions()));
    ops::append_family(out, "smtpgate_rules", "gauge", "[[rule]] entries in the configuration.");
    ops::append_sample(out, "smtpgate_rules", "", static_cast<double>(settings_->rules.size()));
    return out;
}

std::shared_ptr<asio::ssl::context> server::tls_context() {
    return tls_ ? tls_->current(std::chrono::steady_clock::now()) : nullptr;
}

bool server::trusted_proxy(const inet::client_address& peer) const {
    return std::any_of(trusted_proxies_.begin(), trusted_proxies_.end(),
                       [&](const inet::network& n) { return n.contains(peer); });
}

server::~server() {
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void server::start() {
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    // The admin endpoint first: once the SMTP port listens, /healthz answers too.
    if (settings_->admin.listen) {
        admin_ = std::make_unique<admin_server>(io_, *this, *settings_->admin.listen);
        admin_->start();
    }
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
        asio::co_spawn(io_, accept_loop(*acceptor), logged("accept_loop"));
    }
    asio::co_spawn(io_, watch_signals(), logged("signals"));
}

asio::awaitable<void> server::accept_loop(tcp::acceptor& acceptor) {
    asio::steady_timer backoff(io_);
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
        if (ec == errc::operation_aborted) co_return;
        if (draining_) {
            // Accepted just before the drain began, its completion still queued: the client
            // is owed the same 421 as the backlog, not a silent close.
            if (!ec) answer_and_close(socket, smtp::replies::shutting_down, hostname_);
            co_return;
        }
        if (ec) {
            accept_errors_.log(ec);
            if (out_of_descriptors(ec)) refuse_with_reserve(acceptor);
            co_await accept_errors::back_off(ec, backoff);
            continue;
        }
        if (settings_->server.accept_rate > 0) {
            co_await pace_accepts(backoff);
            if (draining_) {
                answer_and_close(socket, smtp::replies::shutting_down, hostname_);
                co_return;
            }
        }
        if (sessions_.size() >= settings_->server.max_connections
            && settings_->modes.max_connections != config::check_mode::off) {
            const bool observe = settings_->modes.max_connections == config::check_mode::observe;
            refuse(socket, observe);
            if (!observe) continue;
        }
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto session = std::make_shared<client_session>(*this, std::move(socket), settings_,
                                                        policies_, next_session_id());
        asio::co_spawn(io_, session->run(), logged("session " + session->id(), session));
    }
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
    answer_and_close(socket, smtp::replies::too_many_connections, hostname_);
}

asio::awaitable<void> server::watch_signals() {
    for (;;) {
        auto [ec, signal] = co_await signals_.async_wait(use_tuple);
        if (ec) co_return;
        if (signal == SIGHUP) {
            reload();
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
    // Connections the kernel already completed wait in the backlog; closing the listener would
    // reset them. Each gets 421 4.3.2 instead, so its MTA retries in an orderly way.
    std::size_t backlog = 0;
    for (auto& acceptor : acceptors_) {
        acceptor->non_blocking(true, ignored);
        for (std::size_t i = 0; i < listen_backlog; ++i) {
            tcp::socket socket(io_);
            error_code ec;
            acceptor->accept(socket, ec);
            if (ec) break;
            answer_and_close(socket, smtp::replies::shutting_down, hostname_);
            ++backlog;
        }
        acceptor->close(ignored);
    }
    if (admin_) admin_->stop();
    ops::log(ops::level::info, "shutdown")
        .kv("phase", "drain")
        .kv("sessions", sessions_.size())
        .kv("backlog", backlog)
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

int run(const config::settings& settings, config_loader reload) {
    std::signal(SIGPIPE, SIG_IGN);
    // One thread runs everything; the hint lets Asio skip the reactor's per-descriptor
    // locking (the scheduler keeps its lock for the resolver's and signals' threads).
    asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
    server s(io, settings, std::move(reload));
    s.start();
    // The ports are bound: root is no longer needed.
    if (!settings.server.user.empty() && switch_user(settings.server.user)) {
        ops::log(ops::level::info, "privileges")
            .kv("user", settings.server.user)
            .kv("uid", static_cast<std::uint64_t>(::getuid()))
            .kv("gid", static_cast<std::uint64_t>(::getgid()));
    }
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
