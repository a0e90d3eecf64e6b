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

engine_settings engine_settings_from(const config::settings& settings, std::string hostname) {
    engine_settings e;
    e.hostname = std::move(hostname);
    e.reject_bare_newline = settings.smtp.bare_newline == config::bare_newline_mode::reject;
    e.tls_available = settings.tls.enabled();
    e.recipients_per_message = settings.limits.recipients_per_message;
    e.recipients_mode = settings.modes.recipients_per_message;
    e.bad_recipient_after = settings.limits.bad_recipient_after;
    e.bad_recipient_delay = settings.limits.bad_recipient_delay;
    e.bad_recipient_mode = settings.modes.bad_recipient_throttle;
    e.soft_errors = settings.limits.soft_errors;
    e.max_errors = settings.limits.max_errors;
    e.error_delay = settings.limits.error_delay;
    e.errors_mode = settings.modes.errors;
    e.max_total_delay = settings.limits.max_delay;
    return e;
}

engine::engine(engine_settings settings) : settings_(std::move(settings)) {}

void engine::on_banner(const smtp::reply& banner) {
    if (banner.code != 220) {
        close_with(replies::backend_failed, event_kind::backend_error, "banner");
        return;
    }
    smtp::append_reply(out(), banner);
}

void engine::answer_locally(const smtp::named_reply* greeting, const smtp::named_reply& refusal,
                            bool polite) {
    local_refusal_ = &refusal;
    local_polite_ = polite;
    if (greeting != nullptr) smtp::append_reply(out(), *greeting, settings_.hostname);
}

void engine::send_teaser() {
    smtp::append_reply_continued(out(), replies::greeting, settings_.hostname);
}

void engine::close_now(const smtp::named_reply& r, std::string_view reason) {
    if (closing_) return;
    check_pending_ = false;
    pending_.clear();
    backend_owed_ = 0;
    smtp::append_reply(out(), r, settings_.hostname);
    closing_ = true;
    close_reason_ = reason;
}

void engine::on_local_line(const smtp::line_event& line) {
    if (commands_ > max_local_commands) {
        close_with(replies::too_many_errors, event_kind::reject, "too_many_errors");
        return;
    }
    if (line.status == smtp::line_status::too_long) {
        smtp::append_reply(out(), replies::line_too_long, settings_.hostname);
        return;
    }
    const smtp::command cmd = smtp::parse_command(line.text);
    switch (cmd.kind) {
        case verb::non_smtp:
            close_with(replies::non_smtp_command, event_kind::reject, "non_smtp");
            return;
        case verb::quit:
            smtp::append_reply(out(), replies::goodbye, settings_.hostname);
            closing_ = true;
            close_reason_ = "quit";
            return;
        case verb::helo:
        case verb::ehlo:
            if (local_polite_) {
                smtp::append_reply(out(), replies::helo_ok, settings_.hostname);
                return;
            }
            break;
        case verb::noop:
        case verb::rset:
            if (local_polite_) {
                smtp::append_reply(out(), replies::ok, settings_.hostname);
                return;
            }
            break;
        default: break;
    }
    smtp::append_reply(out(), *local_refusal_, settings_.hostname);
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
        if (!ok) events_.push_back({event_kind::reject, "auth_response", 501, {}, 0, 0});
        to_backend_.append(ok ? line.text : "*");
        to_backend_.append("\r\n");
        pending_.push_back(pending{verb::auth, false, {}, false, {}, {}});
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
        close_with(replies::non_smtp_command, event_kind::reject, "non_smtp");
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
        case verb::starttls: starttls(cmd); return;
        default: break;
    }
    if (cmd.error == smtp::command_error::syntax) {
        local_reply(replies::syntax_error, "syntax");
        return;
    }
    if (need_helo_) {
        switch (cmd.kind) {
            case verb::helo:
            case verb::ehlo:
            case verb::noop:
            case verb::rset:
            case verb::quit: break;
            default: local_reply(replies::helo_first, "helo_first"); return;
        }
    }
    if (draining_ && !transaction_open_ && cmd.kind != verb::quit) {
        close_with(replies::shutting_down, event_kind::drain_close, "shutdown");
        return;
    }
    forward(cmd, line.text);
}

