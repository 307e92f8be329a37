# Operator commands while a migration runs (issue 8 item 2): pause, resume,
# snapshot and a second migrate are refused with the phase named; migrate-cancel
# and quit abort before COMMIT and the destination never runs the VM; after
# COMMIT neither may stop it; a VM paused by its operator arrives paused.
. "$(dirname "$0")/../lib.sh"
certs

# dst_slow NAME PORT: a destination that takes 3 s to become READY
dst_slow() {
  bg "$1" env SEALVM_TEST_FAULT=slow-ready "$SEALVM" run --incoming "tls://127.0.0.1:$2" --tls-dir "$CERTS/hostb" \
    --serial "file:$T/$1.out" --control "$T/$1.sock" --state-dir "$T/$1.state"
  DST_PID=$!
  wait_for "$T/$1.log" "waiting for an incoming VM" 20 || fail "no destination"
}

# in_phase SOCK: waits until a migration on SOCK is past the pause (verify phase)
in_phase() {
  local n=0
  until ctl "$1" status 2>/dev/null | grep -q '"migration_phase": "verify"'; do
    n=$((n + 1)); [ $n -lt 200 ] || fail "migration never reached the verify phase"
    sleep 0.05
  done
}

note "a waiting destination answers status, and refuses what needs a VM"
port=$(free_port)
dst_slow dst1 "$port"
ctl "$T/dst1.sock" status | grep -q '"state": "incoming"' || fail "waiting destination: $(ctl "$T/dst1.sock" status)"
ctl "$T/dst1.sock" status | grep -q '"phase": "waiting"' || fail "no incoming phase"
out=$(ctl "$T/dst1.sock" pause 2>&1) && fail "pause accepted at a waiting destination"
echo "$out" | grep -q "no VM here yet" || fail "unclear: $out"

note "during the hand-over: pause, resume, snapshot and migrate are refused, naming the phase"
start_src src 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" > "$T/m1.json" 2>&1 &
mpid=$!
in_phase "$T/src.sock"
for c in pause resume "snapshot $T/x.snap" "migrate tls://127.0.0.1:1"; do
  out=$(ctl "$T/src.sock" $c 2>&1) && fail "'$c' accepted during the migration"
  echo "$out" | grep -q "a migration is in progress (phase: verify)" || fail "'$c' refusal unclear: $out"
done
[ -e "$T/x.snap" ] && fail "a snapshot was written during the migration"
wait "$mpid" || { cat "$T/m1.json"; fail "migration failed"; }
grep -q '"result": "committed"' "$T/m1.json" || fail "not committed"
wait_exit "$SRC_PID" 20 || fail "source did not exit"
hb_after "$T/dst1.out" 1 30 || fail "VM not running at the destination"
ctl "$T/dst1.sock" quit >/dev/null

note "migrate-cancel before COMMIT: the VM runs on, the destination never runs it"
port=$(free_port)
dst_slow dst2 "$port"
start_src src2 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
ctl "$T/src2.sock" migrate "tls://127.0.0.1:$port" > "$T/m2.json" 2>&1 &
mpid=$!
in_phase "$T/src2.sock"
ctl "$T/src2.sock" migrate-cancel > "$T/cancel.json" || { cat "$T/cancel.json"; fail "migrate-cancel failed"; }
grep -q '"state": "running"' "$T/cancel.json" || fail "VM not running after cancel: $(cat "$T/cancel.json")"
wait "$mpid" && fail "cancelled migration reported success"
grep -q "cancelled by the operator" "$T/m2.json" || fail "migrate did not say it was cancelled: $(cat "$T/m2.json")"
still_running src2
wait_exit "$DST_PID" 20 >/dev/null
[ -s "$T/dst2.out" ] && fail "the VM ran at the destination after a cancel"
out=$(ctl "$T/src2.sock" migrate-cancel 2>&1) && fail "cancel with no migration accepted"
echo "$out" | grep -q "no migration is running" || fail "unclear: $out"

note "quit during a migration aborts it first and says so"
port=$(free_port)
dst_slow dst3 "$port"
ctl "$T/src2.sock" migrate "tls://127.0.0.1:$port" > "$T/m3.json" 2>&1 &
mpid=$!
in_phase "$T/src2.sock"
ctl "$T/src2.sock" quit > "$T/quit.json" || fail "quit failed: $(cat "$T/quit.json")"
grep -q "aborted before COMMIT" "$T/quit.json" || fail "quit did not say it aborted the migration: $(cat "$T/quit.json")"
wait "$mpid"
wait_exit "$SRC_PID" 20 || fail "source did not quit"
wait_exit "$DST_PID" 20 >/dev/null
[ -s "$T/dst3.out" ] && fail "the VM ran at the destination after quit"

note "after COMMIT: too late to cancel, and quit needs --force"
port=$(free_port)
bg dst4 env SEALVM_TEST_FAULT=hang-after-commit "$SEALVM" run --incoming "tls://127.0.0.1:$port" \
  --tls-dir "$CERTS/hostb" --serial "file:$T/dst4.out" --state-dir "$T/dst4.state"
wait_for "$T/dst4.log" "waiting for an incoming VM" 20 || fail "no destination"
start_src src4 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
ctl "$T/src4.sock" migrate "tls://127.0.0.1:$port" --timeout-ms 4000 > "$T/m4.json" 2>&1 &
mpid=$!
n=0; until ctl "$T/src4.sock" status | grep -q '"migration_phase": "commit"'; do
  n=$((n + 1)); [ $n -lt 300 ] || fail "never in the commit phase"; sleep 0.05
done
out=$(ctl "$T/src4.sock" migrate-cancel 2>&1) && fail "cancel accepted after COMMIT"
echo "$out" | grep -q "too late" || fail "unclear: $out"
out=$(ctl "$T/src4.sock" quit 2>&1) && fail "quit accepted after COMMIT"
echo "$out" | grep -q "quit --force" || fail "unclear: $out"
wait "$mpid"
grep -q '"result": "committed"' "$T/m4.json" || fail "the destination decided COMMITTED, the source must follow: $(cat "$T/m4.json")"
wait_exit "$SRC_PID" 20 || fail "source kept its copy"

note "a VM paused by its operator migrates and stays paused"
port=$(free_port)
start_dst dst5 "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
start_src src5 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
hb_after "$T/src5.out" 2 30 || fail "source guest not running"
ctl "$T/src5.sock" pause >/dev/null
ctl "$T/src5.sock" migrate "tls://127.0.0.1:$port" > "$T/m5.json" || { cat "$T/m5.json"; fail "paused migration failed"; }
grep -q '"paused_vm": true' "$T/m5.json" || fail "report does not say the VM was paused"
wait_exit "$SRC_PID" 20 || fail "source did not exit"
ctl "$T/dst5.sock" status > "$T/st5.json"
grep -q '"state": "paused"' "$T/st5.json" && grep -q '"paused_by": "operator"' "$T/st5.json" ||
  fail "VM not paused by its operator at the destination: $(cat "$T/st5.json")"
last=$(hb_field "$T/src5.out" seq); sleep 1
[ -z "$(hb_field "$T/dst5.out" seq)" ] || fail "the paused VM ran at the destination"
ctl "$T/dst5.sock" resume >/dev/null
hb_after "$T/dst5.out" "$last" 30 || fail "VM did not continue after resume"
check_clean "$T/dst5.out"
echo ok
