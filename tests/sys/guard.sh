# The integrity guard (issue 13, phase 1) on one host with a real swtpm and two running
# VMs: an allowed build replacing sealvm on disk raises nothing; a byte of a VM's code
# patched through /proc/PID/mem is detected by the first round that starts after the
# write, marks the host untrusted (attestation refuses it, check "guard"), raises the
# alarm and leaves the VMs running; then a library changed in place, sealvm replaced by
# a build the table does not allow, and a hand-edited table are each detected and
# recorded. The mark survives a restart of the guard; `guard clear` and a TPM restart
# make the host trusted again. The audit log records every step and verifies.
. "$(dirname "$0")/../lib.sh"

S=$SEALVM
IV=100
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); exec("r="+sys.argv[1]); print("" if r is None else r)' "$1"; }
gctl() { "$S" ctl --timeout 20 "$T/guard.sock" "$@"; }
now_ms() { date +%s%3N; }

start_swtpm hosta
"$S" admin keygen --out "$T/admin.pem" >/dev/null || fail "admin keygen"
"$S" host init --state-dir "$T/hosta" --tpm "$TPM_SPEC" --name hosta --admin-key "$T/admin.pub.pem" \
  >"$T/init.log" 2>&1 || fail "host init: $(cat "$T/init.log")"
certs

# the VMs run a copy of sealvm, which the test replaces on disk; the guard runs the build
mkdir -p "$T/bin" "$T/lib" "$T/vms"
cp "$S" "$T/bin/sealvm"
# an allowed variant: the same program with a byte appended (runs the same, hashes differently)
cp "$S" "$T/variant"; printf 'v' >>"$T/variant"
# a build the table does not allow
cp "$S" "$T/rogue"; printf 'r' >>"$T/rogue"
EXE=$(sha256sum "$S" | cut -d' ' -f1)
VAR=$(sha256sum "$T/variant" | cut -d' ' -f1)
LIB=$(ldd "$S" | awk '/libjansson/ {print $3}')
[ -f "$LIB" ] || fail "libjansson not found through ldd"
cp "$LIB" "$T/lib/$(basename "$LIB")"
AK=$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$T/hosta/ak.pem")
make_table() { # SERIAL OUT
  cat >"$T/table.json" <<J
{"type":"sealvm-table","version":1,"serial":$1,"sealvm":["$EXE","$VAR"],
 "hosts":[{"name":"hosta","ak":$AK,"trust":2}]}
J
  "$S" admin sign --key "$T/admin.pem" --out "$2" "$T/table.json" >/dev/null || fail "signing the table"
}
make_table 1 "$T/table.signed"
cat >"$T/policy.json" <<'J'
{"type":"sealvm-policy","version":1,"serial":1,"roles":[{"name":"admins","principals":["user:root"],"ops":["*"]}]}
J
"$S" admin sign --key "$T/admin.pem" --out "$T/policy.signed" "$T/policy.json" >/dev/null || fail "signing the policy"
cp "$T/table.signed" "$T/table.good"

start_vm() { # NAME [env...]
  local name=$1; shift
  bg "$name" env "$@" "$T/bin/sealvm" run --kernel "$GUEST/memcheck.elf" --cmdline "ws=8 rate=16 light=1" \
    --mem 64M --serial "file:$T/$name.out" --control "$T/vms/$name.sock" --state-dir "$T/$name.state"
  wait_for "$T/$name.out" "^READY" 60 || fail "$name did not start"
}
start_vm vm1
VM1=$!
start_vm vm2 LD_LIBRARY_PATH="$T/lib"
VM2=$!
grep -q "$T/lib/" "/proc/$VM2/maps" || fail "vm2 does not map the library copy"

cat >"$T/alarm.sh" <<A
#!/bin/sh
echo "\$@" >>"$T/alarms"
A
chmod +x "$T/alarm.sh"
start_guard() {
  bg guard "$S" guard --state-dir "$T/hosta" --vms "$T/vms" --table "$T/table.signed" --policy "$T/policy.signed" \
    --tls-dir "$CERTS/hosta" --interval $IV --control "$T/guard.sock" --alarm-cmd "$T/alarm.sh" --audit-every 2000
  GUARD=$!
  wait_for "$T/guard.log" "watching" 20 || fail "the guard did not start: $(cat "$T/guard.log")"
}
wait_state() { # STATE SECONDS
  local n=$(( $2 * 20 ))
  while [ $n -gt 0 ]; do
    [ "$(gctl status 2>/dev/null | jget 'd["state"]' 2>/dev/null)" = "$1" ] && return 0
    sleep 0.05; n=$((n - 1))
  done
  return 1
}
# the measurement of a process (by socket name) from `ctl measurements`
proc_field() { # SOCKNAME EXPR(on p)
  gctl measurements | python3 -c '
import json,sys
d=json.load(sys.stdin)
for p in d["processes"]:
    if p["socket"].endswith("/"+sys.argv[1]):
        exec("r="+sys.argv[2]); print(r)' "$1" "$2"
}
wait_measured() { # SOCKNAME SECONDS: measured, and passing
  local n=$(( $2 * 10 ))
  while [ $n -gt 0 ]; do
    [ "$(proc_field "$1" 'p["ok"] and p["measurements"] > 2')" = True ] && return 0
    sleep 0.1; n=$((n - 1))
  done
  echo "$1: $(gctl measurements)"
  return 1
}

