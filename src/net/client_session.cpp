#include "smtpgate/net/client_session.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>

#include <algorithm>
#include <utility>

#include "client_session_helpers.hpp"
#include "smtpgate/config/units.hpp"
#include "smtpgate/net/server.hpp"
#include "smtpgate/ops/log.hpp"
#include "smtpgate/ops/metrics.hpp"
#include "smtpgate/smtp/proxy_header.hpp"

namespace smtpgate::net {

using boost::system::error_code;
namespace errc = boost::asio::error;

namespace {

// Reads are at most this large; the client buffer also bounds pipelined input.
constexpr std::size_t client_buffer_size = 64 * 1024;
constexpr std::size_t backend_buffer_size = 16 * 1024;
// RFC 5321 4.5.3.1.5 allows 512; real MTAs send longer EHLO lines, never this long.
constexpr std::size_t backend_line_limit = 8 * 1024;
// Message content is written to the backend in chunks of about this size.
constexpr std::size_t message_chunk = 64 * 1024;
// The goodbye (last reply, QUIT to the backend, lingering close) has its own short deadline:
// a client that stops reading must not hold the session open.
constexpr auto goodbye_timeout = std::chrono::seconds(5);
// Forwards before which the backend socket is checked for replies nobody asked for.
constexpr int checked_forwards_max = 3;

}  // namespace

client_session::client_session(server& owner, tcp::socket client,
                               std::shared_ptr<const config::settings> settings,
                               std::shared_ptr<policy_set> policies, std::string id)
    : owner_(owner),
      settings_(std::move(settings)),
      policies_(std::move(policies)),
      id_(std::move(id)),
      client_(std::move(client)),
      backend_(client_.get_executor()),
      watchdog_(client_.get_executor()),
      delay_timer_(client_.get_executor()),
      client_in_(std::max(client_buffer_size, settings_->smtp.max_line_length + 2)),
      backend_in_(backend_buffer_size),
      client_lines_(settings_->smtp.max_line_length),
      backend_lines_(backend_line_limit),
      scanner_(settings_->smtp.bare_newline == config::bare_newline_mode::normalize),
      engine_(session::engine_settings_from(*settings_, owner.hostname())),
      screening_(policies_->checks, owner.store()),
      step_timer_(client_.get_executor()),
      name_timer_(client_.get_executor()) {
    screening_.set_owner(id_);
    registry_entry_ = owner_.attach(this);
    engine_.set_transaction_policy(this);
}

const policy::step_result* client_session::check(policy::phase p, std::string_view subject) {
    check_subject_.assign(subject);  // lives as long as the step may wait
    if (screening_.start(p, {admission_, check_subject_}, wall_now(), this))
        return &screening_.result();
    return nullptr;
}

void client_session::plan_applied() {
    step_timer_.cancel();
}

asio::awaitable<const policy::step_result*> client_session::await_step(
    const policy::check_input& in) {
    step_timer_.expires_at(steady_clock::time_point::max());
    co_await step_timer_.async_wait(use_tuple);
    if (screening_.pending()) {
        // stop() cut the wait short: the store's answer no longer matters.
        screening_.cancel();
        co_return nullptr;
    }
    co_return &screening_.finish(in);
}

client_session::~client_session() {
    owner_.detach(registry_entry_);
}

void client_session::drain() {
    if (interrupt_ != interrupt::none) return;
    interrupt_ = interrupt::drain;
    engine_.on_drain();
    // Between transactions and waiting for the client: nothing to finish, close now.
    if (idle_) client_.cancel();
}

void client_session::stop() {
    interrupt_ = interrupt::stop;
    error_code ignored;
    client_.cancel(ignored);
    backend_.cancel(ignored);
    delay_timer_.cancel();
    step_timer_.cancel();
    name_timer_.cancel();
}

// ---- The session --------------------------------------------------------------------------

asio::awaitable<void> client_session::run() {
    started_ = steady_clock::now();
    session_deadline_ = started_ + settings_->timeouts.session;
    error_code ec, local_ec;
    client_endpoint_ = client_.remote_endpoint(ec);
    server_endpoint_ = client_.local_endpoint(local_ec);
    std::string proxy_failure;
    if (ec) {
        client_gone_ = true;  // reset before we could even look at it
        end_reason_ = "client_reset";
        client_text_ = "unknown";
    } else {
        client_text_ = endpoint_text(client_endpoint_);
        if (owner_.trusted_proxy(client_address_of(client_endpoint_.address()))) {
            // A load balancer: its header names the client, and nothing happens before it.
            via_text_ = client_text_;
            proxy_header_checked_ = true;
            proxy_failure = co_await read_proxy_header();
            client_text_ = endpoint_text(client_endpoint_);
        }
    }
    {
        auto line = ops::log(ops::level::info, "connect");
        line.kv("session", id_)
            .kv("client", client_text_)
            .kv("server", local_ec ? std::string("unknown") : endpoint_text(server_endpoint_));
        if (!via_text_.empty()) line.kv("via", via_text_);
    }
    if (!proxy_failure.empty()) {
        // A health check that connects and closes is routine; anything else is not.
        ops::log(proxy_failure == "eof" ? ops::level::info : ops::level::warning, "proxy_header")
            .kv("session", id_)
            .kv("client", client_text_)
            .kv("reason", proxy_failure);
        ec = boost::asio::error::invalid_argument;
        client_gone_ = true;
        end_reason_ = "proxy_header";
    }

    // The screening starts: the name is looked up while the client is admitted and pauses.
    screening_started_ = steady_clock::now();
    if (!ec) start_name_lookup();
    if (!ec) co_await admit(client_endpoint_);
    if (proceeding() && !engine_.answering_locally()) co_await greet_pause();
    // Only a client that passed admission and the greet pause costs a backend connection.
    if (proceeding() && !engine_.answering_locally()) {
        if (interrupt_ == interrupt::drain) {
            // Shutting down before the banner: 421 4.3.2 now, no backend connection.
            engine_.on_shutdown();
        } else {
            co_await connect_backend();
            if (proceeding()) co_await greet_backend();
        }
    }
    while (proceeding())
        co_await relay_loop();
    log_events();
    // The SMTP session is over: a client that reconnects at once (an MTA with a full queue
    // does) must not find its previous connection still counted during our lingering close.
    if (!admission_.held_key.empty()) {
        owner_.store().release(admission_.held_key, id_);
        admission_.held_key.clear();
    }
    co_await goodbye();
    finished_ = true;
    watchdog_.cancel();

    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started_);
    std::string reason = end_reason_;
    if (reason.empty()) reason = engine_.close_reason();
    ops::metrics::global().count_session(engine_.messages(), bytes_in_, bytes_out_);
    ops::log(ops::level::info, "disconnect")
        .kv("session", id_)
        .kv("client", client_text_)
        .kv("reason", reason.empty() ? std::string("unknown") : reason)
        .kv("commands", engine_.commands())
        .kv("messages", engine_.messages())
        .kv("bytes_in", bytes_in_)
        .kv("bytes_out", bytes_out_)
        .kv("duration_ms", ms.count());
}

