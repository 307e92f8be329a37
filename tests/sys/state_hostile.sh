# A snapshot rewritten as a hostile holder of its key could write it (opened and sealed
# again, checksums and END recomputed, so only sealvm's checks of the contents stand in the way): an MSR
# sealvm does not restore (IA32_FEATURE_CONTROL, a VMX capability) is refused before
# any vCPU runs; VMX in CPUID and a leaf this host does not expose are masked, with a
# warning, and the guest runs on. Both vCPUs of a 2-vCPU VM go through it.
. "$(dirname "$0")/../lib.sh"
make -s -C "$ROOT" build/tools/state_edit >/dev/null || fail "cannot build state_edit"
EDIT=$ROOT/build/tools/state_edit
KEY=$T/src.state/snapshot.key   # made by the source's first snapshot

start_src src 64M "ws=4 rate=8 light=1 hb=250" --cpus 2
cpu_hb_after "$T/src.out" 1 1 30 || fail "CPU 1 not running"
ctl "$T/src.sock" snapshot "$T/good.snap" >/dev/null || fail "snapshot failed"
ctl "$T/src.sock" quit >/dev/null
wait_exit "$SRC_PID" 10 || fail "VM did not quit"

refused() { # NAME REGEX EDIT...
  local name=$1 re=$2 out rc; shift 2
  "$EDIT" "$T/good.snap" "$T/$name.snap" "$KEY" "$@" || fail "$name: state_edit failed"
  out=$(timeout 30 "$SEALVM" run --restore "$T/$name.snap" --serial "file:$T/$name.out" --state-dir "$T/src.state" 2>&1); rc=$?
  echo "$name -> $rc: $out"
  [ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "$name: exit $rc"
  echo "$out" | grep -Eq -- "$re" || fail "$name: message /$re/ not in: $out"
  [ -s "$T/$name.out" ] && fail "$name: the guest ran"
  return 0
}
note "MSRs outside the allow-list are refused before anything runs"
refused feature_control "vCPU state: MSR 0x3a \(IA32_FEATURE_CONTROL\) is not one sealvm restores" msr:3a=5
refused vmx_basic "MSR 0x480 \(a VMX capability MSR\) is not one sealvm restores" msr:480=0
refused debugctl "MSR 0x1d9 \(DEBUGCTL\)" msr:1d9=1

note "VMX in CPUID and an unknown leaf are masked; the guest runs on"
"$EDIT" "$T/good.snap" "$T/vmx.snap" "$KEY" vmx leaf:12 leaf:4fffffff || fail "state_edit failed"
bg vmx "$SEALVM" run --restore "$T/vmx.snap" --serial "file:$T/vmx.out" --control "$T/vmx.sock" --state-dir "$T/src.state"
cpu_hb_after "$T/vmx.out" 0 1 30 || { cat "$T/vmx.log"; fail "the masked VM does not run"; }
cpu_hb_after "$T/vmx.out" 1 1 30 || fail "CPU 1 of the masked VM does not run"
cat "$T/vmx.log"
for c in 0 1; do
  grep -Eq "warning: vCPU $c: incoming CPUID masked to this host's: [2-9][0-9]* leaves dropped, [0-9]+ feature bits cleared \(VMX/SVM among them\)" \
    "$T/vmx.log" || fail "no masking warning for vCPU $c"
done
check_clean "$T/vmx.out"
ctl "$T/vmx.sock" quit >/dev/null
echo ok
