// The greet pause, from admission to the banner (sendmail greet_pause, postscreen's pregreet
// test): what to send first, how long to wait, and what a client that talked too early gets.
//
// The driver asks start(): nothing to do, or wait (after the optional "220-" teaser, which the
// engine sends). When the wait ends it reports how: the pause passed (on to the backend), or
// the client talked. For a client that talked, the registry's pregreet verdict (its mode
// applied) decides: observed, the session goes on; enforced, 554 and nullserver (every command
// refused until QUIT) or the close, as greet_pause.on_pregreet says. After a teaser the banner
// is half sent: nullserver completes it first, and a drop closes without a reply (none fits).
//
// Pure: the engine is told, the driver waits. No sockets, no clock.
#pragma once

#include <chrono>

#include "smtpgate/config/config.hpp"
#include "smtpgate/policy/verdict.hpp"
#include "smtpgate/session/engine.hpp"

namespace smtpgate::session {

enum class greet_step {
    proceed,  ///< on to the backend
    wait,     ///< wait `pause()` for the client; report with on_client_spoke() if it talks
    close,    ///< close the connection at once, without a reply (a drop after a teaser)
    done,     ///< the engine has the outcome (a local session or a close)
};

class greet_pause {
  public:
    greet_pause(duration pause, bool teaser, config::pregreet_action on_pregreet)
        : pause_(pause), teaser_(teaser), on_pregreet_(on_pregreet) {}

    /// The first step; with a teaser, the engine has it as output to send before the wait.
    greet_step start(engine& e);
    duration pause() const { return pause_; }
    bool teaser() const { return teaser_; }
    /// The client sent bytes before the banner; `v` is the pregreet check's verdict, mode
    /// applied (would_block when observed).
    greet_step on_client_spoke(const policy::verdict& v, engine& e);

  private:
    duration pause_;
    bool teaser_;
    config::pregreet_action on_pregreet_;
};

}  // namespace smtpgate::session
