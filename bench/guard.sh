#!/usr/bin/env bash
# make bench BENCH=guard: the integrity guard's cost, detection latency and the guests'
# slowdown (bench/guard.py explains each). Results: build/bench/guard.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test >/dev/null
[ -x build/sealvm ] && [ -f build/guest/memcheck.elf ] || { echo "bench: run make first" >&2; exit 1; }
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "bench: /dev/kvm is not usable" >&2; exit 1; }
scripts/mkcerts.sh build/certs
exec python3 bench/guard.py "$@"