start_guard
wait_measured vm1.sock 20 || fail "vm1 was not measured clean"
wait_measured vm2.sock 20 || fail "vm2 was not measured clean"
[ "$(gctl status | jget 'd["state"]')" = trusted ] || fail "host not trusted at start: $(gctl status)"
note "watching: $(gctl measurements | jget '[(p["socket"], p["pid"], p["modules"], p["ms"]) for p in d["processes"]]')"
nonce() { openssl rand -hex 32; }
attest_self() { # -> verdict line; status 0 when attested
  local n; n=$(nonce)
  "$S" attest quote --state-dir "$T/hosta" --nonce "$n" --out "$T/self.ev" 2>"$T/quote.err" || fail "quote: $(cat "$T/quote.err")"
  "$S" attest verify --table "$T/table.good" --admin-key "$T/admin.pub.pem" --nonce "$n" --peer hosta \
    --policy-serial 1 "$T/self.ev"
}
out=$(attest_self) || fail "the clean host does not attest: $out"

# an allowed build installed over the VMs' executable: noted, not an alarm
cp "$T/variant" "$T/bin/sealvm.new" && mv "$T/bin/sealvm.new" "$T/bin/sealvm"
sleep 1
[ "$(gctl status | jget 'd["state"]')" = trusted ] || fail "an allowed build on disk raised an alarm: $(gctl status)"
proc_field vm1.sock 'p.get("note","")' | grep -q "another allowed build" || fail "the allowed replacement was not noted"

# one byte of vm1's code, in a function the VMM never runs
t0=$(now_ms)
python3 - "$VM1" >"$T/patch.log" <<'P' || fail "patching vm1's code failed"
import subprocess, sys, time
pid = int(sys.argv[1])
for l in open(f"/proc/{pid}/maps"):
    f = l.split()
    if len(f) >= 6 and f[2] == "00000000" and "/bin/sealvm" in l:
        base, exe = int(f[0].split("-")[0], 16), f[5]
        break
sym = [l.split() for l in subprocess.run(["nm", f"/proc/{pid}/exe"], capture_output=True, text=True).stdout.splitlines()]
addr = base + next(int(s[0], 16) for s in sym if len(s) == 3 and s[2] == "cmd_guard")
with open(f"/proc/{pid}/mem", "r+b", buffering=0) as m:
    m.seek(addr); b = m.read(1)
    m.seek(addr); m.write(bytes([b[0] ^ 0xff]))
print(int(time.time() * 1000), hex(addr))
P
t_write=$(cut -d' ' -f1 "$T/patch.log")
wait_state untrusted 5 || fail "the patched code was not detected: $(gctl status)"
st=$(gctl status)
[ "$(echo "$st" | jget 'd["untrusted"]["check"]')" = code ] || fail "wrong check: $st"
echo "$st" | jget 'd["untrusted"]["target"]' | grep -q vm1.sock || fail "wrong target: $st"
at=$(echo "$st" | jget 'd["untrusted"]["at_ms"]')
prev=$(echo "$st" | jget 'd["untrusted"]["prev_round_start_ms"]')
note "code patched at $t_write, detected at $at: $((at - t_write)) ms (interval $IV ms); the round before began at $prev"
# within one interval: the first round to begin after the write found it
[ "$prev" -le "$t_write" ] || fail "a round that began after the patch ($prev > $t_write) missed it"
[ $((at - t_write)) -le $((2 * IV + 1000)) ] || fail "detection took $((at - t_write)) ms"

# the host is marked: attestation refuses it, whatever else holds
out=$(attest_self) && fail "a marked host still attests: $out"
echo "$out" | grep -q "failed (guard)" || fail "attestation of the marked host: $out"
note "$out"
grep -q '"check": "code"' "$T/hosta/guard-alarm.json" || fail "no mark file"
grep -q '"type":"guard-alarm"' "$T/hosta/eventlog.jsonl" || fail "no guard-alarm event in the TPM's log"
wait_for "$T/alarms" "^code .*vm1.sock" 5 || fail "--alarm-cmd did not run"
# the guard does not stop VMs (phase 1: evacuation comes with the trusted migration)
vm_runs() { # NAME: the VM answers, runs, and its checker keeps going clean
  local seq
  ctl "$T/vms/$1.sock" status | grep -q '"state": "running"' || fail "$1 is not running"
  seq=$(hb_field "$T/$1.out" seq)
  hb_after "$T/$1.out" "${seq:-0}" 10 || fail "$1's guest stopped making progress"
  check_clean "$T/$1.out"
}
vm_runs vm1
vm_runs vm2

