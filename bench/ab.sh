#!/usr/bin/env bash
# A/B benchmark of two smtpgate binaries on one smtp-sink, rounds alternating A, B, A, B, ...
# See bench/README.md ("A/B against the previous binary"). Loopback (127.0.0.1) only. Usage:
#   bench/ab.sh A_BIN B_BIN [A_ADMISSION_BENCH B_ADMISSION_BENCH]
# Copy the binaries somewhere first if a build may replace them while this runs.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LC_ALL=C   # '.' as the decimal point for $EPOCHREALTIME and awk
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------- settings (env overrides)
ROUNDS=${BENCH_ROUNDS:-3}                   # A/B pairs
SESS_COUNT=${BENCH_SESSIONS:-5000}          # measured sessions (= messages) per round
SESS_PAR=${BENCH_SESSION_PARALLEL:-20}
SESS_LEN=${BENCH_SESSION_SIZE:-1024}
WARMUP=${BENCH_WARMUP:-$(( SESS_COUNT / 20 > 0 ? SESS_COUNT / 20 : 1 ))}  # unmeasured, after each start
CONCURRENT=${BENCH_CONCURRENT_PER_CLIENT:-1000}  # limits.concurrent_per_client (all load is from 127.0.0.1)
ADM_RUNS=${BENCH_ADMISSION_RUNS:-2}         # runs of each admission_bench, alternating
ADM_ARGS=${BENCH_ADMISSION_ARGS:-"50000 1000000 2000000"}
START_WAIT=${BENCH_START_WAIT:-15}          # seconds smtpgate gets to answer with 220
SHUTDOWN_WAIT=${BENCH_SHUTDOWN_WAIT:-10}    # seconds smtpgate gets to exit after SIGTERM
ROUND_TIMEOUT=${BENCH_ROUND_TIMEOUT:-120}   # seconds before one smtp-source run is killed
KEEP=${BENCH_KEEP:-0}

die() { echo "ab: error: $*" >&2; exit 2; }
note() { echo "ab: $*" >&2; }

