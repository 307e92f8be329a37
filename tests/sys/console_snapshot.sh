# Snapshots carry the owner's console, sealed for the owner: the snapshot file is sealed with
# the host's key (which the operator can read), so the console key inside is wrapped for the
# public key of the owner who attached read-write. A canary typed at the console is nowhere in
# the snapshot's plaintext. Restoring brings the VM back paused until an owner's client unwraps
# the key; another owner certificate from the same CA cannot; then the screen and scrollback are
# back. Without --console the restore is refused; --console-fresh drops the console state.
. "$(dirname "$0")/../lib.sh"
certs
OCA=$CERTS/ownerca/ca.pem
screen() { timeout 20 "$SEALVM" console "$1" --tls-dir "${2:-$CERTS/owner}" --screen; }
status() { ctl "$T/$1.sock" status; }

# a second owner of the same CA, with a key of its own
mkdir -p "$T/owner2"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=owner2 -keyout "$T/owner2/key.pem" \
  -out "$T/owner2.csr" 2>/dev/null || fail "openssl req"
openssl x509 -req -in "$T/owner2.csr" -CA "$OCA" -CAkey "$CERTS/ownerca/key.pem" -CAcreateserial \
  -CAserial "$T/owner2.srl" -days 2 -out "$T/owner2/cert.pem" \
  -extfile <(printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n') 2>/dev/null || fail "openssl x509"
cp "$CERTS/owner/ca.pem" "$T/owner2/ca.pem"
chmod 600 "$T/owner2/key.pem"

PA=$(free_port)
bg a "$SEALVM" run --kernel "$GUEST/console.elf" --cmdline hb=100 --mem 64M --tls-dir "$CERTS/hosta" \
  --console "tls://127.0.0.1:$PA" --owner-ca "$OCA" --control "$T/a.sock" --state-dir "$T/a.state"
wait_for "$T/a.log" "owner's console on port" 10 || fail "console did not start"

note "before any owner attached read-write, a snapshot carries no console state (nobody to seal it for)"
ctl "$T/a.sock" snapshot "$T/early.bin" >/dev/null || fail "early snapshot failed"
grep -q "carries no console state" "$T/a.log" || fail "the early snapshot did not say it left the console out"
"$ROOT/build/tools/unseal" "$T/early.bin" "$T/a.state/snapshot.key" "$T/early.plain" || fail "unseal"
grep -aq "SVCONSL1" "$T/early.plain" && fail "the early snapshot holds console state sealed for nobody"

note "the owner types a canary; the snapshot wraps the console key for the owner"
CANARY="CANARY$RANDOM$RANDOM""zq"
printf '%s\r' "$CANARY" | timeout 10 "$SEALVM" console "tls://127.0.0.1:$PA" --tls-dir "$CERTS/owner" \
  >"$T/typed.out" 2>&1
grep -q "sealvm> $CANARY" "$T/typed.out" || fail "canary not echoed"
ctl "$T/a.sock" pause >/dev/null
before=$(screen "tls://127.0.0.1:$PA") || fail "screen query failed"
ctl "$T/a.sock" snapshot "$T/snap.bin" >"$T/ctl.out" || fail "snapshot failed"
"$ROOT/build/tools/unseal" "$T/snap.bin" "$T/a.state/snapshot.key" "$T/snap.plain" || fail "cannot unseal"
grep -aq "sealvm console test guest" "$T/snap.plain" || fail "snapshot check is blind: guest text not in it"
grep -aq "SVCONSL1" "$T/snap.plain" || fail "no sealed console state in the snapshot"
grep -aq "SVCWRAP1" "$T/snap.plain" || fail "no wrapped console key in the snapshot"
for f in "$T/snap.bin" "$T/snap.plain" "$T/ctl.out" "$T/a.log"; do
  grep -aq "$CANARY" "$f" && fail "canary found in operator-side $(basename "$f")"
done
ctl "$T/a.sock" quit >/dev/null

note "restoring without --console is refused; the VM's console is the owner's"
out=$("$SEALVM" run --restore "$T/snap.bin" --state-dir "$T/a.state" --serial "file:$T/leak.out" 2>&1) &&
  fail "restored an owner's console without --console: $out"
echo "$out" | grep -q "holds the VM owner's console" || fail "unclear refusal: $out"

note "restored with --console: paused until the owner unlocks it"
PB=$(free_port)
bg b "$SEALVM" run --restore "$T/snap.bin" --tls-dir "$CERTS/hostb" --console "tls://127.0.0.1:$PB" \
  --owner-ca "$OCA" --control "$T/b.sock" --state-dir "$T/a.state"
wait_for "$T/b.log" "sealed for its owner" 10 || fail "restored console not locked"
status b | grep -q '"paused_by": "console"' || { status b; fail "restored VM not held by the console"; }
note "another owner of the same CA cannot unlock it"
out=$(screen "tls://127.0.0.1:$PB" "$T/owner2" 2>&1) && fail "owner2 opened the console: $out"
echo "$out" | grep -q "sealed for another owner key" || fail "unclear refusal for owner2: $out"
status b | grep -q '"paused_by": "console"' || fail "the VM left the console's hold without the owner"
note "the owner unlocks it: screen and scrollback are back"
after=$(screen "tls://127.0.0.1:$PB" 2>"$T/unlock.err") || { cat "$T/unlock.err"; fail "owner could not unlock"; }
grep -q "unlocking its console" "$T/unlock.err" || fail "the client did not say it unlocked"
# rows 0-23 and the cursor; the status line may already show the next heartbeat
[ "$(echo "$before" | sed -n '1,24p;26p')" = "$(echo "$after" | sed -n '1,24p;26p')" ] ||
  { echo "before:"; echo "$before"; echo "after:"; echo "$after"; fail "restored screen differs"; }
timeout 5 "$SEALVM" console "tls://127.0.0.1:$PB" --tls-dir "$CERTS/owner" --read-only </dev/null >"$T/hist.out" 2>&1
grep -q "sealvm> $CANARY" "$T/hist.out" || fail "the scrollback did not come back"
status b | grep -q '"paused_by": ""' || { status b; fail "the console still holds the VM after unlocking"; }
seq0=$(screen "tls://127.0.0.1:$PB" | sed -n 's/^HB \([0-9]*\).*/\1/p')
sleep 1
seq1=$(screen "tls://127.0.0.1:$PB" | sed -n 's/^HB \([0-9]*\).*/\1/p')
[ "${seq1:-0}" -gt "${seq0:-0}" ] || fail "the restored VM does not run (HB $seq0 -> $seq1)"
grep -q "unlocked the restored console" "$T/b.log" || fail "no log line for the unlock"
grep -aq "$CANARY" "$T/b.log" && fail "canary in the restoring host's log"
ctl "$T/b.sock" quit >/dev/null

note "--console-fresh: the owner's state is dropped, the VM runs at once"
PC=$(free_port)
bg c "$SEALVM" run --restore "$T/snap.bin" --tls-dir "$CERTS/hostb" --console "tls://127.0.0.1:$PC" \
  --owner-ca "$OCA" --control "$T/c.sock" --state-dir "$T/a.state" --console-fresh
wait_for "$T/c.log" "console-fresh" 10 || fail "--console-fresh not announced"
status c | grep -q '"state": "running"' || fail "--console-fresh VM does not run at once"
s=$(screen "tls://127.0.0.1:$PC") || fail "screen after --console-fresh"
echo "$s" | grep -q "$CANARY" && fail "--console-fresh kept the owner's screen"
ctl "$T/c.sock" quit >/dev/null
echo "console snapshot checks passed"
