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
#include "smtpgate/smtp/proxy_header.hpp"
#include "smtpgate/smtp/xtext.hpp"

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

/// The backend's EHLO line for `keyword` (lower case, compared without case), or null.
const std::string* ehlo_line(const smtp::reply& ehlo, std::string_view keyword) {
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
        const std::string& line = ehlo.lines[i];
        if (policy::lower_ascii(line.substr(0, line.find(' '))) == keyword) return &line;
    }
    return nullptr;
}

bool offers(const smtp::reply& ehlo, std::string_view keyword) {
    return ehlo_line(ehlo, keyword) != nullptr;
}

/// The attribute names of the backend's "XCLIENT NAME ADDR ..." EHLO line; empty when the
/// backend does not offer XCLIENT to us.
std::vector<std::string> xclient_offer(const smtp::reply& ehlo) {
    const std::string* line = ehlo_line(ehlo, "xclient");
    if (line == nullptr) return {};
    std::vector<std::string> names;
    std::size_t pos = line->find(' ');
    while (pos < line->size()) {
        const auto start = line->find_first_not_of(' ', pos);
        if (start == std::string::npos) break;
        const auto end = std::min(line->find(' ', start), line->size());
        names.push_back(policy::lower_ascii(line->substr(start, end - start)));
        pos = end;
    }
    if (names.empty()) names.emplace_back();  // "XCLIENT" alone: offered, no attributes
    return names;
}

std::string reply_text(const smtp::reply& r) {
    std::string text = std::to_string(r.code);
    if (!r.lines.empty()) text += " " + r.lines.front();
    return text;
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
    const auto identity = settings_->backend.identity;
    if (identity != config::identity_mode::proxy_v1 && identity != config::identity_mode::proxy_v2)
        co_return;
    const auto source = proxy_address_of(client_endpoint_);
    auto destination = proxy_address_of(server_endpoint_);
    if (source.ipv6 != destination.ipv6) {
        // A v4 client through a v6 load balancer (or the reverse): the header needs one family;
        // the client's counts, the destination is then only a placeholder.
        destination = proxy_address_of(
            tcp::endpoint(source.ipv6 ? asio::ip::address(asio::ip::address_v6::any())
                                      : asio::ip::address(asio::ip::address_v4::any()),
                          server_endpoint_.port()));
    }
    std::string header = identity == config::identity_mode::proxy_v1
                             ? smtp::encode_proxy_v1(source, destination)
                             : smtp::encode_proxy_v2(source, destination);
    co_await flush_backend_bytes(header);
}

asio::awaitable<std::optional<smtp::reply>> client_session::backend_exchange(std::string line) {
    if (!line.empty() && !co_await flush_backend_bytes(line)) co_return std::nullopt;
    const auto deadline = capped(settings_->backend.reply_timeout);
    for (;;) {
        const auto status = parse_buffered_reply();
        if (status == smtp::reply_status::malformed) {
            engine_.on_backend_failure("protocol");
            co_return std::nullopt;
        }
        if (status == smtp::reply_status::complete) co_return reply_parser_.result();
        const auto r = co_await read_some(side::backend, backend_in_, deadline);
        if (r.ec) {
            on_io_failure(r, session::deadline::backend_reply, true);
            co_return std::nullopt;
        }
    }
}

asio::awaitable<void> client_session::greet_backend() {
    const auto& cfg = settings_->backend;
    if (cfg.tls == config::backend_tls_mode::off
        && cfg.identity != config::identity_mode::xclient) {
        co_await read_backend_reply(true);
        co_return;
    }
    const auto banner = co_await backend_exchange({});
    if (!banner || backend_spoke_out_of_turn(false)) co_return;
    if (banner->code != 220) {
        engine_.on_banner(*banner);  // 421 4.3.0 and close, logged as a backend error
        co_return;
    }
    if (cfg.tls == config::backend_tls_mode::starttls && !co_await secure_backend()) co_return;
    if (cfg.identity != config::identity_mode::xclient) {
        engine_.on_banner(*banner);
        co_return;
    }
    const auto greeting = co_await introduce_client();
    if (greeting) engine_.on_banner(*greeting);
}

