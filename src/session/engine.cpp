#include "smtpgate/session/engine.hpp"

#include <algorithm>
#include <utility>

#include "smtpgate/smtp/ehlo_filter.hpp"

namespace smtpgate::session {

namespace replies = smtp::replies;
using smtp::verb;

namespace {

// RFC 4954 4: a continuation is base64 or "*" to cancel.
bool valid_auth_response(std::string_view line) {
    if (line == "*") return true;
    return std::all_of(line.begin(), line.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
               || c == '+' || c == '/' || c == '=';
    });
}

std::string_view deadline_name(deadline d) {
    switch (d) {
        case deadline::command: return "command";
        case deadline::data: return "data";
        case deadline::backend_reply: return "backend_reply";
        case deadline::session: return "session";
    }
    return "unknown";
}

}  // namespace

engine::engine(engine_settings settings) : settings_(std::move(settings)) {}

void engine::on_banner(const smtp::reply& banner) {
    if (banner.code != 220) {
        close_with(replies::backend_failed, "backend_error", "banner");
        return;
    }
    smtp::append_reply(to_client_, banner);
}

void engine::answer_locally(const smtp::named_reply* greeting, const smtp::named_reply& refusal,
                            bool polite) {
    local_refusal_ = &refusal;
    local_polite_ = polite;
    if (greeting != nullptr) smtp::append_reply(to_client_, *greeting, settings_.hostname);
}

void engine::close_now(const smtp::named_reply& r, std::string_view reason) {
    if (closing_) return;
    pending_.clear();
    backend_owed_ = 0;
    smtp::append_reply(to_client_, r, settings_.hostname);
    closing_ = true;
    close_reason_ = reason;
}

void engine::on_local_line(const smtp::line_event& line) {
    if (commands_ > max_local_commands) {
        close_with(replies::too_many_errors, "reject", "too_many_errors");
        return;
    }
    if (line.status == smtp::line_status::too_long) {
        smtp::append_reply(to_client_, replies::line_too_long, settings_.hostname);
        return;
    }
    const smtp::command cmd = smtp::parse_command(line.text);
    switch (cmd.kind) {
        case verb::non_smtp: close_with(replies::non_smtp_command, "reject", "non_smtp"); return;
        case verb::quit:
            smtp::append_reply(to_client_, replies::goodbye, settings_.hostname);
            closing_ = true;
            close_reason_ = "quit";
            return;
        case verb::helo:
        case verb::ehlo:
            if (local_polite_) {
                smtp::append_reply(to_client_, replies::helo_ok, settings_.hostname);
                return;
            }
            break;
        case verb::noop:
        case verb::rset:
            if (local_polite_) {
                smtp::append_reply(to_client_, replies::ok, settings_.hostname);
                return;
            }
            break;
        default: break;
    }
    smtp::append_reply(to_client_, *local_refusal_, settings_.hostname);
}

void engine::on_client_line(const smtp::line_event& line) {
    if (closing_) return;
    ++commands_;
    if (local_refusal_ != nullptr) {
        on_local_line(line);
        return;
    }

    if (phase_ == phase::auth) {
        // The backend is inside an AUTH exchange and waits for exactly one line. A line that
        // is not base64 is replaced by "*", which cancels the exchange (RFC 4954 4), so the
        // backend's state stays in step with ours.
        const bool ok = line.status == smtp::line_status::line && !line.bare_newline
                        && valid_auth_response(line.text);
        if (!ok) events_.push_back({"reject", "auth_response", 501, {}});
        to_backend_.append(ok ? line.text : "*");
        to_backend_.append("\r\n");
        pending_.push_back(pending{verb::auth, false, {}, false});
        ++backend_owed_;
        barrier_ = true;
        phase_ = phase::command;
        return;
    }

    if (line.status == smtp::line_status::too_long) {
        local_reply(replies::line_too_long, "line_too_long");
        return;
    }
    if (line.bare_newline && settings_.reject_bare_newline) {
        local_reply(replies::bare_newline_command, "bare_newline");
        return;
    }

    const smtp::command cmd = smtp::parse_command(line.text);
    if (cmd.kind == verb::non_smtp) {
        close_with(replies::non_smtp_command, "reject", "non_smtp");
        return;
    }
    if (cmd.error == smtp::command_error::invalid_character) {
        local_reply(replies::invalid_character, "invalid_character");
        return;
    }
    switch (cmd.kind) {
        case verb::unknown: local_reply(replies::unknown_command, "unknown_command"); return;
        case verb::xclient:
        case verb::xforward:
        case verb::proxy: local_reply(replies::not_authorized, smtp::verb_name(cmd.kind)); return;
        case verb::bdat: local_reply(replies::bdat_not_offered, "bdat"); return;
        case verb::starttls: local_reply(replies::starttls_not_offered, "starttls"); return;
        default: break;
    }
    if (cmd.error == smtp::command_error::syntax) {
        local_reply(replies::syntax_error, "syntax");
        return;
    }
    if (draining_ && !transaction_open_ && cmd.kind != verb::quit) {
        close_with(replies::shutting_down, "drain_close", "shutdown");
        return;
    }
    forward(cmd, line.text);
}

