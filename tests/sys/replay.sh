# A rogue host with a valid cluster certificate (issue 8 item 3): a stream
# prepared for another session, or one with an unbound END (what an old sealvm
# or an old snapshot file carried), never runs; --allow-from keeps out hosts that
# are not named; an honestly bound stream from the same tool is accepted, which
# shows the refusals are the binding's doing.
. "$(dirname "$0")/../lib.sh"
certs
ROGUE=$ROOT/build/tools/rogue_source
make -s -C "$ROOT" build/tools/rogue_source >/dev/null || fail "cannot build rogue_source"
KERNEL=$GUEST/counter.elf

# rogue NAME MODE [URI2]: runs the rogue against a fresh destination; sets OUT and RC
rogue() {
  local name=$1 mode=$2; shift 2
  port=$(free_port)
  start_dst "dst_$name" "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
  OUT=$("$ROGUE" "tls://127.0.0.1:$port" "$CERTS/hostc" "$KERNEL" "$mode" "$@" 2>&1); RC=$?
  echo "$name: $(echo "$OUT" | grep '^rogue:' | tail -n 1)"
}

rogue honest honest
[ $RC -eq 0 ] || fail "the control case was refused: $OUT"
hb=0; n=0
until [ -s "$T/dst_honest.out" ]; do n=$((n + 1)); [ $n -lt 100 ] || fail "honest stream did not run"; sleep 0.1; done
ctl "$T/dst_honest.sock" quit >/dev/null

port2=$(free_port)
start_dst dst_recorded "tls://127.0.0.1:$port2" --tls-dir "$CERTS/hostb"
rogue replay replay "tls://127.0.0.1:$port2"
[ $RC -eq 3 ] || fail "a replayed stream was not refused: $OUT"
echo "$OUT" | grep -q "stream not verified" || fail "refusal does not say the stream is not verified: $OUT"
wait_exit "$DST_PID" 15 >/dev/null
[ -s "$T/dst_replay.out" ] && fail "the replayed stream ran"

rogue unbound unbound
[ $RC -eq 3 ] || fail "an unbound stream was not refused: $OUT"
echo "$OUT" | grep -q "END version 1" || fail "refusal unclear: $OUT"
[ -s "$T/dst_unbound.out" ] && fail "the unbound stream ran"

port=$(free_port)
start_dst dst_allow "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb" --allow-from hosta
OUT=$("$ROGUE" "tls://127.0.0.1:$port" "$CERTS/hostc" "$KERNEL" honest 2>&1); RC=$?
echo "allow-from: $(echo "$OUT" | grep '^rogue:' | tail -n 1)"
[ $RC -eq 3 ] && echo "$OUT" | grep -q "not admitted here" || fail "hostc got past --allow-from hosta: $OUT"
[ -s "$T/dst_allow.out" ] && fail "the refused source's VM ran"
echo ok
