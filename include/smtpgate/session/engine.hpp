// The session engine: one client session's protocol state, without I/O.
//
// The network driver feeds it what happened (a client line, a backend reply, the end of a
// message, a deadline, a failure) and carries out what it asks for: bytes for the client,
// bytes for the backend, the phase the client is in (commands, AUTH continuation, message
// content), and whether to close. The engine parses every client line; only lines it parsed
// and accepted are forwarded, and the commands the proxy refuses are answered locally.
//
// Replies reach the client in command order (RFC 2920): a local reply to a pipelined command
// waits behind the backend replies still owed for earlier commands.
//
// Pure: no sockets, no clock, no logging. Decisions are reported as `event`s for the driver
// to log. Single-threaded, one engine per session.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/config/config.hpp"
#include "smtpgate/policy/check.hpp"
#include "smtpgate/policy/verdict.hpp"
#include "smtpgate/smtp/command.hpp"
#include "smtpgate/smtp/line_reader.hpp"
#include "smtpgate/smtp/replies.hpp"
#include "smtpgate/smtp/reply.hpp"

namespace smtpgate::session {

using duration = std::chrono::milliseconds;

/// The checks the engine asks for before it forwards HELO/EHLO, MAIL and RCPT. The driver runs
/// them (session/screening.hpp) over the shared store and its clock; tests use a fake. A
/// decision that does not pass is answered locally with its reply and the command is not
/// forwarded; observed refusals are logged as would_reject.
class transaction_policy {
  public:
    virtual ~transaction_policy() = default;
    /// Starts the step of `p` (helo, mail or rcpt) for `subject` (the HELO name, the sender, the
    /// transaction's sender). Returns its result when decided at once; null when the store
    /// answers later: the engine then takes no line until on_check_done().
    virtual const policy::step_result* check(policy::phase p, std::string_view subject) = 0;
};

struct engine_settings {
    std::string hostname;
    /// bare_newline = "reject": refuse commands that end in a bare CR or LF.
    bool reject_bare_newline = false;
    /// The proxy has a certificate: STARTTLS is offered in EHLO replies and answered (RFC 3207).
    bool tls_available = false;

    /// RCPT commands per transaction; more get 452 4.5.3 locally (RFC 5321 4.5.3.1.8).
    std::uint32_t recipients_per_message = 100;
    config::check_mode recipients_mode = config::check_mode::enforce;
    /// After this many unknown-user rejections in a transaction, every later RCPT reply is
    /// delayed by `bad_recipient_delay` (sendmail BAD_RCPT_THROTTLE). 0 = off.
    std::uint32_t bad_recipient_after = 2;
    duration bad_recipient_delay{1000};
    config::check_mode bad_recipient_mode = config::check_mode::enforce;
    /// Errors (refused commands, 5xx replies): after `soft_errors` each error reply is
    /// delayed by `error_delay`; at `max_errors` 421 4.7.0 and close (Postfix
    /// smtpd_soft/hard_error_limit). 0 = off.
    std::uint32_t soft_errors = 10;
    std::uint32_t max_errors = 20;
    duration error_delay{1000};
    config::check_mode errors_mode = config::check_mode::enforce;
    /// Bound on all delays in one session; past it the session is closed with 421 4.7.0.
    duration max_total_delay{60000};
};

/// The engine's settings from the configuration.
engine_settings engine_settings_from(const config::settings& settings, std::string hostname);

/// Reply bytes that must wait before they are sent (a throttle's delay).
struct delayed_output {
    duration delay{0};
    std::string bytes;
};

/// What the client's next bytes are.
enum class phase {
    command,  ///< command lines
    auth,     ///< an AUTH continuation line (RFC 4954 4)
    data,     ///< message content, to the data scanner, until <CRLF>.<CRLF>
    /// The 220 to STARTTLS is the last output: the driver sends it, discards whatever
    /// plaintext the client sent after STARTTLS (never executed, CVE-2011-0411), runs the
    /// TLS handshake and reports on_tls_established() or on_tls_failed().
    tls,
};

enum class deadline { command, data, backend_reply, session };

/// What happened, as the log's event name says it (docs/logging.md).
enum class event_kind : std::uint8_t {
    reject,
    would_reject,
    timeout,
    backend_error,
    drain_close,
    bad_recipient,  ///< the backend refused a recipient as unknown: the driver counts it
    rcpt_flood,
    tls_error,
};
std::string_view event_name(event_kind k);

/// What the session waits for next. Before any wait the driver sends to_backend(), then
/// to_client() and the delayed replies in order.
enum class next_step {
    close,           ///< the goodbye: last replies, then both sides closed
    await_check,     ///< a check waits for the store: on_check_done() with its result
    read_backend,    ///< replies are owed: read them (on_backend_reply)
    start_tls,       ///< the 220 to STARTTLS is out: the handshake
    stream_message,  ///< message content until <CRLF>.<CRLF>
    read_client,     ///< the client's next command lines
};

/// A decision worth a log line.
struct event {
    event_kind kind = event_kind::reject;
    std::string_view reason;  ///< stable token: "xclient", "line_too_long", "command", ...
    int code = 0;             ///< reply code sent to the client, if any
    std::string detail;       ///< free text, e.g. the system error of a failed connect
    std::int64_t observed = 0;
    std::int64_t limit = 0;
    bool in_ms = false;  ///< observed and limit are milliseconds
};

/// An unknown-user rejection (550/551/553 with 5.1.x or no enhanced status).
bool is_unknown_recipient(const smtp::reply& reply);

class engine {
  public:
    explicit engine(engine_settings settings);