void engine::forward(const smtp::command& cmd, std::string_view line) {
    to_backend_.append(line);
    to_backend_.append("\r\n");
    pending_.push_back(pending{cmd.kind, false, {}, false});
    ++backend_owed_;
    switch (cmd.kind) {
        case verb::mail: transaction_open_ = true; break;
        case verb::rset:
        case verb::helo:
        case verb::ehlo: transaction_open_ = false; break;
        // RFC 2920 3.1: DATA, AUTH and QUIT end a pipelined group; what follows them is not
        // a command until their reply is known (message content, an AUTH response, nothing).
        case verb::data:
        case verb::auth: barrier_ = true; break;
        case verb::quit:
            barrier_ = true;
            quit_forwarded_ = true;
            break;
        default: break;
    }
}

void engine::on_backend_reply(smtp::reply& reply) {
    if (closing_ || pending_.empty() || pending_.front().local) return;
    const pending answered = std::move(pending_.front());
    pending_.pop_front();
    --backend_owed_;

    const bool positive = reply.positive();
    if (answered.end_of_data) {
        phase_ = phase::command;
        barrier_ = false;
        transaction_open_ = false;
        if (reply.kind() == 2) ++messages_;
    } else {
        switch (answered.kind) {
            case verb::ehlo: smtp::filter_ehlo(reply, {}); break;
            case verb::mail:
                if (!positive) transaction_open_ = false;
                break;
            case verb::data:
                if (reply.code == 354) {
                    phase_ = phase::data;
                } else {
                    barrier_ = false;
                }
                break;
            case verb::auth:
                if (reply.code == 334) phase_ = phase::auth;
                barrier_ = false;
                break;
            case verb::quit:
                smtp::append_reply(to_client_, reply);
                closing_ = true;
                close_reason_ = "quit";
                return;
            default: break;
        }
    }
    smtp::append_reply(to_client_, reply);
    if (reply.code == 421) {
        // RFC 5321 3.8: the backend is closing the channel; so do we.
        closing_ = true;
        close_reason_ = "backend_421";
        events_.push_back({"backend_error", "backend_421", 421, {}});
        return;
    }
    flush_local_replies();
}

void engine::on_data_end() {
    pending_.push_back(pending{verb::data, false, {}, true});
    ++backend_owed_;
    // Content is over: the client's next bytes are commands again, but they wait for the
    // backend's final reply (the barrier stays up until it arrives).
    phase_ = phase::command;
}

void engine::on_data_bare_newline() {
    close_with(replies::bare_newline_data, "reject", "bare_newline_data");
}

void engine::on_timeout(deadline which) {
    close_with(replies::timeout, "timeout", deadline_name(which));
}

void engine::on_backend_failure(std::string_view reason, std::string detail) {
    close_with(replies::backend_failed, "backend_error", reason, std::move(detail));
}

void engine::on_backend_unreachable(std::string_view reason, std::string detail) {
    close_with(replies::backend_unreachable, "backend_error", reason, std::move(detail));
}

void engine::on_shutdown() {
    close_with(replies::shutting_down, "drain_close", "shutdown");
}

void engine::local_reply(const smtp::named_reply& r, std::string_view reason) {
    events_.push_back({"reject", reason, r.code, {}});
    if (backend_owed_ == 0) {
        smtp::append_reply(to_client_, r, settings_.hostname);
        return;
    }
    pending p{verb::unknown, true, {}, false};
    smtp::append_reply(p.reply, r, settings_.hostname);
    pending_.push_back(std::move(p));
}

void engine::close_with(const smtp::named_reply& r, std::string_view event_name,
                        std::string_view reason, std::string detail) {
    if (closing_) return;
    events_.push_back({event_name, reason, r.code, std::move(detail)});
    // Replies still owed will not come; the client learns why with this last reply.
    pending_.clear();
    backend_owed_ = 0;
    smtp::append_reply(to_client_, r, settings_.hostname);
    closing_ = true;
    if (event_name == "timeout" || event_name == "backend_error") {
        close_reason_ = event_name == "timeout" ? "timeout_" : "backend_";
        close_reason_.append(reason);
    } else {
        close_reason_ = reason;
    }
}

void engine::flush_local_replies() {
    while (!pending_.empty() && pending_.front().local) {
        to_client_.append(pending_.front().reply);
        pending_.pop_front();
    }
}

}  // namespace smtpgate::session
