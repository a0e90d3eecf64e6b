#include "smtpgate/net/accept_errors.hpp"

#include <boost/asio/error.hpp>

#include <cerrno>

#include "client_session_helpers.hpp"
#include "smtpgate/ops/log.hpp"

namespace smtpgate::net {

namespace errc = boost::asio::error;

namespace {

// Long enough for running sessions to finish and free descriptors, short enough that waiting
// clients are answered soon after they do.
constexpr auto accept_backoff = std::chrono::milliseconds(100);

}  // namespace

bool out_of_descriptors(const boost::system::error_code& ec) {
    return ec == errc::no_descriptors || ec.value() == ENFILE;
}

void accept_errors::log(const boost::system::error_code& ec) {
    // Descriptor exhaustion repeats every back-off: one line a second, with the count.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_log_ < std::chrono::seconds(1)) {
        ++suppressed_;
        return;
    }
    ops::log(ops::level::warning, "accept_error")
        .kv("error", ec.message())
        .kv("suppressed", suppressed_);
    last_log_ = now;
    suppressed_ = 0;
}

boost::asio::awaitable<void> accept_errors::back_off(boost::system::error_code ec,
                                                     boost::asio::steady_timer& timer) {
    if (!out_of_descriptors(ec) && ec != errc::no_buffer_space && ec != errc::no_memory) co_return;
    timer.expires_after(accept_backoff);
    co_await timer.async_wait(use_tuple);
}

}  // namespace smtpgate::net
