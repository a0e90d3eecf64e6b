// Named replies: every reply the proxy itself sends, with its code, enhanced status code and the
// RFC or precedent it follows.
//
// Session code never assembles reply text by hand; it appends one of these constants with
// `append_reply`. The `%h` in a text is replaced by the proxy's host name (RFC 5321 4.2: a
// 421 names the host that closes the channel). Replies from the backend are relayed as they
// came and never go through here.
#pragma once

#include <string>
#include <string_view>

namespace smtpgate::smtp {

struct named_reply {
    int code;
    std::string_view text;  ///< after the code, starting with the enhanced status code
    /// The proxy closes the connection after sending this reply.
    bool closes = false;
};

namespace replies {

// --- Closing the channel (RFC 5321 3.8, 4.2.5: 421 then close) ---------------------------
/// Backend did not accept the connection or did not answer it in time (RFC 3463 4.4.1).
inline constexpr named_reply backend_unreachable{
    421, "4.4.1 %h Service not available, backend unreachable", true};
/// Backend refused us, broke the protocol or went away (RFC 3463 4.3.0).
inline constexpr named_reply backend_failed{421, "4.3.0 %h Service not available, backend error",
                                            true};
/// A phase deadline passed (RFC 3463 4.4.2, postscreen "timeout exceeded").
inline constexpr named_reply timeout{421, "4.4.2 %h Error: timeout exceeded", true};
/// Shutdown (RFC 3463 4.3.2 "system not accepting network messages").
inline constexpr named_reply shutting_down{421, "4.3.2 %h Service shutting down, try again later",
                                           true};
/// Global session cap (sendmail MaxDaemonChildren; RFC 3463 4.7.0).
inline constexpr named_reply too_many_connections{
    421, "4.7.0 %h Too many connections, try again later", true};

// --- Admission: refused before the backend is involved ----------------------------------
/// An access rule denies the client (sendmail access db REJECT; RFC 3463 5.7.1).
inline constexpr named_reply access_denied{554, "5.7.1 %h Access denied", true};
/// Per-client concurrent connections (sendmail ClientConn with `terminate`).
inline constexpr named_reply too_many_client_connections{
    421, "4.7.0 %h Too many connections from your network, try again later", true};
/// Per-client connection rate (sendmail ClientRate with `terminate`).
inline constexpr named_reply connection_rate_exceeded{
    421, "4.7.0 %h Connection rate limit exceeded, try again later", true};
/// Host interval throttle (vthrottle: the client connects again too soon).
inline constexpr named_reply connecting_too_often{
    421, "4.7.0 %h Connecting too often, try again later", true};
/// The client network is in the penalty box for too many unknown recipients (the Exim
/// bad-recipient rate recipe); the session is closed and new ones refused until it expires.
inline constexpr named_reply penalty_box{
    421, "4.7.0 %h Too many unknown recipients from your network, try again later", true};
/// vthrottle: the same HELO name seen again sooner than its interval (RFC 3463 4.7.1:
/// delivery not authorized now; the sender queues and retries).
inline constexpr named_reply helo_throttled{451,
                                            "4.7.1 %h Host name seen too often, try again later"};
/// vthrottle: the same envelope sender seen again sooner than its interval.
inline constexpr named_reply sender_throttled{451,
                                              "4.7.1 %h Sender seen too often, try again later"};
/// Postfix anvil smtpd_client_message_rate_limit ("450 4.7.1 Error: too much mail").
inline constexpr named_reply message_rate_exceeded{
    450, "4.7.1 %h Too much mail from your network, try again later"};
/// Postfix anvil smtpd_client_recipient_rate_limit.
inline constexpr named_reply recipient_rate_exceeded{
    450, "4.7.1 %h Too many recipients from your network, try again later"};
/// Exim ratelimit per envelope sender (messages or recipients).
inline constexpr named_reply sender_rate_exceeded{
    450, "4.7.1 %h Too much mail from this sender, try again later"};
/// `on_exceed = "tempfail"`: every transaction command after the proxy's own banner gets this
/// (sendmail without `terminate`); a retrying MTA queues, a bot gives up.
inline constexpr named_reply tempfail_command{
    451, "4.7.0 %h Temporarily refusing mail from your network, try again later"};
/// The proxy's own banner, when no backend is involved.
inline constexpr named_reply greeting{220, "%h ESMTP"};
/// Pre-greeting traffic (sendmail greet_pause: "not accepting messages").
inline constexpr named_reply pregreet{
    554, "5.5.1 %h Error: SMTP protocol synchronization, not accepting messages"};
/// Every command of a client refused in nullserver style.
inline constexpr named_reply nullserver_command{554, "5.5.1 %h Error: not accepting commands"};
inline constexpr named_reply goodbye{221, "2.0.0 %h Bye", true};
inline constexpr named_reply ok{250, "2.0.0 Ok"};
inline constexpr named_reply helo_ok{250, "%h"};
/// A refused client that keeps talking (bounded, like every loop).
inline constexpr named_reply too_many_errors{421, "4.7.0 %h Error: too many errors", true};

// --- Refused commands (the session goes on) ----------------------------------------------
/// RFC 5321 4.5.3.1.4: command lines are limited; RFC 3463 5.5.2 syntax error.
inline constexpr named_reply line_too_long{500, "5.5.2 %h Error: line too long"};
/// Bare CR or LF inside a command when bare_newline = "reject" (RFC 5321 2.3.8).
inline constexpr named_reply bare_newline_command{500,
                                                  "5.5.2 %h Error: bare <CR> or <LF> received"};
/// Control characters have no place in a command line (RFC 5321 4.1.1).
inline constexpr named_reply invalid_character{500, "5.5.2 %h Error: invalid character in command"};
/// RFC 5321 4.2.4: 500 for an unrecognized command.
inline constexpr named_reply unknown_command{500, "5.5.1 %h Error: command not recognized"};
/// RFC 5321 4.3.2: 501 for a syntax error in parameters.
inline constexpr named_reply syntax_error{501, "5.5.4 %h Error: syntax error in parameters"};
/// RFC 5321 4.5.3.1.10: beyond the recipient limit, 452 (sendmail MAX_RCPTS_PER_MESSAGE).
inline constexpr named_reply too_many_recipients{452, "4.5.3 %h Error: too many recipients"};
/// BDAT without CHUNKING offered (RFC 3030 is never advertised by the proxy).
inline constexpr named_reply bdat_not_offered{502,
                                              "5.5.1 %h Error: BDAT not implemented, use DATA"};
/// STARTTLS when the proxy has no certificate (RFC 3207 is then not advertised).
inline constexpr named_reply starttls_not_offered{502, "5.5.1 %h Error: STARTTLS not available"};
/// RFC 3207 4: the client may now start the TLS handshake.
inline constexpr named_reply starttls_ready{220, "2.0.0 Ready to start TLS"};
/// RFC 3207 4.2: STARTTLS a second time on an encrypted session (Postfix's wording).
inline constexpr named_reply tls_already_active{554, "5.5.1 %h Error: TLS already active"};
/// STARTTLS inside a mail transaction: the backend's transaction would straddle the switch.
inline constexpr named_reply starttls_in_transaction{
    503, "5.5.1 %h Error: MAIL transaction in progress"};
/// RFC 3207 4.2: after TLS the client must send EHLO again before anything else.
inline constexpr named_reply helo_first{503, "5.5.1 %h Error: send HELO/EHLO first"};
/// XCLIENT/XFORWARD/PROXY from a client: only the proxy speaks these to the backend
/// (Postfix smtpd answers unauthorized XCLIENT the same way).
inline constexpr named_reply not_authorized{550, "5.7.0 %h Error: insufficient authorization"};
/// An AUTH continuation line that is not base64 (RFC 4954 4).
inline constexpr named_reply auth_syntax{501, "5.5.2 %h Error: invalid AUTH response"};

// --- Ending the session for cause --------------------------------------------------------
/// HTTP or proxy requests sent to the SMTP port (postscreen non-SMTP command test).
inline constexpr named_reply non_smtp_command{521, "5.7.0 %h Error: non-SMTP command, closing",
                                              true};
/// Bare CR or LF in message content when bare_newline = "reject": the end of the message is
/// ambiguous, so the proxy cannot continue (Postfix smtpd_forbid_bare_newline; RFC 7504 521).
inline constexpr named_reply bare_newline_data{
    521, "5.5.2 %h Error: bare <CR> or <LF> in message content, closing", true};

}  // namespace replies

/// Appends `r` as one reply line with CRLF, `%h` replaced by `hostname`.
void append_reply(std::string& out, const named_reply& r, std::string_view hostname);

/// Appends `r` as a continuation line ("220-..."), for a multi-line banner.
void append_reply_continued(std::string& out, const named_reply& r, std::string_view hostname);

}  // namespace smtpgate::smtp
