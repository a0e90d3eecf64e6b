#include "smtpgate/session/backend_handshake.hpp"

#include <algorithm>
#include <utility>

#include "smtpgate/inet/address.hpp"
#include "smtpgate/smtp/xtext.hpp"

namespace smtpgate::session {

namespace {

std::string reply_text(const smtp::reply& r) {
    std::string text = std::to_string(r.code);
    if (!r.lines.empty()) text += " " + r.lines.front();
    return text;
}

}  // namespace

const std::string* ehlo_line(const smtp::reply& ehlo, std::string_view keyword) {
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
        const std::string& line = ehlo.lines[i];
        if (inet::lower_ascii(line.substr(0, line.find(' '))) == keyword) return &line;
    }
    return nullptr;
}

std::vector<std::string> xclient_offer(const smtp::reply& ehlo) {
    const std::string* line = ehlo_line(ehlo, "xclient");
    if (line == nullptr) return {};
    std::vector<std::string> names;
    std::size_t pos = line->find(' ');
    while (pos < line->size()) {
        const auto start = line->find_first_not_of(' ', pos);
        if (start == std::string::npos) break;
        const auto end = std::min(line->find(' ', start), line->size());
        names.push_back(inet::lower_ascii(line->substr(start, end - start)));
        pos = end;
    }
    if (names.empty()) names.emplace_back();  // "XCLIENT" alone: offered, no attributes
    return names;
}

backend_handshake::backend_handshake(handshake_settings settings, xclient_identity client)
    : settings_(std::move(settings)), client_(std::move(client)) {}

handshake_step backend_handshake::start() {
    return exchange(state::banner, {});
}

handshake_step backend_handshake::exchange(state next, std::string line) {
    state_ = next;
    line_ = std::move(line);
    return handshake_step::exchange;
}

handshake_step backend_handshake::fail(std::string_view reason, std::string detail) {
    state_ = state::finished;
    reason_ = reason;
    detail_ = std::move(detail);
    return handshake_step::failed;
}

handshake_step backend_handshake::on_reply(const smtp::reply& reply) {
    switch (state_) {
        case state::banner:
            greeting_ = reply;
            if (reply.code != 220) break;  // the engine refuses it
            if (settings_.starttls)
                return exchange(state::tls_ehlo, "EHLO " + settings_.hostname + "\r\n");
            return after_tls();
        case state::tls_ehlo:
            if (reply.code != 250 || ehlo_line(reply, "starttls") == nullptr) {
                return fail("tls_unsupported", "the backend does not offer STARTTLS (EHLO said "
                                                   + reply_text(reply) + ")");
            }
            return exchange(state::starttls, "STARTTLS\r\n");
        case state::starttls:
            if (reply.code != 220) return fail("tls_refused", reply_text(reply));
            state_ = state::tls;
            return handshake_step::start_tls;
        case state::xclient_ehlo: return introduce(reply);
        case state::xclient:
            if (reply.code != 220) return fail("xclient_refused", reply_text(reply));
            if (xclient_lines_.empty()) {
                greeting_ = reply;
                break;
            }
            {
                std::string next = std::move(xclient_lines_.front());
                xclient_lines_.erase(xclient_lines_.begin());
                return exchange(state::xclient, std::move(next));
            }
        case state::tls:
        case state::finished: return fail("protocol", "a reply nobody asked for");
    }
    state_ = state::finished;
    return handshake_step::done;
}

handshake_step backend_handshake::on_tls_established() {
    if (state_ != state::tls) return fail("protocol", "TLS without STARTTLS");
    return after_tls();
}

handshake_step backend_handshake::after_tls() {
    if (!settings_.xclient) {
        state_ = state::finished;
        return handshake_step::done;
    }
    // Postfix XCLIENT_README: the proxy's own EHLO first, to learn whether XCLIENT is offered
    // to it (smtpd_authorized_xclient_hosts) and with which attributes.
    return exchange(state::xclient_ehlo, "EHLO " + settings_.hostname + "\r\n");
}

handshake_step backend_handshake::introduce(const smtp::reply& ehlo) {
    const auto offered = ehlo.code == 250 ? xclient_offer(ehlo) : std::vector<std::string>{};
    if (offered.empty()) {
        return fail("xclient_unsupported",
                    "the backend does not offer XCLIENT to the proxy (EHLO said " + reply_text(ehlo)
                        + "); Postfix: smtpd_authorized_xclient_hosts");
    }
    const auto wanted = [&offered](std::string_view name) {
        return std::find(offered.begin(), offered.end(), name) != offered.end();
    };
    std::vector<std::string> attributes;
    // Postfix: IPv6 addresses carry the "IPV6:" prefix of RFC 5321 address literals.
    if (wanted("addr")) {
        attributes.push_back("ADDR="
                             + smtp::xtext_encode((client_.ipv6 ? "IPV6:" : "") + client_.address));
    }
    if (wanted("port")) attributes.push_back("PORT=" + std::to_string(client_.port));
    // Only a forward-confirmed name is passed on; without one the backend must not keep the
    // proxy's own name for the client (nginx's mail proxy does the same).
    if (wanted("name")) {
        attributes.push_back(
            "NAME=" + smtp::xtext_encode(client_.name.empty() ? "[UNAVAILABLE]" : client_.name));
    }
    // Where the client connected (Postfix 3.7 and later offer these).
    if (wanted("destaddr")) {
        attributes.push_back(
            "DESTADDR="
            + smtp::xtext_encode((client_.server_ipv6 ? "IPV6:" : "") + client_.server_address));
    }
    if (wanted("destport")) attributes.push_back("DESTPORT=" + std::to_string(client_.server_port));
    if (attributes.empty()) {
        return fail("xclient_unsupported", "the backend's XCLIENT takes none of ADDR, PORT, NAME");
    }
    xclient_lines_ = smtp::xclient_lines(attributes);
    std::string first = std::move(xclient_lines_.front());
    xclient_lines_.erase(xclient_lines_.begin());
    return exchange(state::xclient, std::move(first));
}

}  // namespace smtpgate::session
