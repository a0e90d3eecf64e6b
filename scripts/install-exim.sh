#!/usr/bin/env bash
# Installs a private Exim for the integration tests (test/integration/test_exim.py) under
# /opt/smtpgate-test/exim, from Debian's own package, without installing Debian's exim4:
# exim4-daemon-* and postfix both provide mail-transport-agent, and postfix must stay.
# The daemon package is unpacked with dpkg-deb; only the shared libraries it links are
# installed, plus the system user its binary insists on (Debian-exim, as exim4-base creates).
# exim4-daemon-heavy, because Debian 12 builds exim4-daemon-light without PROXY protocol support.
# Safe to run again; does nothing when the private Exim is in place.
# Usage: scripts/install-exim.sh
set -euo pipefail

package=exim4-daemon-heavy
prefix=/opt/smtpgate-test/exim
exim="$prefix/usr/sbin/exim4"
exim_user=Debian-exim # the binary's compiled-in EXIM_USER; it will not start without it

support_line() {
  # -C /dev/null: no configuration is needed to list the build's features.
  "$exim" -C /dev/null -bV 2>/dev/null | grep '^Support for:' || true
}

if [ -x "$exim" ] && getent passwd "$exim_user" >/dev/null && support_line | grep -qw PROXY; then
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq

# Depends: "libc6 (>= 2.34), libdb5.3, debconf (>= 0.5) | debconf-2.0, exim4-base (>= 4.96), ..."
# -> the lib* packages, first alternative, without versions.
libs=()
for dep in $(apt-cache show --no-all-versions "$package" | sed -n 's/^Depends: //p' | tr ',' '\n' |
             sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' | grep '^lib'); do
  dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "install ok installed" || libs+=("$dep")
done
[ ${#libs[@]} -eq 0 ] || $sudo apt-get install -y -qq --no-install-recommends "${libs[@]}"

if ! getent passwd "$exim_user" >/dev/null; then
  $sudo useradd --system --user-group --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin "$exim_user"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Run as root, apt-get download fetches as the _apt user, which must be able to write there.
if [ "$(id -u)" -eq 0 ] && getent passwd _apt >/dev/null; then chown _apt "$work"; fi
(cd "$work" && apt-get download -qq "$package")
# Unpacked next to the prefix, then renamed: a half-written tree never looks installed.
$sudo mkdir -p "$(dirname "$prefix")"
$sudo rm -rf "$prefix.new"
$sudo dpkg-deb -x "$work"/"$package"_*.deb "$prefix.new"
# The tests run it as root; no setuid-root MTA left lying around outside dpkg's knowledge.
$sudo chmod u-s "$prefix.new/usr/sbin/exim4"
$sudo rm -rf "$prefix"
$sudo mv "$prefix.new" "$prefix"

support=$(support_line)
echo "$exim: $support"
if ! grep -qw PROXY <<<"$support"; then
  echo "install-exim.sh: $package has no PROXY protocol support; test_exim cannot run" >&2
  exit 1
fi
