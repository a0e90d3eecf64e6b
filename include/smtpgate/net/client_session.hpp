// One client session: the coroutine that drives the session engine over two sockets.
//
// A connection from a trusted load balancer first yields its PROXY header (the real client).
// The session connects the backend (only after the client was admitted), identifies the
// client to it (PROXY header or XCLIENT), relays the banner, then loops: client lines to the
// engine, engine output to the sockets, backend replies to the engine, message content through the
// data scanner to the backend. Every wait has a deadline (a whole command line, the message body,
// each backend reply, the session), kept by one watchdog timer per session that cancels whatever is
// still pending when it passes; every ending says goodbye with a proper SMTP reply before the
// close.
//
// The member functions live in four files: client_session.cpp (the session's steps),
// client_session_admission.cpp (admission, greet pause, bad-recipient penalty),
// client_session_handoff.cpp (PROXY headers in and out, XCLIENT) and client_session_io.cpp
// (deadline I/O, the watchdog, STARTTLS); their shared free helpers are in
// src/net/client_session_helpers.hpp.
// Does not: decide policy (policy/ and the session engine do), parse SMTP (smtp/), or spawn
// coroutines (only the listener does).
//
// Threading: runs on the server's single-threaded io_context; drain() and stop() are called
// from that same thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "smtpgate/config/config.hpp"
#include "smtpgate/policy/admission.hpp"
#include "smtpgate/session/engine.hpp"
#include "smtpgate/session/screening.hpp"
#include "smtpgate/smtp/data_scanner.hpp"
#include "smtpgate/smtp/input_buffer.hpp"
#include "smtpgate/smtp/line_reader.hpp"
#include "smtpgate/smtp/reply.hpp"

namespace smtpgate::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady_clock = std::chrono::steady_clock;

class server;
struct policy_set;