usage="usage: bench/ab.sh A_BIN B_BIN [A_ADMISSION_BENCH B_ADMISSION_BENCH]"
(($# == 2 || $# == 4)) || die "$usage"
for v in ROUNDS SESS_COUNT SESS_PAR SESS_LEN WARMUP CONCURRENT ADM_RUNS START_WAIT SHUTDOWN_WAIT ROUND_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done

abspath() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
need_exe() { [[ -f $1 && -x $1 ]] || die "$2 '$1' not found or not executable"; }
BIN_A=$(abspath "$1"); BIN_B=$(abspath "$2")
need_exe "$BIN_A" A_BIN; need_exe "$BIN_B" B_BIN
ADM_A=""; ADM_B=""
if (($# == 4)); then
    ADM_A=$(abspath "$3"); ADM_B=$(abspath "$4")
    need_exe "$ADM_A" A_ADMISSION_BENCH; need_exe "$ADM_B" B_ADMISSION_BENCH
fi

# ---------------------------------------------------------------- tools (as in run.sh)
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
command -v timeout >/dev/null || die "timeout (coreutils) not found"

# ---------------------------------------------------------------- temp dir, cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/smtpgate-ab.XXXXXX")
chmod 755 "$TMP"   # smtp-sink drops to 'nobody'; it only needs its cwd to be reachable
PIDS=()            # every process we start, stopped in reverse order on exit
FAILED=0

# shellcheck disable=SC2317  # stop_pid and cleanup run from the EXIT trap
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        note "pid $pid still running 5 s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do stop_pid "${PIDS[i]}"; done
    if [[ $KEEP == 1 || $rc -ne 0 ]]; then note "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- small helpers
cpu_ticks() {   # pid -> utime+stime in clock ticks (whole process), fails if gone
    local s f
    { s=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
    s=${s##*) }                       # the command name may contain spaces
    read -r -a f <<<"$s"
    [[ ${f[0]} != Z ]] || return 1
    echo $(( f[11] + f[12] ))
}
CLK_TCK=$(getconf CLK_TCK)
sink_count() { "$PY" "$HELPER" sink-count "$TMP/sink.counters"; }
wait_sink_count() {   # expected -> waits (bounded) until smtp-sink has counted that many; prints the count
    local want=$1 n i
    for i in $(seq 100); do
        n=$(sink_count); [[ $n != None ]] || n=0
        ((n >= want)) && break
        sleep 0.05
    done
    echo "$n"
}
calc() { awk "BEGIN { printf \"%.${2:-0}f\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a";
    else if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "max deviation of any value from the median, in %" (the ±10% noise check)
spread() { local m=$1; shift; printf '%s\n' "$@" | awk -v m="$m" '{ d = ($1 / m - 1) * 100; if (d < 0) d = -d;
    if (d > x) x = d } END { printf "%.1f", x }'; }
run_source() {   # port count -> rc (smtp-source output in $TMP/source.err)
    timeout -k 5 "$ROUND_TIMEOUT" "$SMTP_SOURCE" -s "$SESS_PAR" -m "$2" -l "$SESS_LEN" \
        -M bench.test -f sender@bench.test -t rcpt@bench.test "127.0.0.1:$1" \
        >/dev/null 2>"$TMP/source.err" &
    local pid=$! rc=0
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    unset 'PIDS[-1]'
    return "$rc"
}

# ---------------------------------------------------------------- backend: one smtp-sink for all rounds
read -r SINK_PORT <<<"$("$PY" "$HELPER" freeports 1)"
SINK_ARGS=(-c)
[[ $(id -u) == 0 ]] && SINK_ARGS+=(-u nobody)   # smtp-sink refuses to run as root otherwise
(cd "$TMP" && exec "$SMTP_SINK" "${SINK_ARGS[@]}" "127.0.0.1:$SINK_PORT" 1024 >"$TMP/sink.counters" 2>"$TMP/sink.err") &
SINK_PID=$!; PIDS+=("$SINK_PID")
"$PY" "$HELPER" wait-smtp "$SINK_PORT" 10 >/dev/null || die "smtp-sink did not start: $(cat "$TMP/sink.err")"
note "smtp-sink pid $SINK_PID on 127.0.0.1:$SINK_PORT"

# ---------------------------------------------------------------- smtpgate config (one file for A and B)
write_config() {   # listen_port admin_port
    cat >"$TMP/smtpgate.toml" <<EOF
[server]
listen = ["127.0.0.1:$1"]
hostname = "bench.test"
max_connections = 2000
[backend]
address = "127.0.0.1:$SINK_PORT"
[admin]
listen = "127.0.0.1:$2"
[log]
level = "warning"
[limits]
concurrent_per_client = $CONCURRENT
EOF
}
write_config 1 2
for b in "$BIN_A" "$BIN_B"; do
    "$b" --config "$TMP/smtpgate.toml" --check-config >"$TMP/check-config.out" 2>&1 ||
        die "$b rejects the config: $(head -3 "$TMP/check-config.out" | tr '\n' ' ')"
done

# ---------------------------------------------------------------- one measured round of one binary
# Sets R_RATE (sessions/s), R_CPU (proxy µs/session), R_SINK (smtp-sink µs/session), R_STOP (ms).
measure_bin() {   # label binary round
    local label=$1 bin=$2 rnd=$3 gport aport pid log c0 c1 t0 t1 p0 p1 s0 s1 rc i
    read -r gport aport <<<"$("$PY" "$HELPER" freeports 2)"
    write_config "$gport" "$aport"
    log="$TMP/smtpgate-$label-$rnd.log"
    "$bin" --config "$TMP/smtpgate.toml" >"$log" 2>&1 &
    pid=$!; PIDS+=("$pid")
    "$PY" "$HELPER" wait-smtp "$gport" "$START_WAIT" >/dev/null ||
        die "$label ($bin) did not answer on 127.0.0.1:$gport within ${START_WAIT}s: $(tail -5 "$log" | tr '\n' ' ')"
    "$PY" "$HELPER" verify "$gport" "$TMP/sink.counters" "$SMTP_SOURCE" >"$TMP/verify.out" ||
        die "$label: relay check failed: $(cat "$TMP/verify.out") $(tail -5 "$log" | tr '\n' ' ')"
    # unmeasured warm-up on the fresh process
    c0=$(wait_sink_count 0)
    run_source "$gport" "$WARMUP" || { note "$label round $rnd warm-up: smtp-source exit $?: $(tail -2 "$TMP/source.err")"; FAILED=1; }
    c0=$(wait_sink_count $((c0 + WARMUP)))

    p0=$(cpu_ticks "$pid") || die "$label exited during warm-up: $(tail -5 "$log" | tr '\n' ' ')"
    s0=$(cpu_ticks "$SINK_PID")
    t0=$EPOCHREALTIME
    rc=0; run_source "$gport" "$SESS_COUNT" || rc=$?
    t1=$EPOCHREALTIME
    c1=$(wait_sink_count $((c0 + SESS_COUNT)))
    p1=$(cpu_ticks "$pid") || die "$label exited during round $rnd: $(tail -5 "$log" | tr '\n' ' ')"
    s1=$(cpu_ticks "$SINK_PID")
    if ((rc != 0 || c1 - c0 != SESS_COUNT)); then
        note "$label round $rnd: smtp-source exit $rc, backend counted $((c1 - c0)) of $SESS_COUNT: $(tail -2 "$TMP/source.err" | tr '\n' ' ')"
        FAILED=1
    elif [[ -s $TMP/source.err ]]; then
        note "$label round $rnd: smtp-source stderr: $(tail -2 "$TMP/source.err" | tr '\n' ' ')"
    fi

    # SIGTERM with no sessions open; it should exit on its own
    t0s=$EPOCHREALTIME
    kill -TERM "$pid"
    for i in $(seq $((SHUTDOWN_WAIT * 20))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        note "$label round $rnd: still running ${SHUTDOWN_WAIT}s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true; FAILED=1
    fi
    wait "$pid" 2>/dev/null || true
    unset 'PIDS[-1]'
    R_STOP=$(calc "($EPOCHREALTIME - $t0s) * 1000")
    if [[ -s $log ]]; then
        note "$label round $rnd: $(grep -c . "$log") log line(s) at level warning; first: $(head -1 "$log" | cut -c1-200)"
        FAILED=1
    fi
    R_RATE=$(calc "$SESS_COUNT / ($t1 - $t0)")
    R_CPU=$(calc "($p1 - $p0) / $CLK_TCK * 1e6 / $SESS_COUNT" 1)
    R_SINK=$(calc "($s1 - $s0) / $CLK_TCK * 1e6 / $SESS_COUNT" 1)
}

desc() { echo "$1 ($(stat -c '%y' "$1" | cut -d. -f1), sha256 $(sha256sum "$1" | cut -c1-12))"; }
echo "# smtpgate A/B, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A: $(desc "$BIN_A")"
echo "B: $(desc "$BIN_B")"
echo "smtp-sink on 127.0.0.1:$SINK_PORT; per round a fresh proxy, $WARMUP warm-up sessions, then"
echo "smtp-source -s $SESS_PAR -m $SESS_COUNT -l $SESS_LEN; limits as shipped except concurrent_per_client = $CONCURRENT"
echo

# ---------------------------------------------------------------- sessions: A, B, A, B, ...
CPU_RATIOS=(); RATE_RATIOS=(); A_CPUS=(); B_CPUS=()
ROWS=()
for ((r = 1; r <= ROUNDS; r++)); do
    measure_bin A "$BIN_A" "$r"; a_rate=$R_RATE a_cpu=$R_CPU a_sink=$R_SINK a_stop=$R_STOP
    measure_bin B "$BIN_B" "$r"; b_rate=$R_RATE b_cpu=$R_CPU b_sink=$R_SINK b_stop=$R_STOP
    cr=$(calc "$b_cpu / $a_cpu" 3); rr=$(calc "$b_rate / $a_rate" 3)
    CPU_RATIOS+=("$cr"); RATE_RATIOS+=("$rr"); A_CPUS+=("$a_cpu"); B_CPUS+=("$b_cpu")
    ROWS+=("| $r | $a_rate | $b_rate | $rr | $a_cpu | $b_cpu | $cr | $a_sink / $b_sink | $a_stop / $b_stop |")
    note "pair $r/$ROUNDS: A ${a_rate}/s ${a_cpu} µs  B ${b_rate}/s ${b_cpu} µs  CPU B/A $cr"
done
cpu_med=$(median "${CPU_RATIOS[@]}"); rate_med=$(median "${RATE_RATIOS[@]}")
mean() { printf '%s\n' "$@" | awk '{ t += $1 } END { printf "%.1f", t / NR }'; }
a_mean=$(mean "${A_CPUS[@]}"); b_mean=$(mean "${B_CPUS[@]}")
echo "## Sessions ($SESS_COUNT per round, $SESS_PAR parallel, $SESS_LEN-byte messages)"
echo
echo "| pair | A sessions/s | B sessions/s | B/A | A CPU µs/session | B CPU µs/session | B/A | smtp-sink µs/session A / B | exit after SIGTERM ms A / B |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Median B/A: CPU per session $cpu_med (pairs deviate up to ±$(spread "$cpu_med" "${CPU_RATIOS[@]}")% from it)," \
     "sessions/s $rate_med (±$(spread "$rate_med" "${RATE_RATIOS[@]}")%)."
echo "All pairs pooled: A $a_mean, B $b_mean CPU µs/session, B/A $(calc "$b_mean / $a_mean" 3)."
echo "CPU: utime+stime of the proxy process from /proc/<pid>/stat around the measured smtp-source run" \
     "(clock tick $((1000 / CLK_TCK)) ms)."
echo

# ---------------------------------------------------------------- admission_bench: A, B, A, B, ...
if [[ -n $ADM_A ]]; then
    note "admission_bench $ADM_ARGS: $ADM_RUNS runs each, alternating (about a minute per run)"
    declare -A ADM
    for ((r = 1; r <= ADM_RUNS; r++)); do
        for side in A B; do
            bin=ADM_$side
            out="$TMP/admission-$side-$r.out"
            # shellcheck disable=SC2086  # ADM_ARGS is a list of numbers
            "${!bin}" $ADM_ARGS >"$out" 2>&1 &
            pid=$!; PIDS+=("$pid")
            wait "$pid" || die "admission_bench $side exited $?: $(tail -3 "$out")"
            unset 'PIDS[-1]'
            # rows: round, baseline ns, loaded ns, ratio, table size, evictions
            while read -r rnd base loaded _; do
                ADM[$side,$r,$rnd]="$base $loaded"
            done < <(awk '$1 ~ /^[0-9]+$/ && NF >= 4' "$out")
            note "admission_bench $side run $r: $(awk '$1 ~ /^[0-9]+$/ { printf "%s/%s ", $2, $3 }' "$out")(baseline/loaded ns)"
        done
    done
    echo "## admission_bench $ADM_ARGS ($ADM_RUNS runs of each, alternating A, B)"
    echo
    echo "| run.round | A baseline ns | B baseline ns | B/A | A loaded ns | B loaded ns | B/A |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    BASE_RATIOS=(); LOAD_RATIOS=()
    for key in $(printf '%s\n' "${!ADM[@]}" | grep '^A,' | cut -d, -f2- | sort -t, -k1,1n -k2,2n); do
        [[ -n ${ADM[B,$key]:-} ]] || continue
        read -r ab al <<<"${ADM[A,$key]}"; read -r bb bl <<<"${ADM[B,$key]}"
        rb=$(calc "$bb / $ab" 3); rl=$(calc "$bl / $al" 3)
        BASE_RATIOS+=("$rb"); LOAD_RATIOS+=("$rl")
        echo "| ${key/,/.} | $ab | $bb | $rb | $al | $bl | $rl |"
    done
    ((${#BASE_RATIOS[@]} > 0)) || die "could not read admission_bench output (see $TMP/admission-*.out)"
    bm=$(median "${BASE_RATIOS[@]}"); lm=$(median "${LOAD_RATIOS[@]}")
    echo
    echo "Median B/A: baseline ns $bm (±$(spread "$bm" "${BASE_RATIOS[@]}")%), loaded ns $lm (±$(spread "$lm" "${LOAD_RATIOS[@]}")%)."
    echo
fi

if ((FAILED)); then note "finished with problems (see above)"; exit 1; fi
exit 0
