# Boot: serial output, Multiboot info the guest sees, debug-exit status, reset.
. "$(dirname "$0")/../lib.sh"

note "mbinfo sees its command line, memory size and map"
out=$(timeout 30 "$SEALVM" run --kernel "$GUEST/mbinfo.elf" --cmdline "hello world status=5" --mem 128M 2>&1)
rc=$?
echo "$out"
[ $rc -eq 5 ] || fail "exit status $rc, want 5 (debug-exit port)"
echo "$out" | grep -q "^MBI magic=0x2badb002 " || fail "no Multiboot magic line"
echo "$out" | grep -q "cmdline=hello world status=5$" || fail "command line not seen"
# 128 MiB: mem_upper is the KiB from 1 MiB up to the end of RAM
echo "$out" | grep -q "mem_lower=639 mem_upper=130048 " || fail "mem_lower/mem_upper wrong"
echo "$out" | grep -q "^MMAP base=0x100000 len=0x7f00000 type=1$" || fail "memory map lacks RAM above 1 MiB"

note "exit status 0 and 255 pass through"
timeout 30 "$SEALVM" run --kernel "$GUEST/mbinfo.elf" --cmdline "status=0" --mem 16M >/dev/null 2>&1
[ $? -eq 0 ] || fail "status 0 not returned"
timeout 30 "$SEALVM" run --kernel "$GUEST/mbinfo.elf" --cmdline "status=255" --mem 16M >/dev/null 2>&1
[ $? -eq 255 ] || fail "status 255 not returned"

note "RAM above 3 GiB goes above 4 GiB"
out=$(timeout 30 "$SEALVM" run --kernel "$GUEST/mbinfo.elf" --mem 5G 2>&1) || fail "5G guest failed: $out"
echo "$out" | grep -q "^MMAP base=0x100000 len=0xbff00000 type=1$" || fail "low RAM not capped at 3 GiB: $out"
echo "$out" | grep -q "^MMAP base=0x100000000 len=0x80000000 type=1$" || fail "high RAM not at 4 GiB: $out"

note "i8042 reset ends the VM"
out=$(timeout 30 "$SEALVM" run --kernel "$GUEST/mbinfo.elf" --cmdline "reset=1" --mem 16M 2>&1)
rc=$?
[ $rc -eq 0 ] || fail "reset: exit $rc"
echo "$out" | grep -q "guest reset the machine" || fail "reset not reported: $out"

note "counter prints to a serial file and stops at its limit"
timeout 60 "$SEALVM" run --kernel "$GUEST/counter.elf" --cmdline "interval=10 limit=20" --mem 16M \
  --serial "file:$T/c.out" || fail "counter exit $?"
[ "$(grep -c '^COUNT ' "$T/c.out")" -eq 20 ] || fail "want 20 COUNT lines: $(cat "$T/c.out")"
[ "$(tail -n 1 "$T/c.out")" = "COUNT 20" ] || fail "last line $(tail -n 1 "$T/c.out")"
echo ok
