# The migration policy at both ends, and the audit log of every decision (issue 12
# phase 2), with one real swtpm per host. The principal at the source is the control
# socket's peer: `sealvm ctl` runs as root and as uid 4242 (setpriv, the socket made
# reachable by the test). Allowed and denied at the source (uid 4242 may move tenant
# acme's VMs only) and at the destination (hosta may not send tier=restricted VMs);
# snapshots and restores judged by the VM's labels, which travel inside the snapshot;
# a sensitive VM never goes over tcp://, at either end, while an ordinary one may
# (attested, unbound); an operator's `resume --force` and an owner's console attach
# are recorded; the logs verify, and an edited decision is caught.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/trust_lib.sh"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"

for h in hosta hostb; do trust_host "$h"; done
make_table "$T/table.signed" 1
cat >"$T/policy.json" <<'J'
{"type":"sealvm-policy","version":1,"serial":1,"groups":{"cluster":["hosta","hostb"]},
 "sensitive":[{"class":"secret"}],
 "roles":[{"name":"admins","principals":["uid:0"],"ops":["migrate"],"from":["@cluster"],"to":["@cluster"]},
          {"name":"admins-local","principals":["uid:0"],"ops":["snapshot","restore"]},
          {"name":"tenant-acme","principals":["uid:4242"],"ops":["migrate"],"labels":{"tenant":"acme"},
           "from":["@cluster"],"to":["@cluster"]},
          {"name":"cluster-peers","principals":["host:@cluster"],"ops":["migrate"],"from":["@cluster"],"to":["@cluster"]}],
 "deny":[{"name":"hosta-may-not-send-restricted","principals":["host:hosta"],"ops":["migrate"],"labels":{"tier":"restricted"}},
         {"name":"frozen-stays-frozen","principals":["*"],"ops":["restore"],"labels":{"state":"frozen"}}]}
J
sign "$T/policy.json" "$T/policy.signed"

VM="ws=4 rate=16 hb=250"
chmod 755 "$T"
as_4242() { # SOCK ARGS...: sealvm ctl as uid 4242 (the socket opened to it for the test)
  local sock=$1; shift
  chmod 666 "$sock"
  setpriv --reuid 4242 --regid 4242 --clear-groups "$SEALVM" ctl --timeout 120 "$sock" "$@"
}
denied() { # WHAT REGEX CMD...: the command fails saying REGEX
  local what=$1 re=$2 out; shift 2
  out=$("$@" 2>&1) && fail "$what: allowed: $out"
  echo "$out" | grep -Eq -- "$re" || fail "$what: refusal does not say /$re/: $out"
  note "$what: $(echo "$out" | grep -o '"error": .*' | cut -c1-240)"
}
committed() { # WHAT OUTPUT
  echo "$2" | grep -q '"result": "committed"' || fail "$1: not committed: $2"
}

# ---- source: the principal is the control socket's peer ----
pb=$(free_port)
start_dst b1 "tls://127.0.0.1:$pb" $(trusted hostb)
start_src a1 64M "$VM" $(trusted hosta) --label tenant=globex
denied "uid 4242 migrates tenant globex's VM" \
  "policy denies uid:4242 to migrate VM \[tenant=globex\] from hosta to hostb: no role allows it \(rule default-deny\)" \
  as_4242 "$T/a1.sock" migrate "tls://127.0.0.1:$pb"
still_running a1
audit_has hosta '"event":"policy".*"principal":"uid:4242".*"allow":false.*"rule":"default-deny"'
grep -q '"event":"attest"' "$T/hosta.state/audit.jsonl" && fail "a denied migration reached the attestation"
denied "uid 4242 snapshots it" "policy denies uid:4242 to snapshot VM \[tenant=globex\].*default-deny" \
  as_4242 "$T/a1.sock" snapshot "$T/a1.snap"