class client_session : public std::enable_shared_from_this<client_session>,
                       public session::transaction_policy,
                       private state::completion {
  public:
    client_session(server& owner, tcp::socket client,
                   std::shared_ptr<const config::settings> settings,
                   std::shared_ptr<policy_set> policies, std::string id);
    ~client_session();
    client_session(const client_session&) = delete;
    client_session& operator=(const client_session&) = delete;

    /// The whole session; returns when both connections are closed.
    asio::awaitable<void> run();

    /// Shutdown began: close now if idle between transactions or in the greet pause (421
    /// instead of the banner), else at the next command outside a transaction.
    void drain();
    /// Shutdown grace is over: 421 4.3.2 and close, wherever the session is.
    void stop();

    const std::string& id() const { return id_; }

    // session::transaction_policy: the engine asks before forwarding HELO, MAIL and RCPT.
    const policy::step_result* check(policy::phase p, std::string_view subject) override;

  private:
    enum class side { client, backend };

    // state::completion: a plan the store could not apply at once is done.
    void plan_applied() override;
    /// Waits for the store to apply the pending screening step for `in`, then decides it; null
    /// when stop() cut the wait short.
    asio::awaitable<const policy::step_result*> await_step(const policy::check_input& in);

    struct io_result {
        boost::system::error_code ec;
        std::size_t bytes = 0;
        bool timed_out = false;
    };

    // client_session.cpp: the session's steps after admission, and the event log.
    bool proceeding() const { return !engine_.closing() && !client_gone_; }
    asio::awaitable<void> connect_backend();
    asio::awaitable<void> relay_loop();
    /// The engine waits for a check: the store's answer, then the engine goes on.
    asio::awaitable<void> await_check();
    /// One whole backend reply, from what is buffered or read under `deadline`; null when the
    /// backend failed (the engine is told).
    asio::awaitable<smtp::reply*> read_reply(steady_clock::time_point deadline);
    /// The replies owed, as the engine takes them, pipelined ones together.
    asio::awaitable<void> read_backend_replies();
    asio::awaitable<void> read_client_commands();
    asio::awaitable<void> stream_message();
    asio::awaitable<void> flush_client();
    asio::awaitable<bool> write_client(std::string& bytes);
    asio::awaitable<bool> flush_backend();
    asio::awaitable<bool> flush_backend_bytes(std::string& bytes);
    asio::awaitable<void> goodbye();
    asio::awaitable<void> end_tls(steady_clock::time_point deadline);
    /// Parses one reply from what the backend already sent, if it is all there.
    smtp::reply_status parse_buffered_reply();
    bool backend_spoke_out_of_turn(bool ask_socket);
    void log_events();
    /// A PROXY header from a peer that is not a trusted proxy: logged, and the connection
    /// closed without a reply. Looked at once, on the client's first bytes.
    bool refused_untrusted_proxy_header();

    // client_session_admission.cpp: the client's name, admission, the greet pause, the
    // bad-recipient penalty.
    /// Starts the reverse lookup (server.reverse_lookup) without waiting for it: it runs
    /// while the client is admitted and pauses, and the backend is connected.
    void start_name_lookup();
    void on_client_name(std::string name);
    /// Waits for the lookup started, if it has not answered (its deadline bounds the wait; so
    /// does stop()).
    asio::awaitable<void> await_client_name();
    asio::awaitable<void> admit(const tcp::endpoint& remote);
    asio::awaitable<void> greet_pause();
    void log_verdict(const policy::verdict& v);
    /// Counts the unknown recipients the engine just found against the client network.
    asio::awaitable<void> count_bad_recipients();
    void apply_bad_recipient(const policy::bad_recipient_verdict& v);

    // client_session_handoff.cpp: who the client really is, in and out.
    /// Reads the trusted proxy's PROXY header and takes the client and server addresses
    /// from it. Returns "" when done, else why not: "malformed: <detail>", "oversized",
    /// "timeout", "eof", "reset", ...
    asio::awaitable<std::string> read_proxy_header();
    /// Sends the PROXY header of backend.identity proxy-v1/proxy-v2.
    asio::awaitable<void> send_proxy_header();
    /// Runs the backend handshake (session/backend_handshake.hpp): the banner, then
    /// (backend.tls) STARTTLS and (backend.identity = xclient) EHLO and XCLIENT, whose fresh
    /// 220 becomes the client's banner.
    asio::awaitable<void> greet_backend();
    /// The TLS handshake on the backend link after its 220 to STARTTLS; false when it failed
    /// (the engine is told).
    asio::awaitable<bool> secure_backend();
    /// Writes `line` (if any) to the backend and reads one whole reply; null on failure (the
    /// engine is told).
    asio::awaitable<smtp::reply*> backend_exchange(std::string line);

    // client_session_io.cpp: reads and writes with a deadline, kept by the watchdog, what a
    // failed one means for the engine, and the switch to TLS.
    asio::awaitable<io_result> read_some(side from, smtp::input_buffer& buffer,
                                         steady_clock::time_point deadline);
    asio::awaitable<io_result> write_all(side to, std::string& bytes,
                                         steady_clock::time_point deadline);
    /// After the 220 to STARTTLS: drop pipelined plaintext, handshake under its deadline.
    asio::awaitable<void> start_tls();
    io_result finish_io(boost::system::error_code ec, std::size_t n);
    void arm_watchdog(steady_clock::time_point deadline);
    void on_watchdog(const boost::system::error_code& ec);
    steady_clock::time_point capped(steady_clock::duration phase) const;
    void on_io_failure(const io_result& r, session::deadline phase, bool backend_side);

    server& owner_;
    std::shared_ptr<const config::settings> settings_;
    std::shared_ptr<policy_set> policies_;  // the checks of the settings this session started with
    std::string id_;
    tcp::socket client_;
    tcp::socket backend_;
    // After STARTTLS the client's bytes go through this stream over client_; the context is
    // shared with the server's so a certificate reload does not pull it from under us.
    std::shared_ptr<asio::ssl::context> tls_context_;
    std::optional<asio::ssl::stream<tcp::socket&>> client_tls_;
    std::shared_ptr<asio::ssl::context> backend_tls_context_;
    std::optional<asio::ssl::stream<tcp::socket&>> backend_tls_;
    asio::steady_timer watchdog_;
    asio::steady_timer delay_timer_;
    steady_clock::time_point deadline_{};
    bool watchdog_armed_ = false;
    bool timed_out_ = false;
    bool finished_ = false;
    bool throttle_logged_ = false;
    smtp::input_buffer client_in_;
    smtp::input_buffer backend_in_;
    smtp::line_reader client_lines_;
    smtp::line_reader backend_lines_;
    smtp::reply_parser reply_parser_;
    smtp::data_scanner scanner_;
    session::engine engine_;
    std::string message_out_;
    policy::admission_result admission_;
    session::screening screening_;
    asio::steady_timer step_timer_;  // waits for a pending store step; plan_applied() ends it
    std::string check_subject_;      // the subject of the engine's check in flight

    steady_clock::time_point started_;
    steady_clock::time_point session_deadline_;
    steady_clock::time_point line_deadline_{};
    std::string client_text_;
    // The real client and the address it connected to: from the PROXY header when a trusted
    // proxy sent one, else the socket's own.
    tcp::endpoint client_endpoint_;
    tcp::endpoint server_endpoint_;
    std::string via_text_;  // the trusted proxy the client came through, "" if direct
    bool proxy_header_checked_ = false;
    std::string client_name_;        // verified reverse name, "" when unknown or lookups are off
    bool name_pending_ = false;      // the lookup has not answered yet
    asio::steady_timer name_timer_;  // waits for it; on_client_name() and stop() end the wait
    steady_clock::time_point screening_started_{};  // the greet pause counts from here
    std::string end_reason_;
    std::list<client_session*>::iterator registry_entry_;
    bool backend_connected_ = false;
    int checked_forwards_ = 0;  // forwards preceded by a backend_spoke_out_of_turn() check
    bool awaiting_final_reply_ = false;
    bool client_gone_ = false;
    bool idle_ = false;  // waiting for the client with nothing owed: a drain closes now
    enum class interrupt { none, drain, stop } interrupt_ = interrupt::none;
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
};

}  // namespace smtpgate::net
