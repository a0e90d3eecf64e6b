#!/usr/bin/env bash
# Installs everything smtpgate needs to build, test and benchmark on Debian 12, from Debian's
# own packages (and, for the tests, two Dockerfile linters from the npm registry). Safe to run
# again; does nothing when everything is present.
# Usage: scripts/install-deps.sh [--runtime-only | --runtime-libs [PACKAGE...]]
#   (none)          build and test dependencies: what CI (scripts/test.sh) needs
#   --runtime-only  build dependencies only, no test tools (docker/Dockerfile's builder stage)
#   --runtime-libs  only the shared libraries the smtpgate binary loads at run time and the CA
#                   certificates, plus each PACKAGE named after it (the runtime stage)
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-program-options1.81-dev
  libfmt-dev libtomlplusplus-dev libssl-dev catch2
  clang clang-format libclang-rt-14-dev
)
# systemd for systemd-analyze and systemd-sysusers, python3-yaml, dpkg-dev (dpkg-shlibdeps) and
# file (CPack's shared-library scan): the packaging tests (test/packaging).
# python3-prometheus-client parses /metrics, fail2ban-regex checks the shipped filter
# (test_operations, test_logs).
test_pkgs=(
  postfix swaks libio-socket-inet6-perl libnet-ssleay-perl libio-socket-ssl-perl
  python3 python3-aiosmtpd curl openssl procps
  nginx-light libnginx-mod-mail
  systemd python3-yaml dpkg-dev file
  python3-prometheus-client fail2ban
)
# What `ldd smtpgate` resolves, less what every Debian 12 image has (libc6, libgcc-s1,
# libstdc++6); ca-certificates for backend.tls_verify with the system CA store.
# test_packaging.py checks this list against the .deb's computed Depends.
runtime_libs=(
  libboost-program-options1.81.0 libfmt9 libtomlplusplus3 libssl3 ca-certificates
)

mode=${1:-}
case "$mode" in
  "") pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  --runtime-only) pkgs=("${build_pkgs[@]}") ;;
  --runtime-libs) shift; pkgs=("${runtime_libs[@]}" "$@") ;;
  *) echo "usage: $0 [--runtime-only | --runtime-libs [PACKAGE...]]" >&2; exit 2 ;;
esac
# Exim for the deployment tests, unpacked privately: Debian's exim4 and postfix conflict.
[ -n "$mode" ] || "$(dirname "$0")/install-exim.sh"

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm by command, not by package: Node.js builds from outside Debian ship their own npm (and
# conflict with Debian's npm package).
[ -n "$mode" ] || command -v npm >/dev/null || missing+=(npm)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Postfix is installed for its smtp-sink/smtp-source tools and for test instances that the
  # tests start themselves; the system instance is left unconfigured and is not started.
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -z "$mode" ] || exit 0

# Dockerfile linters for test/packaging, at the versions in its package-lock.json, in a private
# prefix. Reinstalled only when the lock file changed, so later runs need no network.
linters=/opt/smtpgate-test/dockerfile-linters
lock_dir="$(cd "$(dirname "$0")/.." && pwd)/test/packaging/dockerfile-linters"
if ! cmp -s "$lock_dir/package-lock.json" "$linters/package-lock.json" ||
   [ ! -x "$linters/node_modules/.bin/dockerfile-utils" ] ||
   [ ! -x "$linters/node_modules/.bin/dockerfilelint" ]; then
  # Installed next to the prefix, then renamed: a half-installed tree never looks installed.
  $sudo rm -rf "$linters.new"
  $sudo mkdir -p "$linters.new"
  $sudo cp "$lock_dir/package.json" "$lock_dir/package-lock.json" "$linters.new/"
  (cd "$linters.new" && $sudo npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  $sudo rm -rf "$linters"
  $sudo mv "$linters.new" "$linters"
fi
