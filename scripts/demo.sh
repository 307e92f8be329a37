#!/usr/bin/env bash
# make demo: boot the memory-checker guest on "host A", migrate it over mutually
# authenticated TLS 1.3 to "host B" while it dirties memory, and show that it
# carries on there with every page intact.
# make demo-trust (scripts/demo.sh --trust): the same with one software TPM per host,
# the administrator's signed table and policy, mutual attestation before any page
# moves, and each host's audit log.
set -euo pipefail
TRUST=
[ "${1:-}" = --trust ] && TRUST=1
cd "$(dirname "$0")/.."
B=build
D=$(mktemp -d /tmp/sealvm-demo.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
waitfor() { for _ in $(seq 1 "$3"0); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timed out: $1"; exit 1; }

say "1. A test CA and two host identities (scripts/mkcerts.sh -> $B/certs)"
scripts/mkcerts.sh "$B/certs"
ls "$B/certs/hosta" "$B/certs/hostb"

trust_a=() trust_b=() label=()
if [ -n "$TRUST" ]; then
  say "1b. Trust: an administrator key, a software TPM per host (swtpm), host init"
  $B/sealvm admin keygen --out "$D/admin.pem"
  for h in hosta hostb; do
    mkdir -p "$D/$h.tpm"
    swtpm_setup --tpm2 --tpmstate "$D/$h.tpm" --createek --overwrite >"$D/$h.setup.log" 2>&1
    while :; do
      p=$(( 20000 + RANDOM % 20000 ))
      ss -ltn | grep -Eq ":($p|$((p + 1))) " || break
    done
    swtpm socket --tpm2 --tpmstate "dir=$D/$h.tpm" --server "type=tcp,port=$p,bindaddr=127.0.0.1" \
      --ctrl "type=tcp,port=$((p + 1)),bindaddr=127.0.0.1" --flags not-need-init,startup-clear &
    pids+=($!)
    for _ in $(seq 50); do ss -ltn | grep -q "127.0.0.1:$p " && break; sleep 0.1; done
    $B/sealvm host init --state-dir "$D/$h.state" --tpm "swtpm:host=127.0.0.1,port=$p" --name "$h" \
      --admin-key "$D/admin.pub.pem"
  done
  say "1c. The administrator signs the integrity validation table (hosts, their TPM keys, this sealvm) and the policy"
  js() { python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }
  cat >"$D/table.json" <<J
{"type":"sealvm-table","version":1,"serial":1,"sealvm":["$(sha256sum $B/sealvm | cut -d' ' -f1)"],
 "hosts":[{"name":"hosta","ak":$(js "$D/hosta.state/ak.pem"),"trust":2},{"name":"hostb","ak":$(js "$D/hostb.state/ak.pem"),"trust":2}]}
J
  cat >"$D/policy.json" <<'J'
{"type":"sealvm-policy","version":1,"serial":1,"groups":{"cluster":["hosta","hostb"]},
 "sensitive":[{"class":"secret"}],
 "roles":[{"name":"operators","principals":["uid:0"],"ops":["migrate","snapshot"],"from":["@cluster"],"to":["@cluster"]},
          {"name":"cluster-peers","principals":["host:@cluster"],"ops":["migrate"],"from":["@cluster"],"to":["@cluster"]}]}
J
  $B/sealvm admin sign --key "$D/admin.pem" --out "$D/table.signed" "$D/table.json"
  $B/sealvm admin sign --key "$D/admin.pem" --out "$D/policy.signed" "$D/policy.json"
  cat "$D/policy.json"
  trust_a=(--table "$D/table.signed" --policy "$D/policy.signed")
  trust_b=("${trust_a[@]}")
  label=(--label tenant=demo --label class=secret)
fi

port=$(( 30000 + RANDOM % 10000 ))
say "2. Host B waits for a VM on tls://127.0.0.1:$port"
$B/sealvm run --incoming "tls://127.0.0.1:$port" --tls-dir "$B/certs/hostb" --state-dir "$D/hostb.state" \
  --serial "file:$D/hostb.serial" --control "$D/hostb.sock" "${trust_b[@]}" >"$D/hostb.log" 2>&1 &
pids+=($!)
waitfor "$D/hostb.log" "waiting for an incoming VM" 10
cat "$D/hostb.log"

say "3. Host A boots the memory checker (32 MiB working set, rewriting pages at 64 MB/s)"
$B/sealvm run --kernel $B/guest/memcheck.elf --cmdline "ws=32 rate=64 light=1 hb=500" --mem 512M \
  --tls-dir "$B/certs/hosta" --state-dir "$D/hosta.state" \
  --serial "file:$D/hosta.serial" --control "$D/hosta.sock" "${trust_a[@]}" "${label[@]}" >"$D/hosta.log" 2>&1 &
src=$!; pids+=($src)
waitfor "$D/hosta.serial" "^HB seq=3 " 120
tail -n 3 "$D/hosta.serial"

if [ -n "$TRUST" ]; then
  say "3b. The VM is labelled class=secret, which the policy marks sensitive: tcp:// is refused before anything is sent"
  $B/sealvm ctl "$D/hosta.sock" migrate "tcp://127.0.0.1:$port" --insecure || true
  say "4. Attested live migration A -> B: policy at A, mutual attestation, policy at B, then TLS 1.3 pre-copy"
else
  say "4. Live migration A -> B over TLS 1.3 (both sides verify certificates)"
fi
$B/sealvm ctl "$D/hosta.sock" migrate "tls://127.0.0.1:$port" --downtime-ms 50
wait "$src" && echo "host A's sealvm exited 0 after the hand-over"
last=$(grep -Eo '^HB seq=[0-9]+' "$D/hosta.serial" | tail -n 1)

say "5. The guest carries on at host B (host A stopped at '$last')"
sleep 3
tail -n 4 "$D/hostb.serial"
if grep -q '^BAD' "$D/hostb.serial"; then echo "corrupt pages found!"; exit 1; fi
echo "no corrupt page: every page holds its index and the version the guest expects"
$B/sealvm ctl "$D/hostb.sock" status
$B/sealvm ctl "$D/hostb.sock" quit >/dev/null
if [ -n "$TRUST" ]; then
  sleep 0.5
  say "6. Each host's audit log: the decisions, then its integrity (hash chain, signed heads, TPM counter)"
  for h in hosta hostb; do
    echo "-- $h"
    grep -E '"event":"(attest|policy|migrate-[a-z]+)"' "$D/$h.state/audit.jsonl" |
      python3 -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l)
    print("  %-16s %s" % (r["event"], r.get("reason", "")[:150]))'
    $B/sealvm audit verify --state-dir "$D/$h.state"
  done
fi
say "Done. Logs and serial output in $D"
