// Typed configuration: what the TOML file says, after validation.
//
// These structs hold only values that passed the strict loader (config/loader.hpp); every
// member has the documented default, so a default-constructed `settings` is the built-in
// configuration. No I/O here and no global state: a reload builds a new `settings` and the
// caller swaps it in.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace smtpgate::config {

using duration = std::chrono::milliseconds;
using namespace std::chrono_literals;

/// A listen or backend address. `host` is an IP literal (IPv6 without brackets) for listen
/// addresses; a backend may also name a host to resolve at connect time.
struct endpoint {
    std::string host;
    std::uint16_t port = 0;

    /// "192.0.2.1:25", "[2001:db8::1]:25", "mx.example:25".
    std::string to_string() const;
    friend bool operator==(const endpoint&, const endpoint&) = default;
};

/// "N per window" (`count` events per `window`); count 0 means unlimited (off).
struct rate {
    std::uint32_t count = 0;
    duration window{0};
    bool off() const { return count == 0; }
    friend bool operator==(const rate&, const rate&) = default;
};

/// Every check runs in one of these modes: enforce it, only log and count what it would
/// have done, or skip it.
enum class check_mode { enforce, observe, off };

/// What a client over a connection limit gets: 421 and close (sendmail `terminate`), or a
/// banner and then a 4xx to every command until it quits.
enum class exceed_action { terminate, tempfail };

/// What a client that talks before the banner gets after its 554: 554 to every command
/// until QUIT (sendmail nullserver), or the close.
enum class pregreet_action { nullserver, drop };

enum class rule_action { limit, allow, deny };

/// How the real client is identified to the backend.
enum class identity_mode { none, proxy_v1, proxy_v2, xclient };

/// Whether the link to the backend is encrypted: never, or with STARTTLS after its banner.
enum class backend_tls_mode { off, starttls };

/// The lowest TLS version the proxy accepts from clients.
enum class tls_version { v1_2, v1_3 };

/// What to do with a bare CR or LF in a command or in message content.
enum class bare_newline_mode { normalize, reject };

enum class log_format { text, json };
enum class log_target { stderr_stream, syslog };
enum class log_level { debug, info, warning, error };

struct server_settings {
    std::vector<endpoint> listen{{"0.0.0.0", 25}};
    /// Name in the proxy's own replies; empty means the system host name.
    std::string hostname;
    /// Global cap on concurrent client sessions.
    std::size_t max_connections = 2000;
    /// SIGTERM: how long sessions may run on before they are closed with 421 4.3.2.
    duration shutdown_grace = 30s;
    /// New sessions per second across all clients; more wait their turn (sendmail
    /// ConnectionRateThrottle). 0 = off.
    std::uint32_t accept_rate = 0;
    /// Look up each client's host name (PTR, confirmed by a forward lookup) so [[rule]] can
    /// match names and domains. Lookups run on `resolver_threads` threads; one that takes
    /// longer than `reverse_lookup_timeout` leaves the client nameless (name rules do not
    /// match; address rules still do).
    bool reverse_lookup = false;
    duration reverse_lookup_timeout = 5s;
    std::size_t resolver_threads = 4;
    /// Load balancers whose connections begin with a PROXY protocol header (v1 or v2): the
    /// client address in the header is the one every limit and log uses. A connection from
    /// one of these must send a valid header within `proxy_header_timeout`; a header from
    /// any other address closes the connection. Networks in CIDR form; empty = none.
    std::vector<std::string> trusted_proxies;
    duration proxy_header_timeout = 5s;
    /// A process started as root switches to this user (and its groups) for good once its
    /// listeners are bound, as nginx and Postfix do. Empty: keep the starting user.
    std::string user;
};

struct backend_settings {
    endpoint address{"127.0.0.1", 10025};
    identity_mode identity = identity_mode::none;
    duration connect_timeout = 10s;
    /// Deadline for each backend reply, except the one after end-of-data.
    duration reply_timeout = 5min;
    /// Deadline for the backend's reply to end-of-data (content filters may be slow).
    duration data_reply_timeout = 10min;
    /// STARTTLS to the backend, for backends that require encryption. With `tls_verify` the
    /// backend's certificate must chain to `tls_ca_file` (or the system's CAs when empty) and
    /// name the backend's host (or IP address).
    backend_tls_mode tls = backend_tls_mode::off;
    bool tls_verify = true;
    std::string tls_ca_file;
};

/// The admin HTTP endpoint: /metrics (Prometheus), /healthz, /readyz.
struct admin_settings {
    /// Where it listens; unset = off. Keep it on loopback or a private network.
    std::optional<endpoint> listen = endpoint{"127.0.0.1", 9590};
};

/// STARTTLS on the client side, terminated in the proxy. Off unless a certificate is set.
struct tls_settings {
    /// PEM: the server certificate followed by its chain.
    std::string certificate;
    /// PEM private key of the certificate.
    std::string key;
    tls_version min_version = tls_version::v1_2;
    /// Deadline for the TLS handshake after "220 2.0.0 Ready to start TLS".
    duration handshake_timeout = 30s;
    bool enabled() const { return !certificate.empty(); }
};

struct timeout_settings {
    /// Deadline for each whole command line from the client (not per read).
    duration command = 5min;
    /// Deadline for the whole message body, from the 354 to the final dot.
    duration data = 10min;
    /// Cap on a whole session.
    duration session = 1h;
};

struct smtp_settings {
    /// Longest command line accepted, without CRLF; longer lines get 500 5.5.2.
    std::size_t max_line_length = 2048;
    bare_newline_mode bare_newline = bare_newline_mode::normalize;
};

