# A console REDIRECT (the VM moved: follow it there) counts only inside the client's TLS session
# with a host of the cluster CA whose certificate names the address the client dialled. An
# on-path attacker who slips a well-formed REDIRECT into the stream, a server holding the
# operator's certificate (cluster CA, another name) and a server of another CA all fail to send
# the client anywhere: a trap listening at the redirect's address sees nobody. The positive
# control, a server holding a real host certificate, does send the client there, so the trap
# would have seen a client that followed.
. "$(dirname "$0")/../lib.sh"
certs
ATK="python3 $ROOT/tests/tools/console_attacker.py"
P=()   # distinct free ports (free_port alone may repeat one nothing listens on yet)
while [ ${#P[@]} -lt 3 ]; do p=$(free_port); [[ " ${P[*]} " == *" $p "* ]] || P+=($p); done
CA=${P[0]}; TRAP=${P[1]}; INJ=${P[2]}
bg vm "$SEALVM" run --kernel "$GUEST/console.elf" --cmdline hb=50 --mem 64M --tls-dir "$CERTS/hosta" \
  --console "tls://127.0.0.1:$CA" --owner-ca "$CERTS/ownerca/ca.pem"
wait_for "$T/vm.log" "owner's console on port" 10 || fail "console did not start"
bg trap $ATK trap "$TRAP" "$T/trap.txt"
listening() { for i in $(seq 200); do ss -ltn | grep -q ":$1 " && return 0; sleep 0.1; done; fail "nothing listens on $1"; }
listening "$TRAP"
client() { timeout 20 "$SEALVM" console "tls://127.0.0.1:$1" --tls-dir "$CERTS/owner" --read-only </dev/null; }

note "an on-path attacker injects a REDIRECT into the session's bytes"
bg inj $ATK inject "$INJ" "127.0.0.1:$CA" "tls://127.0.0.1:$TRAP" 1.5
listening "$INJ"
client "$INJ" >"$T/inj.out" 2>"$T/inj.err" && fail "the client carried on after the injection"
cat "$T/inj.err"
grep -q "injected a REDIRECT" "$T/inj.log" || fail "the injection never happened (test is void)"
grep -q "attached read-only" "$T/inj.err" || fail "the client never attached through the relay"
grep -q "following" "$T/inj.err" && fail "the client followed an injected redirect"

note "servers without this host's certificate send a REDIRECT"
for who in operator badca; do
  P=$(free_port)
  bg "fake-$who" $ATK fake "$CERTS/$who" "$P" "tls://127.0.0.1:$TRAP"
  listening "$P"
  out=$(client "$P" 2>&1) && fail "the client accepted a console server with the $who certificate: $out"
  echo "$who: $out"
  echo "$out" | grep -Eq "console server .*TLS: (peer certificate not trusted|certificate name mismatch)" || fail "unclear refusal of the $who server: $out"
done
[ -s "$T/trap.txt" ] && fail "a client followed a forged redirect: $(cat "$T/trap.txt")"

note "positive control: a server holding a host certificate of the cluster CA is followed"
P=$(free_port)
bg fake-hostc $ATK fake "$CERTS/hostc" "$P" "tls://127.0.0.1:$TRAP"
listening "$P"
out=$(client "$P" 2>&1)
echo "hostc: $out"
echo "$out" | grep -q "the VM moved to tls://127.0.0.1:$TRAP" || fail "the control server's redirect was not read"
wait_for "$T/trap.txt" "connection" 5 || fail "the control client did not reach the trap (the checks above prove nothing)"
echo "console redirect checks passed"
