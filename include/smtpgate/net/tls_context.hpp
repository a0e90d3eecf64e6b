// The TLS server context for STARTTLS: certificate chain and key from PEM files, TLS 1.2 or
// newer, and certificates that reload without a restart.
//
// A handshake asks `current()` for the context to use. At most once a second that call looks
// at the certificate and key files (modification time, size, inode); when either changed,
// both are loaded into a fresh context, which serves every later handshake. Sessions keep the
// context they started with (shared ownership). A pair that does not load (a half-written
// file, a key that does not match) is logged and the previous context stays in service.
// Does not: verify client certificates (opportunistic STARTTLS on port 25 does not ask for
// them, RFC 3207 4.1), or touch sockets.
// Threading: used from the server's single I/O thread only; the file checks are two stat()
// calls per second at most.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "smtpgate/config/config.hpp"

namespace smtpgate::net {

/// A client context for STARTTLS to the backend: TLS 1.2+, the CAs of `ca_file` (the system's
/// when empty); throws std::runtime_error naming the file when it cannot be read.
std::shared_ptr<boost::asio::ssl::context> make_backend_context(const std::string& ca_file);

/// Builds a server context from `settings`; throws std::runtime_error naming the file and
/// OpenSSL's reason when the certificate chain or key cannot be loaded or do not match.
std::shared_ptr<boost::asio::ssl::context> make_server_context(
    const config::tls_settings& settings);

class tls_context_source {
  public:
    /// Loads the pair now; throws like make_server_context.
    explicit tls_context_source(config::tls_settings settings);

    /// The context for a new handshake, reloaded first if the files changed.
    std::shared_ptr<boost::asio::ssl::context> current(std::chrono::steady_clock::time_point now);

    /// How many times a changed pair was loaded, and how many times that failed.
    std::uint64_t reloads() const { return reloads_; }
    std::uint64_t reload_failures() const { return reload_failures_; }

  private:
    struct file_stamp {
        long long mtime_ns = 0;
        long long size = 0;
        unsigned long long inode = 0;
        bool operator==(const file_stamp&) const = default;
    };
    static file_stamp stamp(const std::string& path);

    config::tls_settings settings_;
    std::shared_ptr<boost::asio::ssl::context> context_;
    file_stamp certificate_stamp_;
    file_stamp key_stamp_;
    std::chrono::steady_clock::time_point next_check_{};
    std::uint64_t reloads_ = 0;
    std::uint64_t reload_failures_ = 0;
};

}  // namespace smtpgate::net