    // ---- Inputs ------------------------------------------------------------------------
    /// The backend's greeting: relayed if 220, otherwise 421 4.3.0 and close.
    void on_banner(const smtp::reply& banner);
    /// A client line in the command or auth phase.
    void on_client_line(const smtp::line_event& line);
    /// The next complete backend reply; answers the oldest forwarded command.
    void on_backend_reply(smtp::reply& reply);
    /// The data scanner found <CRLF>.<CRLF>; the final dot is on its way to the backend.
    void on_data_end();
    /// The data scanner refused a bare CR or LF: 521 5.5.2 and close.
    void on_data_bare_newline();
    /// A deadline passed: 421 4.4.2 and close.
    void on_timeout(deadline which);
    /// The backend connection failed or broke the protocol: 421 4.3.0 and close.
    void on_backend_failure(std::string_view reason, std::string detail = {});
    /// The backend could not be reached: 421 4.4.1 and close.
    void on_backend_unreachable(std::string_view reason, std::string detail = {});
    /// Shutdown reached its end: 421 4.3.2 and close, wherever the session is.
    void on_shutdown();
    /// The TLS handshake after STARTTLS succeeded: the client must send EHLO again (RFC 3207
    /// 4.2); until then other commands get 503 5.5.1 locally. The client's new EHLO resets the
    /// backend session (RFC 5321 4.1.4), so both sides start over in step.
    void on_tls_established();
    /// The TLS handshake failed or timed out: the session closes without a reply (there is no
    /// channel left to send one on).
    void on_tls_failed(std::string_view reason, std::string detail);
    bool tls_active() const { return tls_active_; }
    /// The proxy answers this session alone, with no backend: `greeting` (if not null) is sent
    /// now, then every command gets `refusal` except QUIT (221 and close) and, when
    /// `polite`, HELO/EHLO/NOOP/RSET, which get their usual positive replies. After
    /// `max_local_commands` commands the session is closed with 421 4.7.0.
    /// Used for sendmail-style tempfail (451 to transactions) and nullserver (554 to all).
    void answer_locally(const smtp::named_reply* greeting, const smtp::named_reply& refusal,
                        bool polite);
    /// Where HELO/MAIL/RCPT checks are asked (not owned; null: no checks).
    void set_transaction_policy(transaction_policy* checks) { checks_ = checks; }
    /// The pending check's result: the held command is answered or forwarded, and lines are
    /// taken again.
    void on_check_done(const policy::step_result& result);
    /// A check is pending: the store has not answered yet.
    bool awaiting_check() const { return check_pending_; }
    /// The client network is over its bad-recipient throttle rate: from now on every RCPT
    /// reply of this session waits `bad_recipient_delay`.
    void throttle_recipients() { throttle_all_recipients_ = true; }
    /// The first line of a multi-line banner, before the greet pause ("220-", postscreen's
    /// teaser); the banner that follows completes it.
    void send_teaser();
    /// Ends the session with `r` (a refusal the driver has already logged in detail).
    void close_now(const smtp::named_reply& r, std::string_view reason);
    bool answering_locally() const { return local_refusal_ != nullptr; }
    static constexpr std::uint64_t max_local_commands = 20;

    /// Shutdown began: from now on the session closes with 421 4.3.2 at its next command
    /// outside a mail transaction.
    void on_drain() { draining_ = true; }