void engine::starttls(const smtp::command& cmd) {
    if (!settings_.tls_available) {
        local_reply(replies::starttls_not_offered, "starttls");
        return;
    }
    if (tls_active_) {
        local_reply(replies::tls_already_active, "tls_active");
        return;
    }
    if (!cmd.args.empty()) {
        local_reply(replies::syntax_error, "syntax");
        return;
    }
    if (transaction_open_) {
        local_reply(replies::starttls_in_transaction, "starttls_in_transaction");
        return;
    }
    // RFC 3207 4.2 / CVE-2011-0411: STARTTLS ends the pipelined group. No further line is
    // taken; the driver discards what the client sent after it in plaintext.
    barrier_ = true;
    if (backend_owed_ == 0) {
        smtp::append_reply(out(), replies::starttls_ready, settings_.hostname);
        phase_ = phase::tls;
        return;
    }
    pending p{verb::starttls, true, {}, false, duration(0), {}};
    p.starts_tls = true;
    smtp::append_reply(p.reply, replies::starttls_ready, settings_.hostname);
    pending_.push_back(std::move(p));
}

void engine::on_tls_established() {
    tls_active_ = true;
    need_helo_ = true;
    phase_ = phase::command;
    barrier_ = false;
    transaction_open_ = false;
    reset_transaction();
}

void engine::on_tls_failed(std::string_view reason, std::string detail) {
    if (closing_) return;
    events_.push_back({event_kind::tls_error, reason, 0, std::move(detail), 0, 0});
    check_pending_ = false;
    pending_.clear();
    backend_owed_ = 0;
    closing_ = true;
    close_reason_ = "tls_";
    close_reason_.append(reason);
}

std::optional<std::string_view> engine::check_subject(const smtp::command& cmd,
                                                      policy::phase& p) const {
    switch (cmd.kind) {
        case verb::helo:
        case verb::ehlo: {
            p = policy::phase::helo;
            const std::string_view name = cmd.args.substr(0, cmd.args.find(' '));
            // One observation per session: EHLO again after STARTTLS (RFC 3207 4.2) is the
            // same client greeting, not a second one.
            if (name == helo_checked_) return std::nullopt;
            return name;
        }
        case verb::mail: p = policy::phase::mail; return cmd.path;
        case verb::rcpt: p = policy::phase::rcpt; return std::string_view(sender_);
        default: return std::nullopt;
    }
}

engine::check_state engine::start_check(const smtp::command& cmd, std::string_view line) {
    if (checks_ == nullptr) return check_state::passed;
    policy::phase p = policy::phase::connect;
    const auto subject = check_subject(cmd, p);
    if (!subject) return check_state::passed;
    const policy::step_result* r = checks_->check(p, *subject);
    if (r == nullptr) {
        // The store answers later: no further line is taken until it has, so replies keep
        // their command order (RFC 2920).
        held_line_.assign(line);
        check_pending_ = true;
        return check_state::pending;
    }
    return apply_check(cmd, *subject, *r) ? check_state::passed : check_state::refused;
}

void engine::on_check_done(const policy::step_result& r) {
    if (!check_pending_) return;
    check_pending_ = false;
    const std::string line = std::move(held_line_);
    const smtp::command cmd = smtp::parse_command(line);
    policy::phase p = policy::phase::connect;
    const std::string subject(check_subject(cmd, p).value_or(std::string_view{}));
    if (apply_check(cmd, subject, r)) forward_checked(cmd, line);
}

