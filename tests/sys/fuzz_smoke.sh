# Fuzz smoke test: builds the libFuzzer targets, replays the inputs of crashes fixed
# earlier (fuzz/regress/), and fuzzes each target for FUZZ_SECONDS (default 20) from the
# seed corpora. Fails on any crash, leak, timeout or out-of-memory; skipped without clang.
. "$(dirname "$0")/../lib.sh"

command -v "${FUZZ_CC:-clang}" >/dev/null || skip "clang not installed: cannot build the libFuzzer targets"

secs=${FUZZ_SECONDS:-20}
"$ROOT/scripts/fuzz.sh" "$secs" >"$T/fuzz.out" 2>&1
rc=$?
cat "$T/fuzz.out"
[ $rc -eq 0 ] || fail "scripts/fuzz.sh exited $rc: a fuzz target crashed, or the fuzzers did not build"
for t in fuzz_stream fuzz_state fuzz_multiboot fuzz_control fuzz_console fuzz_table fuzz_policy fuzz_evidence fuzz_audit fuzz_sealed fuzz_outcome fuzz_attest_phase fuzz_memserver fuzz_pageseal fuzz_pubmem; do
  grep -Eq "^$t: [0-9]+ runs, .* 0 crashes$" "$T/fuzz.out" || fail "no clean result line for $t"
done
# the fixed crashes were replayed, not skipped
for d in "$ROOT"/fuzz/regress/*/; do
  [ -d "$d" ] || continue
  t=$(basename "$d")
  n=$(find "$d" -type f | wc -l)
  [ "$n" -eq 0 ] || grep -Eq "^$t: .* $n regression inputs ok" "$T/fuzz.out" || fail "$t: regression inputs not replayed"
done
echo ok
