#include "smtpgate/net/privileges.hpp"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace smtpgate::net {

namespace {

[[noreturn]] void fail(const std::string& user, const std::string& what) {
    throw std::runtime_error(fmt::format("server.user = \"{}\": {}", user, what));
}

std::string errno_text() {
    return std::strerror(errno);
}

}  // namespace

bool switch_user(const std::string& user) {
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (found == nullptr) fail(user, "no such user on this system");
    const uid_t uid = found->pw_uid;
    const gid_t gid = found->pw_gid;

    if (geteuid() != 0) {
        if (getuid() == uid && geteuid() == uid) return false;
        fail(user,
             fmt::format("switching to another user needs root; started as uid {}", geteuid()));
    }
    // Groups before the user: once the user is set, changing groups is no longer allowed.
    if (initgroups(user.c_str(), gid) != 0) fail(user, "initgroups: " + errno_text());
    if (setgid(gid) != 0) fail(user, "setgid: " + errno_text());
    if (setuid(uid) != 0) fail(user, "setuid: " + errno_text());
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        fail(user, "root could be regained after the switch");
    return true;
}

}  // namespace smtpgate::net