bool engine::apply_check(const smtp::command& cmd, std::string_view subject,
                         const policy::step_result& r) {
    for (const auto& v : r.would_block) {
        events_.push_back({event_kind::would_reject, v.reason,
                           v.reply != nullptr ? v.reply->code : 0, std::string(subject), v.observed,
                           v.limit, v.in_ms});
    }
    const policy::verdict& v = r.decision;
    if (v.passed()) {
        if (cmd.kind == verb::helo || cmd.kind == verb::ehlo) helo_checked_.assign(subject);
        return true;
    }
    if (cmd.kind == verb::mail) sender_.clear();  // no transaction was opened
    // vthrottle: a 4xx, so a real MTA queues the message and comes back later.
    local_reply(*v.reply, v.reason, v.observed, v.limit);
    for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
        if (it->kind == event_kind::reject && it->reason == v.reason) {
            it->detail = subject;
            it->in_ms = v.in_ms;
            break;
        }
    }
    return false;
}

void engine::forward(const smtp::command& cmd, std::string_view line) {
    if (start_check(cmd, line) != check_state::passed) return;
    forward_checked(cmd, line);
}

void engine::forward_checked(const smtp::command& cmd, std::string_view line) {
    if (cmd.kind == verb::rcpt && ++recipients_ > settings_.recipients_per_message
        && settings_.recipients_mode != config::check_mode::off) {
        if (settings_.recipients_mode == config::check_mode::enforce) {
            // RFC 5321 4.5.3.1.10: too many recipients is 452; a standards-following MTA
            // delivers to the accepted ones and retries the rest (sendmail
            // MAX_RCPTS_PER_MESSAGE). Not forwarded: the backend never sees it.
            // Not an error: a mailing list's MTA sends all its RCPTs and retries the deferred
            // ones later (Postfix counts these only past smtpd_recipient_overshoot_limit).
            local_reply(replies::too_many_recipients, "recipients_per_message", recipients_,
                        settings_.recipients_per_message, false);
            return;
        }
        events_.push_back({event_kind::would_reject,
                           "recipients_per_message",
                           452,
                           {},
                           static_cast<std::int64_t>(recipients_),
                           settings_.recipients_per_message});
    }
    to_backend_.append(line);
    to_backend_.append("\r\n");
    pending_.push_back(pending{cmd.kind, false, {}, false, {}, {}});
    ++backend_owed_;
    switch (cmd.kind) {
        case verb::mail:
            transaction_open_ = true;
            reset_transaction();
            sender_.assign(cmd.path);
            break;
        case verb::helo:
        case verb::ehlo:
            need_helo_ = false;
            transaction_open_ = false;
            reset_transaction();
            break;
        case verb::rset:
            transaction_open_ = false;
            reset_transaction();
            break;
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
        reset_transaction();
        if (reply.kind() == 2) ++messages_;
    } else {
        switch (answered.kind) {
            case verb::ehlo:
                smtp::filter_ehlo(reply, {settings_.tls_available && !tls_active_});
                break;
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
                smtp::append_reply(out(), reply);
                closing_ = true;
                close_reason_ = "quit";
                return;
            default: break;
        }
    }
    duration delay{0};
    if (!answered.end_of_data && answered.kind == verb::rcpt) delay = rcpt_delay(reply);
    if (reply.kind() == 5) delay = std::max(delay, count_error(smtp::verb_name(answered.kind)));
    const bool over_budget = total_delay_ + delay > settings_.max_total_delay;
    const bool over_errors = std::exchange(error_limit_hit_, false);
    if (over_budget || over_errors) {
        // Throttles cost the client time, never us unbounded time: past the delay budget or
        // the error limit, this reply goes out as it is, then 421 and the close.
        if (over_budget) {
            events_.push_back({event_kind::reject,
                               "delay_budget",
                               421,
                               {},
                               (total_delay_ + delay).count(),
                               settings_.max_total_delay.count()});
        }
        smtp::append_reply(out(), reply);
        close_now(replies::too_many_errors, over_budget ? "delay_budget" : "max_errors");
        return;
    }
    smtp::append_reply(out(delay), reply);
    if (reply.code == 421) {
        // RFC 5321 3.8: the backend is closing the channel; so do we.
        closing_ = true;
        close_reason_ = "backend_421";
        events_.push_back({event_kind::backend_error, "backend_421", 421, {}, 0, 0});
        return;
    }
    flush_local_replies();
}

