#include "smtpgate/net/client_session.hpp"

#include <openssl/ssl.h>
#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <tuple>

#include "client_session_helpers.hpp"
#include "smtpgate/net/server.hpp"
#include "smtpgate/ops/log.hpp"

namespace smtpgate::net {

using boost::system::error_code;
namespace errc = boost::asio::error;

namespace {

std::string_view error_reason(const error_code& ec) {
    if (ec == errc::eof) return "eof";
    if (ec == errc::connection_reset) return "reset";
    if (ec == errc::connection_refused) return "refused";
    if (ec == errc::broken_pipe) return "broken_pipe";
    if (ec == errc::operation_aborted) return "aborted";
    return "io_error";
}

}  // namespace

asio::awaitable<client_session::io_result> client_session::read_some(
    side from, smtp::input_buffer& buffer, steady_clock::time_point deadline) {
    const auto space = buffer.prepare();
    if (space.empty()) co_return io_result{errc::no_buffer_space, 0, false};
    arm_watchdog(deadline);
    const auto target = asio::buffer(space.data(), space.size());
    // Plain if/else, not a conditional expression: GCC 12 miscompiles co_await inside ?:.
    std::tuple<error_code, std::size_t> r;
    if (from == side::backend && backend_tls_) {
        r = co_await backend_tls_->async_read_some(target, use_tuple);
    } else if (from == side::backend) {
        r = co_await backend_.async_read_some(target, use_tuple);
    } else if (client_tls_) {
        r = co_await client_tls_->async_read_some(target, use_tuple);
    } else {
        r = co_await client_.async_read_some(target, use_tuple);
    }
    const auto [ec, n] = r;
    buffer.commit(n);
    co_return finish_io(ec, n);
}

asio::awaitable<client_session::io_result> client_session::write_all(
    side to, std::string& bytes, steady_clock::time_point deadline) {
    arm_watchdog(deadline);
    const auto source = asio::buffer(bytes);
    std::tuple<error_code, std::size_t> r;
    if (to == side::backend && backend_tls_) {
        r = co_await asio::async_write(*backend_tls_, source, use_tuple);
    } else if (to == side::backend) {
        r = co_await asio::async_write(backend_, source, use_tuple);
    } else if (client_tls_) {
        r = co_await asio::async_write(*client_tls_, source, use_tuple);
    } else {
        r = co_await asio::async_write(client_, source, use_tuple);
    }
    const auto [ec, n] = r;
    bytes.clear();
    co_return finish_io(ec, n);
}

asio::awaitable<void> client_session::start_tls() {
    // RFC 3207 4.2 / CVE-2011-0411: anything the client sent after STARTTLS in plaintext is
    // dropped unread, never executed as a command inside the encrypted session.
    if (!client_in_.empty()) {
        ops::log(ops::level::warning, "reject")
            .kv("session", id_)
            .kv("client", client_text_)
            .kv("reason", "starttls_pipelining")
            .kv("bytes", client_in_.size());
        client_in_.clear();
    }
    client_lines_.reset();
    tls_context_ = owner_.tls_context();
    if (!tls_context_) {
        // A reload took the certificate away after this session offered STARTTLS.
        engine_.on_tls_failed("unavailable", "tls is no longer configured");
        co_return;
    }
    client_tls_.emplace(client_, *tls_context_);
    arm_watchdog(capped(settings_->tls.handshake_timeout));
    auto [handshake_ec] =
        co_await client_tls_->async_handshake(asio::ssl::stream_base::server, use_tuple);
    const auto r = finish_io(handshake_ec, 0);
    if (r.ec) {
        // Nothing more can be said to this client: the channel is neither plain nor secure.
        client_tls_.reset();
        if (interrupt_ == interrupt::stop) {
            client_gone_ = true;
            end_reason_ = "shutdown";
        }
        engine_.on_tls_failed(r.timed_out ? "handshake_timeout" : "handshake", r.ec.message());
        engine_.to_client().clear();
        co_return;
    }
    SSL* ssl = client_tls_->native_handle();
    ops::log(ops::level::info, "tls")
        .kv("session", id_)
        .kv("client", client_text_)
        .kv("version", SSL_get_version(ssl))
        .kv("cipher", SSL_get_cipher_name(ssl));
    engine_.on_tls_established();
}

asio::awaitable<void> client_session::end_tls(steady_clock::time_point deadline) {
    // RFC 8446 6.1: TLS ends with close_notify, or the client cannot tell our close from a cut
    // connection (OpenSSL 3 reports "unexpected eof"). Ours is sent without waiting for the
    // client's, as nginx does; the lingering close then reads the plain socket.
    SSL_set_shutdown(client_tls_->native_handle(), SSL_RECEIVED_SHUTDOWN);
    arm_watchdog(deadline);
    co_await client_tls_->async_shutdown(use_tuple);
    client_tls_.reset();
}

client_session::io_result client_session::finish_io(error_code ec, std::size_t n) {
    // Data that arrived is data, even if the deadline passed in the same instant.
    if (ec == errc::operation_aborted && timed_out_) return io_result{errc::timed_out, n, true};
    return io_result{ec, n, false};
}

// Deadlines: one watchdog timer per session instead of racing each operation against a timer
// with `op || timer`. The awaitable operator spawns two coroutines and a parallel group per
// wait, which for ~25 waits per session cost more CPU than the relay itself. The semantics are
// the same: an operation still pending at its deadline is cancelled and reported as timed out.
void client_session::arm_watchdog(steady_clock::time_point deadline) {
    deadline_ = deadline;
    timed_out_ = false;
    // A watchdog that fires earlier re-arms itself for the later deadline: moving a deadline
    // later (the common case) costs no timer operation at all.
    if (watchdog_armed_ && watchdog_.expiry() <= deadline) return;
    watchdog_.expires_at(deadline);
    watchdog_armed_ = true;
    watchdog_.async_wait(
        [self = shared_from_this()](const error_code& ec) { self->on_watchdog(ec); });
}

void client_session::on_watchdog(const error_code& ec) {
    if (ec) return;  // superseded by an earlier deadline, or the session is over
    watchdog_armed_ = false;
    if (finished_) return;
    if (steady_clock::now() < deadline_) {
        arm_watchdog(deadline_);
        return;
    }
    timed_out_ = true;
    error_code ignored;
    client_.cancel(ignored);
    backend_.cancel(ignored);
}

steady_clock::time_point client_session::capped(steady_clock::duration phase) const {
    return std::min(steady_clock::now() + phase, session_deadline_);
}

void client_session::on_io_failure(const io_result& r, session::deadline phase, bool backend_side) {
    if (interrupt_ == interrupt::stop) {
        engine_.on_shutdown();
    } else if (r.timed_out) {
        engine_.on_timeout(steady_clock::now() >= session_deadline_ ? session::deadline::session
                                                                    : phase);
    } else if (backend_side) {
        engine_.on_backend_failure(error_reason(r.ec), r.ec.message());
    } else {
        // The client went away or broke the connection: nobody is left to answer.
        client_gone_ = true;
        if (end_reason_.empty())
            end_reason_ = std::string("client_") + std::string(error_reason(r.ec));
    }
}

}  // namespace smtpgate::net
