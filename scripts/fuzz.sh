#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each one in turn (one process at a time, niced).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 300; 0 = build and replay only). TARGET is one of ALL below
# ("stream" is short for fuzz_stream);
# default all. For each target:
#   1. replays every input kept in fuzz/regress/TARGET/ (crashes fixed earlier);
#   2. fuzzes for SECONDS with the corpus build/fuzz/corpus/TARGET, seeded from
#      fuzz/corpus/TARGET; new crashes go to build/fuzz/crashes/TARGET/;
#   3. prints executions, exec/s, coverage (start -> end), new inputs and crashes.
# Exits 1 if any replay or fuzz run crashed (or a target could not run), 2 on usage
# or build errors. Logs are in build/fuzz/logs/.
# Environment: FUZZ_FLAGS adds libFuzzer flags (e.g. FUZZ_FLAGS=-use_value_profile=1).
set -u
cd "$(dirname "$0")/.." || exit 2

ALL=(fuzz_stream fuzz_state fuzz_multiboot fuzz_control fuzz_console fuzz_table fuzz_policy fuzz_evidence fuzz_audit fuzz_sealed fuzz_outcome fuzz_attest_phase fuzz_memserver fuzz_pageseal fuzz_pubmem)
secs=${1:-300}
[ $# -gt 0 ] && shift
if ! [[ "$secs" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]  (targets: ${ALL[*]})" >&2
  exit 2
fi
targets=()
for t in "$@"; do
  t=fuzz_${t#fuzz_}
  ok=
  for a in "${ALL[@]}"; do [ "$a" = "$t" ] && ok=1; done
  [ -n "$ok" ] || { echo "fuzz.sh: unknown target $t (targets: ${ALL[*]})" >&2; exit 2; }
  targets+=("$t")
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")

command -v "${FUZZ_CC:-clang}" >/dev/null || { echo "fuzz.sh: ${FUZZ_CC:-clang} not found; the fuzzers need clang with libFuzzer" >&2; exit 2; }

mkdir -p build/fuzz/logs
# Before the top-level Makefile includes fuzz/fuzz.mk, read it as a second makefile.
mk=(-f Makefile)
grep -Eq '^[[:space:]]*-?include[[:space:]].*fuzz/fuzz\.mk' Makefile || mk+=(-f fuzz/fuzz.mk)
if ! nice -n 10 make -j2 "${mk[@]}" "${targets[@]/#/build/fuzz/}" >build/fuzz/logs/build.log 2>&1; then
  tail -n 30 build/fuzz/logs/build.log
  echo "fuzz.sh: build failed (build/fuzz/logs/build.log)" >&2
  exit 2
fi

# number from the last "KEY: N" in a log, or from libFuzzer's status lines
num() { grep -Eo "$2:[[:space:]]+[0-9]+" "$1" | tail -n 1 | grep -Eo '[0-9]+$'; }
first_cov() { grep -m1 -E 'INITED cov: [0-9]+' "$1" | sed -E 's/.*INITED cov: ([0-9]+).*/\1/'; }
artifacts() { find "$1" -maxdepth 1 -type f ! -name 'slow-unit-*' 2>/dev/null | sort; }
report() { # LOG: the sanitizer's verdict and where it happened
  grep -E -m1 '^SUMMARY: |==ERROR: |runtime error: |Test unit written|ERROR: libFuzzer' "$1" | sed 's/^/    /'
  grep -E -m3 '^ +#[0-9]+ 0x[0-9a-f]+ in ' "$1" | sed 's/^/    /'
}

status=0
total_crashes=0
for t in "${targets[@]}"; do
  bin=build/fuzz/$t
  corpus=build/fuzz/corpus/$t
  art=build/fuzz/crashes/$t
  log=build/fuzz/logs/$t.log
  mkdir -p "$corpus" "$art"
  [ -d "fuzz/corpus/$t" ] && cp "fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null

  # 1. fixed crashes stay fixed
  nreg=0
  if [ -d "fuzz/regress/$t" ]; then
    mapfile -t reg < <(find "fuzz/regress/$t" -type f | sort)
    nreg=${#reg[@]}
    if [ "$nreg" -gt 0 ]; then
      if ! "$bin" -timeout=10 -rss_limit_mb=2048 "${reg[@]}" >"build/fuzz/logs/$t.regress.log" 2>&1; then
        echo "$t: REGRESSION: a kept input crashes again (build/fuzz/logs/$t.regress.log)"
        report "build/fuzz/logs/$t.regress.log"
        status=1
        total_crashes=$((total_crashes + 1))
        continue
      fi
    fi
  fi
  if [ "$secs" -eq 0 ]; then
    echo "$t: $nreg regression inputs replayed, no fuzzing"
    continue
  fi

  # 2. fuzz
  before=$(artifacts "$art")
  # shellcheck disable=SC2086
  nice -n 10 "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$art/" -print_final_stats=1 ${FUZZ_FLAGS:-} "$corpus" >"$log" 2>&1
  rc=$?
  new=$(comm -13 <(echo "$before") <(artifacts "$art") | sed '/^$/d')
  ncrash=$(echo -n "$new" | grep -c .)
  if [ "$rc" -ne 0 ] && [ "$ncrash" -eq 0 ]; then
    ncrash=1   # died without leaving an input (e.g. could not start)
  fi

  # 3. report
  execs=$(num "$log" 'stat::number_of_executed_units')
  eps=$(num "$log" 'stat::average_exec_per_sec')
  units=$(num "$log" 'stat::new_units_added')
  cov0=$(first_cov "$log")
  cov1=$(num "$log" ' cov')
  ft=$(num "$log" ' ft')
  corp=$(num "$log" ' corp')
  printf '%s: %s runs, %s exec/s, coverage %s -> %s edges (+%s), %s features, %s new inputs (corpus %s), %s regression inputs ok, %d crashes\n' \
    "$t" "${execs:-?}" "${eps:-?}" "${cov0:-?}" "${cov1:-?}" \
    "$(( ${cov1:-0} - ${cov0:-0} ))" "${ft:-?}" "${units:-?}" "${corp:-?}" "$nreg" "$ncrash"
  if [ "$ncrash" -gt 0 ]; then
    status=1
    total_crashes=$((total_crashes + ncrash))
    report "$log"
    [ -n "$new" ] && echo "$new" | sed 's/^/    input: /'
    echo "    log: $log"
  fi
done

if [ $status -ne 0 ]; then
  echo "fuzz.sh: $total_crashes crash(es); reproduce with: build/fuzz/TARGET INPUT"
  echo "fuzz.sh: after fixing, keep the input in fuzz/regress/TARGET/"
fi
exit $status
