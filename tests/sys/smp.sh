# Two-vCPU VMs: the guest finds both processors in sealvm's MP table and starts the
# second with INIT/SIPI; a snapshot/restore round trip, snapshots taken while the AP
# waits for INIT or for the SIPI, a TLS pre-copy migration under load and a hand-over that fails
# after READY all carry both vCPUs: every page verified afterwards, both CPUs'
# heartbeats continuing. A one-vCPU snapshot in the format before multi-vCPU support
# still restores. The memory checker halts its CPUs half of each tick, so the
# two vCPUs take about one core.
. "$(dirname "$0")/../lib.sh"
certs

# both_continue FILE LAST0 LAST1 SECONDS: CPU 0 and CPU 1 beat past the given seqs.
both_continue() {
  cpu_hb_after "$1" 0 "$2" "$4" || fail "CPU 0 stopped in $1"
  cpu_hb_after "$1" 1 "$3" "$4" || fail "CPU 1 stopped in $1"
}
# verified FILE: one more full sweep of every page by every CPU, and nothing bad.
verified() {
  local p
  p=$(hb_field "$1" passes)
  passes_after "$1" "${p:-0}" 90 || fail "no full verification pass in $1"
  check_clean "$1"
}

note "boot with --cpus 2: both processors found, the AP started"
start_src src 256M "ws=8 rate=16 light=1 hb=250" --cpus 2 --tls-dir "$CERTS/hosta"
grep -q "^SMP cpus=2 of 2 source=mp table=0xf0000 lapic=0xfee00000 apic=0,1$" "$T/src.out" ||
  fail "the guest did not find 2 CPUs in the MP table: $(head -n 3 "$T/src.out")"
grep -q "^CPU 1 up apic=1$" "$T/src.out" || fail "the AP did not start"
ctl "$T/src.sock" status | grep -q '"vcpus": 2' || fail "status does not say 2 vCPUs"
both_continue "$T/src.out" 2 2 30
verified "$T/src.out"

note "pause stops both vCPUs, resume starts both"
ctl "$T/src.sock" pause >/dev/null || fail "pause failed"
sleep 0.5
p0=$(cpu_field "$T/src.out" 0 seq); p1=$(cpu_field "$T/src.out" 1 seq); pw=$(hb_field "$T/src.out" writes)
sleep 2
[ "$(cpu_field "$T/src.out" 0 seq)" = "$p0" ] && [ "$(cpu_field "$T/src.out" 1 seq)" = "$p1" ] ||
  fail "a vCPU ran on while paused: $(tail -n 3 "$T/src.out")"
ctl "$T/src.sock" resume >/dev/null || fail "resume failed"
both_continue "$T/src.out" "$p0" "$p1" 20
[ "$(hb_field "$T/src.out" writes)" -gt "$pw" ] || fail "no writes after resume"

note "snapshot, kill, restore: both vCPUs continue where they were"
ctl "$T/src.sock" snapshot "$T/snap" > "$T/snap.json" || fail "snapshot failed: $(cat "$T/snap.json")"
kill -9 "$SRC_PID"; wait "$SRC_PID" 2>/dev/null
l0=$(cpu_field "$T/src.out" 0 seq); l1=$(cpu_field "$T/src.out" 1 seq)
w1=$(cpu_field "$T/src.out" 1 writes)
bg restored "$SEALVM" run --restore "$T/snap" --serial "file:$T/restored.out" --control "$T/restored.sock" \
  --tls-dir "$CERTS/hosta" --state-dir "$T/src.state"
RPID=$!
both_continue "$T/restored.out" "$l0" "$l1" 30
f1=$(grep -Eo '^CPU 1 seq=[0-9]+' "$T/restored.out" | head -n 1 | cut -d= -f2)
[ "$f1" -le "$((l1 + 1))" ] || fail "CPU 1 restarted at $f1, past the snapshot (source at $l1)"
[ "$(cpu_field "$T/restored.out" 1 writes)" -ge "$w1" ] || fail "CPU 1's write counter went backwards"
ctl "$T/restored.sock" status | grep -q '"vcpus": 2' || fail "the restored VM does not have 2 vCPUs"
verified "$T/restored.out"

note "TLS pre-copy migration of the restored VM while both CPUs write 64 MB/s"
ctl "$T/restored.sock" quit >/dev/null; wait_exit "$RPID" 10 || fail "restored VM did not quit"
start_src mig 256M "ws=16 rate=64 light=1 hb=250" --cpus 2 --tls-dir "$CERTS/hosta"
both_continue "$T/mig.out" 2 2 30
port=$(free_port)
start_dst dst "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
ctl "$T/mig.sock" migrate "tls://127.0.0.1:$port" --downtime-ms 50 --max-throttle 50 --channels 2 \
  > "$T/report.json" || { cat "$T/report.json" "$T/mig.log" "$T/dst.log"; fail "migration failed"; }