# a library changed in place while mapped (vm2 maps the copy)
python3 - "$T/lib/$(basename "$LIB")" <<'P'
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-1, os.SEEK_END); b = f.read(1); f.seek(-1, os.SEEK_END); f.write(bytes([b[0] ^ 0xff]))
P
wait_for "$T/guard.log" "library: .*$(basename "$LIB").* changed on disk while mapped" 5 ||
  fail "the changed library was not detected"

# sealvm replaced on disk by a build the table does not allow
cp "$T/rogue" "$T/bin/sealvm.new" && mv "$T/bin/sealvm.new" "$T/bin/sealvm"
wait_for "$T/guard.log" "vm2.sock .*exe-on-disk: $T/bin/sealvm was replaced on disk by a build the integrity validation table does not allow" 5 ||
  fail "the rogue build on disk was not detected"

# the table edited by hand
sed 's/"trust": 2/"trust": 9/' "$T/table.good" >"$T/table.signed"
wait_for "$T/guard.log" "config: integrity validation table .*changed after it was signed" 5 ||
  fail "the edited table was not detected"
cp "$T/table.good" "$T/table.signed"

# every step is in the audit log, which verifies
for ev in guard-config guard-watch guard-fail guard-untrusted guard-summary; do
  grep -q "\"event\":\"$ev\"" "$T/hosta/audit.jsonl" || fail "no $ev record in the audit log"
done
for c in code library exe-on-disk config; do
  grep -q "\"event\":\"guard-fail\".*\"check\":\"$c\"" "$T/hosta/audit.jsonl" || fail "no guard-fail record for $c"
done

# the mark outlives the guard
gctl quit >/dev/null
wait_exit "$GUARD" 10 || fail "the guard did not stop"
start_guard
wait_state untrusted 5 || fail "a restarted guard forgot the mark: $(gctl status)"
[ "$(gctl status | jget 'd["untrusted"]["restored"]')" = True ] || fail "the mark was not restored"
gctl quit >/dev/null
wait_exit "$GUARD" 10 || fail "the guard did not stop"
"$S" audit verify "$T/hosta/audit.jsonl" --state-dir "$T/hosta" >"$T/audit.verify" || fail "audit log: $(cat "$T/audit.verify")"
note "$(cat "$T/audit.verify")"

# repair: the tampered VMs go, the good files come back, the mark is cleared, and the
# TPM restarts (a reboot): the host attests again and a new guard finds it trusted
kill "$VM1" "$VM2"
wait_exit "$VM1" 10; wait_exit "$VM2" 10
cp "$S" "$T/bin/sealvm"
cp "$LIB" "$T/lib/$(basename "$LIB")"
"$S" guard clear --state-dir "$T/hosta" >"$T/clear.log" || fail "guard clear: $(cat "$T/clear.log")"
out=$(attest_self) && fail "the PCR forgot the alarm before the TPM restarted: $out"
start_guard
wait_state untrusted 5 || fail "a guard trusts a host whose PCR holds an alarm: $(gctl status)"
gctl status | jget 'd["untrusted"]["reason"]' | grep -q "TPM still holds a guard alarm" || fail "$(gctl status)"
gctl quit >/dev/null
wait_exit "$GUARD" 10 || fail "the guard did not stop"
kill "$TPM_PID"; wait_exit "$TPM_PID" 10
port=${TPM_SPEC##*port=}
bg hosta.swtpm2 swtpm socket --tpm2 --tpmstate "dir=$T/hosta.tpm" \
  --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
  --flags not-need-init,startup-clear
n=50; while ! ss -ltn | grep -q "127.0.0.1:$port "; do n=$((n - 1)); [ $n -gt 0 ] || fail "swtpm did not restart"; sleep 0.1; done
start_vm vm3
start_guard
wait_measured vm3.sock 20 || fail "vm3 was not measured clean"
[ "$(gctl status | jget 'd["state"]')" = trusted ] || fail "the repaired host is not trusted: $(gctl status)"
out=$(attest_self) || fail "the repaired host does not attest: $out"
grep -q '"event":"guard-clear"' "$T/hosta/audit.jsonl" || fail "guard clear was not recorded"
gctl quit >/dev/null
wait_exit "$GUARD" 10
"$S" audit verify "$T/hosta/audit.jsonl" --state-dir "$T/hosta" >"$T/audit.verify" || fail "audit log: $(cat "$T/audit.verify")"
echo ok