asio::awaitable<void> client_session::connect_backend() {
    const auto& cfg = settings_->backend;
    const auto deadline = capped(cfg.connect_timeout);
    // A host name (a container service name, say) is resolved per session, so the backend may
    // move without a restart; the lookup counts against the connect deadline.
    const auto candidates = co_await owner_.backend_addresses(cfg.address, deadline);
    if (candidates.empty()) {
        owner_.backend_outcome(false);
        ops::metrics::global().backend_connect_failed();
        engine_.on_backend_unreachable("resolve", cfg.address.to_string());
        co_return;
    }

    arm_watchdog(deadline);
    const auto connect_started = steady_clock::now();
    auto [connect_ec, endpoint] = co_await asio::async_connect(backend_, candidates, use_tuple);
    error_code ec = finish_io(connect_ec, 0).ec;
    owner_.backend_outcome(!ec);
    if (ec) {
        ops::metrics::global().backend_connect_failed();
        if (interrupt_ == interrupt::stop) {
            engine_.on_shutdown();
            co_return;
        }
        engine_.on_backend_unreachable(ec == errc::timed_out ? "connect_timeout" : "connect",
                                       cfg.address.to_string() + ": " + ec.message());
        co_return;
    }
    backend_connected_ = true;
    ops::metrics::global().backend_connected(
        std::chrono::duration<double>(steady_clock::now() - connect_started).count());
    backend_.set_option(tcp::no_delay(true), ec);
    co_await send_proxy_header();
}

asio::awaitable<bool> client_session::flush_backend_bytes(std::string& bytes) {
    if (bytes.empty()) co_return true;
    const auto r =
        co_await write_all(side::backend, bytes, capped(settings_->backend.reply_timeout));
    if (r.ec) {
        on_io_failure(r, session::deadline::backend_reply, true);
        co_return false;
    }
    co_return true;
}

