#!/bin/bash
# Boots the test guests under QEMU and checks what they print and how they exit, so a guest bug is not
# mistaken for a sealvm bug. Exit 0 pass, 1 fail, 77 skip; prints one line saying why.
# Uses KVM when /dev/kvm is usable (the guests' real target; this machine's KVM emulates each
# instruction, a boot costs ~3-4 s), else TCG. SEALVM_QEMU_ACCEL=kvm|tcg overrides.
set -u
QEMU=qemu-system-x86_64
command -v $QEMU >/dev/null || { echo "SKIP: $QEMU not installed"; exit 77; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
G=$ROOT/build/guest

if [ ! -f $G/counter.elf ] || [ ! -f $G/mbinfo.elf ] || [ ! -f $G/memcheck.elf ]; then
    make -s -C "$ROOT" guests >/dev/null 2>&1 || { echo "FAIL: make guests failed"; exit 1; }
fi
accel=${SEALVM_QEMU_ACCEL:-}
if [ -z "$accel" ]; then
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then accel=kvm; else accel=tcg; fi
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=
fail() { echo "FAIL: $*"; [ -z "$out" ] || sed 's/^/  | /' "$out" | head -20 >&2; exit 1; }

# boot NAME ELF ARGS MEM: runs a guest in the background, output in $dir/NAME.out, QEMU's exit status in
# $dir/NAME.rc (QEMU exits (v<<1)|1 when the guest writes v to the debug-exit port). The boots run in
# parallel: each costs ~3.5 s of firmware on this machine's KVM, and there are 2 cores.
boot() {
    (timeout 90 $QEMU -accel $accel -smp "${5:-1}" -kernel "$2" -append "$3" -m "$4" -nodefaults -display none -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot >"$dir/$1.out" 2>&1
     echo $? >"$dir/$1.rc") &
}
# use NAME: selects a finished boot's output for the checks below.
use() {
    out=$dir/$1.out
    rc=$(cat "$dir/$1.rc")
    [ "$rc" != 124 ] || fail "$1: timed out"
}

boot counter $G/counter.elf "interval=50 limit=3" 64M
boot mbinfo $G/mbinfo.elf "status=7 smoke=1" 128M
boot reset $G/mbinfo.elf "reset=1" 64M
# the memory checker on 2 processors: found in QEMU's ACPI MADT, and (one core per socket, so
# SeaBIOS lists both) in its MP table; each CPU verifies its share and the shared region twice
boot smp_acpi $G/memcheck.elf "ws=8 rate=16 light=1 hb=250 passes=2" 64M 2
boot smp_mp $G/memcheck.elf "ws=8 rate=16 light=1 hb=250 passes=2 tables=1" 64M 2,sockets=2
wait

use counter
[ "$rc" = 1 ] || fail "counter: exit status $rc, want 1 (guest status 0)"
[ "$(grep -c '^COUNT ' "$out")" = 3 ] && grep -qx 'COUNT 1' "$out" && grep -qx 'COUNT 3' "$out" ||
    fail "counter: want COUNT 1..3"

use mbinfo
[ "$rc" = 15 ] || fail "mbinfo: exit status $rc, want 15 (guest status 7)"
line=$(grep '^MBI magic=' "$out") || fail "mbinfo: no MBI line"
case $line in *"magic=0x2badb002 "*"cmdline="*"status=7 smoke=1") ;; *) fail "mbinfo: bad MBI line: $line" ;; esac
upper=$(sed -n 's/.* mem_upper=\([0-9]*\) .*/\1/p' <<<"$line")
# 128 MiB guest: memory from 1 MiB up is 127 MiB less what the firmware reserves at the top (< 1 MiB).
[ -n "$upper" ] && [ "$upper" -le $((127 * 1024)) ] && [ "$upper" -ge $((126 * 1024)) ] ||
    fail "mbinfo: mem_upper=$upper KiB does not fit -m 128M"
grep -qx "MMAP base=0x100000 len=0x$(printf %x $((upper * 1024))) type=1" "$out" ||
    fail "mbinfo: memory map has no usable entry at 1 MiB matching mem_upper"
grep -qx 'MBI END' "$out" || fail "mbinfo: no MBI END"

use reset
[ "$rc" = 0 ] && grep -qx 'MBI END' "$out" || fail "mbinfo reset=1: exit status $rc, want 0 (reset with -no-reboot)"

for t in acpi mp; do
    use smp_$t
    [ "$rc" = 1 ] || fail "memcheck -smp 2 ($t): exit status $rc, want 1 (guest status 0: every page clean)"
    grep -q "^SMP cpus=2 of 2 source=$t .* apic=0,1$" "$out" || fail "memcheck -smp 2: no 2 CPUs from the $t table"
    grep -qx "CPU 1 up apic=1" "$out" || fail "memcheck -smp 2 ($t): the AP did not start"
    grep -q "^CPU 1 seq=" "$out" || fail "memcheck -smp 2 ($t): no heartbeat from CPU 1"
    grep -q "^DONE passes=2 .* bad=0 " "$out" && ! grep -q "^BAD" "$out" || fail "memcheck -smp 2 ($t): not clean"
done

echo "PASS: counter, mbinfo and memcheck on 2 CPUs (ACPI and MP tables) boot under QEMU ($accel): output, memory info, exit status and reset"
