// The bad-recipient rate per client network across sessions, and its penalty box (the
// exim-users recipe: 100 unknown users an hour is a spambot). Two checks, one mode
// (modes.bad_recipient_rate), one module:
// - bad_recipient_rate, when the backend refuses a recipient as unknown: every unknown user
//   counts against both levels. Over `limits.bad_recipient_throttle_rate` the verdict is
//   `throttle` (every later RCPT reply of the session is delayed); over
//   `limits.bad_recipient_limit` it is a disconnect with 421 4.7.0, and in enforce mode the
//   network goes into the penalty box for `limits.bad_recipient_block_for`.
// - penalty_box, at connect: a boxed network is refused (421 4.7.0, or the tempfail
//   treatment) until its box ends. A gate: nothing else counts a boxed client.
#pragma once

#include "smtpgate/policy/check.hpp"

namespace smtpgate::policy::checks {

class penalty_box final : public check {
  public:
    explicit penalty_box(const config::settings& s);
    std::string_view name() const override { return "penalty"; }
    phase when() const override { return phase::connect; }
    mode_key mode() const override { return &config::mode_settings::bad_recipient_rate; }
    std::span<const store_key> state() const override {
        static constexpr store_key keys[] = {store_key::penalty};
        return keys;
    }
    bool gate() const override { return true; }
    void plan(const check_input& in, policy::plan& p) const override;
    verdict decide(const check_input& in, const check_results& r) const override;

  private:
    duration block_for_;
    config::exceed_action on_exceed_;
};

class bad_recipient_rate final : public check {
  public:
    explicit bad_recipient_rate(const config::settings& s);
    std::string_view name() const override { return "bad_recipient_rate"; }
    phase when() const override { return phase::rcpt_reply; }
    mode_key mode() const override { return &config::mode_settings::bad_recipient_rate; }
    std::span<const store_key> state() const override {
        static constexpr store_key keys[] = {store_key::bad_recipient_throttle,
                                             store_key::bad_recipient_limit, store_key::penalty};
        return keys;
    }
    void plan(const check_input& in, policy::plan& p) const override;
    verdict decide(const check_input& in, const check_results& r) const override;

  private:
    config::rate throttle_;
    config::rate limit_;
    duration block_for_;
};

}  // namespace smtpgate::policy::checks