asio::awaitable<bool> client_session::flush_backend() {
    co_return co_await flush_backend_bytes(engine_.to_backend());
}

asio::awaitable<void> client_session::flush_client() {
    if (client_gone_) co_return;
    if (!co_await write_client(engine_.to_client())) co_return;
    // Throttled replies: each waits its delay, in order. The wait is a timer; nothing else of
    // this session runs meanwhile, and the engine bounds the total per session.
    auto& delayed = engine_.delayed();
    while (!delayed.empty() && !client_gone_) {
        delay_timer_.expires_after(delayed.front().delay);
        ops::metrics::global().count_delay(
            std::chrono::duration<double>(delayed.front().delay).count());
        co_await delay_timer_.async_wait(use_tuple);  // cancelled only by stop(), checked next
        if (interrupt_ == interrupt::stop) {
            delayed.clear();
            engine_.on_shutdown();
            co_return;
        }
        std::string bytes = std::move(delayed.front().bytes);
        delayed.pop_front();
        if (!co_await write_client(bytes)) co_return;
    }
}

asio::awaitable<bool> client_session::write_client(std::string& bytes) {
    if (bytes.empty()) co_return true;
    const std::size_t n = bytes.size();
    const auto r = co_await write_all(side::client, bytes, capped(settings_->timeouts.command));
    if (r.ec) {
        bytes.clear();
        engine_.delayed().clear();
        on_io_failure(r, session::deadline::command, false);
        co_return false;
    }
    bytes_out_ += n;
    co_return true;
}

smtp::reply_status client_session::parse_buffered_reply() {
    for (;;) {
        const auto line = backend_lines_.next(backend_in_);
        if (line.status == smtp::line_status::need_more) return smtp::reply_status::need_more;
        if (line.status == smtp::line_status::too_long) return smtp::reply_status::malformed;
        const auto status = reply_parser_.feed(line.text);
        if (status != smtp::reply_status::need_more) return status;
    }
}

bool client_session::backend_spoke_out_of_turn(bool ask_socket) {
    // A backend speaks only when spoken to. Bytes beyond the replies owed mean it read
    // something that was not sent as a command, typically a PROXY header it was not told to
    // expect, and every later reply would answer the wrong command. Before the first few
    // forwards the socket is asked too (one ioctl each): such an answer follows the banner by
    // microseconds, and if it came late, the real reply it pushed back is pending next time.
    if (ask_socket && backend_in_.empty() && !backend_tls_) {
        error_code ec;
        if (backend_.available(ec) > 0 && !ec) {
            const auto space = backend_in_.prepare();
            backend_in_.commit(backend_.read_some(asio::buffer(space.data(), space.size()), ec));
        }
    }
    if (backend_in_.empty()) return false;
    const auto data = backend_in_.data();
    const auto shown = std::min<std::size_t>(data.find_first_of("\r\n"), 200);  // log line bound
    std::string detail = "unasked: \"" + std::string(data.substr(0, shown));
    detail += '"';
    if (sends_proxy_header(settings_->backend.identity)) {
        detail +=
            "; does the backend expect the PROXY header (Postfix "
            "smtpd_upstream_proxy_protocol, Exim hosts_proxy)?";
    }
    engine_.on_backend_failure("unsolicited_reply", std::move(detail));
    return true;
}

asio::awaitable<smtp::reply*> client_session::read_reply(steady_clock::time_point deadline) {
    for (;;) {
        const auto status = parse_buffered_reply();
        if (status == smtp::reply_status::malformed) {
            engine_.on_backend_failure("protocol");
            co_return nullptr;
        }
        if (status == smtp::reply_status::complete) co_return &reply_parser_.result();
        const auto r = co_await read_some(side::backend, backend_in_, deadline);
        if (r.ec) {
            on_io_failure(r, session::deadline::backend_reply, true);
            co_return nullptr;
        }
    }
}

asio::awaitable<void> client_session::read_backend_replies() {
    const auto timeout = awaiting_final_reply_ ? settings_->backend.data_reply_timeout
                                               : settings_->backend.reply_timeout;
    const auto deadline = capped(timeout);
    for (;;) {
        smtp::reply* reply = co_await read_reply(deadline);
        if (reply == nullptr) co_return;
        engine_.on_backend_reply(*reply);
        if (engine_.closing()) co_return;
        // Pipelined replies that arrived together are all handled before the next write.
        if (!engine_.awaiting_backend()) {
            backend_spoke_out_of_turn(false);
            co_return;
        }
    }
}

