#include "smtpgate/session/greet_pause.hpp"

namespace smtpgate::session {

namespace replies = smtp::replies;

greet_step greet_pause::start(engine& e) {
    if (pause_.count() == 0) return greet_step::proceed;
    // postscreen: the first line of a multi-line banner tempts bots to talk too early.
    if (teaser_) e.send_teaser();
    return greet_step::wait;
}

greet_step greet_pause::on_client_spoke(const policy::verdict& v, engine& e) {
    if (v.passed()) return greet_step::proceed;  // observed (or off): on to the banner
    if (on_pregreet_ == config::pregreet_action::drop) {
        if (teaser_) return greet_step::close;  // mid-banner: no reply fits
        e.close_now(replies::pregreet, "pregreet");
        return greet_step::done;
    }
    // sendmail nullserver: refuse every command, QUIT aside. After a teaser the banner is
    // completed first so the reply stays well-formed.
    e.answer_locally(teaser_ ? &replies::greeting : &replies::pregreet, replies::nullserver_command,
                     false);
    return greet_step::done;
}

}  // namespace smtpgate::session
