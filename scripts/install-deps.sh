#!/usr/bin/env bash
# Installs everything smtpgate needs to build, test and benchmark on Debian 12, from Debian's
# own packages. Safe to run again; does nothing when all packages are present.
# Usage: scripts/install-deps.sh [--runtime-only]
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-program-options1.81-dev
  libfmt-dev libtomlplusplus-dev libssl-dev catch2
  clang clang-format libclang-rt-14-dev
)
test_pkgs=(
  postfix swaks libio-socket-inet6-perl libnet-ssleay-perl libio-socket-ssl-perl
  python3 python3-aiosmtpd curl openssl procps
  nginx-light libnginx-mod-mail
)

pkgs=("${build_pkgs[@]}")
[ "${1:-}" = "--runtime-only" ] || pkgs+=("${test_pkgs[@]}")
# Exim for the deployment tests, unpacked privately: Debian's exim4 and postfix conflict.
[ "${1:-}" = "--runtime-only" ] || "$(dirname "$0")/install-exim.sh"

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
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