asio::awaitable<void> client_session::relay_loop() {
    if (!proxy_header_checked_ && !client_in_.empty() && refused_untrusted_proxy_header())
        co_return;
    // 1. Every complete line the client already sent, as far as the engine takes them.
    while (engine_.accepts_lines()) {
        const auto line = client_lines_.next(client_in_);
        if (line.status == smtp::line_status::need_more) break;
        line_deadline_ = {};
        engine_.on_client_line(line);
    }
    log_events();
    if (engine_.closing()) co_return;

    // 2. Forward what the engine accepted, in one write.
    if (checked_forwards_ < checked_forwards_max && !engine_.to_backend().empty()) {
        if (backend_spoke_out_of_turn(true)) co_return;
        ++checked_forwards_;
    }
    if (!co_await flush_backend()) co_return;

    // 3. Send what is due to the client, then wait for what the engine waits for.
    switch (engine_.next()) {
        case session::next_step::close: co_return;
        case session::next_step::await_check:
            co_await flush_client();
            if (client_gone_) co_return;
            co_await await_check();
            co_return;
        case session::next_step::read_backend:
            co_await flush_client();
            if (client_gone_) co_return;
            co_await read_backend_replies();
            // Decisions on the replies just read (bad recipients) take effect before anything
            // more goes to the client.
            if (engine_.found_bad_recipients()) co_await count_bad_recipients();
            log_events();
            awaiting_final_reply_ = false;
            co_return;
        case session::next_step::start_tls:
            co_await flush_client();  // the 220
            if (client_gone_) co_return;
            co_await start_tls();
            co_return;
        case session::next_step::stream_message:
            co_await flush_client();  // the 354
            if (client_gone_) co_return;
            co_await stream_message();
            co_return;
        case session::next_step::read_client:
            co_await flush_client();
            if (client_gone_ || engine_.closing()) co_return;
            co_await read_client_commands();
            co_return;
    }
}

asio::awaitable<void> client_session::await_check() {
    const policy::check_input in{admission_, check_subject_};
    const auto* r = co_await await_step(in);
    if (r == nullptr) {
        engine_.on_shutdown();
        co_return;
    }
    engine_.on_check_done(*r);
}

asio::awaitable<void> client_session::read_client_commands() {
    if (line_deadline_ == steady_clock::time_point{}) {
        // One deadline for the whole command line, however many reads it takes (postscreen;
        // defeats a client that sends one byte at a time).
        line_deadline_ = capped(settings_->timeouts.command);
    }
    idle_ = client_in_.empty() && !engine_.in_transaction();
    if (idle_ && interrupt_ == interrupt::drain) {
        idle_ = false;
        engine_.on_shutdown();
        co_return;
    }
    const auto r = co_await read_some(side::client, client_in_, line_deadline_);
    idle_ = false;
    if (r.ec == errc::operation_aborted && interrupt_ == interrupt::drain) {
        engine_.on_shutdown();
        co_return;
    }
    if (r.ec) {
        on_io_failure(r, session::deadline::command, false);
        co_return;
    }
    bytes_in_ += r.bytes;
}

asio::awaitable<void> client_session::stream_message() {
    scanner_.reset();
    const auto deadline = capped(settings_->timeouts.data);
    for (;;) {
        const auto result = scanner_.scan(client_in_.data(), message_out_);
        client_in_.consume(result.consumed);
        if (result.status == smtp::data_status::bare_newline) {
            // The backend never sees an end-of-data: closing it mid-message discards it.
            engine_.on_data_bare_newline();
            message_out_.clear();
            co_return;
        }
        if (result.status == smtp::data_status::done || message_out_.size() >= message_chunk) {
            const auto w = co_await write_all(side::backend, message_out_, deadline);
            if (w.ec) {
                on_io_failure(w, session::deadline::data, true);
                co_return;
            }
        }
        if (result.status == smtp::data_status::done) {
            engine_.on_data_end();
            awaiting_final_reply_ = true;
            co_return;
        }
        const auto r = co_await read_some(side::client, client_in_, deadline);
        if (r.ec) {
            on_io_failure(r, session::deadline::data, false);
            co_return;
        }
        bytes_in_ += r.bytes;
    }
}

