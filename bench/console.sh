#!/usr/bin/env bash
# make bench BENCH=console: what the owner's console costs a live migration (issue 14).
#
# The same guest (console.elf seq=1: a numbered serial sequence printed as fast as the
# emulated vCPU can, so the console is never quiet by itself) in a 256 MiB VM migrates
# over TLS (2 channels) RUNS times (default 10) with --console at both ends and a
# read-write client attached, and RUNS times without a console (--serial none: a serial
# file on this disk would make the destination's outcome fsync pay for its writes),
# alternating which goes first in each pair. Per migration: downtime and bytes on the
# wire (the ctl report); with the console also the time the source spent sealing its
# state inside the pause, the time the destination spent loading it before READY
# (their log lines), and at the client the reconnect time and the console gap (last
# serial byte from the old host to the first from the new). Writes
# build/bench/console.json and build/bench/console.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/sealvm ] && [ -f build/guest/console.elf ] || { echo "bench: run make first" >&2; exit 1; }
scripts/mkcerts.sh build/certs
C=build/certs
B=build/bench
RUNS=${RUNS:-10}
MEM=${MEM:-256M}
mkdir -p "$B"
W=$(mktemp -d /tmp/console-bench.XXXXXX)
cp "${SEALVM_BIN:-build/sealvm}" "$W/sealvm"   # a rebuild meanwhile does not change what is measured
S=$W/sealvm
pids=()
stop_all() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop_all; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT

port() { local p; while :; do p=$(( 20000 + RANDOM % 20000 )); ss -ltn | grep -q ":$p " || { echo $p; return; }; done; }
wait_for() { local n=$(( $3 * 10 )); while [ $n -gt 0 ]; do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; n=$((n - 1)); done; return 1; }

# one MODE (console|plain) migration; appends a JSON line to $W/runs.jsonl
one() {
  local mode=$1 i=$2 d=$W/$1-$2 cp cb mb
  mkdir -p "$d"
  cp=$(port); cb=$(port); mb=$(port)
  while [ "$cb" = "$cp" ] || [ "$mb" = "$cp" ] || [ "$mb" = "$cb" ]; do cb=$(port); mb=$(port); done
  if [ "$mode" = console ]; then
    nice -n 10 "$S" run --kernel build/guest/console.elf --cmdline seq=1 --mem "$MEM" --tls-dir "$C/hosta" \
      --console "tls://127.0.0.1:$cp" --owner-ca "$C/ownerca/ca.pem" --control "$d/a.sock" --state-dir "$d/a.state" \
      >"$d/a.log" 2>&1 &
    pids+=($!)
    nice -n 10 "$S" run --incoming "tls://127.0.0.1:$mb" --tls-dir "$C/hostb" --console "tls://127.0.0.1:$cb" \
      --owner-ca "$C/ownerca/ca.pem" --control "$d/b.sock" --state-dir "$d/b.state" >"$d/b.log" 2>&1 &
    pids+=($!)
    wait_for "$d/a.log" "owner's console on port" 10 || true
    mkfifo "$d/in"
    sleep 600 >"$d/in" &
    pids+=($!)
    "$S" console "tls://127.0.0.1:$cp" --tls-dir "$C/owner" <"$d/in" >/dev/null 2>"$d/client.err" &
    pids+=($!)
    wait_for "$d/client.err" "attached read-write" 10 || true
  else
    nice -n 10 "$S" run --kernel build/guest/console.elf --cmdline seq=1 --mem "$MEM" --tls-dir "$C/hosta" \
      --serial none --control "$d/a.sock" --state-dir "$d/a.state" >"$d/a.log" 2>&1 &
    pids+=($!)
    nice -n 10 "$S" run --incoming "tls://127.0.0.1:$mb" --tls-dir "$C/hostb" --serial none \
      --control "$d/b.sock" --state-dir "$d/b.state" >"$d/b.log" 2>&1 &
    pids+=($!)
  fi
  wait_for "$d/b.log" "waiting for an incoming VM" 10 || true
  sleep 1.5   # the guest has filled the scrollback (64 KiB) and the client keeps up
  "$S" ctl --timeout 60 "$d/a.sock" migrate "tls://127.0.0.1:$mb" >"$d/mig.json" 2>&1 || true
  [ "$mode" = plain ] || wait_for "$d/client.err" "console gap" 10 || true
  [ -n "${KEEP:-}" ] || true
  sleep 0.2
  python3 - "$mode" "$i" "$d" >>"$W/runs.jsonl" <<'P'
import json, re, sys
mode, i, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    m = json.load(open(d + "/mig.json"))
except (OSError, ValueError):
    m = {}
if m.get("result") != "committed":
    why = open(d + "/mig.json").read()[-300:] if m == {} else m.get("error", m.get("result"))
    print(json.dumps({"mode": mode, "run": i, "failed": str(why)}))
    sys.exit(0)
r = {"mode": mode, "run": i, "downtime_ms": m["downtime_ms"], "bytes": m["bytes"],
     "total_ms": m["total_ms"], "dest_load_ms": m["dest_load_ms"], "dest_resume_ms": m["dest_resume_ms"]}
def grab(path, pat):
    try:
        x = re.search(pat, open(path).read())
        return float(x.group(1)) if x else None
    except OSError:
        return None
if mode == "console":
    r["seal_ms"] = grab(d + "/a.log", r"sealed for the migration: \d+ bytes in ([\d.]+) ms")
    r["sealed_bytes"] = grab(d + "/a.log", r"sealed for the migration: (\d+) bytes")
    r["load_ms"] = grab(d + "/b.log", r"incoming VM loaded: \d+ bytes in ([\d.]+) ms")
    r["reconnect_ms"] = grab(d + "/client.err", r"read-write in ([\d.]+) ms")
    r["gap_ms"] = grab(d + "/client.err", r"console gap ([\d.]+) ms")
print(json.dumps(r))
P
  stop_all
}

