// The server: listeners, the set of live sessions, signals and structured shutdown.
//
// Listeners accept on every configured address and start one client_session coroutine per
// connection (the only place that spawns). SIGTERM or SIGINT starts a drain: listeners close,
// idle sessions get 421 4.3.2, busy ones finish their transaction; when `shutdown_grace`
// passes, the rest are stopped with 421 4.3.2. A second signal stops at once. The process
// exits when the last session has closed; io_context::stop() is never used.
// SIGHUP reloads: the file is read and validated first; a bad file (or one that changes what
// only a restart can: listeners, table size, resolver) is logged and the running settings stay;
// a good one is swapped in for new sessions, while sessions in flight keep the settings and
// policies they started with. Limiter state (counters, penalty boxes) is shared and survives.
//
// Threading: one io_context, one thread. Everything here runs on it.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/config/config.hpp"
#include "smtpgate/inet/address.hpp"
#include "smtpgate/net/accept_errors.hpp"
#include "smtpgate/net/reverse_resolver.hpp"
#include "smtpgate/net/tls_context.hpp"
#include "smtpgate/policy/check.hpp"
#include "smtpgate/session/screening.hpp"
#include "smtpgate/state/memory_store.hpp"

namespace smtpgate::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class client_session;
class admin_server;

/// The checks of one configuration. A session holds the set it started with, so a reload never
/// changes the rules under a session in flight; the state they decide on is the server's store.
struct policy_set {
    explicit policy_set(const config::settings& settings) : identity(settings), checks(settings) {}
    session::client_identity identity;
    policy::registry checks;
};

/// Reads the configuration again (the file, plus command-line overrides); throws
/// config::load_error.
using config_loader = std::function<config::settings()>;

class server {
  public:
    server(asio::io_context& io, config::settings settings, config_loader reload = {});
    ~server();

    /// Binds every listen address (throws std::system_error naming the address on failure)
    /// and starts accepting and watching signals.
    void start();
    /// Starts the drain (what SIGTERM does).
    void drain();

    /// Host name for the proxy's own replies.
    const std::string& hostname() const { return hostname_; }
    /// Where to connect the backend: the address itself when the configuration names an IP
    /// literal, else the addresses `address` resolves to by `deadline`; empty when the lookup
    /// fails or the deadline passes first. Sessions and the readiness probe both use it.
    asio::awaitable<std::vector<tcp::endpoint>> backend_addresses(
        config::endpoint address, std::chrono::steady_clock::time_point deadline);

    /// The settings and policies new sessions start with.
    const std::shared_ptr<const config::settings>& settings() const { return settings_; }
    const std::shared_ptr<policy_set>& policies() const { return policies_; }
    /// Where every check's state lives.
    state::store& store() { return store_; }
    bool draining() const { return draining_; }
    std::size_t sessions() const { return sessions_.size(); }
    /// Reverse lookups of clients, or null when server.reverse_lookup is off.
    reverse_resolver* resolver() { return resolver_.get(); }

    /// SIGHUP: reload the configuration (see the header comment); true when it was applied.
    bool reload();

    /// The Prometheus text of every metric, server gauges included.
    std::string render_metrics() const;
    /// Accepting clients (not draining) and the backend reachable: the last connection a
    /// session made succeeded within 10 s, or a probe connection does now.
    asio::awaitable<bool> ready();
    /// A session's backend connection attempt, for readiness.
    void backend_outcome(bool ok);
    /// The TLS context for the next STARTTLS handshake; null when tls.certificate is unset.
    std::shared_ptr<asio::ssl::context> tls_context();
    /// The client context for STARTTLS to the backend; null when backend.tls is off.
    const std::shared_ptr<asio::ssl::context>& backend_tls_context() const { return backend_tls_; }
    /// Whether a connection from `peer` must begin with a PROXY header (server.trusted_proxies).
    bool trusted_proxy(const inet::client_address& peer) const;
    /// accept() failures of every listener, the admin endpoint's too: one accept_error line a
    /// second between them, as they usually share one cause (the descriptor table is full).
    accept_errors& accept_failures() { return accept_errors_; }

    // Session registry, used by client_session.
    std::list<client_session*>::iterator attach(client_session* s);
    void detach(std::list<client_session*>::iterator it);

  private:
    asio::awaitable<void> accept_loop(tcp::acceptor& acceptor);
    /// Applies `fresh` (already validated): settings, policies, TLS, logging.
    void apply(std::shared_ptr<const config::settings> fresh);
    asio::awaitable<bool> probe_backend();
    asio::awaitable<bool> probe_greeting(tcp::socket& socket,
                                         std::vector<tcp::endpoint> candidates);
    asio::awaitable<void> watch_signals();
    asio::awaitable<void> grace_period();
    void refuse(tcp::socket& socket, bool observe_only,
                std::string_view reason = "max_connections");
    void refuse_with_reserve(tcp::acceptor& acceptor);
    asio::awaitable<void> pace_accepts(asio::steady_timer& timer);
    void stop_sessions();
    std::string next_session_id();

    asio::io_context& io_;
    std::shared_ptr<const config::settings> settings_;
    config_loader reload_;
    std::string hostname_;
    std::optional<tcp::endpoint> backend_endpoint_;
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
    asio::signal_set signals_;
    asio::steady_timer grace_timer_;
    std::list<client_session*> sessions_;
    state::memory_store store_;
    std::shared_ptr<policy_set> policies_;
    std::unique_ptr<admin_server> admin_;
    std::optional<bool> backend_ok_;
    std::chrono::steady_clock::time_point backend_checked_{};
    std::unique_ptr<reverse_resolver> resolver_;
    std::unique_ptr<tls_context_source> tls_;
    std::shared_ptr<asio::ssl::context> backend_tls_;
    std::vector<inet::network> trusted_proxies_;
    policy::time_point accept_tat_{};  // GCRA state of server.accept_rate
    std::uint64_t session_counter_ = 0;
    std::uint32_t id_prefix_ = 0;
    int reserve_fd_ = -1;  // a spare descriptor for refusing clients when none are left
    accept_errors accept_errors_;
    bool draining_ = false;
    bool stopping_ = false;
};

/// Runs the proxy until it has shut down; returns the process exit status. `reload` reads the
/// configuration again on SIGHUP.
int run(const config::settings& settings, config_loader reload = {});

}  // namespace smtpgate::net