[ -e "$T/a1.snap" ] && fail "a denied snapshot was written"
out=$(ctl "$T/a1.sock" migrate "tls://127.0.0.1:$pb") || fail "root's migration failed: $out"
committed "root migrates tenant globex's VM" "$out"
audit_has hosta '"event":"policy".*"principal":"uid:0".*"labels":\{"tenant":"globex"\}.*"allow":true.*"rule":"admins"'
audit_has hostb '"event":"policy".*"principal":"host:hosta".*"allow":true.*"rule":"cluster-peers"'
ctl "$T/b1.sock" quit >/dev/null
wait_exit "$DST_PID" 20 || fail "b1 did not quit"   # its port is reused next

start_dst b2 "tls://127.0.0.1:$pb" $(trusted hostb)
start_src a2 64M "$VM" $(trusted hosta) --label tenant=acme
out=$(ctl "$T/a2.sock" snapshot "$T/a2.snap") || fail "root's snapshot failed: $out"
audit_has hosta '"event":"policy".*"op":"snapshot".*"allow":true.*"rule":"admins-local"'
audit_has hosta '"event":"snapshot".*"ok":true'
out=$(as_4242 "$T/a2.sock" migrate "tls://127.0.0.1:$pb") || fail "uid 4242 could not move tenant acme's VM: $out"
committed "uid 4242 migrates tenant acme's VM" "$out"
audit_has hosta '"event":"policy".*"principal":"uid:4242".*"allow":true.*"rule":"tenant-acme"'
ctl "$T/b2.sock" quit >/dev/null

# ---- restore: the labels come from inside the (sealed) snapshot ----
bg r2 "$SEALVM" run --restore "$T/a2.snap" --serial "file:$T/r2.out" --control "$T/r2.sock" $(trusted hosta)
wait_for "$T/r2.out" "^HB" 30 || fail "the restored VM does not run: $(cat "$T/r2.log")"
ctl "$T/r2.sock" status | grep -q '"tenant": "acme"' || fail "the snapshot did not keep the labels"
audit_has hosta '"event":"policy".*"op":"restore".*"labels":\{"tenant":"acme"\}.*"allow":true'
audit_has hosta '"event":"restore".*"ok":true'
ctl "$T/r2.sock" quit >/dev/null

# ---- destination: hosta may not send restricted VMs ----
start_dst b3 "tls://127.0.0.1:$pb" $(trusted hostb)
start_src a3 64M "$VM" $(trusted hosta) --label tier=restricted --label state=frozen
denied "hosta sends a restricted VM" \
  "destination refused: policy denies host:hosta to migrate VM \[.*tier=restricted.*\] from hosta to hostb: deny rule \"hosta-may-not-send-restricted\"" \
  ctl "$T/a3.sock" migrate "tls://127.0.0.1:$pb"
still_running a3
audit_has hosta '"event":"policy".*"principal":"uid:0".*"allow":true.*"rule":"admins"'
audit_has hostb '"event":"policy".*"principal":"host:hosta".*"allow":false.*"rule":"hosta-may-not-send-restricted"'
audit_has hostb '"event":"migrate-refused".*hosta-may-not-send-restricted'
ctl "$T/b3.sock" quit >/dev/null
ctl "$T/a3.sock" snapshot "$T/a3.snap" >/dev/null || fail "snapshot of the frozen VM"
ctl "$T/a3.sock" quit >/dev/null
out=$("$SEALVM" run --restore "$T/a3.snap" --serial none $(trusted hosta) 2>&1) && fail "a frozen VM was restored"
echo "$out" | grep -q 'policy denies uid:0 to restore VM \[.*state=frozen.*\].*deny rule "frozen-stays-frozen"' ||
  fail "frozen restore: $out"
note "restore of a frozen VM: $out"
audit_has hosta '"event":"policy".*"op":"restore".*"allow":false.*"rule":"frozen-stays-frozen"'

# ---- a sensitive VM never travels over tcp://, at either end ----
start_src a4 64M "$VM" $(trusted hosta) --label class=secret
denied "secret VM to tcp:// (source)" "policy marks VM \[class=secret\] sensitive \(sensitive selector 0\)" \
  ctl "$T/a4.sock" migrate "tcp://127.0.0.1:$pb" --insecure