    // ---- Outputs -----------------------------------------------------------------------
    /// Bytes for the client, to send now.
    std::string& to_client() { return to_client_; }
    /// Bytes for the client that wait their delay, in order, after to_client().
    std::deque<delayed_output>& delayed() { return delayed_; }
    std::string& to_backend() { return to_backend_; }
    phase current_phase() const { return phase_; }
    /// The engine takes another client line now (no command in flight that must be last in
    /// its pipelined group: DATA, AUTH, QUIT).
    bool accepts_lines() const {
        return !closing_ && !close_queued_ && !barrier_ && !check_pending_ && phase_ != phase::data;
    }
    /// What to wait for next.
    next_step next() const;
    /// Replies the backend still owes.
    bool awaiting_backend() const { return backend_owed_ > 0; }
    /// Send to_client() and close both sides.
    bool closing() const { return closing_; }
    /// The backend session may be ended with QUIT (not mid-message, not already quit).
    bool backend_quit_wanted() const { return !quit_forwarded_ && phase_ != phase::data; }
    /// Why the session ends, for the disconnect log line: "quit", "timeout_command",
    /// "backend_eof", "non_smtp", "shutdown", ...
    const std::string& close_reason() const { return close_reason_; }
    bool in_transaction() const { return transaction_open_; }

    /// Decisions since the last call, oldest first.
    std::vector<event>& events() { return events_; }
    /// Among them, unknown recipients the driver must count against the client network.
    bool found_bad_recipients() const {
        for (const auto& e : events_)
            if (e.kind == event_kind::bad_recipient) return true;
        return false;
    }

    std::uint64_t commands() const { return commands_; }
    std::uint64_t messages() const { return messages_; }

  private:
    struct pending {
        smtp::verb kind;
        bool local = false;  ///< a proxy reply waiting for its turn
        std::string reply;   ///< the rendered local reply
        bool end_of_data = false;
        duration delay{0};  ///< for a local reply: its error delay
        /// For a local reply that ends the session: the close reason.
        std::string_view close_reason;
        /// For a local reply: it is the 220 to STARTTLS; the TLS phase follows it.
        bool starts_tls = false;
    };

    enum class check_state { passed, refused, pending };

    void forward(const smtp::command& cmd, std::string_view line);
    void forward_checked(const smtp::command& cmd, std::string_view line);
    /// The check step `cmd` needs (setting `p`), with its subject; none for other commands.
    std::optional<std::string_view> check_subject(const smtp::command& cmd, policy::phase& p) const;
    check_state start_check(const smtp::command& cmd, std::string_view line);
    /// Logs what was observed, answers a refusal; true when `cmd` may be forwarded.
    bool apply_check(const smtp::command& cmd, std::string_view subject,
                     const policy::step_result& r);
    void local_reply(const smtp::named_reply& r, std::string_view reason, std::int64_t observed = 0,
                     std::int64_t limit = 0, bool counts_as_error = true);
    void close_with(const smtp::named_reply& r, event_kind kind, std::string_view reason,
                    std::string detail = {});
    void flush_local_replies();
    /// Where the next client bytes go: after `delay`, or behind what already waits.
    std::string& out(duration delay = duration(0));
    /// Counts an error reply; returns the delay it earns (0 below the soft limit).
    duration count_error(std::string_view reason);
    void reset_transaction();
    /// Ends the session with `r` once the replies still owed for earlier commands are out.
    void queue_close(const smtp::named_reply& r, std::string_view reason);
    /// Classifies a RCPT reply and returns the bad-recipient throttle's delay for it.
    duration rcpt_delay(const smtp::reply& reply);
    void on_local_line(const smtp::line_event& line);
    void starttls(const smtp::command& cmd);

    engine_settings settings_;
    std::string to_client_;
    std::deque<delayed_output> delayed_;
    duration total_delay_{0};
    std::uint32_t errors_ = 0;
    std::uint32_t recipients_ = 0;      // RCPTs forwarded in this transaction
    std::uint32_t bad_recipients_ = 0;  // unknown-user replies in this transaction
    std::string to_backend_;
    std::deque<pending> pending_;
    std::vector<event> events_;
    std::size_t backend_owed_ = 0;
    phase phase_ = phase::command;
    bool barrier_ = false;
    bool closing_ = false;
    bool close_queued_ = false;
    bool error_limit_hit_ = false;
    bool throttle_all_recipients_ = false;
    transaction_policy* checks_ = nullptr;
    bool check_pending_ = false;
    std::string held_line_;     // the command waiting for its check
    std::string sender_;        // MAIL FROM of the open transaction
    std::string helo_checked_;  // the HELO name the interval check passed in this session
    bool draining_ = false;
    bool quit_forwarded_ = false;
    bool transaction_open_ = false;
    bool tls_active_ = false;
    bool need_helo_ = false;  // TLS began; only HELO/EHLO, NOOP, RSET, QUIT until EHLO again
    std::string close_reason_;
    const smtp::named_reply* local_refusal_ = nullptr;
    bool local_polite_ = false;
    std::uint64_t commands_ = 0;
    std::uint64_t messages_ = 0;
};

}  // namespace smtpgate::session
