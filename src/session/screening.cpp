#include "smtpgate/session/screening.hpp"

#include <stdexcept>

#include "smtpgate/policy/checks/greet_pause.hpp"

namespace smtpgate::session {

client_identity::client_identity(const config::settings& settings)
    : prefixes_{settings.limits.client_key_ipv4_prefix, settings.limits.client_key_ipv6_prefix},
      rules_(settings.rules) {}

policy::admission_result client_identity::identify(const inet::client_address& client,
                                                   std::string_view hostname) const {
    policy::admission_result r;
    r.address = client;
    r.key = inet::client_key(client, prefixes_);
    r.key_text = inet::client_key_text(client, prefixes_);
    r.hostname = hostname;
    r.rule = rules_.find(client, hostname);
    return r;
}

screening::screening(const policy::registry& checks, state::store& store)
    : checks_(checks), store_(store) {}

screening::~screening() {
    cancel();
}

bool screening::start(policy::phase p, const policy::check_input& in, policy::time_point now,
                      state::completion* waiter) {
    cancel();
    checks_.begin(step_, p, in);
    step_.outcomes.clear();
    if (!step_.plan.empty() && !store_.apply(step_.plan, step_.outcomes, now, waiter)) {
        waiter_ = waiter;
        return false;
    }
    checks_.finish(step_, in, result_);
    return true;
}

const policy::step_result& screening::finish(const policy::check_input& in) {
    waiter_ = nullptr;
    checks_.finish(step_, in, result_);
    return result_;
}

void screening::cancel() {
    if (waiter_ == nullptr) return;
    store_.cancel(waiter_);
    waiter_ = nullptr;
}

std::string_view screening::acquired_slot() const {
    if (step_.at != policy::phase::connect) return {};
    for (std::size_t i = 0; i < step_.plan.size() && i < step_.outcomes.size(); ++i) {
        if (step_.plan[i].kind == policy::op_kind::acquire && step_.outcomes[i].applied)
            return step_.plan[i].key;
    }
    return {};
}

namespace {

void require_done(bool done) {
    // The synchronous forms are for stores that complete at once; anything else is a bug.
    if (!done) throw std::logic_error("screening: the store did not complete at once");
}

}  // namespace

admission::admission(const config::settings& settings, state::store& store)
    : greet_pause_(settings.greet_pause),
      greet_pause_mode_(settings.modes.greet_pause),
      identity_(settings),
      checks_(settings),
      store_(store),
      steps_(checks_, store) {}

policy::admission_result admission::admit(const inet::client_address& client,
                                          policy::time_point now, std::string_view hostname) {
    policy::admission_result r = identity_.identify(client, hostname);
    require_done(steps_.start(policy::phase::connect, {r}, now, nullptr));
    r.decision = steps_.result().decision;
    r.would_block = steps_.result().would_block;
    r.held_key = steps_.acquired_slot();
    // Only a client that is let in waits for its banner.
    if (r.decision.passed())
        r.greet_pause = policy::checks::greet_pause_for(greet_pause_, greet_pause_mode_, r);
    return r;
}

policy::bad_recipient_verdict admission::record_bad_recipient(
    const policy::admission_result& client, policy::time_point now) {
    require_done(steps_.start(policy::phase::rcpt_reply, {client}, now, nullptr));
    return policy::bad_recipient_finding(steps_.result());
}

void admission::release(policy::admission_result& result) {
    if (result.held_key.empty()) return;
    store_.release(result.held_key, {});
    result.held_key.clear();
}

transaction_checks::transaction_checks(const config::settings& settings, state::store& store)
    : checks_(settings), steps_(checks_, store) {}

policy::verdict transaction_checks::run(policy::phase p, const policy::client_info& client,
                                        std::string_view subject, policy::time_point now) {
    const policy::check_input in{client, subject};
    require_done(steps_.start(p, in, now, nullptr));
    return command_verdict(steps_.result());
}

policy::verdict transaction_checks::helo(const policy::client_info& client, std::string_view name,
                                         policy::time_point now) {
    return run(policy::phase::helo, client, name, now);
}

policy::verdict transaction_checks::mail(const policy::client_info& client, std::string_view sender,
                                         policy::time_point now) {
    return run(policy::phase::mail, client, sender, now);
}

policy::verdict transaction_checks::rcpt(const policy::client_info& client, std::string_view sender,
                                         policy::time_point now) {
    return run(policy::phase::rcpt, client, sender, now);
}

policy::verdict command_verdict(const policy::step_result& r) {
    if (!r.decision.passed() || r.would_block.empty()) return r.decision;
    return r.would_block.front();
}

}  // namespace smtpgate::session
