# Attested migration end to end, one real swtpm per host (issue 12 phase 2): a trusted
# migration carries the VM's labels and reports the time attestation took; every
# refusal leaves the VM running at the source: a destination not in the table, a
# destination replaying a quote made for another challenge, revoked and expired table
# entries, a forged table (sealvm does not start), trusted and open-mode hosts meeting,
# and a destination whose sealvm differs from the table by one byte. Each decision is
# in the audit logs, which `sealvm audit verify` finds intact.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/trust_lib.sh"

for h in hosta hostb hostc; do trust_host "$h"; done
make_table "$T/table.signed" 5
cat >"$T/policy.json" <<'J'
{"type":"sealvm-policy","version":1,"serial":1,"groups":{"cluster":["hosta","hostb","hostc"]},
 "roles":[{"name":"admins","principals":["uid:0"],"ops":["migrate"],"from":["@cluster"],"to":["@cluster"]},
          {"name":"cluster-peers","principals":["host:@cluster"],"ops":["migrate"],"from":["@cluster"],"to":["@cluster"]}]}
J
sign "$T/policy.json" "$T/policy.signed"
note "three hosts with their own swtpm; table serial 5 lists hosta and hostb"

VM="ws=4 rate=16 hb=250"
refused() { # SRC_NAME URI WHAT REGEX: the migration is refused, the VM runs on at the source
  local out
  out=$(ctl "$T/$1.sock" migrate "$2" --channels 1 2>&1) && fail "$3: migration accepted: $out"
  echo "$out" | grep -Eq -- "$4" || fail "$3: refusal does not say /$4/: $out"
  note "$3: $(echo "$out" | grep -o '"error": .*' | cut -c1-260)"
  still_running "$1"
}

# ---- a trusted migration, with labels ----
pb=$(free_port)
start_dst b1 "tls://127.0.0.1:$pb" $(trusted hostb)
start_src a1 64M "$VM" $(trusted hosta) --label tenant=acme --label tier=web
grep -q "OPEN MODE" "$T/a1.log" && fail "a trusted process announced open mode"
out=$(ctl "$T/a1.sock" migrate "tls://127.0.0.1:$pb" --channels 2) || fail "trusted migration failed: $out"
[ "$(report_field "$out" result)" = committed ] || fail "not committed: $out"
[ "$(report_field "$out" trust_mode)" = trusted ] || fail "report does not say trusted: $out"
[ "$(report_field "$out" attested)" = True ] || fail "destination not attested: $out"
[ "$(report_field "$out" dest_host)" = hostb ] || fail "wrong destination name: $out"
ams=$(report_field "$out" attest_ms)
python3 -c "import sys; sys.exit(0 if 0 < float('$ams') < 5000 else 1)" || fail "attest_ms $ams"
note "trusted migration committed: attest_ms=$ams total_ms=$(report_field "$out" total_ms)"
wait_exit "$SRC_PID" 20 || fail "source did not exit after the hand-over"
still_running b1
st=$(ctl "$T/b1.sock" status)
echo "$st" | grep -q '"tenant": "acme"' && echo "$st" | grep -q '"tier": "web"' ||
  fail "the labels did not travel with the VM: $st"
audit_has hosta '"event":"policy".*"allow":true.*"rule":"admins"'
audit_has hosta '"event":"attest".*"role":"source".*"peer":"hostb".*"ok":true'
audit_has hosta '"event":"migrate-start".*"role":"source"'
audit_has hosta '"event":"migrate-commit".*"role":"source"'
audit_has hostb '"event":"attest".*"role":"destination".*"peer":"hosta".*"ok":true'
audit_has hostb '"event":"policy".*"principal":"host:hosta".*"allow":true.*"rule":"cluster-peers"'
audit_has hostb '"event":"migrate-start".*"role":"destination"'
audit_has hostb '"event":"migrate-commit".*"role":"destination"'
ctl "$T/b1.sock" quit >/dev/null

# ---- refusals: the VM keeps running at the source ----
start_src a2 64M "$VM" $(trusted hosta) --label tenant=acme

note "a destination that is not in the table"
pc=$(free_port)
start_dst c1 "tls://127.0.0.1:$pc" $(trusted hostc)
grep -q "not in the integrity validation table" "$T/c1.log" || fail "hostc was not warned"
refused a2 "tls://127.0.0.1:$pc" "unknown host" "attestation of hostc failed \(host\).*not in the integrity validation table"
audit_has hosta '"event":"attest".*"peer":"hostc".*"ok":false.*"check":"host"'
wait_for "$T/c1.log" "refused the incoming VM" 10 || fail "hostc did not see the abort"
audit_has hostc '"event":"migrate-refused".*attestation of hostc failed'
ctl "$T/c1.sock" quit >/dev/null

note "a destination that replays a real quote made for another challenge"
"$S" attest quote --state-dir "$T/hostb.state" --nonce "$(openssl rand -hex 32)" --out "$T/old.ev" 2>"$T/q.err" ||
  fail "quote: $(cat "$T/q.err")"