cat "$T/report.json"
grep -q '"result": "committed"' "$T/report.json" || fail "not committed"
grep -q '"converged": true' "$T/report.json" || fail "did not converge"
wait_exit "$SRC_PID" 20; rc=$?
[ $rc -eq 0 ] || fail "source exited $rc after the hand-over"
l0=$(cpu_field "$T/mig.out" 0 seq); l1=$(cpu_field "$T/mig.out" 1 seq)
both_continue "$T/dst.out" "$l0" "$l1" 30
f1=$(grep -Eo '^CPU 1 seq=[0-9]+' "$T/dst.out" | head -n 1 | cut -d= -f2)
[ "$f1" -gt "$l1" ] || fail "CPU 1 restarted at $f1 at the destination (source was at $l1)"
ctl "$T/dst.sock" status | grep -q '"vcpus": 2' || fail "the destination does not run 2 vCPUs"
verified "$T/dst.out"

note "hand-over fault while both vCPUs are paused (READY never comes in time): both run on at the source"
port=$(free_port)
bg dead env SEALVM_TEST_FAULT=trickle-ready "$SEALVM" run --incoming "tls://127.0.0.1:$port" \
  --tls-dir "$CERTS/hostb" --serial "file:$T/dead.out" --state-dir "$T/dead.state"
dpid=$!
wait_for "$T/dead.log" "waiting for an incoming VM" 20 || fail "no destination"
out=$(ctl "$T/dst.sock" migrate "tls://127.0.0.1:$port" --ready-timeout-ms 1500 2>&1) &&
  fail "migration succeeded into a destination that never became READY: $out"
echo "$out" | tail -n 1
echo "$out" | grep -q "was not READY within 1500 ms of the pause" || fail "unexpected error: $out"
kill "$dpid" 2>/dev/null
[ -s "$T/dead.out" ] && fail "the VM ran at the dying destination"
ctl "$T/dst.sock" status | grep -q '"state": "running"' || fail "the VM is not running at the source"
both_continue "$T/dst.out" "$(cpu_field "$T/dst.out" 0 seq)" "$(cpu_field "$T/dst.out" 1 seq)" 20
verified "$T/dst.out"
ctl "$T/dst.sock" quit >/dev/null
wait_exit "$DST_PID" 20 || fail "VM did not quit"

# The AP before INIT (KVM's wait-for-SIPI state, UNINITIALIZED), and after INIT but before the
# SIPI (INIT_RECEIVED: a SIPI is taken only then, so an AP restored in any other state never starts).
for c in "apdelay=6000:^APDELAY:before INIT" "initwait=6000:^INIT sent to cpu 1:between INIT and SIPI"; do
  IFS=: read -r arg marker what <<<"$c"
  note "snapshot while the AP waits $what: it is started after the restore"
  rm -f "$T"/sipi*
  bg sipi "$SEALVM" run --kernel "$GUEST/memcheck.elf" --cmdline "ws=4 rate=8 light=1 hb=250 $arg" \
    --mem 64M --cpus 2 --serial "file:$T/sipi.out" --control "$T/sipi.sock"
  spid=$!
  wait_for "$T/sipi.out" "$marker" 30 || fail "no $marker"
  ctl "$T/sipi.sock" snapshot "$T/sipi.snap" > "$T/sipi.json" || fail "snapshot failed: $(cat "$T/sipi.json")"
  grep -q "^CPU 1 up" "$T/sipi.out" && fail "the AP started before the snapshot: wait longer"
  kill -9 "$spid"; wait "$spid" 2>/dev/null
  bg sipi2 "$SEALVM" run --restore "$T/sipi.snap" --serial "file:$T/sipi2.out" --control "$T/sipi2.sock"
  wait_for "$T/sipi2.out" "^CPU 1 up apic=1$" 30 || { cat "$T/sipi2.log"; fail "the restored AP did not start"; }
  both_continue "$T/sipi2.out" 1 1 30
  verified "$T/sipi2.out"
  ctl "$T/sipi2.sock" quit >/dev/null
done

# tests/data/counter-config-v1.snap: a counter guest snapshotted (4 MiB) by sealvm before it ran
# several vCPUs (commit a407a46): CONFIG version 1 in an unsealed format-1 file. Sealed snapshots
# (format 2) carry CONFIG v1 for one-vCPU machines still (the restores above); an unsealed file
# cannot be authenticated, so it is refused, clearly, before anything runs.
note "a snapshot from before sealing is refused with a clear error"
out=$(timeout 20 "$SEALVM" run --restore "$ROOT/tests/data/counter-config-v1.snap" --serial "file:$T/old.out" 2>&1) &&
  fail "an unsealed snapshot was restored"
echo "$out"
echo "$out" | grep -q "unsealed snapshot (format 1" || fail "unclear refusal: $out"
[ -s "$T/old.out" ] && fail "the old snapshot ran"
echo ok