next_step engine::next() const {
    if (closing_) return next_step::close;
    if (check_pending_) return next_step::await_check;
    if (backend_owed_ > 0) return next_step::read_backend;
    switch (phase_) {
        case phase::tls: return next_step::start_tls;
        case phase::data: return next_step::stream_message;
        default: return next_step::read_client;
    }
}

std::string_view event_name(event_kind k) {
    switch (k) {
        case event_kind::reject: return "reject";
        case event_kind::would_reject: return "would_reject";
        case event_kind::timeout: return "timeout";
        case event_kind::backend_error: return "backend_error";
        case event_kind::drain_close: return "drain_close";
        case event_kind::bad_recipient: return "bad_recipient";
        case event_kind::rcpt_flood: return "rcpt_flood";
        case event_kind::tls_error: return "tls_error";
    }
    return "unknown";
}

bool is_unknown_recipient(const smtp::reply& reply) {
    // RFC 5321 4.2.2 / RFC 3463 5.1.x: 550/551/553 with a 5.1.x status (bad mailbox, bad
    // destination, unknown user) or without an enhanced status at all. Policy rejections
    // (5.7.x) are not bad recipients: the address may well exist.
    if (reply.code != 550 && reply.code != 551 && reply.code != 553) return false;
    if (reply.lines.empty()) return true;
    const std::string& text = reply.lines.front();
    if (text.size() >= 2 && text[0] == '5' && text[1] == '.') return text.rfind("5.1.", 0) == 0;
    return true;
}

duration engine::rcpt_delay(const smtp::reply& reply) {
    const bool bad = is_unknown_recipient(reply);
    // The throttle starts once `after` bad recipients were seen in this transaction: the
    // reply to every later RCPT waits (sendmail sleeps after each RCPT once flagged).
    const bool throttled = (throttle_all_recipients_
                            || (settings_.bad_recipient_after != 0
                                && bad_recipients_ >= settings_.bad_recipient_after))
                           && settings_.bad_recipient_mode != config::check_mode::off;
    if (bad) {
        ++bad_recipients_;
        events_.push_back(
            {event_kind::bad_recipient, "unknown_user", reply.code, {}, bad_recipients_, 0});
        if (bad_recipients_ == settings_.bad_recipient_after
            && settings_.bad_recipient_mode != config::check_mode::off) {
            // Logged once per transaction, sendmail's "Possible SMTP RCPT flood, throttling."
            const bool observe = settings_.bad_recipient_mode == config::check_mode::observe;
            events_.push_back({observe ? event_kind::would_reject : event_kind::rcpt_flood,
                               "bad_recipient_throttle",
                               0,
                               {},
                               bad_recipients_,
                               settings_.bad_recipient_after});
        }
    }
    if (!throttled || settings_.bad_recipient_mode != config::check_mode::enforce)
        return duration(0);
    return settings_.bad_recipient_delay;
}

void engine::on_data_end() {
    pending_.push_back(pending{verb::data, false, {}, true, {}, {}});
    ++backend_owed_;
    // Content is over: the client's next bytes are commands again, but they wait for the
    // backend's final reply (the barrier stays up until it arrives).
    phase_ = phase::command;
}

void engine::on_data_bare_newline() {
    close_with(replies::bare_newline_data, event_kind::reject, "bare_newline_data");
}

void engine::on_timeout(deadline which) {
    close_with(replies::timeout, event_kind::timeout, deadline_name(which));
}

void engine::on_backend_failure(std::string_view reason, std::string detail) {
    close_with(replies::backend_failed, event_kind::backend_error, reason, std::move(detail));
}

void engine::on_backend_unreachable(std::string_view reason, std::string detail) {
    close_with(replies::backend_unreachable, event_kind::backend_error, reason, std::move(detail));
}

