#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is needed, builds smtpgate and runs
# it on 127.0.0.1:2525 with config/smtpgate.toml, in front of Postfix's smtp-sink on
# 127.0.0.1:10025 as a demo backend. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build

sink_user=nobody
/usr/sbin/smtp-sink -u "$sink_user" -h demo-backend.localdomain 127.0.0.1:10025 128 &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT

cat <<TXT

smtpgate is starting on 127.0.0.1:2525, relaying to smtp-sink on 127.0.0.1:10025.
In another terminal, send a test message through it:

    swaks --server 127.0.0.1:2525 --from sender@example.org --to rcpt@example.net

and watch it count:

    curl -s http://127.0.0.1:9590/metrics | grep -E '^smtpgate_(sessions|messages)_total'

Its log lines appear below. Ctrl-C drains and stops it.

TXT
./build/smtpgate --config config/smtpgate.toml
