// Fuzz target: parse_command on arbitrary lines.
//
// Invariants: every view in the result points into the line; a forwarded command never
// carries a control character (only TAB); a RCPT without error has a path; MAIL/RCPT paths
// and parameters are set only for those verbs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "smtpgate/smtp/command.hpp"

using namespace smtpgate::smtp;

namespace {

bool inside(std::string_view part, std::string_view whole) {
    return part.empty()
           || (part.data() >= whole.data()
               && part.data() + part.size() <= whole.data() + whole.size());
}

bool has_control(std::string_view s) {
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && u != '\t') || u == 0x7f) return true;
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    const command cmd = parse_command(line);

    if (!inside(cmd.name, line) || !inside(cmd.args, line) || !inside(cmd.path, line)
        || !inside(cmd.params, line)) {
        __builtin_trap();
    }
    // A command the proxy would forward (an SMTP verb, no error) is free of control bytes.
    if (cmd.kind != verb::non_smtp && cmd.error == command_error::none && has_control(line)) {
        __builtin_trap();
    }
    if (cmd.kind == verb::rcpt && cmd.error == command_error::none && cmd.path.empty()) {
        __builtin_trap();
    }
    if (cmd.kind != verb::mail && cmd.kind != verb::rcpt
        && (!cmd.path.empty() || !cmd.params.empty())) {
        __builtin_trap();
    }
    if (verb_name(cmd.kind).empty()) __builtin_trap();
    return 0;
}