void engine::on_shutdown() {
    close_with(replies::shutting_down, event_kind::drain_close, "shutdown");
}

void engine::local_reply(const smtp::named_reply& r, std::string_view reason, std::int64_t observed,
                         std::int64_t limit, bool counts_as_error) {
    events_.push_back({event_kind::reject, reason, r.code, {}, observed, limit});
    const duration delay = counts_as_error ? count_error(reason) : duration(0);
    if (error_limit_hit_) {
        error_limit_hit_ = false;
        queue_close(replies::too_many_errors, "max_errors");
        return;
    }
    if (backend_owed_ == 0) {
        smtp::append_reply(out(delay), r, settings_.hostname);
        return;
    }
    pending p{verb::unknown, true, {}, false, delay, {}};
    smtp::append_reply(p.reply, r, settings_.hostname);
    pending_.push_back(std::move(p));
}

std::string& engine::out(duration delay) {
    if (delay.count() > 0) {
        total_delay_ += delay;
        delayed_.push_back({delay, {}});
        return delayed_.back().bytes;
    }
    return delayed_.empty() ? to_client_ : delayed_.back().bytes;
}

duration engine::count_error(std::string_view reason) {
    if (settings_.errors_mode == config::check_mode::off) return duration(0);
    ++errors_;
    const bool enforce = settings_.errors_mode == config::check_mode::enforce;
    if (settings_.max_errors != 0 && errors_ == settings_.max_errors) {
        events_.push_back({enforce ? event_kind::reject : event_kind::would_reject, "max_errors",
                           421, std::string(reason), errors_, settings_.max_errors});
        // The caller ends the session after the replies the client is still owed.
        if (enforce) error_limit_hit_ = true;
        return duration(0);
    }
    if (settings_.soft_errors != 0 && errors_ > settings_.soft_errors && enforce) {
        return settings_.error_delay;
    }
    return duration(0);
}

void engine::queue_close(const smtp::named_reply& r, std::string_view reason) {
    if (backend_owed_ == 0) {
        smtp::append_reply(out(), r, settings_.hostname);
        closing_ = true;
        close_reason_ = reason;
        return;
    }
    // Earlier pipelined commands still get their replies first (RFC 2920 order); no further
    // line is taken.
    pending p{smtp::verb::quit, true, {}, false, duration(0), reason};
    smtp::append_reply(p.reply, r, settings_.hostname);
    pending_.push_back(std::move(p));
    close_queued_ = true;
}

void engine::reset_transaction() {
    recipients_ = 0;
    bad_recipients_ = 0;
    sender_.clear();
}

void engine::close_with(const smtp::named_reply& r, event_kind kind, std::string_view reason,
                        std::string detail) {
    if (closing_) return;
    check_pending_ = false;
    events_.push_back({kind, reason, r.code, std::move(detail), 0, 0});
    // Replies still owed will not come; the client learns why with this last reply.
    pending_.clear();
    backend_owed_ = 0;
    smtp::append_reply(out(), r, settings_.hostname);
    closing_ = true;
    if (kind == event_kind::timeout || kind == event_kind::backend_error) {
        close_reason_ = kind == event_kind::timeout ? "timeout_" : "backend_";
        close_reason_.append(reason);
    } else {
        close_reason_ = reason;
    }
}

void engine::flush_local_replies() {
    while (!pending_.empty() && pending_.front().local) {
        out(pending_.front().delay).append(pending_.front().reply);
        if (pending_.front().starts_tls) {
            phase_ = phase::tls;
            pending_.pop_front();
            return;
        }
        if (!pending_.front().close_reason.empty()) {
            // A queued close reached its turn: what was pipelined after it goes unanswered.
            closing_ = true;
            close_reason_ = pending_.front().close_reason;
            pending_.clear();
            backend_owed_ = 0;
            return;
        }
        pending_.pop_front();
    }
}

}  // namespace smtpgate::session
