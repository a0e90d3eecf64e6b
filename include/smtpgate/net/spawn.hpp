// The completion handler for every co_spawn (STYLE.md rule 3): an exception that escapes a
// spawned coroutine is a bug, and it is logged as `internal_error` (docs/logging.md) naming
// where it happened. Without a handler it would be lost (`detached` drops it); rethrown, it
// would leave io_context::run() and take every other session down with it.
// Does not: recover or restart anything; the coroutine is over, the rest of the server goes on.
// Threading: the handler runs on the I/O thread that ran the coroutine.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "smtpgate/ops/log.hpp"

namespace smtpgate::net {

/// Logs `e`, when set, as `internal_error` with `where` and `error`: what() of a
/// std::exception, "unknown" for anything else thrown.
inline void log_escaped(std::string_view where, std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        ops::log(ops::level::error, "internal_error").kv("where", where).kv("error", ex.what());
    } catch (...) {
        ops::log(ops::level::error, "internal_error").kv("where", where).kv("error", "unknown");
    }
}

/// The completion handler to pass to co_spawn: logs an escaped exception (log_escaped) under
/// `where`. `keep_alive`, when given, lives until the coroutine has finished: a session's
/// run() is a member function, and the handler holds the only owner of the session.
inline auto logged(std::string where, std::shared_ptr<const void> keep_alive = nullptr) {
    return [where = std::move(where), keep_alive = std::move(keep_alive)](std::exception_ptr e) {
        log_escaped(where, e);
    };
}

}  // namespace smtpgate::net
