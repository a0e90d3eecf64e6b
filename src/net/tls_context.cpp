#include "smtpgate/net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <stdexcept>
#include <utility>

#include "smtpgate/ops/log.hpp"

namespace smtpgate::net {

namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL's reason for the last failure, e.g. "key values mismatch".
std::string openssl_reason() {
    const unsigned long code = ERR_peek_last_error();
    ERR_clear_error();
    if (code == 0) return "unknown error";
    const char* reason = ERR_reason_error_string(code);
    return reason != nullptr ? reason : "error " + std::to_string(code);
}

}  // namespace

std::shared_ptr<ssl::context> make_server_context(const config::tls_settings& settings) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    const int min_version =
        settings.min_version == config::tls_version::v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min_version);
    // Client-initiated renegotiation is a cheap way to make the server do expensive work.
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, settings.certificate.c_str()) != 1) {
        throw std::runtime_error("tls.certificate " + settings.certificate + ": "
                                 + openssl_reason());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, settings.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        throw std::runtime_error("tls.key " + settings.key + ": " + openssl_reason());
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        throw std::runtime_error("tls.key " + settings.key + " does not match tls.certificate "
                                 + settings.certificate + ": " + openssl_reason());
    }
    return context;
}

std::shared_ptr<ssl::context> make_backend_context(const std::string& ca_file) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX* ctx = context->native_handle();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    ERR_clear_error();
    const int loaded = ca_file.empty()
                           ? SSL_CTX_set_default_verify_paths(ctx)
                           : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
    if (loaded != 1) {
        throw std::runtime_error("backend.tls_ca_file "
                                 + (ca_file.empty() ? std::string("(system default)") : ca_file)
                                 + ": " + openssl_reason());
    }
    return context;
}

tls_context_source::tls_context_source(config::tls_settings settings)
    : settings_(std::move(settings)),
      certificate_stamp_(stamp(settings_.certificate)),
      key_stamp_(stamp(settings_.key)) {
    context_ = make_server_context(settings_);
}

tls_context_source::file_stamp tls_context_source::stamp(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return {static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec,
            static_cast<long long>(st.st_size), static_cast<unsigned long long>(st.st_ino)};
}

std::shared_ptr<ssl::context> tls_context_source::current(
    std::chrono::steady_clock::time_point now) {
    if (now < next_check_) return context_;
    next_check_ = now + std::chrono::seconds(1);
    auto certificate = stamp(settings_.certificate);
    auto key = stamp(settings_.key);
    if (certificate == certificate_stamp_ && key == key_stamp_) return context_;
    // Remember the new stamps even when loading fails: a broken pair is reported once, and
    // tried again when it changes again.
    certificate_stamp_ = certificate;
    key_stamp_ = key;
    try {
        context_ = make_server_context(settings_);
        ++reloads_;
        ops::log(ops::level::info, "tls_reload")
            .kv("status", "ok")
            .kv("certificate", settings_.certificate);
    } catch (const std::exception& e) {
        ++reload_failures_;
        ops::log(ops::level::error, "tls_reload")
            .kv("status", "failed")
            .kv("certificate", settings_.certificate)
            .kv("detail", e.what());
    }
    return context_;
}

}  // namespace smtpgate::net
