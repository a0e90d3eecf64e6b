#!/usr/bin/env bash
# smtpgate benchmark: direct vs smtpgate vs nginx mail proxy, all relaying to smtp-sink.
# See bench/README.md. Loopback (127.0.0.1) only. Usage:
#   SMTPGATE_BIN=build/smtpgate bench/run.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------- settings (env overrides)
ROUNDS=${BENCH_ROUNDS:-5}
SESS_COUNT=${BENCH_SESSIONS:-6000}          # sessions (= messages) per round
SESS_PAR=${BENCH_SESSION_PARALLEL:-20}
SESS_LEN=${BENCH_SESSION_SIZE:-1024}
MB_COUNT=${BENCH_MB_MESSAGES:-100}          # 5 MB messages per round
MB_PAR=${BENCH_MB_PARALLEL:-4}
MB_LEN=${BENCH_MB_SIZE:-5242880}
WORKLOADS=${BENCH_WORKLOADS:-"sessions mb"}
FRONTENDS=${BENCH_FRONTENDS:-"direct smtpgate nginx"}
NGINX_AUTH=${BENCH_NGINX_AUTH:-inline}      # inline | separate
KEEP=${BENCH_KEEP:-0}
GATE_LIMITS=${BENCH_SMTPGATE_LIMITS:-default}  # default: limits as shipped; off: [limits] concurrent_per_client = 0
SHUTDOWN_WAIT=${BENCH_SHUTDOWN_WAIT:-10}   # seconds smtpgate gets to exit after SIGTERM
ROUND_TIMEOUT=${BENCH_ROUND_TIMEOUT:-120}
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}
MAIL_MODULE=${NGINX_MAIL_MODULE:-/usr/lib/nginx/modules/ngx_mail_module.so}

die() { echo "bench: error: $*" >&2; exit 2; }
note() { echo "bench: $*" >&2; }

