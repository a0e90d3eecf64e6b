// EHLO reply filter: what the client may see of the backend's extensions.
//
// The proxy parses every command it forwards, so it advertises only extensions whose commands
// it relays. Removed: XCLIENT and XFORWARD (only the proxy may identify clients to the
// backend), CHUNKING and BINARYMIME (the proxy speaks DATA only, RFC 3030), STARTTLS (the
// proxy terminates TLS itself and offers it only when it has a certificate), and any line
// that is not a valid ehlo-keyword (RFC 5321 4.1.1.1). The greeting line is kept.
//
// Pure; edits a parsed reply in place.
#pragma once

#include "smtpgate/smtp/reply.hpp"

namespace smtpgate::smtp {

struct ehlo_policy {
    /// Add STARTTLS (the proxy has a certificate and the session is not yet encrypted).
    bool offer_starttls = false;
};

/// Filters a positive EHLO reply. Non-2xx replies are left alone.
void filter_ehlo(reply& r, const ehlo_policy& policy);

}  // namespace smtpgate::smtp
