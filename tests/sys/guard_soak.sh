# False alarms: the integrity guard measures an untouched host for an hour's worth of
# rounds at its default 100 ms interval (36000 rounds, run back to back) while
# everything a healthy host does happens: VMs start and stop, a VM is snapshotted, a
# library copy is touched (new times, same bytes), a newer signed table is installed,
# and sealvm measures itself into the TPM again. Not one measurement may fail, and the
# audit log must verify.
. "$(dirname "$0")/../lib.sh"

S=$SEALVM
ROUNDS=${GUARD_SOAK_ROUNDS:-36000}

start_swtpm hosta
"$S" admin keygen --out "$T/admin.pem" >/dev/null || fail "admin keygen"
"$S" host init --state-dir "$T/hosta" --tpm "$TPM_SPEC" --name hosta --admin-key "$T/admin.pub.pem" \
  >"$T/init.log" 2>&1 || fail "host init: $(cat "$T/init.log")"
certs
EXE=$(sha256sum "$S" | cut -d' ' -f1)
AK=$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$T/hosta/ak.pem")
make_table() { # SERIAL OUT
  cat >"$T/table.json" <<J
{"type":"sealvm-table","version":1,"serial":$1,"sealvm":["$EXE"],"hosts":[{"name":"hosta","ak":$AK,"trust":2}]}
J
  "$S" admin sign --key "$T/admin.pem" --out "$2" "$T/table.json" >/dev/null || fail "signing the table"
}
make_table 1 "$T/table.signed"
cat >"$T/policy.json" <<'J'
{"type":"sealvm-policy","version":1,"serial":1,"roles":[{"name":"admins","principals":["user:root"],"ops":["*"]}]}
J
"$S" admin sign --key "$T/admin.pem" --out "$T/policy.signed" "$T/policy.json" >/dev/null || fail "signing the policy"
mkdir -p "$T/vms" "$T/lib"
LIB=$(ldd "$S" | awk '/libxxhash/ {print $3}')
cp "$LIB" "$T/lib/"

start_vm() { # NAME [env...]
  local name=$1; shift
  bg "$name" env "$@" "$S" run --kernel "$GUEST/memcheck.elf" --cmdline "ws=4 rate=8 light=1" --mem 32M \
    --serial "file:$T/$name.out" --control "$T/vms/$name.sock" --state-dir "$T/$name.state"
  wait_for "$T/$name.out" "^READY" 60 || fail "$name did not start"
}
start_vm vm1

t0=$SECONDS
bg guard "$S" guard --state-dir "$T/hosta" --vms "$T/vms" --table "$T/table.signed" \
  --policy "$T/policy.signed" --tls-dir "$CERTS/hosta" --interval 0 --rounds "$ROUNDS" --control "$T/guard.sock" \
  --audit-every 5000
GUARD=$!
wait_for "$T/guard.log" "watching" 20 || fail "the guard did not start: $(cat "$T/guard.log")"

# a healthy host's life while the guard measures
for i in 1 2 3; do
  alive "$GUARD" || break
  start_vm "vm2-$i" LD_LIBRARY_PATH="$T/lib"
  sleep 2
  touch "$T/lib/$(basename "$LIB")"
  ctl "$T/vms/vm1.sock" snapshot "$T/snap$i" >/dev/null || fail "snapshot $i"
  sleep 2
  ctl "$T/vms/vm2-$i.sock" quit >/dev/null || fail "quit vm2-$i"
  if [ $i = 2 ]; then
    make_table 2 "$T/table.new" && mv "$T/table.new" "$T/table.signed"
    "$S" host measure --state-dir "$T/hosta" --table "$T/table.signed" --policy "$T/policy.signed" \
      --ca "$CERTS/hosta/ca.pem" >/dev/null 2>&1 || fail "host measure"
  fi
done
wait_exit "$GUARD" 600 || fail "the guard did not finish its $ROUNDS rounds"
note "$(tail -n 1 "$T/guard.log") in $((SECONDS - t0)) s"
grep -q "stopping after $ROUNDS rounds (0 failed measurements)" "$T/guard.log" ||
  fail "false alarm on an untouched host: $(grep -m5 'failed\|ALARM' "$T/guard.log")"
grep -q '"event":"guard-fail"' "$T/hosta/audit.jsonl" && fail "a guard-fail record on an untouched host"
[ -e "$T/hosta/guard-alarm.json" ] && fail "the host was marked untrusted"
grep -q '"event":"guard-config-update"' "$T/hosta/audit.jsonl" || fail "the newer table was not taken"
n=$(grep -c '"event":"guard-watch"' "$T/hosta/audit.jsonl")
[ "$n" -ge 5 ] || fail "expected vm1, three vm2s and the guard watched, got $n"
n=$(grep -c '"event":"guard-unwatch"' "$T/hosta/audit.jsonl")
[ "$n" -ge 3 ] || fail "expected three VMs to be seen go, got $n"
"$S" audit verify "$T/hosta/audit.jsonl" --state-dir "$T/hosta" >"$T/audit.verify" || fail "audit log: $(cat "$T/audit.verify")"
note "$(cat "$T/audit.verify")"
echo ok
