# Before authentication and around the pause (issue 8 items 5-7): idle and junk
# connections cannot delay or break a migration; a peer that trickles one byte a
# second cannot hold the source paused (or stuck before the pause); a destination
# that could fail after READY refuses to start instead.
. "$(dirname "$0")/../lib.sh"
certs

note "16 idle connections held open and junk arriving every 50 ms: the migration still completes"
port=$(free_port)
start_dst dst "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
for i in $(seq 10 25); do
  eval "exec $i<>/dev/tcp/127.0.0.1/$port" || fail "cannot open idle connection $i"
done
( while :; do
    exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null && head -c 300 /dev/urandom >&3 2>/dev/null
    exec 3>&- 3<&-
    sleep 0.05
  done ) &
PIDS+=($!)
junk=$!
start_src src 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
t0=$SECONDS
ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" --channels 2 > "$T/dos.json" 2>&1 ||
  { cat "$T/dos.json"; fail "migration failed under a connection flood"; }
grep -q '"result": "committed"' "$T/dos.json" || fail "not committed"
echo "migrated in $((SECONDS - t0)) s with 16 idle connections and junk every 50 ms"
[ $((SECONDS - t0)) -le 30 ] || fail "the flood delayed the migration to $((SECONDS - t0)) s"
kill "$junk"
grep -q "dropped a connection" "$T/dst.log" || fail "junk connections not reported"
hb_after "$T/dst.out" 1 30 || fail "VM not running at the destination"
check_clean "$T/dst.out"
ctl "$T/dst.sock" quit >/dev/null
for i in $(seq 10 25); do eval "exec $i>&-"; done

note "a destination that answers HELLO one byte a second: bounded by --hello-timeout-ms, the VM never pauses"
port=$(free_port)
bg dst_h env SEALVM_TEST_FAULT=trickle-hello-ack "$SEALVM" run --incoming "tls://127.0.0.1:$port" \
  --tls-dir "$CERTS/hostb" --serial "file:$T/dst_h.out" --state-dir "$T/dst_h.state"
wait_for "$T/dst_h.log" "waiting for an incoming VM" 20 || fail "no destination"
start_src src2 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
t0=$SECONDS
out=$(ctl "$T/src2.sock" migrate "tls://127.0.0.1:$port" --hello-timeout-ms 3000 2>&1) && fail "slow HELLO succeeded"
echo "slow hello: $(echo "$out" | tail -n 1)"
[ $((SECONDS - t0)) -le 8 ] || fail "the slow HELLO held the source $((SECONDS - t0)) s"
echo "$out" | grep -q "did not admit the migration within 3000 ms" || fail "unclear: $out"
still_running src2
[ -s "$T/dst_h.out" ] && fail "guest output at the destination"

# max_gap FILE: the longest wall-clock gap (tsc_ms) between consecutive heartbeats
max_gap() {
  complete_lines "$1" | grep -Eo 'tsc_ms=[0-9]+' | cut -d= -f2 |
    awk 'NR > 1 && $1 - p > g { g = $1 - p } { p = $1 } END { print g + 0 }'
}

note "a destination that sends READY one byte a second: the source resumes after --ready-timeout-ms"
port=$(free_port)
bg dst_r env SEALVM_TEST_FAULT=trickle-ready "$SEALVM" run --incoming "tls://127.0.0.1:$port" \
  --tls-dir "$CERTS/hostb" --serial "file:$T/dst_r.out" --state-dir "$T/dst_r.state"
wait_for "$T/dst_r.log" "waiting for an incoming VM" 20 || fail "no destination"
out=$(ctl "$T/src2.sock" migrate "tls://127.0.0.1:$port" --ready-timeout-ms 2000 2>&1) && fail "slow READY succeeded"
echo "slow ready: $(echo "$out" | tail -n 1)"
echo "$out" | grep -q "was not READY within 2000 ms of the pause" || fail "unclear: $out"
still_running src2
gap=$(max_gap "$T/src2.out")
echo "longest heartbeat gap at the source: $gap ms"
[ "$gap" -le 5000 ] || fail "the source stayed paused $gap ms"
[ -s "$T/dst_r.out" ] && fail "the VM ran at the destination"

note "a destination whose control socket cannot be bound refuses to start, before it listens"
port=$(free_port)
"$SEALVM" run --incoming "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb" --serial none \
  --control /nonexistent/dir/dst.sock --state-dir "$T/dst_c.state" >"$T/dst_c.log" 2>&1 &
cpid=$!
wait_exit "$cpid" 10; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a destination with an unusable control path started (exit $rc)"
grep -q "dst.sock" "$T/dst_c.log" || fail "error does not name the control socket: $(cat "$T/dst_c.log")"
out=$(ctl "$T/src2.sock" migrate "tls://127.0.0.1:$port" 2>&1) && fail "migrated to a destination that refused to start"
still_running src2

note "a destination whose serial file cannot be opened refuses to start"
"$SEALVM" run --incoming "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb" --serial file:/nonexistent/x.out \
  --state-dir "$T/dst_c.state" >"$T/dst_s.log" 2>&1 && fail "started with an unusable serial file"
grep -q "x.out" "$T/dst_s.log" || fail "error does not name the serial file"
echo ok
