# The hand-over's ambiguous window (issue 8 item 1): after COMMIT, only an
# authenticated answer from the destination may let the source resume. Refused,
# reset, garbage or silent connections prove nothing: the VM stays paused
# (UNCERTAIN) and never runs twice. The destination's decision is durable, so a
# restarted destination answers for a crashed one; and once it has said "never
# ran", a late COMMIT can no longer make it run.
. "$(dirname "$0")/../lib.sh"
certs
ONPATH=$ROOT/tests/tools/onpath.py

src_paused() { # NAME: paused and making no progress
  local s
  ctl "$T/$1.sock" status > "$T/st.json" 2>&1
  grep -q '"state": "paused"' "$T/st.json" || fail "$1 is not paused: $(cat "$T/st.json")"
  s=$(hb_field "$T/$1.out" seq); sleep 1
  [ "$(hb_field "$T/$1.out" seq)" = "$s" ] || fail "$1 ran while it should be paused"
}

dst_running() { # NAME
  local s
  s=$(hb_field "$T/$1.out" seq)
  hb_after "$T/$1.out" "${s:-0}" 15 || fail "$1 does not run the VM"
}

# ---- an attacker on the path answers the outcome queries ----
for mode in refuse reset garbage; do
  note "COMMIT_ACK lost, queries met by '$mode': the source must stay paused"
  port=$(free_port)
  start_dst dst_$mode "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
  export SEALVM_TEST_FAULT=no-commit-ack
  kill "$DST_PID"; wait "$DST_PID" 2>/dev/null
  bg dst_$mode env SEALVM_TEST_FAULT=no-commit-ack "$SEALVM" run --incoming "tls://127.0.0.1:$port" \
    --tls-dir "$CERTS/hostb" --serial "file:$T/dst_$mode.out" --control "$T/dst_$mode.sock" \
    --state-dir "$T/dst_$mode.state"
  dpid=$!
  unset SEALVM_TEST_FAULT
  wait_for "$T/dst_$mode.log" "waiting for an incoming VM" 20 || fail "no destination"
  rm -f "$T/pport"
  bg proxy_$mode python3 "$ONPATH" --port-file "$T/pport" --pass 1 0 "127.0.0.1:$port" "$mode"
  ppid=$!
  wait_for "$T/pport" "^[0-9]+" 10 || fail "proxy did not start"
  start_src src_$mode 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
  hb_after "$T/src_$mode.out" 2 30 || fail "source guest not running"
  out=$(ctl "$T/src_$mode.sock" migrate "tls://127.0.0.1:$(cat "$T/pport")" --channels 1 \
        --timeout-ms 2000 --outcome-wait-ms 3000 2>&1) && fail "$mode: reported success: $out"
  echo "$mode: $(echo "$out" | tail -n 1 | cut -c1-220)"
  echo "$out" | grep -q "UNCERTAIN" || fail "$mode: not reported UNCERTAIN: $out"
  dst_running dst_$mode
  src_paused src_$mode
  grep -q "$mode\|relayed" "$T/proxy_$mode.log" || fail "proxy did nothing"
  grep -Eq "refused|reset|garbage" "$T/proxy_$mode.log" || fail "no query met the attacker: $(cat "$T/proxy_$mode.log")"
  for c in resume pause "snapshot $T/x.snap" "migrate tls://127.0.0.1:1"; do
    out=$(ctl "$T/src_$mode.sock" $c 2>&1) && fail "$mode: '$c' accepted while uncertain"
    echo "$out" | grep -q "UNCERTAIN" || fail "$mode: '$c' refusal unclear: $out"
  done
  out=$(ctl "$T/src_$mode.sock" quit 2>&1) && fail "$mode: quit accepted while uncertain"
  echo "$out" | grep -q "quit --force" || fail "quit refusal unclear: $out"
  note "the path heals: the source learns the destination runs the VM and stops its copy"
  kill -USR1 "$ppid"
  wait_exit "$SRC_PID" 40; rc=$?
  [ $rc -eq 0 ] || fail "$mode: source did not hand over after the path healed (exit $rc)"
  grep -q "it runs the VM; stopping this copy" "$T/src_$mode.log" || fail "source did not say why it stopped"
  dst_running dst_$mode
  check_clean "$T/dst_$mode.out"
  ctl "$T/dst_$mode.sock" quit >/dev/null
  kill "$ppid" 2>/dev/null
done