struct log_settings {
    log_format format = log_format::text;
    log_target target = log_target::stderr_stream;
    log_level level = log_level::info;
};

/// Per-client connection limits (admission, before the banner).
struct limits_settings {
    /// Clients are counted per network: addresses are masked to these prefixes.
    int client_key_ipv4_prefix = 32;
    int client_key_ipv6_prefix = 64;
    exceed_action on_exceed = exceed_action::terminate;
    /// New connections per client network (sendmail ClientRate); off by default.
    rate connection_rate{};
    /// Open connections per client network (sendmail ClientConn); 0 = unlimited. The default
    /// is Postfix's smtpd_client_connection_count_limit, above the 20 parallel deliveries a
    /// Postfix sender opens by default (smtp_destination_concurrency_limit).
    std::uint32_t concurrent_per_client = 50;

    /// RCPT commands per transaction; more get 452 4.5.3 (RFC 5321 4.5.3.1.8: at least 100).
    std::uint32_t recipients_per_message = 100;
    /// sendmail BAD_RCPT_THROTTLE: after `after` unknown users in a transaction, every later
    /// RCPT reply waits `delay`. after = 0: off.
    std::uint32_t bad_recipient_after = 2;
    duration bad_recipient_delay = 1s;
    /// Postfix smtpd_soft_error_limit / smtpd_error_sleep_time / smtpd_hard_error_limit:
    /// refused commands and 5xx replies. 0 = off.
    std::uint32_t soft_errors = 10;
    duration error_delay = 1s;
    std::uint32_t max_errors = 20;
    /// Bound on all throttle delays of one session; past it, 421 4.7.0 and close.
    duration max_delay = 60s;
    /// Postfix anvil / Exim ratelimit: MAIL commands and RCPT commands per client network,
    /// and per envelope sender; over them 450 4.7.1. Off by default.
    rate message_rate{};
    rate recipient_rate{};
    rate sender_message_rate{};
    rate sender_recipient_rate{};
    /// Unknown users per client network across sessions (the Exim recipe: 100 per hour is a
    /// spambot). Over `bad_recipient_throttle_rate` every RCPT reply of the client is
    /// delayed; over `bad_recipient_limit` the client goes into the penalty box for
    /// `bad_recipient_block_for`: its session is closed with 421 and new connections are
    /// refused at admission. Both off by default.
    rate bad_recipient_throttle_rate{};
    rate bad_recipient_limit{};
    duration bad_recipient_block_for = 1h;
};

struct greet_pause_settings {
    /// Wait before the banner (sendmail greet_pause); 0 = off; at most 300 s (RFC 5321 4.5.3.2.1).
    duration delay = 0ms;
    /// Send a postscreen-style "220-" line first, so pipelining-happy bots talk too early.
    bool teaser = false;
    pregreet_action on_pregreet = pregreet_action::nullserver;
};

/// vthrottle interval throttles: minimum time between observations of the same key.
struct interval_settings {
    duration host = 0ms;    ///< between connections of the same client network; 0 = off
    duration helo = 0ms;    ///< between HELO/EHLO with the same name; 0 = off
    duration sender = 0ms;  ///< between MAIL FROM with the same sender; 0 = off
};

/// vthrottle whitelist entry: a per-entry interval for a HELO name or domain, a sender address
/// ("user@example.org") or a sender domain ("@example.org").
struct interval_exception {
    std::string match;
    duration interval = 0ms;
    std::string origin;  ///< "file:line"
};

/// The mode of each check.
struct mode_settings {
    check_mode max_connections = check_mode::enforce;
    check_mode access = check_mode::enforce;
    check_mode concurrent_per_client = check_mode::enforce;
    check_mode connection_rate = check_mode::enforce;
    check_mode host_interval = check_mode::enforce;
    check_mode greet_pause = check_mode::enforce;
    check_mode recipients_per_message = check_mode::enforce;
    check_mode bad_recipient_throttle = check_mode::enforce;
    check_mode errors = check_mode::enforce;
    check_mode bad_recipient_rate = check_mode::enforce;
    check_mode helo_interval = check_mode::enforce;
    check_mode sender_interval = check_mode::enforce;
    check_mode message_rate = check_mode::enforce;
    check_mode recipient_rate = check_mode::enforce;
};

struct state_settings {
    /// Bound on the limiter table (one entry per client network and check).
    std::size_t max_entries = 1'000'000;
};

/// An access rule: per-network allow, deny, or limit overrides (sendmail access db entries).
struct rule {
    std::string match;  ///< "192.0.2.0/24", "2001:db8::/32", "192.0.2.7"
    rule_action action = rule_action::limit;
    std::optional<rate> connection_rate;                 ///< off = unlimited
    std::optional<std::uint32_t> concurrent_per_client;  ///< 0 = unlimited
    std::optional<duration> greet_pause;
    std::optional<duration> host_interval;
    std::optional<duration> helo_interval;
    std::optional<duration> sender_interval;
    std::string origin;  ///< "file:line", for messages
};

struct settings {
    server_settings server;
    backend_settings backend;
    tls_settings tls;
    admin_settings admin;
    timeout_settings timeouts;
    smtp_settings smtp;
    log_settings log;
    limits_settings limits;
    greet_pause_settings greet_pause;
    interval_settings interval;
    mode_settings modes;
    state_settings state;
    std::vector<rule> rules;
    std::vector<interval_exception> exceptions;
    /// Where these settings came from (file path, or "<defaults>").
    std::string source = "<defaults>";
};

}  // namespace smtpgate::config
