#!/usr/bin/env python3
"""Helper for bench/run.sh: ports, readiness, relay checks, the measurement loop, the report.

Standard library only. Everything talks to 127.0.0.1 and nothing else.

Subcommands (run.sh is the only intended caller):
  freeports N                    print N distinct free TCP ports on 127.0.0.1
  wait-smtp PORT TIMEOUT         wait until 127.0.0.1:PORT answers with a 220 greeting
  children PID                   print the pids whose parent is PID
  sink-count FILE                print the smtp-sink message counter (from `smtp-sink -c`)
  verify PORT COUNTERFILE        send one message through 127.0.0.1:PORT, check the sink got it
  run SPEC.json                  measurement rounds, table on stdout, markdown + json report
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- small tools

def freeports(n):
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
            p = s.getsockname()[1]
            if p not in ports:
                ports.append(p)
    finally:
        for s in socks:
            s.close()
    return ports


def wait_smtp(port, timeout):
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.settimeout(2)
                data = s.recv(512)
                if data.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                        s.recv(512)
                    except OSError:
                        pass
                    return True, data.decode("latin-1").strip()
                last = "unexpected greeting %r" % data[:80]
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    return False, last


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if int(rest[1]) == pid:
            out.append(int(name))
    return sorted(out)


def cpu_ticks(pid):
    """utime+stime of a whole process (all threads), in clock ticks; None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rfind(")") + 2:].split()
    if rest[0] == "Z":
        return None
    return int(rest[11]) + int(rest[12])