audit_has hosta '"event":"policy".*"allow":false.*"rule":"sensitive\[0\]"'
still_running a4
ctl "$T/a4.sock" quit >/dev/null
pt=$(free_port)
start_dst b4 "tcp://127.0.0.1:$pt" --insecure $(trusted hostb)
start_src o4 64M "$VM" --state-dir "$T/open.state" --label class=secret
denied "secret VM from an open-mode source over tcp:// (destination)" \
  "destination refused: policy marks VM \[class=secret\] sensitive" \
  ctl "$T/o4.sock" migrate "tcp://127.0.0.1:$pt" --insecure
audit_has hostb '"event":"policy".*"role":"destination".*"allow":false.*"rule":"sensitive\[0\]"'
ctl "$T/o4.sock" quit >/dev/null
note "an ordinary VM may go over tcp:// (attested, bound to the nonce only)"
start_src a5 64M "$VM" $(trusted hosta) --label tenant=acme
out=$(ctl "$T/a5.sock" migrate "tcp://127.0.0.1:$pt" --insecure) || fail "trusted tcp:// migration: $out"
committed "trusted tcp:// migration" "$out"
[ "$(report_field "$out" attested)" = True ] || fail "tcp:// destination not attested: $out"
audit_has hosta '"event":"attest".*"ok":true.*"binding":"none \(tcp://, INSECURE\)"'
ctl "$T/b4.sock" quit >/dev/null

# ---- an operator forces a resume after an UNCERTAIN migration ----
bg b5 env SEALVM_TEST_FAULT=die-after-commit "$SEALVM" run --incoming "tls://127.0.0.1:$pb" \
  --serial "file:$T/b5.out" $(trusted hostb)
wait_for "$T/b5.log" "waiting for an incoming VM" 20 || fail "no destination"
start_src a6 64M "$VM" $(trusted hosta)
out=$(ctl "$T/a6.sock" migrate "tls://127.0.0.1:$pb" --timeout-ms 2000 --outcome-wait-ms 1000 2>&1) &&
  fail "a crashed destination reported success"
echo "$out" | grep -q UNCERTAIN || fail "not UNCERTAIN: $out"
audit_has hosta '"event":"migrate-uncertain".*"role":"source"'
ctl "$T/a6.sock" resume --force >/dev/null || fail "resume --force"
audit_has hosta '"event":"operator-force".*"cmd":"resume --force".*"principal":"uid:0"'
ctl "$T/a6.sock" quit >/dev/null

# ---- the owner's console: every attach is recorded ----
pk=$(free_port)
bg k1 "$SEALVM" run --kernel "$GUEST/console.elf" --cmdline "hb=500" --mem 16M --console "tls://127.0.0.1:$pk" \
  --owner-ca "$CERTS/ownerca/ca.pem" --control "$T/k1.sock" $(trusted hosta)
wait_for "$T/k1.log" "owner's console on port" 20 || fail "console did not start: $(cat "$T/k1.log")"
"$SEALVM" console "tls://127.0.0.1:$pk" --tls-dir "$CERTS/owner" --screen >"$T/screen.txt" 2>&1 ||
  fail "console attach: $(cat "$T/screen.txt")"
audit_has hosta '"event":"console-attach".*"peer":"owner"'
ctl "$T/k1.sock" quit >/dev/null
sleep 0.5

# ---- the logs verify; an edited decision does not ----
for h in hosta hostb open; do
  out=$("$SEALVM" audit verify --state-dir "$T/$h.state" 2>&1) || fail "audit log of $h: $out"
  note "$h: $out"
done
python3 - "$T/hosta.state/audit.jsonl" "$T/edited.jsonl" <<'P'
import sys
lines = open(sys.argv[1]).read().split("\n")
for i, l in enumerate(lines):
    if '"event":"policy"' in l and '"allow":false' in l:
        lines[i] = l.replace('"allow":false', '"allow":true', 1)
        break
else:
    sys.exit("no denial to edit")
open(sys.argv[2], "w").write("\n".join(lines))
P
out=$("$SEALVM" audit verify "$T/edited.jsonl" --state-dir "$T/hosta.state" 2>&1) && fail "an edited decision verified: $out"
echo "$out" | grep -q "BROKEN" || fail "edited log: $out"
note "edited denial: $out"
echo ok
