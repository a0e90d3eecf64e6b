#include "smtpgate/net/client_session.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <string>
#include <string_view>

#include "client_session_helpers.hpp"

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
    tcp::socket& socket, smtp::input_buffer& buffer, steady_clock::time_point deadline) {
    const auto space = buffer.prepare();
    if (space.empty()) co_return io_result{errc::no_buffer_space, 0, false};
    arm_watchdog(deadline);
    auto [ec, n] =
        co_await socket.async_read_some(asio::buffer(space.data(), space.size()), use_tuple);
    buffer.commit(n);
    co_return finish_io(ec, n);
}

asio::awaitable<client_session::io_result> client_session::write_all(
    tcp::socket& socket, std::string& bytes, steady_clock::time_point deadline) {
    arm_watchdog(deadline);
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes), use_tuple);
    bytes.clear();
    co_return finish_io(ec, n);
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