: >"$W/runs.jsonl"
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) -eq 1 ]; then one console "$i"; one plain "$i"; else one plain "$i"; one console "$i"; fi
  echo "bench console: run $i of $RUNS done" >&2
done
python3 - "$W/runs.jsonl" "$B/console.json" "$B/console.md" "$MEM" <<'P'
import json, statistics as st, sys, time
allruns = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(allruns, open(sys.argv[2], "w"), indent=1)
failed = [r for r in allruns if "failed" in r]
runs = [r for r in allruns if "failed" not in r]
def col(mode, k):
    return [r[k] for r in runs if r["mode"] == mode and r.get(k) is not None]
def fmt(v, unit):
    if not v:
        return "n/a"
    return "%.2f %s (%.2f–%.2f)" % (st.median(v), unit, min(v), max(v)) if unit == "ms" else \
           "%d (%d–%d)" % (st.median(v), min(v), max(v))
pairs = {}
for r in runs:
    pairs.setdefault(r["run"], {})[r["mode"]] = r
dd = [p["console"]["downtime_ms"] - p["plain"]["downtime_ms"] for p in pairs.values() if len(p) == 2]
db = [p["console"]["bytes"] - p["plain"]["bytes"] for p in pairs.values() if len(p) == 2]
out = ["# What the owner's console costs a live migration",
       "",
       "%s, this machine (2 cores, nested emulating KVM, shared with other work: load average %s). %s VM, console.elf seq=1 (serial output as fast "
       "as the vCPU emits it), TLS, 2 channels; %d migrations with --console at both ends and a read-write client "
       "attached, %d without a console, alternating. Medians (min–max)." % (
           time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), open("/proc/loadavg").read().split()[1], sys.argv[4], len(col("console", "bytes")),
           len(col("plain", "bytes"))),
       "",
       "| | with console | without |",
       "|---|---|---|",
       "| downtime | %s | %s |" % (fmt(col("console", "downtime_ms"), "ms"), fmt(col("plain", "downtime_ms"), "ms")),
       "| bytes on the wire | %s | %s |" % (fmt(col("console", "bytes"), "B"), fmt(col("plain", "bytes"), "B")),
       "| destination: END → loaded (before READY) | %s | %s |" % (fmt(col("console", "dest_load_ms"), "ms"),
                                                                  fmt(col("plain", "dest_load_ms"), "ms")),
       "| destination: COMMIT → running (durable decision) | %s | %s |" % (
           fmt(col("console", "dest_resume_ms"), "ms"), fmt(col("plain", "dest_resume_ms"), "ms")),
       "",
       "Paired (same run) difference, console minus without: downtime %s; bytes %s." % (fmt(dd, "ms"), fmt(db, "B")),
       "",
       "Inside the pause, measured by sealvm itself: sealing the console state at the source %s "
       "(%s bytes sealed); opening and loading it at the destination %s." % (
           fmt(col("console", "seal_ms"), "ms"), fmt(col("console", "sealed_bytes"), "B"),
           fmt(col("console", "load_ms"), "ms")),
       "",
       "At the client: reconnect to the new host (redirect received → WELCOME) %s; console gap (last serial byte "
       "from the old host → first from the new) %s." % (fmt(col("console", "reconnect_ms"), "ms"),
                                                         fmt(col("console", "gap_ms"), "ms")),
       ""]
if failed:
    out += ["Failed migrations (left out above): %d: %s" % (len(failed), "; ".join(
        "%s run %d: %s" % (r["mode"], r["run"], r["failed"][:120]) for r in failed)), ""]
open(sys.argv[3], "w").write("\n".join(out))
print("\n".join(out))
P
