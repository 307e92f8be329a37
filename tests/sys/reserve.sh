# A destination ready before the VM arrives (issue 17): --reserve pre-faults its
# memory in the background (ctl status shows how much is ready; the process really
# holds it), a VM that fits lands in it, a larger one is refused at HELLO and the
# destination keeps waiting, --reserve-grow admits it anyway.
. "$(dirname "$0")/../lib.sh"
certs

port=$(free_port)
start_dst dst "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb" --reserve 384M
n=0; until ctl "$T/dst.sock" status | tr -d ' \n' | grep -q '"reserved_bytes":402653184,"reserve_ready_bytes":402653184'; do
  n=$((n + 1)); [ $n -lt 300 ] || fail "the reservation never became ready: $(ctl "$T/dst.sock" status)"
  sleep 0.1
done
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$DST_PID/status")
echo "reservation ready after ~$((n / 10)) s; destination RSS ${rss} KiB before any VM"
[ "$rss" -ge $((380 * 1024)) ] || fail "the reserved memory is not really held (RSS ${rss} KiB)"

note "a VM larger than the reservation is refused at once; the destination keeps waiting"
start_src big 512M "ws=4 rate=0 hb=250" --tls-dir "$CERTS/hosta"
out=$(ctl "$T/big.sock" migrate "tls://127.0.0.1:$port" 2>&1) && fail "a 512M VM went into a 384M reservation"
echo "$out" | grep -q "this destination reserved 384 MiB (--reserve)" || fail "unclear: $out"
still_running big
ctl "$T/dst.sock" status | grep -q '"state": "incoming"' || fail "the destination stopped waiting"

note "a VM that fits lands in the reservation"
start_src src 256M "ws=32 rate=16 light=1 hb=250" --tls-dir "$CERTS/hosta"
hb_after "$T/src.out" 2 30 || fail "source not running"
ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" > "$T/m.json" || { cat "$T/m.json"; fail "migration failed"; }
grep -q '"result": "committed"' "$T/m.json" || fail "not committed"
last=$(hb_field "$T/src.out" seq)
hb_after "$T/dst.out" "$last" 30 || fail "VM not running at the destination"
p0=$(hb_field "$T/dst.out" passes)
n=0; while [ "$(hb_field "$T/dst.out" passes)" -le "$p0" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
check_clean "$T/dst.out"
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$DST_PID/status")
echo "destination RSS with the 256M VM: ${rss} KiB (the reservation's tail was given back)"
[ "$rss" -le $((330 * 1024)) ] || fail "the unused part of the reservation was not given back (RSS ${rss} KiB)"
ctl "$T/dst.sock" quit >/dev/null

note "--reserve-grow admits a larger VM"
port=$(free_port)
start_dst dst2 "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb" --reserve 64M --reserve-grow
ctl "$T/big.sock" migrate "tls://127.0.0.1:$port" > "$T/g.json" || { cat "$T/g.json"; fail "grow migration failed"; }
grep -q '"result": "committed"' "$T/g.json" || fail "not committed"
hb_after "$T/dst2.out" 0 30 || fail "VM not running at the grow destination"
out=$("$SEALVM" run --kernel "$GUEST/counter.elf" --reserve 64M 2>&1) && fail "--reserve accepted without --incoming"
echo "$out" | grep -q "goes with --incoming" || fail "unclear: $out"
echo ok