# ---- the destination crashes right after its COMMITTED decision ----
note "destination dies after deciding COMMITTED: a restarted destination says so; the source stays paused"
port=$(free_port)
bg dst_crash env SEALVM_TEST_FAULT=die-after-commit "$SEALVM" run --incoming "tls://127.0.0.1:$port" \
  --tls-dir "$CERTS/hostb" --serial "file:$T/dst_crash.out" --state-dir "$T/dst_crash.state"
wait_for "$T/dst_crash.log" "waiting for an incoming VM" 20 || fail "no destination"
start_src src_crash 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
out=$(ctl "$T/src_crash.sock" migrate "tls://127.0.0.1:$port" --timeout-ms 2000 --outcome-wait-ms 2000 2>&1) &&
  fail "crash after commit reported success"
echo "$out" | grep -q "UNCERTAIN" || fail "not UNCERTAIN: $out"
src_paused src_crash
grep -q '"outcome":"committed"' "$T"/dst_crash.state/outcomes/* || fail "no durable COMMITTED decision"
note "restart the destination on the same state directory"
bg dst_crash2 "$SEALVM" run --incoming "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb" \
  --serial "file:$T/dst_crash2.out" --state-dir "$T/dst_crash.state" --control "$T/dst_crash2.sock"
wait_for "$T/dst_crash2.log" "waiting for an incoming VM" 20 || fail "no restarted destination"
n=0; until ctl "$T/src_crash.sock" status | grep -q "committed here and ran"; do
  n=$((n + 1)); [ $n -lt 40 ] || fail "source never learned the destination's answer: $(ctl "$T/src_crash.sock" status)"
  sleep 0.5
done
src_paused src_crash
out=$(ctl "$T/src_crash.sock" resume 2>&1) && fail "plain resume accepted"
echo "$out" | grep -q "resume --force" || fail "refusal does not name the way out: $out"
ctl "$T/src_crash.sock" resume --force > "$T/force.json" || fail "resume --force failed"
grep -q "two copies" "$T/force.json" || fail "forced resume does not say what it risks"
grep -q "OPERATOR FORCED RESUME" "$T/src_crash.log" || fail "forced resume not logged"
still_running src_crash
ctl "$T/src_crash.sock" quit >/dev/null

# ---- the destination dies on receiving COMMIT, before deciding ----
note "destination dies before deciding: a restarted one settles it as never run and the source resumes by itself"
port=$(free_port)
bg dst_pre env SEALVM_TEST_FAULT=die-on-commit "$SEALVM" run --incoming "tls://127.0.0.1:$port" \
  --tls-dir "$CERTS/hostb" --serial "file:$T/dst_pre.out" --state-dir "$T/dst_pre.state"
wait_for "$T/dst_pre.log" "waiting for an incoming VM" 20 || fail "no destination"
start_src src_pre 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
out=$(ctl "$T/src_pre.sock" migrate "tls://127.0.0.1:$port" --timeout-ms 2000 --outcome-wait-ms 2000 2>&1) &&
  fail "death on COMMIT reported success"
echo "$out" | grep -q "UNCERTAIN" || fail "not UNCERTAIN: $out"
src_paused src_pre
bg dst_pre2 "$SEALVM" run --incoming "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb" \
  --serial "file:$T/dst_pre2.out" --state-dir "$T/dst_pre.state"
n=0; until grep -q "never ran the VM; resuming it here" "$T/src_pre.log"; do
  n=$((n + 1)); [ $n -lt 60 ] || fail "source did not resume after the destination answered"
  sleep 0.5
done
still_running src_pre
grep -q '"outcome":"aborted"' "$T"/dst_pre.state/outcomes/* || fail "no durable ABORTED fence"
[ -s "$T/dst_pre.out" ] && fail "the VM ran at the destination"

# ---- a late COMMIT after the source was told "never ran" ----
note "the source asks before its COMMIT: the destination settles it as aborted and refuses the late COMMIT"
port=$(free_port)
start_dst dst_late "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
kill "$SRC_PID" 2>/dev/null
bg src_late env SEALVM_TEST_FAULT=query-before-commit "$SEALVM" run --kernel "$GUEST/memcheck.elf" \
  --cmdline "ws=8 rate=16 hb=250" --mem 256M --serial "file:$T/src_late.out" --control "$T/src_late.sock" \
  --state-dir "$T/src_late.state" --tls-dir "$CERTS/hosta"
wait_for "$T/src_late.out" "^READY" 120 || fail "memcheck did not start"
out=$(ctl "$T/src_late.sock" migrate "tls://127.0.0.1:$port" 2>&1) && fail "late COMMIT succeeded: $out"
echo "late: $(echo "$out" | tail -n 1 | cut -c1-200)"
grep -q "destination said 2" "$T/src_late.log" || fail "the query before COMMIT did not get 'aborted'"
echo "$out" | grep -Eq "destination aborted|never ran the VM" || fail "late COMMIT not refused by the destination: $out"
grep -q '"outcome":"aborted"' "$T"/dst_late.state/outcomes/* || fail "the destination did not settle it as aborted"
still_running src_late
wait_exit "$DST_PID" 15 >/dev/null
[ -s "$T/dst_late.out" ] && fail "the VM ran at the destination after it had said it never would"
# ---- the source dies after READY, before COMMIT ----
note "source dies after READY: the destination keeps its complete copy paused; only the operator runs it"
port=$(free_port)
start_dst dst_orph "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
bg src_orph env SEALVM_TEST_FAULT=die-before-commit "$SEALVM" run --kernel "$GUEST/memcheck.elf" \
  --cmdline "ws=8 rate=16 hb=250" --mem 256M --serial "file:$T/src_orph.out" --control "$T/src_orph.sock" \
  --state-dir "$T/src_orph.state" --tls-dir "$CERTS/hosta"
wait_for "$T/src_orph.out" "^READY" 120 || fail "memcheck did not start"
ctl "$T/src_orph.sock" migrate "tls://127.0.0.1:$port" >/dev/null 2>&1 && fail "a source that died reported success"
wait_for "$T/dst_orph.log" "held here paused" 20 || fail "the destination did not keep the orphaned copy"
ctl "$T/dst_orph.sock" status > "$T/orph.json" || fail "no status from the orphan's host"
grep -q '"orphaned"' "$T/orph.json" || fail "status does not say orphaned: $(cat "$T/orph.json")"
grep -q '"state": "paused"' "$T/orph.json" || fail "the orphan is not paused: $(cat "$T/orph.json")"
[ -s "$T/dst_orph.out" ] && fail "the orphaned copy ran by itself"
grep -q '"outcome":"aborted"' "$T"/dst_orph.state/outcomes/* || fail "the orphan's migration is not settled as aborted"
for c in resume quit pause "snapshot $T/o.snap"; do
  out=$(ctl "$T/dst_orph.sock" $c 2>&1) && fail "'$c' accepted on an orphaned copy"
  echo "$out" | grep -q "resume --force" || fail "'$c' refusal does not name the way out: $out"
done
ctl "$T/dst_orph.sock" resume --force > "$T/orph_force.json" || fail "resume --force of the orphan failed"
grep -q "two copies" "$T/orph_force.json" || fail "forced run does not say what it risks"
dst_running dst_orph
grep -q '"forced"' "$T"/dst_orph.state/outcomes/* || fail "the forced run is not recorded with the outcome"
check_clean "$T/dst_orph.out"
ctl "$T/dst_orph.sock" quit >/dev/null

note "the link dies after READY but the source lives: it resumes and its query makes the destination drop its copy"
port=$(free_port)
start_dst dst_lost "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
bg src_lost env SEALVM_TEST_FAULT=lose-link-before-commit "$SEALVM" run --kernel "$GUEST/memcheck.elf" \
  --cmdline "ws=8 rate=16 hb=250" --mem 256M --serial "file:$T/src_lost.out" --control "$T/src_lost.sock" \
  --state-dir "$T/src_lost.state" --tls-dir "$CERTS/hosta"
SRC_PID=$!
wait_for "$T/src_lost.out" "^READY" 120 || fail "memcheck did not start"
out=$(ctl "$T/src_lost.sock" migrate "tls://127.0.0.1:$port" 2>&1) && fail "a lost link reported success: $out"
echo "$out" | grep -q "runs on" || fail "the source did not say the VM runs on: $out"
grep -q "destination confirmed the abort" "$T/src_lost.log" || fail "the source did not settle it with the destination"
wait_exit "$DST_PID" 20 >/dev/null || fail "the destination kept a copy its live source had taken back"
grep -q "discarding the copy held here" "$T/dst_lost.log" || fail "the destination did not say why it dropped its copy"
[ -s "$T/dst_lost.out" ] && fail "the dropped copy ran at the destination"
still_running src_lost
echo ok