pr=$(free_port)
bg rogue_dest "$ROOT/build/tools/rogue_dest" "$pr" "$CERTS/hostb" "$T/old.ev"
wait_for "$T/rogue_dest.log" "listening" 10 || fail "rogue destination did not start"
refused a2 "tls://127.0.0.1:$pr" "replayed quote" "attestation of hostb failed \(nonce\).*different challenge"
wait_for "$T/rogue_dest.log" "source said" 10 || fail "the rogue destination heard nothing back"
grep -q "source aborted: attestation of hostb failed (nonce)" "$T/rogue_dest.log" ||
  fail "the source did not tell the destination why: $(cat "$T/rogue_dest.log")"
grep -q "PAGES" "$T/rogue_dest.log" && fail "a page reached the rogue destination"

note "open-mode destination, trusted source"
po=$(free_port)
start_dst o1 "tls://127.0.0.1:$po" --state-dir "$T/open.state" --tls-dir "$CERTS/hostb"
grep -q "OPEN MODE" "$T/o1.log" || fail "open mode not announced"
refused a2 "tls://127.0.0.1:$po" "open-mode destination" "destination refused: this destination runs in open mode"
ctl "$T/o1.sock" quit >/dev/null
grep -q '"event":"start".*"mode":"open"' "$T/open.state/audit.jsonl" || fail "open mode not in the audit log"

ctl "$T/a2.sock" quit >/dev/null

note "trusted destination, open-mode source (on hosta: its audit log stays one verifiable sequence)"
start_dst b2 "tls://127.0.0.1:$pb" $(trusted hostb)
start_src o2 64M "$VM" --state-dir "$T/hosta.state" --tls-dir "$CERTS/hosta"
grep -q "OPEN MODE" "$T/o2.log" || fail "open mode not announced"
refused o2 "tls://127.0.0.1:$pb" "open-mode source" "destination refused: this destination runs in trusted mode and admits only attested sources"
audit_has hostb '"event":"migrate-refused".*runs in trusted mode'
ctl "$T/o2.sock" quit >/dev/null

note "a source of protocol version 2 (before the trust phase) is told which version to speak"
out=$("$ROOT/build/tools/rogue_source" "tls://127.0.0.1:$pb" "$CERTS/hosta" "$GUEST/counter.elf" v2 2>&1) &&
  fail "a v2 source was admitted: $out"
echo "$out" | grep -q "refused at HELLO (it speaks protocol 3): the source speaks migration protocol 2; this sealvm speaks 3" ||
  fail "v2 source: $out"
note "$out"

note "revoked and expired entries of the destination in the source's table"
make_table "$T/revoked.signed" 5 ',"revoked":true'
make_table "$T/expired.signed" 5 ',"expires":1000000000'
start_src a3 64M "$VM" $(trusted hosta "$T/revoked.signed")
refused a3 "tls://127.0.0.1:$pb" "revoked destination" "attestation of hostb failed \(host\).*revoked"
ctl "$T/a3.sock" quit >/dev/null
start_src a4 64M "$VM" $(trusted hosta "$T/expired.signed")
refused a4 "tls://127.0.0.1:$pb" "expired destination entry" "attestation of hostb failed \(host\).*expired"
ctl "$T/a4.sock" quit >/dev/null

note "a forged table: sealvm does not start"
sed 's/"trust": 2/"trust": 9/' "$T/table.signed" >"$T/forged.signed"
cmp -s "$T/table.signed" "$T/forged.signed" && fail "could not forge the table"
out=$("$S" run --kernel "$GUEST/memcheck.elf" --mem 64M --serial none $(trusted hosta "$T/forged.signed") 2>&1) &&
  fail "sealvm ran with a forged table"
echo "$out" | grep -q "forged.signed.*changed after it was signed" || fail "forged table: $out"

note "a destination whose sealvm differs from the table by one byte"
cp "$S" "$T/sealvm-rebuilt"
python3 - "$T/sealvm-rebuilt" <<'P' || fail "could not patch the binary"
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = b.find(b"OPEN MODE")
assert i > 0
b[i + 8] ^= 0x20          # "OPEN MODE" -> "OPEN MODe": one byte, still runs
open(p, "wb").write(bytes(b))
P
[ "$(cmp -l "$S" "$T/sealvm-rebuilt" | wc -l)" -eq 1 ] || fail "the rebuilt binary differs in more than one byte"
kill "$DST_PID"; wait "$DST_PID" 2>/dev/null
bg b3 "$T/sealvm-rebuilt" run --incoming "tls://127.0.0.1:$pb" --serial "file:$T/b3.out" --control "$T/b3.sock" \
  $(trusted hostb)
wait_for "$T/b3.log" "waiting for an incoming VM" 20 || fail "the rebuilt destination did not start"
start_src a5 64M "$VM" $(trusted hosta) --label tenant=acme
refused a5 "tls://127.0.0.1:$pb" "one byte changed" "attestation of hostb failed \(measurement\).*sealvm-rebuilt\) is not allowed for hostb"
audit_has hosta '"event":"attest".*"peer":"hostb".*"ok":false.*"check":"measurement"'
audit_has hosta '"event":"migrate-abort".*"role":"source"'
ctl "$T/b3.sock" quit >/dev/null
ctl "$T/a5.sock" quit >/dev/null
sleep 0.5

for h in hosta hostb hostc open; do
  out=$("$S" audit verify --state-dir "$T/$h.state" 2>&1) || fail "audit log of $h: $out"
  note "$h: $out"
done
echo ok
