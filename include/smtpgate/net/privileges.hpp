// Giving up root once the listeners are bound (server.user).
//
// A process started as root (a host daemon without systemd, a container run as uid 0) binds
// port 25 and then becomes `server.user` for good, as nginx and Postfix do: the user's groups,
// then its group, then the user, and a check that root cannot be regained. Started as anyone
// else, a process can only "switch" to itself; asking for another user is an error, never a
// silent no-op.
//
// Threading: call before the io_context runs. glibc applies set*id calls to every thread of
// the process, so resolver threads started earlier change too.
#pragma once

#include <string>

namespace smtpgate::net {

/// Makes `user` the process's real and effective user and group, with its supplementary
/// groups. Returns false when the process already ran as that user (nothing changed); throws
/// std::runtime_error saying why when the switch is impossible or incomplete.
bool switch_user(const std::string& user);

}  // namespace smtpgate::net
