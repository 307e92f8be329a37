# What a new user trips over (issue 9): `run ... &` then `ctl` at once; a migration
# started before the destination listens; progress during the first round; honest
# throughput figures; --mem that a snapshot would silently override.
. "$(dirname "$0")/../lib.sh"
certs

note "ctl waits briefly for a control socket that is not there yet"
( sleep 1; exec "$SEALVM" run --kernel "$GUEST/counter.elf" --cmdline "interval=100" --mem 16M \
    --serial none --control "$T/late.sock" ) >"$T/late.log" 2>&1 &
PIDS+=($!)
ctl "$T/late.sock" status > "$T/late.json" || fail "ctl did not wait for the socket: $(cat "$T/late.json")"
grep -q '"state"' "$T/late.json" || fail "no status"
ctl "$T/late.sock" quit >/dev/null
t0=$SECONDS
out=$(ctl "$T/never.sock" status 2>&1) && fail "a socket that never appears answered"
echo "$out" | grep -q "waited 5 s" || fail "unclear: $out"
[ $((SECONDS - t0)) -le 8 ] || fail "waited $((SECONDS - t0)) s for a missing socket"

note "a migration started a moment before the destination listens still goes through"
port=$(free_port)
start_src src 512M "ws=128 rate=0 light=1 hb=250" --tls-dir "$CERTS/hosta"
ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" --channels 1 > "$T/m.json" 2>&1 &
mpid=$!
sleep 1
start_dst dst "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
note "progress moves during the first round"
: > "$T/progress"
while alive "$mpid"; do
  ctl "$T/src.sock" stats 2>/dev/null | tr -d ' \n' | grep -Eo '"phase":"precopy","round":0,"remaining_pages":[0-9]+' >> "$T/progress"
  echo >> "$T/progress"
  sleep 0.02
done
wait "$mpid" || { cat "$T/m.json"; fail "migration to a late destination failed"; }
grep -q '"result": "committed"' "$T/m.json" || fail "not committed"
distinct=$(grep -Eo '[0-9]+$' "$T/progress" | sort -u | wc -l)
echo "round 0: $distinct distinct remaining-page counts seen"
[ "$distinct" -ge 2 ] || fail "progress did not move during the first round: $(sort -u "$T/progress" | head)"
hb_after "$T/dst.out" 0 30 || fail "VM not running at the destination"

note "snapshot throughput is bytes written per second, and --mem cannot contradict a snapshot"
ctl "$T/dst.sock" snapshot "$T/s.snap" > "$T/s.json" || fail "snapshot failed"
python3 - "$T/s.json" <<'X' || fail "snapshot throughput does not match bytes / time: $(cat "$T/s.json")"
import json, sys
r = json.load(open(sys.argv[1]))
want = r["bytes"] / (r["write_ms"] / 1e3) / 1e9
assert abs(r["gb_per_s"] - want) <= 0.02 * want + 1e-9, (r["gb_per_s"], want)
print("snapshot: %d bytes in %.1f ms = %.3f GB/s" % (r["bytes"], r["write_ms"], r["gb_per_s"]))
X
ctl "$T/dst.sock" quit >/dev/null
out=$("$SEALVM" run --restore "$T/s.snap" --mem 256M --serial none --state-dir "$T/dst.state" 2>&1) &&
  fail "--mem 256M accepted for a 512M snapshot"
echo "$out" | grep -q "conflicts with the snapshot's RAM (512M)" || fail "unclear: $out"
out=$("$SEALVM" run --incoming "tls://127.0.0.1:1" --tls-dir "$CERTS/hostb" --mem 256M 2>&1) &&
  fail "--mem accepted with --incoming"
echo "$out" | grep -q "does not go with --incoming" || fail "unclear: $out"
bg same "$SEALVM" run --restore "$T/s.snap" --mem 512M --serial "file:$T/same.out" --control "$T/same.sock" \
  --state-dir "$T/dst.state"
hb_after "$T/same.out" 0 30 || fail "restore with the matching --mem failed"
ctl "$T/same.sock" quit >/dev/null
echo ok
