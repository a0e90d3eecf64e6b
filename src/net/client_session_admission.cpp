#include "smtpgate/net/client_session.hpp"

#include <algorithm>
#include <string>

#include "client_session_helpers.hpp"
#include "smtpgate/config/units.hpp"
#include "smtpgate/net/server.hpp"
#include "smtpgate/ops/log.hpp"
#include "smtpgate/policy/checks/greet_pause.hpp"
#include "smtpgate/session/greet_pause.hpp"
#include "smtpgate/smtp/replies.hpp"

namespace smtpgate::net {

using boost::system::error_code;
namespace errc = boost::asio::error;

void client_session::log_verdict(const policy::verdict& v) {
    auto line = ops::log(ops::level::warning, v.would_block ? "would_reject" : "reject");
    line.kv("session", id_).kv("client", client_text_).kv("reason", v.reason);
    if (v.reply != nullptr) line.kv("code", v.reply->code);
    log_measure(line, v.observed, v.limit, v.in_ms);
    if (!admission_.key_text.empty()) line.kv("key", admission_.key_text);
    if (!client_name_.empty()) line.kv("client_name", client_name_);
    if (v.act == policy::action::tempfail) line.kv("action", "tempfail");
    if (admission_.rule != nullptr) line.kv("rule", admission_.rule->origin);
}

void client_session::start_name_lookup() {
    auto* resolver = owner_.resolver();
    if (resolver == nullptr) return;
    name_pending_ = true;
    // The lookup may outlive the session (a closed client); its answer is then dropped.
    std::weak_ptr<client_session> self = shared_from_this();
    resolver->reverse_name(unmapped(client_endpoint_.address()),
                           screening_started_ + settings_->server.reverse_lookup_timeout,
                           [self](std::string name) {
                               if (auto s = self.lock()) s->on_client_name(std::move(name));
                           });
}

void client_session::on_client_name(std::string name) {
    name_pending_ = false;
    client_name_ = std::move(name);
    name_timer_.cancel();
    ops::log(ops::level::debug, "client_name")
        .kv("session", id_)
        .kv("client", client_text_)
        .kv("name", client_name_.empty() ? std::string("unknown") : client_name_);
}

asio::awaitable<void> client_session::await_client_name() {
    while (name_pending_ && interrupt_ != interrupt::stop) {
        name_timer_.expires_at(steady_clock::time_point::max());
        co_await name_timer_.async_wait(use_tuple);
    }
}

asio::awaitable<void> client_session::admit(const tcp::endpoint& remote) {
    const auto client = client_address_of(remote.address());
    // Only a rule that matches by name needs the name now; otherwise it arrives meanwhile.
    if (name_pending_ && policies_->identity.rules().name_may_matter(client)) {
        co_await await_client_name();
        if (interrupt_ == interrupt::stop) {
            engine_.on_shutdown();
            co_return;
        }
    }
    admission_ = policies_->identity.identify(client, client_name_);
    // The memory store answers inside start(): no coroutine frame for the common case.
    const policy::check_input in{admission_};
    const auto* r = screening_.start(policy::phase::connect, in, wall_now(), this)
                        ? &screening_.result()
                        : co_await await_step(in);
    if (r == nullptr) {
        engine_.on_shutdown();
        co_return;
    }
    admission_.decision = r->decision;
    admission_.would_block = r->would_block;
    admission_.held_key = screening_.acquired_slot();
    if (admission_.decision.passed()) {
        admission_.greet_pause = policy::checks::greet_pause_for(
            settings_->greet_pause, settings_->modes.greet_pause, admission_);
    }
    for (const auto& v : admission_.would_block)
        log_verdict(v);
    const auto& d = admission_.decision;
    if (d.passed()) co_return;
    log_verdict(d);
    if (d.act == policy::action::tempfail) {
        // sendmail without `terminate`: a banner, then 4xx until the client gives up.
        engine_.answer_locally(&smtp::replies::greeting, *d.reply, true);
    } else {
        engine_.close_now(*d.reply, d.reason);
    }
}

asio::awaitable<void> client_session::greet_pause() {
    const auto& cfg = settings_->greet_pause;
    session::greet_pause pause(admission_.greet_pause, cfg.teaser, cfg.on_pregreet);
    if (pause.start(engine_) == session::greet_step::proceed) co_return;
    if (pause.teaser()) {
        co_await flush_client();
        if (!proceeding()) co_return;
    }
    // Bytes that came with a load balancer's PROXY header were sent before any banner too.
    if (client_in_.empty()) {
        // Nothing is owed yet, so a drain may cut the pause short; run() then answers 421
        // instead of the banner. Not after a teaser: that banner is already half sent.
        if (interrupt_ == interrupt::drain) co_return;
        // The pause counts from the connection, so a reverse lookup admission waited for
        // is part of it, not added to it.
        auto until = std::min(screening_started_ + pause.pause(), session_deadline_);
        if (until <= steady_clock::now()) {
            // Over already: only what the client sent meanwhile can have come too early.
            error_code available_ec;
            if (client_.available(available_ec) == 0 || available_ec) co_return;
            until = capped(settings_->timeouts.command);  // the bytes are there
        }
        idle_ = !pause.teaser();
        const auto r = co_await read_some(side::client, client_in_, until);
        idle_ = false;
        if (r.timed_out) co_return;  // a patient client: go on to the banner
        if (r.ec == errc::operation_aborted && interrupt_ == interrupt::drain) co_return;
        if (r.ec) {
            on_io_failure(r, session::deadline::command, false);
            co_return;
        }
        bytes_in_ += r.bytes;
    }
    if (!proxy_header_checked_ && refused_untrusted_proxy_header()) co_return;
    const policy::check_input in{admission_};
    const auto* checked = screening_.start(policy::phase::pregreet, in, wall_now(), this)
                              ? &screening_.result()
                              : co_await await_step(in);
    if (checked == nullptr) {
        engine_.on_shutdown();
        co_return;
    }
    const policy::verdict& v =
        checked->would_block.empty() ? checked->decision : checked->would_block.front();
    if (!v.passed() || v.would_block) {
        ops::log(ops::level::warning, v.would_block ? "would_reject" : "reject")
            .kv("session", id_)
            .kv("client", client_text_)
            .kv("reason", v.reason)
            .kv("code", v.reply->code)
            .kv("bytes", client_in_.size())
            .kv("delay_ms", pause.pause().count());
    }
    if (pause.on_client_spoke(checked->decision, engine_) == session::greet_step::close) {
        client_gone_ = true;
        end_reason_ = "pregreet";
        error_code ignored;
        client_.close(ignored);
    }
}

void client_session::apply_bad_recipient(const policy::bad_recipient_verdict& v) {
    if (v.outcome == policy::bad_recipient_outcome::none) return;
    const bool block = v.outcome == policy::bad_recipient_outcome::block;
    if (!block && throttle_logged_) return;  // the throttle is logged once per session
    ops::log(ops::level::warning, v.would_block ? "would_reject" : "reject")
        .kv("session", id_)
        .kv("client", client_text_)
        .kv("reason", block ? "bad_recipient_rate" : "bad_recipient_throttle_rate")
        .kv("code", block ? smtp::replies::penalty_box.code : 0)
        .kv("observed", v.observed)
        .kv("limit", v.limit)
        .kv("key", admission_.key_text)
        .kv("action", block ? "block" : "throttle");
    if (v.would_block) return;
    if (block) {
        engine_.close_now(smtp::replies::penalty_box, "penalty");
    } else {
        throttle_logged_ = true;
        engine_.throttle_recipients();
    }
}

}  // namespace smtpgate::net