asio::awaitable<void> client_session::goodbye() {
    // Throttled replies keep their delays even now: otherwise an abuser who pipelines up to the
    // error limit gets every verdict at once. The delays are bounded (limits.max_delay); a
    // shutdown skips them.
    if (!client_gone_ && interrupt_ != interrupt::stop && !engine_.delayed().empty()) {
        co_await flush_client();
    }
    const auto deadline = steady_clock::now() + goodbye_timeout;
    error_code ignored;
    if (!client_gone_) {
        // The last replies (delays skipped only when shutting down).
        std::string last = std::move(engine_.to_client());
        for (auto& d : engine_.delayed())
            last += d.bytes;
        engine_.delayed().clear();
        const std::size_t n = last.size();
        bool written = true;
        if (n > 0) {
            const auto r = co_await write_all(side::client, last, deadline);
            written = !r.ec;
            if (written) bytes_out_ += n;
        }
        if (written && client_tls_) co_await end_tls(deadline);
    }
    if (backend_connected_) {
        if (engine_.backend_quit_wanted()) {
            // Best effort: the backend's 221 is not awaited.
            std::string quit = "QUIT\r\n";
            if (backend_tls_) {
                co_await write_all(side::backend, quit, deadline);  // inside TLS, or not at all
            } else {
                backend_.non_blocking(true, ignored);
                backend_.write_some(asio::buffer(quit), ignored);
            }
        }
        backend_.close(ignored);
    }
    // After QUIT and its 221 with nothing more buffered, the client is done: close at once.
    const bool clean_quit = engine_.close_reason() == "quit" && client_in_.empty();
    if (!client_gone_ && !clean_quit) {
        // Lingering close: stop sending, then read and drop what the client still sends, so
        // the kernel does not answer unread input with a reset that would destroy our last
        // reply before the client read it.
        client_.shutdown(tcp::socket::shutdown_send, ignored);
        client_in_.clear();
        for (;;) {
            const auto r = co_await read_some(side::client, client_in_, deadline);
            client_in_.clear();
            if (r.ec) break;
        }
    }
    client_.close(ignored);
}

bool client_session::refused_untrusted_proxy_header() {
    proxy_header_checked_ = true;
    // A whole v2 signature, or "PROXY ": a client's blank first line is not a header.
    const auto data = client_in_.data();
    const bool header = data.size() >= 12 ? smtp::looks_like_proxy_header(data.substr(0, 12))
                                          : data.starts_with("PROXY ");
    if (!header) return false;
    // Only server.trusted_proxies may say who the client is; anyone else sending a header is
    // either misconfigured or trying to borrow an address.
    ops::log(ops::level::warning, "proxy_header")
        .kv("session", id_)
        .kv("client", client_text_)
        .kv("reason", "untrusted");
    client_gone_ = true;
    end_reason_ = "proxy_header_untrusted";
    client_in_.clear();
    return true;
}

asio::awaitable<void> client_session::count_bad_recipients() {
    // The engine found them; the shared state decides what they mean for the client network.
    const auto bad = std::count_if(
        engine_.events().begin(), engine_.events().end(),
        [](const session::event& e) { return e.kind == session::event_kind::bad_recipient; });
    for (std::ptrdiff_t i = 0; i < bad && !engine_.closing(); ++i) {
        const policy::check_input in{admission_};
        const auto* r = screening_.start(policy::phase::rcpt_reply, in, wall_now(), this)
                            ? &screening_.result()
                            : co_await await_step(in);
        if (r == nullptr) {
            engine_.on_shutdown();
            co_return;
        }
        apply_bad_recipient(policy::bad_recipient_finding(*r));
    }
}

void client_session::log_events() {
    for (const auto& e : engine_.events()) {
        const bool routine =
            e.kind == session::event_kind::reject || e.kind == session::event_kind::bad_recipient;
        auto line =
            ops::log(routine ? ops::level::info : ops::level::warning, session::event_name(e.kind));
        line.kv("session", id_).kv("client", client_text_);
        if (e.kind == session::event_kind::timeout) {
            line.kv("phase", e.reason);
        } else {
            line.kv("reason", e.reason);
        }
        if (e.code != 0) line.kv("code", e.code);
        log_measure(line, e.observed, e.limit, e.in_ms);
        if (!e.detail.empty()) line.kv("detail", e.detail);
    }
    engine_.events().clear();
}

}  // namespace smtpgate::net
