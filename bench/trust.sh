#!/usr/bin/env bash
# make bench BENCH=trust: what each trust step costs on this machine (issue 12).
# Starts its own swtpm (state under a temporary directory, free loopback ports), runs
# build/tools/trust_bench (RUNS rounds, default 30) and writes build/bench/trust.json and
# build/bench/trust.md. Timings are medians of wall-clock time, swtpm included. Then
# bench/trust_migrate.sh migrates one guest with and without trust (table appended).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test >/dev/null
[ -x build/tools/trust_bench ] && [ -x build/sealvm ] || { echo "bench: run make first" >&2; exit 1; }
B=build/bench
mkdir -p "$B"
W=$(mktemp -d /tmp/trust-bench.XXXXXX)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
mkdir -p "$W/tpm"
swtpm_setup --tpm2 --tpmstate "$W/tpm" --createek --overwrite >"$W/setup.log" 2>&1 || { cat "$W/setup.log"; exit 1; }
while :; do
  p=$(( 20000 + RANDOM % 20000 ))
  ss -ltn | grep -Eq ":($p|$((p + 1))) " || break
done
swtpm socket --tpm2 --tpmstate "dir=$W/tpm" --server "type=tcp,port=$p,bindaddr=127.0.0.1" \
  --ctrl "type=tcp,port=$((p + 1)),bindaddr=127.0.0.1" --flags not-need-init,startup-clear &
pid=$!
for _ in $(seq 50); do ss -ltn | grep -q "127.0.0.1:$p " && break; sleep 0.1; done
mkdir -p "$W/work"
nice -n 10 build/tools/trust_bench --tpm "swtpm:host=127.0.0.1,port=$p" --dir "$W/work" --rounds "${RUNS:-30}" \
  --sealvm build/sealvm >"$B/trust.json"
python3 - "$B/trust.json" "$B/trust.md" <<'P'
import json, sys, time
r = json.load(open(sys.argv[1]))
rows = [
    ("hash the sealvm executable (%.1f MB)" % (r["sealvm_bytes"] / 1e6), r["exe_sha256_ms"], "ms"),
    ("first trusted start (verify table+policy, measure 2 events into the PCR, open audit log)", r["first_trusted_start_ms"], "ms"),
    ("later trusted start (nothing new to measure)", r["trusted_start_ms"], "ms"),
    ("TPM quote (connect, TPM2_Quote, disconnect)", r["quote_ms"], "ms"),
    ("make evidence (lock + read event log, quote, encode)", r["make_evidence_ms"], "ms"),
    ("verify evidence (all checks)", r["verify_ms"], "ms"),
    ("  of which: quote parse + ECDSA signature", r["verify_signature_ms"], "ms"),
    ("  of which: event-log replay", r["verify_replay_ms"], "ms"),
    ("  of which: table lookup", r["verify_table_lookup_ms"], "ms"),
    ("policy decision (3 rules)", r["policy_check_us"], "us"),
    ("policy decision (1000 roles, none matching)", r["policy_check_1000_roles_us"], "us"),
    ("audit append (fdatasync)", r["audit_append_ms"], "ms"),
    ("audit head signed with the Ed25519 audit key", r["audit_signed_head_ms"], "ms"),
    ("audit head with TPM counter increment + NV_Certify", r["audit_tpm_head_ms"], "ms"),
]
mutual = 2 * (r["make_evidence_ms"] + r["verify_ms"])
with open(sys.argv[2], "w") as f:
    f.write("# Trust steps on this machine (%s, median of %d)\n\n" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), r["rounds"]))
    f.write("| step | time |\n|---|---|\n")
    for name, v, unit in rows:
        f.write("| %s | %.3f %s |\n" % (name, v, unit))
    f.write("\nMutual attestation, both directions, CPU and TPM work only (no network round trips): %.2f ms.\n" % mutual)
    f.write("Event log: %d lines; evidence: %d bytes.\n" % (r["event_log_lines"], r["evidence_bytes"]))
print(open(sys.argv[2]).read())
P
# and what trust adds to a whole migration, open and trusted side by side
bench/trust_migrate.sh
