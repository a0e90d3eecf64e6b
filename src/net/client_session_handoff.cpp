// Who the client really is, on the way in and on the way out: the PROXY header a trusted load
// balancer sends first, and the identity the proxy hands to the backend (PROXY header or
// XCLIENT, per backend.identity), and the optional STARTTLS on the backend link.
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "client_session_helpers.hpp"
#include "smtpgate/net/client_session.hpp"
#include "smtpgate/net/server.hpp"
#include "smtpgate/ops/log.hpp"
#include "smtpgate/session/backend_handshake.hpp"
#include "smtpgate/smtp/proxy_header.hpp"

namespace smtpgate::net {

using boost::system::error_code;
namespace errc = boost::asio::error;

namespace {

tcp::endpoint endpoint_of(const smtp::proxy_address& p) {
    if (p.ipv6) {
        asio::ip::address_v6::bytes_type b{};
        std::copy(p.bytes.begin(), p.bytes.end(), b.begin());
        return {asio::ip::address_v6(b), p.port};
    }
    asio::ip::address_v4::bytes_type b{};
    std::copy(p.bytes.begin(), p.bytes.begin() + 4, b.begin());
    return {asio::ip::address_v4(b), p.port};
}

}  // namespace

asio::awaitable<std::string> client_session::read_proxy_header() {
    const auto deadline = capped(settings_->server.proxy_header_timeout);
    for (;;) {
        const auto parsed = smtp::parse_proxy_header(client_in_.data());
        if (parsed.status == smtp::proxy_status::complete) {
            client_in_.consume(parsed.length);
            // LOCAL (a health check) and UNKNOWN: the connection speaks for itself.
            if (parsed.header.has_addresses) {
                client_endpoint_ = endpoint_of(parsed.header.source);
                server_endpoint_ = endpoint_of(parsed.header.destination);
            }
            co_return std::string();
        }
        if (parsed.status == smtp::proxy_status::oversized) co_return std::string("oversized");
        if (parsed.status == smtp::proxy_status::malformed)
            co_return "malformed_" + std::string(parsed.error);
        const auto r = co_await read_some(side::client, client_in_, deadline);
        if (r.timed_out) co_return std::string("timeout");
        if (r.ec == errc::eof) co_return std::string(client_in_.empty() ? "eof" : "truncated");
        if (r.ec) co_return std::string("io_error");
        bytes_in_ += r.bytes;
    }
}

asio::awaitable<void> client_session::send_proxy_header() {
    std::string header =
        proxy_header_for(settings_->backend.identity, client_endpoint_, server_endpoint_);
    co_await flush_backend_bytes(header);  // empty, and nothing written, for other identities
}

asio::awaitable<smtp::reply*> client_session::backend_exchange(std::string line) {
    if (!line.empty() && !co_await flush_backend_bytes(line)) co_return nullptr;
    smtp::reply* reply = co_await read_reply(capped(settings_->backend.reply_timeout));
    co_return reply;
}

asio::awaitable<void> client_session::greet_backend() {
    const auto& cfg = settings_->backend;
    // XCLIENT NAME carries the client's name: the lookup has to be in (or past its deadline).
    if (cfg.identity == config::identity_mode::xclient) {
        co_await await_client_name();
        if (interrupt_ == interrupt::stop) {
            engine_.on_shutdown();
            co_return;
        }
    }
    const auto client = unmapped(client_endpoint_.address());
    const auto server = unmapped(server_endpoint_.address());
    session::backend_handshake handshake(
        {owner_.hostname(), cfg.tls == config::backend_tls_mode::starttls,
         cfg.identity == config::identity_mode::xclient},
        {client.to_string(), client.is_v6(), client_endpoint_.port(), client_name_,
         server.to_string(), server.is_v6(), server_endpoint_.port()});
    // A plain loop over the steps: GCC 12 crashed this coroutine when it was written as a
    // switch inside a for statement that declared the step.
    bool banner = true;
    auto step = handshake.start();
    while (step == session::handshake_step::exchange
           || step == session::handshake_step::start_tls) {
        if (step == session::handshake_step::start_tls) {
            if (!co_await secure_backend()) co_return;
            step = handshake.on_tls_established();
            continue;
        }
        const smtp::reply* reply = co_await backend_exchange(handshake.line());
        if (reply == nullptr) co_return;
        // A backend speaks only when spoken to: bytes after its banner answer something nobody
        // sent (typically a PROXY header it does not expect).
        if (banner && backend_spoke_out_of_turn(false)) co_return;
        banner = false;
        step = handshake.on_reply(*reply);
    }
    if (step == session::handshake_step::done) {
        engine_.on_banner(handshake.greeting());  // a non-220 banner: 421 4.3.0 and close
    } else {
        engine_.on_backend_failure(handshake.reason(), handshake.detail());
    }
}

asio::awaitable<bool> client_session::secure_backend() {
    // After the backend's 220 to STARTTLS (session/backend_handshake.hpp): the handshake.
    const auto& cfg = settings_->backend;
    if (!backend_in_.empty()) {
        // Bytes after the 220 and before the handshake would be read as TLS; nothing honest
        // sends them.
        engine_.on_backend_failure("protocol", "data after the 220 to STARTTLS");
        co_return false;
    }
    const auto context = owner_.backend_tls_context();
    if (!context) {
        engine_.on_backend_failure("tls_unavailable", "backend.tls was turned off by a reload");
        co_return false;
    }
    backend_tls_context_ = context;
    backend_tls_.emplace(backend_, *context);
    SSL* ssl = backend_tls_->native_handle();
    error_code ec;
    asio::ip::make_address(cfg.address.host, ec);
    if (ec) SSL_set_tlsext_host_name(ssl, cfg.address.host.c_str());  // SNI: names only
    if (cfg.tls_verify) {
        backend_tls_->set_verify_mode(asio::ssl::verify_peer);
        backend_tls_->set_verify_callback(asio::ssl::host_name_verification(cfg.address.host));
    } else {
        backend_tls_->set_verify_mode(asio::ssl::verify_none);
    }
    arm_watchdog(capped(cfg.connect_timeout));
    auto [handshake_ec] =
        co_await backend_tls_->async_handshake(asio::ssl::stream_base::client, use_tuple);
    const auto r = finish_io(handshake_ec, 0);
    if (r.ec) {
        backend_tls_.reset();
        backend_connected_ = false;  // no QUIT into a broken TLS link
        error_code ignored;
        backend_.close(ignored);
        if (interrupt_ == interrupt::stop) {
            engine_.on_shutdown();
        } else {
            std::string detail = r.timed_out ? "timed out" : r.ec.message();
            const long verify = SSL_get_verify_result(ssl);
            if (verify != X509_V_OK)
                detail += std::string(": ") + X509_verify_cert_error_string(verify);
            engine_.on_backend_failure("tls_handshake", cfg.address.to_string() + ": " + detail);
        }
        co_return false;
    }
    ops::log(ops::level::debug, "backend_tls")
        .kv("session", id_)
        .kv("client", client_text_)
        .kv("version", SSL_get_version(ssl))
        .kv("cipher", SSL_get_cipher_name(ssl));
    co_return true;
}

}  // namespace smtpgate::net