def sink_count(path):
    """Last `mesg=N` written by `smtp-sink -c` (records end in CR; the file only grows)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read()
    except OSError:
        return None
    recs = [r for r in tail.replace(b"\n", b"\r").split(b"\r") if b"mesg=" in r]
    if not recs:
        return 0
    # the newest record may be cut at the end of the file while being written
    for rec in reversed(recs):
        try:
            return int(rec.rsplit(b"mesg=", 1)[1])
        except ValueError:
            continue
    return 0


def settled_sink_count(path, expect=None, limit=2.0):
    """Read the sink counter once it stops moving (or reaches `expect`)."""
    deadline = time.monotonic() + limit
    prev = sink_count(path)
    while time.monotonic() < deadline:
        if expect is not None and prev is not None and prev >= expect:
            return prev
        time.sleep(0.05)
        cur = sink_count(path)
        if cur == prev and expect is None:
            return cur
        prev = cur
    return prev


def smtp_source_cmd(spec, port, par, count, length):
    return [spec["smtp_source"], "-s", str(par), "-m", str(count), "-l", str(length),
            "-M", "bench.test", "-f", "sender@bench.test", "-t", "rcpt@bench.test",
            "%s:%d" % (HOST, port)]


_child = None


def run_client(cmd, timeout):
    """Run smtp-source; return (rc, stderr text, wall seconds). Kills it on timeout/signal."""
    global _child
    t0 = time.monotonic()
    _child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = _child.communicate(timeout=timeout)
        rc = _child.returncode
    except subprocess.TimeoutExpired:
        _child.kill()
        _, err = _child.communicate()
        rc = "timeout"
    finally:
        _child = None
    return rc, err.decode("latin-1", "replace"), time.monotonic() - t0


def _on_term(signum, frame):
    if _child is not None and _child.poll() is None:
        _child.kill()
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- verify

def verify(port, counter, smtp_source):
    before = settled_sink_count(counter)
    cmd = smtp_source_cmd({"smtp_source": smtp_source}, port, 1, 1, 1024)
    rc, err, _ = run_client(cmd, 30)
    after = settled_sink_count(counter, expect=(before or 0) + 1)
    if rc != 0:
        print("smtp-source exited %s: %s" % (rc, err.strip()[-400:]))
        return False
    if before is None or after is None or after != before + 1:
        print("smtp-source succeeded but the backend counted %s -> %s messages" % (before, after))
        return False
    return True


# --------------------------------------------------------------------------- measurement

WORKLOADS = {
    # key: (label, unit, per-unit CPU label)
    "sessions": ("sessions/s", "sessions/s"),
    "mb": ("MB/s", "MB/s"),
}


def measure_one(spec, fe, wl, count, warmup=False):
    w = spec["workloads"][wl]
    pids = fe["pids"]
    ref = spec.get("reference", [])
    before = {p: cpu_ticks(p) for p in pids + [spec["sink_pid"]] + [q for r in ref for q in r["pids"]]}
    c0 = settled_sink_count(spec["sink_counter"])
    cmd = smtp_source_cmd(spec, fe["port"], w["parallel"], count, w["length"])
    rc, err, wall = run_client(cmd, spec["round_timeout"])
    c1 = settled_sink_count(spec["sink_counter"], expect=(c0 or 0) + count)
    after = {p: cpu_ticks(p) for p in before}
    dead = [p for p in before if after[p] is None]

    def delta(plist):
        if any(after[p] is None or before[p] is None for p in plist):
            return None
        return sum(after[p] - before[p] for p in plist)

    rec = {
        "frontend": fe["name"], "workload": wl, "count": count, "wall_s": wall,
        "rc": rc, "stderr": err.strip()[-2000:],
        "delivered": (c1 - c0) if (c0 is not None and c1 is not None) else None,
        "fe_ticks": delta(pids) if pids else 0,
        "sink_ticks": delta([spec["sink_pid"]]),
        "ref_ticks": {r["name"]: delta(r["pids"]) for r in ref},
        "dead": dead, "warmup": warmup,
    }
    return rec


def fmt_num(x, digits=0):
    if x is None:
        return "n/a"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{d}f}".format(x, d=digits)


def summarise(spec, records):
    """Per workload and front end: median rate, spread, ratios, CPU per unit, failures."""
    out = {}
    names = [fe["name"] for fe in spec["frontends"]]
    for wl, w in spec["workloads"].items():
        recs = [r for r in records if r["workload"] == wl and not r["warmup"]]
        if not recs:
            continue
        unit_per_msg = 1.0 if wl == "sessions" else w["length"] / 1e6  # sessions or MB
        rows = {}
        per_round = {}  # round -> fe -> rate
        for fe in names:
            rs = [r for r in recs if r["frontend"] == fe]
            if not rs:
                continue
            good = [r for r in rs if r["rc"] == 0 and r["delivered"] == r["count"]]
            rates = [r["count"] * unit_per_msg / r["wall_s"] for r in good]
            for r in good:
                per_round.setdefault(r["round"], {})[fe] = r["count"] * unit_per_msg / r["wall_s"]
            units = sum(r["count"] * unit_per_msg for r in good)
            fe_t = [r["fe_ticks"] for r in good]
            sk_t = [r["sink_ticks"] for r in good]
            scale = 1e6 if wl == "sessions" else 1e3  # µs per session / ms per MB
            row = {
                "rounds": len(rs), "good_rounds": len(good),
                "median": statistics.median(rates) if rates else None,
                "min": min(rates) if rates else None, "max": max(rates) if rates else None,
                "fe_cpu": (sum(fe_t) / CLK_TCK * scale / units) if (good and None not in fe_t) else None,
                "sink_cpu": (sum(sk_t) / CLK_TCK * scale / units) if (good and None not in sk_t) else None,
                "failed_msgs": sum(r["count"] - (r["delivered"] or 0) for r in rs),
                "failed_rounds": len(rs) - len(good),
            }
            rows[fe] = row
        # ratios: median over rounds of (fe rate / direct rate in the same round)
        for fe, row in rows.items():
            for base in ("direct", "nginx"):
                pairs = [v[fe] / v[base] for v in per_round.values() if fe in v and base in v and v[base] > 0]
                row["x_" + base] = statistics.median(pairs) if pairs else None
        # reference processes (e.g. a separate nginx auth_http instance)
        refs = {}
        for ref in spec.get("reference", []):
            rs = [r for r in recs if r["rc"] == 0 and r["delivered"] == r["count"]]
            t = [r["ref_ticks"].get(ref["name"]) for r in rs if r["frontend"] in ref["frontends"]]
            units = sum(r["count"] * unit_per_msg for r in rs if r["frontend"] in ref["frontends"])
            scale = 1e6 if wl == "sessions" else 1e3
            if t and None not in t and units:
                refs[ref["name"]] = sum(t) / CLK_TCK * scale / units
        out[wl] = {"rows": rows, "refs": refs}
    return out


def render(spec, summary, records, meta):
    lines = []
    fe_pids_desc = {fe["name"]: fe["cpu_desc"] for fe in spec["frontends"]}
    for wl, w in spec["workloads"].items():
        if wl not in summary:
            continue
        rows, refs = summary[wl]["rows"], summary[wl]["refs"]
        if wl == "sessions":
            title = ("Sessions/s: %d sessions per round, %d in parallel, %d-byte messages, "
                     "1 message per session" % (w["count"], w["parallel"], w["length"]))
            rate_h, cpu_h = "sessions/s (median)", "CPU µs/session"
        else:
            title = ("MB/s: %d messages of %d bytes per round, %d sessions in parallel, "
                     "1 message per session (MB = 10^6 payload bytes)"
                     % (w["count"], w["length"], w["parallel"]))
            rate_h, cpu_h = "MB/s (median)", "CPU ms/MB"
        lines.append("### " + title)
        lines.append("")
        lines.append("| front end | %s | min–max | × direct | front-end %s | smtp-sink %s | failed msgs |"
                     % (rate_h, cpu_h, cpu_h))
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        d = 1 if wl == "mb" else 0
        cd = 0 if wl == "sessions" else 2
        for fe in [f["name"] for f in spec["frontends"]]:
            r = rows.get(fe)
            if r is None:
                continue
            fe_cpu = "— (none)" if fe == "direct" else fmt_num(r["fe_cpu"], cd)
            lines.append("| %s | %s | %s–%s | %s | %s | %s | %d%s |" % (
                fe, fmt_num(r["median"], d), fmt_num(r["min"], d), fmt_num(r["max"], d),
                "1.00" if fe == "direct" else fmt_num(r.get("x_direct"), 2),
                fe_cpu, fmt_num(r["sink_cpu"], cd), r["failed_msgs"],
                "" if r["failed_rounds"] == 0 else " (%d/%d rounds bad)" % (r["failed_rounds"], r["rounds"])))
        sink_all = [r["sink_cpu"] for r in rows.values() if r["sink_cpu"] is not None]
        if sink_all:
            lines.append("| smtp-sink (backend, reference) | — | — | — | %s | — | — |"
                         % fmt_num(statistics.median(sink_all), cd))
        for name, v in refs.items():
            lines.append("| %s (reference) | — | — | — | %s | — | — |" % (name, fmt_num(v, cd)))
        g, n = rows.get("smtpgate"), rows.get("nginx")
        if g and n:
            tr = g.get("x_nginx")
            cr = (g["fe_cpu"] / n["fe_cpu"]) if (g["fe_cpu"] and n["fe_cpu"]) else None
            lines.append("")
            lines.append("smtpgate / nginx: throughput × %s, front-end CPU per %s × %s"
                         % (fmt_num(tr, 2), "session" if wl == "sessions" else "MB", fmt_num(cr, 2)))
        lines.append("")
    lines.append("CPU columns: utime+stime from /proc/<pid>/stat summed over all measured rounds, "
                 "divided by the work done in them. Front-end CPU: %s."
                 % "; ".join("%s = %s" % (k, v) for k, v in fe_pids_desc.items()))
    lines.append("× direct: median over rounds of (front-end rate / direct rate in the same round).")
    return "\n".join(lines)


def problems(spec, records, meta):
    out = []
    for r in records:
        tag = "%s %s %s" % (r["frontend"], r["workload"], "warm-up" if r["warmup"] else "round %d" % r["round"])
        if r["rc"] != 0:
            out.append("%s: smtp-source exit %s: %s" % (tag, r["rc"], r["stderr"][-300:].replace("\n", " | ")))
        elif r["stderr"]:
            out.append("%s: smtp-source stderr: %s" % (tag, r["stderr"][-300:].replace("\n", " | ")))
        if r["delivered"] != r["count"]:
            out.append("%s: backend counted %s of %d messages" % (tag, r["delivered"], r["count"]))
        if r["dead"]:
            out.append("%s: process(es) %s exited during the round" % (tag, r["dead"]))
    for fe in spec["frontends"]:
        for p in fe["pids"]:
            if cpu_ticks(p) is None:
                out.append("%s: process %d is no longer running at the end" % (fe["name"], p))
    for name, path in spec.get("logs", {}).items():
        try:
            with open(path, errors="replace") as f:
                txt = f.read()
        except OSError:
            continue
        ls = [l for l in txt.splitlines() if l.strip()]
        if ls:
            shown = ls[:8]
            out.append("%s log (%s): %d non-empty line(s); first %d:" % (name, path, len(ls), len(shown)))
            out.extend("    " + l[:300] for l in shown)
    for s in spec.get("skipped", []):
        out.append(s)
    return out


def term_check(tc):
    """SIGTERM the front end after the last round; with no sessions open it should exit."""
    if not tc:
        return None
    pid, wait = tc["pid"], tc["wait"]
    if cpu_ticks(pid) is None:
        return {"ok": False, "msg": "%s (pid %d) was not running at the end" % (tc["name"], pid)}
    t0 = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while time.monotonic() - t0 < wait:
        if cpu_ticks(pid) is None:  # gone or zombie: exited
            return {"ok": True, "msg": "%s exited %.0f ms after SIGTERM" % (tc["name"], (time.monotonic() - t0) * 1e3)}
        time.sleep(0.05)
    listening = wait_smtp(tc["port"], 0.5)[0]
    os.kill(pid, signal.SIGKILL)
    return {"ok": False, "msg": "%s (pid %d) did NOT exit within %d s of SIGTERM with no sessions open "
            "(listener %s); killed with SIGKILL" % (tc["name"], pid, wait, "still accepting" if listening else "closed")}


def run(specfile):
    signal.signal(signal.SIGTERM, _on_term)
    with open(specfile) as f:
        spec = json.load(f)
    fes = spec["frontends"]
    records = []
    started = time.time()
    for wl, w in spec["workloads"].items():
        print("== workload %s: warm-up" % wl, flush=True)
        for fe in fes:
            rec = measure_one(spec, fe, wl, w["warmup"], warmup=True)
            rec["round"] = -1
            records.append(rec)
        for rnd in range(spec["rounds"]):
            k = rnd % len(fes)
            order = fes[k:] + fes[:k]  # rotate so no front end always runs right after another
            parts = []
            for fe in order:
                if any(cpu_ticks(p) is None for p in fe["pids"]):
                    parts.append("%s=DEAD" % fe["name"])
                    continue
                rec = measure_one(spec, fe, wl, w["count"])
                rec["round"] = rnd
                records.append(rec)
                unit = 1.0 if wl == "sessions" else w["length"] / 1e6
                ok = rec["rc"] == 0 and rec["delivered"] == rec["count"]
                if ok:
                    parts.append("%s=%s" % (fe["name"], fmt_num(rec["count"] * unit / rec["wall_s"], 1 if wl == "mb" else 0)))
                else:
                    parts.append("%s=FAILED(rc=%s delivered=%s/%d)" % (fe["name"], rec["rc"], rec["delivered"], rec["count"]))
            print("   round %d/%d %s: %s" % (rnd + 1, spec["rounds"], WORKLOADS[wl][1], "  ".join(parts)), flush=True)
    elapsed = time.time() - started
    summary = summarise(spec, records)
    meta = spec.get("meta", {})
    table = render(spec, summary, records, meta)
    # Liveness is judged before the shutdown check, which ends the front end on purpose.
    probs = problems(spec, records, meta)
    term = term_check(spec.get("term_check") or {})
    if term and not term["ok"]:
        probs.append(term["msg"])

    print()
    print(table)
    print()
    if term:
        print("Shutdown: " + term["msg"])
    if probs:
        print("Problems:")
        for p in probs:
            print("  " + p)
    else:
        print("Problems: none (every round exit 0, backend counted every message, front-end logs empty)")

    md = ["# smtpgate benchmark — latest run", ""]
    md.append("- date: %s" % time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)))
    for k, v in meta.items():
        md.append("- %s: %s" % (k, v))
    md.append("- rounds: %d per workload (order rotated each round), measuring time %.0f s"
              % (spec["rounds"], elapsed))
    md.append("- load average at end: %s" % open("/proc/loadavg").read().strip())
    md += ["", table, ""]
    if term:
        md += ["Shutdown: " + term["msg"], ""]
    md += ["## Problems", ""]
    md += (["- " + p if not p.startswith("    ") else p for p in probs] if probs else ["none"])
    md += ["", "## Raw rounds", "", "| workload | round | front end | msgs | delivered | seconds | rate | rc | fe ticks | sink ticks |",
           "|---|---:|---|---:|---:|---:|---:|---|---:|---:|"]
    for r in records:
        unit = 1.0 if r["workload"] == "sessions" else spec["workloads"][r["workload"]]["length"] / 1e6
        md.append("| %s | %s | %s | %d | %s | %.3f | %.1f | %s | %s | %s |" % (
            r["workload"], "warm-up" if r["warmup"] else r["round"] + 1, r["frontend"], r["count"],
            r["delivered"], r["wall_s"], r["count"] * unit / r["wall_s"], r["rc"], r["fe_ticks"], r["sink_ticks"]))
    md.append("")
    os.makedirs(os.path.dirname(spec["out_md"]), exist_ok=True)
    with open(spec["out_md"], "w") as f:
        f.write("\n".join(md))
    with open(spec["out_json"], "w") as f:
        json.dump({"spec": spec, "summary": summary, "records": records, "problems": probs}, f, indent=1)
    print("\nwrote %s and %s" % (spec["out_md"], spec["out_json"]))
    bad = (term and not term["ok"]) or any(r["rc"] != 0 or r["delivered"] != r["count"] for r in records) or any(
        "no longer running" in p for p in probs)
    return 1 if bad else 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "freeports":
        print(" ".join(str(p) for p in freeports(int(argv[2]))))
        return 0
    if cmd == "wait-smtp":
        ok, msg = wait_smtp(int(argv[2]), float(argv[3]))
        print(msg)
        return 0 if ok else 1
    if cmd == "children":
        print(" ".join(str(p) for p in children(int(argv[2]))))
        return 0
    if cmd == "sink-count":
        print(sink_count(argv[2]))
        return 0
    if cmd == "verify":
        return 0 if verify(int(argv[2]), argv[3], argv[4]) else 1
    if cmd == "run":
        return run(argv[2])
    print("unknown subcommand %r" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