for v in ROUNDS SESS_COUNT SESS_PAR SESS_LEN MB_COUNT MB_PAR MB_LEN ROUND_TIMEOUT SHUTDOWN_WAIT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for w in $WORKLOADS; do [[ $w == sessions || $w == mb ]] || die "unknown workload '$w' (sessions, mb)"; done
for f in $FRONTENDS; do [[ $f == direct || $f == smtpgate || $f == nginx ]] || die "unknown front end '$f'"; done
[[ $NGINX_AUTH == inline || $NGINX_AUTH == separate ]] || die "BENCH_NGINX_AUTH must be inline or separate"
want() { [[ " $FRONTENDS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- tools
PY=${PYTHON:-}
if [[ -z $PY ]]; then
    if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY=$(command -v python3 || true); fi
fi
[[ -n $PY ]] || die "python3 not found (needed for bench/smtpbench.py)"
SMTP_SOURCE=$(command -v smtp-source || true)
SMTP_SINK=$(command -v smtp-sink || true)
[[ -n $SMTP_SOURCE ]] || die "smtp-source not found (Debian: apt-get install postfix; it is /usr/sbin/smtp-source)"
[[ -n $SMTP_SINK ]] || die "smtp-sink not found (Debian: apt-get install postfix; it is /usr/sbin/smtp-sink)"
HELPER="$BENCH_DIR/smtpbench.py"
[[ -f $HELPER ]] || die "missing $HELPER"
if want nginx; then
    NGINX=$(command -v nginx || true)
    [[ -n $NGINX ]] || die "nginx not found (apt-get install nginx-light libnginx-mod-mail), or drop it: BENCH_FRONTENDS='direct smtpgate'"
    [[ -f $MAIL_MODULE ]] || die "nginx mail module $MAIL_MODULE not found (apt-get install libnginx-mod-mail)"
fi

# smtpgate binary: relative paths are tried against the caller's cwd, then the repo root.
SKIPPED=()
SMTPGATE=""
if want smtpgate; then
    cand=${SMTPGATE_BIN:-$REPO/build/smtpgate}
    if [[ $cand != /* ]]; then
        if [[ -e $PWD/$cand ]]; then cand=$PWD/$cand; elif [[ -e $REPO/$cand ]]; then cand=$REPO/$cand; fi
    fi
    if [[ -x $cand && -f $cand ]]; then
        SMTPGATE=$cand
    else
        msg="smtpgate: SKIPPED — binary '${SMTPGATE_BIN:-$REPO/build/smtpgate}' not found or not executable (set SMTPGATE_BIN)"
        note "$msg"; SKIPPED+=("$msg")
    fi
fi

# ---------------------------------------------------------------- temp dir, cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/smtpgate-bench.XXXXXX")
chmod 755 "$TMP"   # smtp-sink drops to 'nobody'; it only needs its cwd to be reachable
PIDS=()            # every long-running process we start, killed in reverse order
FAILED=0

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        note "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-60)) still running 5 s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
# nginx workers are not our children: stop them only if they still look like nginx
stop_nginx_worker() {
    local pid=$1
    [[ -r /proc/$pid/cmdline ]] || return 0
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q '^nginx: ' || return 0
    kill -KILL "$pid" 2>/dev/null || true
}
NGINX_WORKERS=()
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do stop_pid "${PIDS[i]}"; done
    for i in "${NGINX_WORKERS[@]}"; do stop_nginx_worker "$i"; done
    if [[ $KEEP == 1 || $rc -ne 0 ]]; then
        note "temp dir kept: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r SINK_PORT GATE_PORT NGINX_PORT AUTH_PORT <<<"$("$PY" "$HELPER" freeports 4)"

# ---------------------------------------------------------------- backend: smtp-sink
SINK_ARGS=(-c)
[[ $(id -u) == 0 ]] && SINK_ARGS+=(-u nobody)   # smtp-sink refuses to run as root otherwise
(cd "$TMP" && exec "$SMTP_SINK" "${SINK_ARGS[@]}" "127.0.0.1:$SINK_PORT" 1024 >"$TMP/sink.counters" 2>"$TMP/sink.err") &
SINK_PID=$!; PIDS+=("$SINK_PID")
"$PY" "$HELPER" wait-smtp "$SINK_PORT" 10 >/dev/null || die "smtp-sink did not start: $(cat "$TMP/sink.err")"
note "smtp-sink pid $SINK_PID on 127.0.0.1:$SINK_PORT"

FE_JSON=()     # one JSON object per front end that is up and verified
REF_JSON=()
LOGS_JSON=()
add_fe() { FE_JSON+=("{\"name\":\"$1\",\"port\":$2,\"pids\":[$3],\"cpu_desc\":\"$4\"}"); }

verify_fe() {   # name port -> 0 if one message goes through to the sink
    "$PY" "$HELPER" verify "$2" "$TMP/sink.counters" "$SMTP_SOURCE"
}

if want direct; then
    verify_fe direct "$SINK_PORT" || die "direct smtp-source -> smtp-sink check failed"
    add_fe direct "$SINK_PORT" "" "none"
    note "direct: ok"
fi

# ---------------------------------------------------------------- smtpgate
if want smtpgate && [[ -n $SMTPGATE ]]; then
    cat >"$TMP/smtpgate.toml" <<EOF
[server]
listen = ["127.0.0.1:$GATE_PORT"]
hostname = "bench.test"
max_connections = 2000
[backend]
address = "127.0.0.1:$SINK_PORT"
[log]
level = "warning"
EOF
    # All bench traffic comes from 127.0.0.1, so the per-client limit (default 20 open
    # connections per client network) would refuse the load itself: switch it off unless
    # BENCH_SMTPGATE_LIMITS=default.
    if [[ $GATE_LIMITS != default ]]; then
        cp "$TMP/smtpgate.toml" "$TMP/smtpgate-base.toml"
        printf '[limits]\nconcurrent_per_client = 0\n' >>"$TMP/smtpgate.toml"
        if ! "$SMTPGATE" --config "$TMP/smtpgate.toml" --check-config >"$TMP/check-config.out" 2>&1; then
            note "smtpgate rejects [limits] concurrent_per_client = 0 ($(head -1 "$TMP/check-config.out")); using the base config"
            cp "$TMP/smtpgate-base.toml" "$TMP/smtpgate.toml"
        fi
    fi
    "$SMTPGATE" --config "$TMP/smtpgate.toml" >"$TMP/smtpgate.log" 2>&1 &
    GATE_PID=$!; PIDS+=("$GATE_PID")
    LOGS_JSON+=("\"smtpgate\":\"$TMP/smtpgate.log\"")
    if ! "$PY" "$HELPER" wait-smtp "$GATE_PORT" 15 >/dev/null; then
        msg="smtpgate: SKIPPED — did not answer on 127.0.0.1:$GATE_PORT; log: $(tail -5 "$TMP/smtpgate.log" | tr '\n' ' ')"
        note "$msg"; SKIPPED+=("$msg"); FAILED=1
    elif ! verify_fe smtpgate "$GATE_PORT"; then
        msg="smtpgate: SKIPPED — relay check failed; log: $(tail -5 "$TMP/smtpgate.log" | tr '\n' ' ')"
        note "$msg"; SKIPPED+=("$msg"); FAILED=1
    else
        add_fe smtpgate "$GATE_PORT" "$GATE_PID" "smtpgate pid $GATE_PID"
        note "smtpgate pid $GATE_PID on 127.0.0.1:$GATE_PORT: ok"
    fi
fi

# ---------------------------------------------------------------- nginx mail proxy
start_nginx() {   # dir conf -> sets NG_MASTER NG_WORKER
    local dir=$1 conf=$2 i
    "$NGINX" -t -q -p "$dir/" -c "$conf" -e "$dir/logs/error.log" >"$dir/logs/configtest.out" 2>&1 ||
        die "nginx -t failed for $conf: $(cat "$dir/logs/configtest.out")"
    "$NGINX" -p "$dir/" -c "$conf" -e "$dir/logs/error.log" >"$dir/logs/stdout.log" 2>&1 &
    NG_MASTER=$!; PIDS+=("$NG_MASTER")
    NG_WORKER=""
    for i in $(seq 100); do
        NG_WORKER=$("$PY" "$HELPER" children "$NG_MASTER")
        [[ -n $NG_WORKER ]] && break
        kill -0 "$NG_MASTER" 2>/dev/null || die "nginx exited: $(cat "$dir/logs/error.log" "$dir/logs/stdout.log")"
        sleep 0.1
    done
    [[ -n $NG_WORKER && $NG_WORKER != *" "* ]] || die "nginx: expected exactly one worker, got '$NG_WORKER'"
    NGINX_WORKERS+=("$NG_WORKER")
}

nginx_common() {   # dir
    cat <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http() {   # dir
    cat <<EOF
http {
    access_log off;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    server {
        listen 127.0.0.1:$AUTH_PORT;
        # ngx_mail_auth_http_module protocol: only the response headers matter.
        # Auth-Server must be an IP address; Auth-Port is the backend port.
        location = /auth {
            add_header Auth-Status OK;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port $SINK_PORT;
            return 204;
        }
    }
}
EOF
}
nginx_mail() {
    cat <<EOF
mail {
    server_name bench.test;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        protocol smtp;
        smtp_auth none;
        proxy on;
        xclient off;
        auth_http 127.0.0.1:$AUTH_PORT/auth;
    }
}
EOF
}

if want nginx; then
    ND="$TMP/nginx"; mkdir -p "$ND/logs" "$ND/tmp"
    {
        echo "load_module $MAIL_MODULE;"
        nginx_common "$ND"
        [[ $NGINX_AUTH == inline ]] && nginx_http "$ND"
        nginx_mail
    } >"$ND/nginx.conf"
    if [[ $NGINX_AUTH == separate ]]; then
        AD="$TMP/nginx-auth"; mkdir -p "$AD/logs" "$AD/tmp"
        { nginx_common "$AD"; nginx_http "$AD"; } >"$AD/nginx.conf"
        start_nginx "$AD" "$AD/nginx.conf"
        REF_JSON+=("{\"name\":\"nginx auth_http server\",\"pids\":[$NG_MASTER,$NG_WORKER],\"frontends\":[\"nginx\"]}")
        LOGS_JSON+=("\"nginx-auth\":\"$AD/logs/error.log\"")
        note "nginx auth_http instance master $NG_MASTER worker $NG_WORKER on 127.0.0.1:$AUTH_PORT"
    fi
    start_nginx "$ND" "$ND/nginx.conf"
    LOGS_JSON+=("\"nginx\":\"$ND/logs/error.log\"")
    "$PY" "$HELPER" wait-smtp "$NGINX_PORT" 10 >/dev/null || die "nginx did not answer on 127.0.0.1:$NGINX_PORT: $(cat "$ND/logs/error.log")"
    verify_fe nginx "$NGINX_PORT" || die "nginx relay check failed: $(cat "$ND/logs/error.log")"
    desc="nginx master $NG_MASTER + worker $NG_WORKER"
    [[ $NGINX_AUTH == inline ]] && desc="$desc (auth_http served by the same worker)"
    add_fe nginx "$NGINX_PORT" "$NG_MASTER,$NG_WORKER" "$desc"
    note "nginx master $NG_MASTER worker $NG_WORKER on 127.0.0.1:$NGINX_PORT (auth_http $NGINX_AUTH): ok"
fi

((${#FE_JSON[@]} > 0)) || die "no front end to measure"

# ---------------------------------------------------------------- measure
join() { local IFS=,; echo "$*"; }
WL_JSON=()
for w in $WORKLOADS; do
    if [[ $w == sessions ]]; then
        WL_JSON+=("\"sessions\":{\"count\":$SESS_COUNT,\"parallel\":$SESS_PAR,\"length\":$SESS_LEN,\"warmup\":$(( SESS_COUNT / 20 > 0 ? SESS_COUNT / 20 : 1 ))}")
    else
        WL_JSON+=("\"mb\":{\"count\":$MB_COUNT,\"parallel\":$MB_PAR,\"length\":$MB_LEN,\"warmup\":$(( MB_COUNT / 20 > MB_PAR ? MB_COUNT / 20 : MB_PAR ))}")
    fi
done
SKIP_JSON=()
for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do SKIP_JSON+=("$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$s")"); done

gate_desc="not run"
[[ -n $SMTPGATE ]] && gate_desc="$SMTPGATE ($(stat -c '%y' "$SMTPGATE" | cut -d. -f1), sha256 $(sha256sum "$SMTPGATE" | cut -c1-12))"
meta_kv() { "$PY" -c 'import json,sys; print(json.dumps(sys.argv[1])+":"+json.dumps(sys.argv[2]))' "$1" "$2"; }
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' || true)
nginx_ver="not run"
if [[ -n ${NGINX:-} ]]; then nginx_ver="$("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), 1 worker, auth_http $NGINX_AUTH"; fi
postfix_ver=$(dpkg-query -W -f '${Version}' postfix 2>/dev/null || echo unknown)
META=(
    "$(meta_kv machine "$(nproc) cores, $cpu_model, $(uname -sr), shared with other work")"
    "$(meta_kv "smtpgate binary" "$gate_desc")"
    "$(meta_kv nginx "$nginx_ver")"
    "$(meta_kv backend "smtp-sink -c, Postfix $postfix_ver")"
    "$(meta_kv "load average at start" "$(cat /proc/loadavg)")"
)

cat >"$TMP/spec.json" <<EOF
{
 "rounds": $ROUNDS,
 "round_timeout": $ROUND_TIMEOUT,
 "smtp_source": "$SMTP_SOURCE",
 "sink_pid": $SINK_PID,
 "sink_counter": "$TMP/sink.counters",
 "frontends": [$(join "${FE_JSON[@]}")],
 "reference": [$(join "${REF_JSON[@]+"${REF_JSON[@]}"}")],
 "workloads": {$(join "${WL_JSON[@]}")},
 "logs": {$(join "${LOGS_JSON[@]+"${LOGS_JSON[@]}"}")},
 "skipped": [$(join "${SKIP_JSON[@]+"${SKIP_JSON[@]}"}")],
 "meta": {$(join "${META[@]}")},
 "term_check": {$( [[ -n ${GATE_PID:-} ]] && echo "\"name\":\"smtpgate\",\"pid\":$GATE_PID,\"port\":$GATE_PORT,\"wait\":$SHUTDOWN_WAIT" )},
 "out_md": "$RESULTS/latest.md",
 "out_json": "$RESULTS/latest.json"
}
EOF

mkdir -p "$RESULTS"
set +e
"$PY" "$HELPER" run "$TMP/spec.json" &
HELPER_PID=$!; PIDS+=("$HELPER_PID")
wait "$HELPER_PID"; rc=$?
set -e

# keep the front-end logs next to the report (results/ is git-ignored)
[[ -f $TMP/smtpgate.log ]] && cp "$TMP/smtpgate.log" "$RESULTS/latest-smtpgate.log"
[[ -f ${ND:-/nonexistent}/logs/error.log ]] && cp "$ND/logs/error.log" "$RESULTS/latest-nginx-error.log"

((rc == 0 && FAILED == 0)) || { note "finished with problems (see above and $RESULTS/latest.md)"; exit 1; }
exit 0
