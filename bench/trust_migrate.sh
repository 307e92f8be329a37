#!/usr/bin/env bash
# What trust adds to a migration (issue 12), part of `make bench BENCH=trust`: the same
# guest migrated host A -> host B, alternately in open mode and in trusted mode (one
# swtpm per host, table and policy signed by a fresh administrator key), RUNS pairs
# (default 5) in one run. Writes build/bench/trust_migrate.json and appends a table to
# build/bench/trust.md: total time, the source's attest_ms, downtime (medians, min-max).
set -euo pipefail
cd "$(dirname "$0")/.."
S=build/sealvm
C=build/certs
B=build/bench
RUNS=${RUNS:-5}
mkdir -p "$B"
scripts/mkcerts.sh "$C"
W=$(mktemp -d /tmp/trust-migrate-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT

port_pair() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 20000 ))
    ss -ltn | grep -Eq ":($p|$((p + 1))) " || { echo $p; return; }
  done
}
waitfor() { for _ in $(seq 1 "$3"0); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "bench: timed out: $1" >&2; tail -n 5 "$1" >&2; return 1; }

"$S" admin keygen --out "$W/admin.pem" >/dev/null
for h in hosta hostb; do
  mkdir -p "$W/$h.tpm"
  swtpm_setup --tpm2 --tpmstate "$W/$h.tpm" --createek --overwrite >"$W/$h.setup.log" 2>&1 || { cat "$W/$h.setup.log"; exit 1; }
  p=$(port_pair)
  swtpm socket --tpm2 --tpmstate "dir=$W/$h.tpm" --server "type=tcp,port=$p,bindaddr=127.0.0.1" \
    --ctrl "type=tcp,port=$((p + 1)),bindaddr=127.0.0.1" --flags not-need-init,startup-clear &
  pids+=($!)
  for _ in $(seq 50); do ss -ltn | grep -q "127.0.0.1:$p " && break; sleep 0.1; done
  "$S" host init --state-dir "$W/$h.state" --tpm "swtpm:host=127.0.0.1,port=$p" --name "$h" \
    --admin-key "$W/admin.pub.pem" >/dev/null
done
js() { python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }
cat >"$W/table.json" <<J
{"type":"sealvm-table","version":1,"serial":1,"sealvm":["$(sha256sum "$S" | cut -d' ' -f1)"],
 "hosts":[{"name":"hosta","ak":$(js "$W/hosta.state/ak.pem"),"trust":2},{"name":"hostb","ak":$(js "$W/hostb.state/ak.pem"),"trust":2}]}
J
cat >"$W/policy.json" <<'J'
{"type":"sealvm-policy","version":1,"serial":1,
 "roles":[{"name":"admins","principals":["uid:0"],"ops":["migrate"]},
          {"name":"peers","principals":["host:hosta","host:hostb"],"ops":["migrate"]}]}
J
"$S" admin sign --key "$W/admin.pem" --out "$W/table.signed" "$W/table.json" >/dev/null
"$S" admin sign --key "$W/admin.pem" --out "$W/policy.signed" "$W/policy.json" >/dev/null

one() { # MODE N: one migration, its report in $W/MODE.N.json
  local mode=$1 n=$2 port a b trust_a=() trust_b=()
  if [ "$mode" = trusted ]; then
    trust_a=(--table "$W/table.signed" --policy "$W/policy.signed")
    trust_b=(--table "$W/table.signed" --policy "$W/policy.signed")
  fi
  for try in 1 2 3; do   # a port another program took meanwhile: pick another
    port=$(port_pair)
    rm -f "$W/a.out" "$W/a.log" "$W/b.log"
    nice -n 10 "$S" run --incoming "tls://127.0.0.1:$port" --tls-dir "$C/hostb" --state-dir "$W/hostb.state" \
      --serial none --control "$W/b.sock" "${trust_b[@]}" >"$W/b.log" 2>&1 &
    b=$!; pids+=($b)
    waitfor "$W/b.log" "waiting for an incoming VM" 20 && break
    [ $try -lt 3 ] || exit 1
  done
  "$S" run --kernel build/guest/memcheck.elf --cmdline "ws=16 rate=16 light=1" --mem 256M --tls-dir "$C/hosta" \
    --state-dir "$W/hosta.state" --serial "file:$W/a.out" --control "$W/a.sock" --label tenant=bench \
    "${trust_a[@]}" >"$W/a.log" 2>&1 &
  a=$!; pids+=($a)
  waitfor "$W/a.out" "^READY" 120 || exit 1
  "$S" ctl --timeout 120 "$W/a.sock" migrate "tls://127.0.0.1:$port" >"$W/$mode.$n.json"
  wait "$a" || true
  "$S" ctl "$W/b.sock" quit >/dev/null 2>&1 || true
  wait "$b" || true
}

for n in $(seq 1 "$RUNS"); do
  one open "$n"
  one trusted "$n"
done

python3 - "$W" "$RUNS" "$B/trust_migrate.json" "$B/trust.md" <<'P'
import json, statistics, sys, time
w, runs, out, md = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
res = {m: [json.load(open("%s/%s.%d.json" % (w, m, n))) for n in range(1, runs + 1)] for m in ("open", "trusted")}
for m, rs in res.items():
    for r in rs:
        assert r["result"] == "committed", r
    assert all(r["trust_mode"] == m for r in rs)
def s(m, k):
    v = [float(r[k]) for r in res[m]]
    return statistics.median(v), min(v), max(v)
summary = {m: {k: s(m, k) for k in ("total_ms", "admit_ms", "attest_ms", "downtime_ms")} for m in res}
json.dump({"runs": runs, "summary": summary, "reports": res}, open(out, "w"), indent=1)
d = summary["trusted"]["admit_ms"][0] - summary["open"]["admit_ms"][0]
with open(md, "a") as f:
    f.write("\n## A migration with and without trust (%s, %d pairs, alternating)\n\n" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), runs))
    f.write("memcheck ws=16 light=1 rate=16, 256 MiB VM, TLS, default channels; one swtpm per host.\n\n")
    f.write("| mode | total ms | admit_ms (connect to admitted) | attest_ms (source) | downtime ms |\n|---|---|---|---|---|\n")
    for m in ("open", "trusted"):
        f.write("| %s | %s |\n" % (m, " | ".join("%.1f (%.1f-%.1f)" % summary[m][k] for k in ("total_ms", "admit_ms", "attest_ms", "downtime_ms"))))
    f.write("\nTrust adds %.1f ms to the median time from connect to admission (policy decision, mutual attestation,\n"
            "audit records); everything after admission is the same in both modes. Load average during the run: %s.\n"
            % (d, open("/proc/loadavg").read().split()[0]))
print(open(md).read())
P
