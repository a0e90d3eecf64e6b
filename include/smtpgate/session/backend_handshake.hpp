// The backend handshake: from the backend's banner to the greeting the client sees.
//
// After the connection (and the PROXY header, when backend.identity asks for one) the backend
// speaks first. Then, per configuration:
// - backend.tls = "starttls": EHLO, STARTTLS (RFC 3207 on the proxy's own link), the handshake;
//   the client's own EHLO, relayed later, is the first command inside TLS (RFC 3207 4.2);
// - backend.identity = "xclient": EHLO, then XCLIENT with the attributes the backend offers
//   (Postfix XCLIENT_README), answered by a fresh 220 in the real client's name: that greeting,
//   not the first banner, is the one the client sees.
// A banner other than 220 ends the handshake at once; the engine answers it (421 4.3.0).
//
// Sans-I/O (Boost.Redis `*_fsm` style): each call returns the next action for the driver,
// which carries it out and reports back. No sockets, no clock, no logging.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/smtp/reply.hpp"

namespace smtpgate::session {

/// Who the client is, as XCLIENT tells it.
struct xclient_identity {
    std::string address;  ///< "192.0.2.1", "2001:db8::1"
    bool ipv6 = false;
    std::uint16_t port = 0;
    std::string name;  ///< a forward-confirmed host name, "" when unknown
    std::string server_address;
    bool server_ipv6 = false;
    std::uint16_t server_port = 0;
};

struct handshake_settings {
    std::string hostname;  ///< the proxy's name in its own EHLO
    bool starttls = false;
    bool xclient = false;
};

enum class handshake_step {
    exchange,   ///< write `line` (if any) and read one whole reply: on_reply()
    start_tls,  ///< run the TLS handshake on the backend link: on_tls_established()
    done,       ///< greeting() is the client's banner (the engine takes it: on_banner)
    failed,     ///< the engine is told on_backend_failure(reason(), detail())
};

class backend_handshake {
  public:
    backend_handshake(handshake_settings settings, xclient_identity client);

    /// The first action: read the banner.
    handshake_step start();
    /// The reply to the last exchange.
    handshake_step on_reply(const smtp::reply& reply);
    /// The TLS handshake on the backend link succeeded.
    handshake_step on_tls_established();

    /// For `exchange`: the line to write first, CRLF included ("" for the banner).
    const std::string& line() const { return line_; }
    /// For `done`: the greeting for the client (its code may not be 220).
    const smtp::reply& greeting() const { return greeting_; }
    /// For `failed`: a stable reason token and a detail for the log.
    std::string_view reason() const { return reason_; }
    const std::string& detail() const { return detail_; }

  private:
    enum class state { banner, tls_ehlo, starttls, tls, xclient_ehlo, xclient, finished };

    handshake_step exchange(state next, std::string line);
    handshake_step fail(std::string_view reason, std::string detail);
    handshake_step after_tls();
    handshake_step introduce(const smtp::reply& ehlo);

    handshake_settings settings_;
    xclient_identity client_;
    state state_ = state::banner;
    std::string line_;
    smtp::reply greeting_;
    std::vector<std::string> xclient_lines_;  // still to send, in order
    std::string_view reason_;
    std::string detail_;
};

/// The backend's EHLO line for `keyword` (compared without case), or null.
const std::string* ehlo_line(const smtp::reply& ehlo, std::string_view keyword);

/// The attribute names (lower case) of the backend's "XCLIENT NAME ADDR ..." EHLO line; empty
/// when XCLIENT is not offered; one empty name for "XCLIENT" alone.
std::vector<std::string> xclient_offer(const smtp::reply& ehlo);

}  // namespace smtpgate::session
