// Transcript runner for session engine tests (OpenSMTPD smtpscript style).
//
// A transcript is a list of lines:
//   C: <line>        the client sends a command line (queued until the engine takes lines,
//                    exactly as the network driver does)
//   Cbare: <line>    the same, ended by a bare LF
//   Clong:           the client sent a line over the length limit
//   B: <reply line>  the backend sends a reply line; the reply is fed when complete
//   => <line>        expect this line next on the way to the backend
//   S: <line>        expect this line next on the way to the client
//   ! data_end | data_bare | timeout <phase> | backend_down | drain | shutdown
//   ! tls_established    the handshake after STARTTLS succeeded; like the driver, lines the
//                        client queued in plaintext after STARTTLS are dropped unread first
//   ! tls_failed         the handshake failed
//   ! check_done         the store answered the pending check: `check_answer` is fed
//   ? closing | open | phase data | phase command | phase auth | phase tls | idle
//   ? awaiting_check | not awaiting_check
// At the end every byte the engine produced must have been expected.
#pragma once

#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <sstream>
#include <string>

#include "smtpgate/session/engine.hpp"

namespace smtpgate::test {

class transcript_runner {
  public:
    explicit transcript_runner(session::engine_settings settings = {"gate.test", false})
        : engine_(std::move(settings)) {}

    session::engine& engine() { return engine_; }
    /// What `! check_done` feeds the engine.
    std::function<policy::step_result()> check_answer;

    void run(const std::string& script) {
        std::istringstream in(script);
        std::string raw;
        int n = 0;
        while (std::getline(in, raw)) {
            ++n;
            const auto first = raw.find_first_not_of(' ');
            if (first == std::string::npos) continue;
            const std::string line = raw.substr(first);
            INFO("transcript line " << n << ": " << line);
            step(line);
        }
        INFO("unexpected output left over at the end of the transcript");
        CHECK(engine_.to_client() == "");
        CHECK(engine_.to_backend() == "");
    }

  private:
    static std::string after(const std::string& line, std::size_t prefix) {
        return line.size() > prefix ? line.substr(prefix) : std::string{};
    }

    void feed_client() {
        while (!queued_.empty() && engine_.accepts_lines()) {
            auto q = std::move(queued_.front());
            queued_.pop_front();
            smtp::line_event ev;
            ev.status = q.too_long ? smtp::line_status::too_long : smtp::line_status::line;
            ev.text = q.text;
            ev.bare_newline = q.bare;
            engine_.on_client_line(ev);
        }
    }

    static std::string take_line(std::string& out) {
        const auto end = out.find("\r\n");
        if (end == std::string::npos) return "<nothing>";
        std::string line = out.substr(0, end);
        out.erase(0, end + 2);
        return line;
    }

    void step(const std::string& line) {
        if (line.rfind("C: ", 0) == 0 || line == "C:") {
            queued_.push_back({after(line, 3), false, false});
            feed_client();
        } else if (line.rfind("Cbare: ", 0) == 0) {
            queued_.push_back({after(line, 7), true, false});
            feed_client();
        } else if (line == "Clong:") {
            queued_.push_back({"", false, true});
            feed_client();
        } else if (line.rfind("B: ", 0) == 0) {
            const auto status = parser_.feed(after(line, 3));
            REQUIRE(status != smtp::reply_status::malformed);
            if (status == smtp::reply_status::complete) {
                engine_.on_backend_reply(parser_.result());
                feed_client();
            }
        } else if (line.rfind("Banner: ", 0) == 0) {
            REQUIRE(parser_.feed(after(line, 8)) == smtp::reply_status::complete);
            engine_.on_banner(parser_.result());
        } else if (line.rfind("=> ", 0) == 0) {
            const std::string want = after(line, 3);
            const std::string got = take_line(engine_.to_backend());
            INFO("to backend: got \"" << got << "\", want \"" << want << "\"");
            CHECK(got == want);
        } else if (line.rfind("S: ", 0) == 0) {
            const std::string want = after(line, 3);
            const std::string got = take_line(engine_.to_client());
            INFO("to client: got \"" << got << "\", want \"" << want << "\"");
            CHECK(got == want);
        } else if (line.rfind("! ", 0) == 0) {
            action(after(line, 2));
            feed_client();
        } else if (line.rfind("? ", 0) == 0) {
            check(after(line, 2));
        } else {
            FAIL("unknown transcript line: " << line);
        }
    }

    void action(const std::string& what) {
        if (what == "data_end") {
            engine_.on_data_end();
        } else if (what == "data_bare") {
            engine_.on_data_bare_newline();
        } else if (what == "timeout command") {
            engine_.on_timeout(session::deadline::command);
        } else if (what == "timeout data") {
            engine_.on_timeout(session::deadline::data);
        } else if (what == "timeout backend") {
            engine_.on_timeout(session::deadline::backend_reply);
        } else if (what == "backend_down") {
            engine_.on_backend_failure("eof");
        } else if (what == "drain") {
            engine_.on_drain();
        } else if (what == "shutdown") {
            engine_.on_shutdown();
        } else if (what == "tls_established") {
            queued_.clear();
            engine_.on_tls_established();
        } else if (what == "tls_failed") {
            engine_.on_tls_failed("handshake", "test");
        } else if (what == "check_done") {
            REQUIRE(check_answer);
            engine_.on_check_done(check_answer());
        } else {
            FAIL("unknown action: " << what);
        }
    }

    void check(const std::string& what) {
        if (what == "closing") {
            CHECK(engine_.closing());
        } else if (what == "open") {
            CHECK_FALSE(engine_.closing());
        } else if (what == "phase data") {
            CHECK(engine_.current_phase() == session::phase::data);
        } else if (what == "phase command") {
            CHECK(engine_.current_phase() == session::phase::command);
        } else if (what == "phase tls") {
            CHECK(engine_.current_phase() == session::phase::tls);
        } else if (what == "phase auth") {
            CHECK(engine_.current_phase() == session::phase::auth);
        } else if (what == "idle") {
            CHECK_FALSE(engine_.awaiting_backend());
        } else if (what == "quit backend") {
            CHECK(engine_.backend_quit_wanted());
        } else if (what == "awaiting_check") {
            CHECK(engine_.awaiting_check());
            CHECK(engine_.next() == session::next_step::await_check);
        } else if (what == "not awaiting_check") {
            CHECK_FALSE(engine_.awaiting_check());
        } else if (what == "no quit backend") {
            CHECK_FALSE(engine_.backend_quit_wanted());
        } else {
            FAIL("unknown check: " << what);
        }
    }

    struct queued_line {
        std::string text;
        bool bare;
        bool too_long;
    };

    session::engine engine_;
    smtp::reply_parser parser_;
    std::deque<queued_line> queued_;
};

}  // namespace smtpgate::test