asio::awaitable<bool> client_session::secure_backend() {
    // RFC 3207 on the proxy's own link: EHLO, STARTTLS, handshake. The client's EHLO, relayed
    // later, is the first command the backend sees inside TLS, as RFC 3207 4.2 requires.
    const auto& cfg = settings_->backend;
    const auto ehlo = co_await backend_exchange("EHLO " + owner_.hostname() + "\r\n");
    if (!ehlo) co_return false;
    if (ehlo->code != 250 || !offers(*ehlo, "starttls")) {
        engine_.on_backend_failure(
            "tls_unsupported",
            "the backend does not offer STARTTLS (EHLO said " + reply_text(*ehlo) + ")");
        co_return false;
    }
    const auto ready = co_await backend_exchange("STARTTLS\r\n");
    if (!ready) co_return false;
    if (ready->code != 220) {
        engine_.on_backend_failure("tls_refused", reply_text(*ready));
        co_return false;
    }
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

asio::awaitable<std::optional<smtp::reply>> client_session::introduce_client() {
    // Postfix XCLIENT_README: the proxy's own EHLO first, to learn whether XCLIENT is offered
    // to it (smtpd_authorized_xclient_hosts), then XCLIENT, answered by a fresh 220 in the
    // name of the real client: that greeting, not the first, is the one the client sees, so
    // the backend's connect-time checks apply to the client's address.
    const auto ehlo = co_await backend_exchange("EHLO " + owner_.hostname() + "\r\n");
    if (!ehlo) co_return std::nullopt;
    const auto offered = ehlo->code == 250 ? xclient_offer(*ehlo) : std::vector<std::string>{};
    if (offered.empty()) {
        engine_.on_backend_failure("xclient_unsupported",
                                   "the backend does not offer XCLIENT to the proxy (EHLO said "
                                       + reply_text(*ehlo)
                                       + "); Postfix: smtpd_authorized_xclient_hosts");
        co_return std::nullopt;
    }
    const auto wanted = [&offered](std::string_view name) {
        return std::find(offered.begin(), offered.end(), name) != offered.end();
    };
    std::vector<std::string> attributes;
    const auto client = unmapped(client_endpoint_.address());
    // Postfix: IPv6 addresses carry the "IPV6:" prefix of RFC 5321 address literals.
    if (wanted("addr"))
        attributes.push_back(
            "ADDR=" + smtp::xtext_encode((client.is_v6() ? "IPV6:" : "") + client.to_string()));
    if (wanted("port")) attributes.push_back("PORT=" + std::to_string(client_endpoint_.port()));
    // Only a forward-confirmed name is passed on; without one the backend must not keep the
    // proxy's own name for the client (nginx's mail proxy does the same).
    if (wanted("name"))
        attributes.push_back(
            "NAME=" + smtp::xtext_encode(client_name_.empty() ? "[UNAVAILABLE]" : client_name_));
    // Where the client connected (Postfix 3.7 and later offer these).
    const auto server = unmapped(server_endpoint_.address());
    if (wanted("destaddr"))
        attributes.push_back(
            "DESTADDR=" + smtp::xtext_encode((server.is_v6() ? "IPV6:" : "") + server.to_string()));
    if (wanted("destport"))
        attributes.push_back("DESTPORT=" + std::to_string(server_endpoint_.port()));
    if (attributes.empty()) {
        engine_.on_backend_failure("xclient_unsupported",
                                   "the backend's XCLIENT takes none of ADDR, PORT, NAME");
        co_return std::nullopt;
    }
    std::optional<smtp::reply> greeting;
    for (auto& line : smtp::xclient_lines(attributes)) {
        greeting = co_await backend_exchange(std::move(line));
        if (!greeting) co_return std::nullopt;
        if (greeting->code != 220) {
            engine_.on_backend_failure("xclient_refused", reply_text(*greeting));
            co_return std::nullopt;
        }
    }
    co_return greeting;
}

}  // namespace smtpgate::net
