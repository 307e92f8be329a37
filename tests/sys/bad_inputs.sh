# Bad command lines and kernels: each a clear error and a non-zero exit, never a crash.
. "$(dirname "$0")/../lib.sh"

expect_err() { # REGEX CMD...: the command fails (not by a signal) and says REGEX
  local re=$1; shift
  local out rc
  out=$(timeout 30 "$@" 2>&1); rc=$?
  echo "\$ $* -> $rc: $out"
  [ $rc -ne 0 ] || fail "succeeded: $*"
  [ $rc -lt 128 ] || fail "killed by a signal ($rc): $*"
  echo "$out" | grep -Eq -- "$re" || fail "message /$re/ not in: $out"
}

printf 'not an elf at all' > "$T/text"
head -c 4096 /dev/urandom > "$T/random"
# An ELF without a Multiboot header: the host's own binary will do.
cp /bin/true "$T/plain.elf"
# A Multiboot ELF whose segment lies beyond 16 MiB of RAM: load counter into 2 MiB.
python3 - "$GUEST/counter.elf" "$T/high.elf" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
phoff, = struct.unpack_from('<I', d, 28); phnum, = struct.unpack_from('<H', d, 44)
for i in range(phnum):
    o = phoff + 32 * i
    if struct.unpack_from('<I', d, o)[0] == 1:  # PT_LOAD: move it to 1 GiB
        for f in (8, 12):
            v, = struct.unpack_from('<I', d, o + f); struct.pack_into('<I', d, o + f, v + 0x40000000)
open(sys.argv[2], 'wb').write(d)
PY
# header found, but the segments it names lie past the end of the file
head -c 4200 "$GUEST/counter.elf" > "$T/trunc.elf"

expect_err "cannot open kernel .*No such file" "$SEALVM" run --kernel "$T/missing.elf"
expect_err "not an ELF file" "$SEALVM" run --kernel "$T/text"
expect_err "not an ELF file" "$SEALVM" run --kernel "$T/random"
expect_err "no Multiboot header" "$SEALVM" run --kernel "$T/plain.elf"
expect_err "outside guest RAM" "$SEALVM" run --kernel "$T/high.elf" --mem 64M
expect_err "extends past the end of the file|malformed|no Multiboot" "$SEALVM" run --kernel "$T/trunc.elf"
expect_err "out of range" "$SEALVM" run --kernel "$GUEST/counter.elf" --mem 100T
expect_err "out of range" "$SEALVM" run --kernel "$GUEST/counter.elf" --mem 1K
expect_err "--cpus 0: give a number of vCPUs from 1 to 64" "$SEALVM" run --kernel "$GUEST/counter.elf" --cpus 0
expect_err "--cpus 65: give a number of vCPUs from 1 to 64" "$SEALVM" run --kernel "$GUEST/counter.elf" --cpus 65
expect_err "--cpus 2x: give a number" "$SEALVM" run --kernel "$GUEST/counter.elf" --cpus 2x
expect_err "--cpus goes with --kernel" "$SEALVM" run --restore "$T/text" --cpus 2
expect_err "too large|out of range" "$SEALVM" run --kernel "$GUEST/counter.elf" --mem 99999999999999999999G
expect_err "unknown suffix" "$SEALVM" run --kernel "$GUEST/counter.elf" --mem 12Q
expect_err "not a number" "$SEALVM" run --kernel "$GUEST/counter.elf" --mem abc
expect_err "unknown or incomplete option" "$SEALVM" run --kernel "$GUEST/counter.elf" --bogus
expect_err "exactly one of" "$SEALVM" run
expect_err "--serial must be" "$SEALVM" run --kernel "$GUEST/counter.elf" --serial tty
expect_err "unknown command" "$SEALVM" frobnicate
expect_err "cannot connect to control socket" "$SEALVM" ctl "$T/nosock" status
echo ok
