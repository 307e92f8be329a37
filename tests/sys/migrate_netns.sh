# Migration between two network namespaces joined by a veth pair (two "hosts"
# with their own addresses), with netem latency on the link.
. "$(dirname "$0")/../lib.sh"
certs
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
A=svmA$$ B=svmB$$
ip netns add "$A" 2>/dev/null || skip "cannot create network namespaces here (ip netns add failed)"
ip netns add "$B" || fail "ip netns add $B"
nscleanup() { ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; cleanup; }
trap nscleanup EXIT
ip link add "va$$" netns "$A" type veth peer name "vb$$" netns "$B" || fail "veth"
ip -n "$A" addr add 10.77.0.1/24 dev "va$$" && ip -n "$A" link set "va$$" up && ip -n "$A" link set lo up
ip -n "$B" addr add 10.77.0.2/24 dev "vb$$" && ip -n "$B" link set "vb$$" up && ip -n "$B" link set lo up
if ip netns exec "$A" tc qdisc add dev "va$$" root netem delay 2ms 2>/dev/null; then
  note "2 ms one-way latency on the link"
fi

bg dst ip netns exec "$B" "$SEALVM" run --incoming tls://10.77.0.2:7443 --tls-dir "$CERTS/hostb" \
  --serial "file:$T/dst.out" --control "$T/dst.sock"
DST_PID=$!
wait_for "$T/dst.log" "waiting for an incoming VM" 20 || fail "destination did not listen"
bg src ip netns exec "$A" "$SEALVM" run --kernel "$GUEST/memcheck.elf" --cmdline "ws=8 rate=64 light=1 hb=250" \
  --mem 256M --serial "file:$T/src.out" --control "$T/src.sock" --tls-dir "$CERTS/hosta"
SRC_PID=$!
wait_for "$T/src.out" "^READY" 60 || fail "guest did not start"
hb_after "$T/src.out" 2 30 || fail "guest not running"
ctl "$T/src.sock" migrate tls://10.77.0.2:7443 > "$T/report.json" || { cat "$T/report.json"; fail "migration failed"; }
grep -E '"result"|"total_ms"|"downtime_ms"|"bytes"' "$T/report.json"
grep -q '"result": "committed"' "$T/report.json" || fail "not committed"
wait_exit "$SRC_PID" 20 || fail "source did not exit 0"
last=$(hb_field "$T/src.out" seq)
hb_after "$T/dst.out" "$last" 30 || fail "heartbeat did not continue in the other namespace"
check_clean "$T/dst.out"
ctl "$T/dst.sock" quit >/dev/null
echo ok
