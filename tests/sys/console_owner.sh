# The owner's console: the owner attaches over TLS and types, the echo comes back on serial and
# on the screen; an operator (cluster-CA certificate) is refused; further sessions are read-only
# or refused as the owner chose; a canary typed at the console reaches no operator-side sink
# (logs, ctl answers, a snapshot file), and --serial file: is refused with an owner-only console.
. "$(dirname "$0")/../lib.sh"
certs
PROBE=$ROOT/build/tools/console_probe

start_vm() { # NAME OTHERS
  CPORT=$(free_port)
  bg "$1" "$SEALVM" run --kernel "$GUEST/console.elf" --mem 64M --tls-dir "$CERTS/hosta" \
    --console "tls://127.0.0.1:$CPORT" --owner-ca "$CERTS/ownerca/ca.pem" --console-others "$2" \
    --control "$T/$1.sock" --state-dir "$T/$1.state"
  VM=$!
  wait_for "$T/$1.log" "owner's console on port" 10 || fail "console server did not start"
  URI=tls://127.0.0.1:$CPORT
}
screen() { timeout 20 "$SEALVM" console "$URI" --tls-dir "$CERTS/${1:-owner}" --screen; }

note "an owner-only console refuses an operator-side serial sink"
out=$("$SEALVM" run --kernel "$GUEST/console.elf" --tls-dir "$CERTS/hosta" --console tls://127.0.0.1:1 \
  --owner-ca "$CERTS/ownerca/ca.pem" --serial "file:$T/serial.out" 2>&1) && fail "--serial file: accepted: $out"
echo "$out" | grep -q "belongs to the console" || fail "unclear refusal: $out"
[ ! -e "$T/serial.out" ] || fail "serial file created"

start_vm vm ro
wait_for "$T/vm.log" "owner session" 1 2>/dev/null && fail "a session attached by itself"
screen | grep -q "sealvm console test guest" || fail "screen lacks the guest's title"

note "the owner attaches read-write and types a canary"
CANARY="CANARY$RANDOM$RANDOM""zq"
mkfifo "$T/in"
"$SEALVM" console "$URI" --tls-dir "$CERTS/owner" <"$T/in" >"$T/client.out" 2>"$T/client.err" &
CLIENT=$!; PIDS+=($CLIENT)
exec 3>"$T/in"
wait_for "$T/client.err" "attached read-write" 10 || fail "owner not attached read-write"
wait_for "$T/client.out" "CONSOLE READY" 10 || fail "scrollback not replayed to the owner"
printf '%s\r' "$CANARY" >&3
wait_for "$T/client.out" "sealvm> $CANARY" 10 || fail "no serial echo of the canary"
s=$(screen) || fail "screen query failed"
echo "$s" | grep -q "^sealvm> $CANARY *\$" || { echo "$s"; fail "the screen does not show the canary"; }

note "a second session is read-only: it sees, but its typing goes nowhere"
"$SEALVM" console "$URI" --tls-dir "$CERTS/owner" </dev/null >"$T/ro.out" 2>"$T/ro.err" &
RO=$!; PIDS+=($RO)
wait_for "$T/ro.err" "attached read-only" 10 || fail "second session not read-only"
wait_for "$T/ro.out" "sealvm> $CANARY" 10 || fail "read-only session did not get the scrollback"
printf 'rotyped\r' | timeout 5 "$SEALVM" console "$URI" --tls-dir "$CERTS/owner" >/dev/null 2>&1
sleep 1
screen | grep -q rotyped && fail "a read-only session typed into the guest"
kill $RO

note "an operator's certificate (cluster CA) is refused"
out=$(screen operator 2>&1) && fail "operator attached: $out"
echo "client says: $out"
echo "$out" | grep -q "sealvm console test guest" && fail "operator saw the screen"
grep -q "refused a client: .*unable to get local issuer certificate" "$T/vm.log" ||
  fail "server did not refuse the operator's certificate for its CA"
out=$(timeout 20 "$SEALVM" console "$URI" --tls-dir "$CERTS/badca" --screen 2>&1) && fail "foreign CA attached"

note "keystroke-to-echo latency (serial and screen)"
kill $CLIENT; exec 3>&-
sleep 0.5
"$PROBE" latency "$URI" "$CERTS/owner" 20 || fail "latency probe failed"

note "the canary reaches no operator-side sink"
ctl "$T/vm.sock" status >"$T/ctl.out" || fail "ctl status failed"
ctl "$T/vm.sock" stats >>"$T/ctl.out" || fail "ctl stats failed"
ctl "$T/vm.sock" snapshot "$T/snap.bin" >>"$T/ctl.out" || fail "snapshot failed"
# the snapshot is sealed; look inside it too, with the host's key
make -s -C "$ROOT" build/tools/unseal >/dev/null || fail "cannot build unseal"
"$ROOT/build/tools/unseal" "$T/snap.bin" "$T/vm.state/snapshot.key" "$T/snap.plain" || fail "cannot unseal the snapshot"
grep -q "sealvm console test guest" "$T/snap.plain" || fail "snapshot check is blind: guest text not found in it"
for f in "$T/snap.bin" "$T/snap.plain" "$T/ctl.out" "$T/vm.log"; do
  grep -q "$CANARY" "$f" && fail "canary found in operator-side $(basename "$f")"
done
screen | grep -q "$CANARY" || fail "canary gone from the screen (the check above would be void)"
kill $VM; wait $VM 2>/dev/null

note "--console-others refuse: a further session is refused while the owner is attached"
start_vm vm2 refuse
mkfifo "$T/in2"
"$SEALVM" console "$URI" --tls-dir "$CERTS/owner" <"$T/in2" >"$T/c2.out" 2>"$T/c2.err" &
PIDS+=($!)
exec 4>"$T/in2"
wait_for "$T/c2.err" "attached read-write" 10 || fail "owner not attached"
out=$(screen 2>&1) && fail "further session admitted: $out"
echo "$out" | grep -q "further sessions are refused" || fail "unclear refusal: $out"
exec 4>&-
echo "console owner checks passed"
