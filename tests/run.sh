#!/usr/bin/env bash
# Runs every test: unit tests (ASan+UBSan builds) and system tests (tests/sys/*.sh).
# A test passes with exit 0, is skipped with 77 (and says why), fails otherwise.
# Ends with the line "N passed, N failed[, N skipped]".
set -u
cd "$(dirname "$0")/.."
logs=build/test-logs
mkdir -p "$logs/unit" "$logs/sys"
pass=0 fail=0 skip=0 failed=()
only=${TESTS:-}

run_one() { # name cmd...
  local name=$1; shift
  [ -n "$only" ] && [[ ! "$name" =~ $only ]] && return
  local t0=$SECONDS rc
  timeout -k 5 "${TEST_TIMEOUT:-600}" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1)); echo "PASS $name ($((SECONDS - t0))s)"
  elif [ $rc -eq 77 ]; then
    skip=$((skip + 1)); echo "SKIP $name: $(tail -n 1 "$logs/$name.log")"
  else
    fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name (exit $rc, $((SECONDS - t0))s)"
    tail -n 15 "$logs/$name.log" | sed 's/^/    /'
  fi
}

for t in build/tests/*; do
  [ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"
done
for t in tests/sys/*.sh; do
  run_one "sys/$(basename "$t" .sh)" bash "$t"
done

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]} (logs in $logs/)"
if [ $skip -gt 0 ]; then
  echo "$pass passed, $fail failed, $skip skipped"
else
  echo "$pass passed, $fail failed"
fi
[ $fail -eq 0 ]
