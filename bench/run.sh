#!/usr/bin/env bash
# make bench [BENCH=full|quick|snapshot|smp|trust|console|guard|split-seal]: sealvm against QEMU on this machine.
# Installs what it needs, builds the measuring tools into build/bench/, makes the
# test certificates, then runs the Python driver (bench/bench.py, which explains
# the modes and the environment knobs). Results: build/bench/results.{md,json,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-full}
B=build/bench
[ "$mode" = trust ] && exec bench/trust.sh   # trust steps (attestation, policy, audit): no VMs
[ "$mode" = console ] && exec bench/console.sh   # what the owner's console costs a migration
[ "$mode" = guard ] && exec bench/guard.sh   # the integrity guard: cost, detection latency, guest slowdown
[ "$mode" = split-seal ] && exec bench/split_seal.sh   # sealing pages for memory servers, per core

scripts/deps.sh bench
[ -x build/sealvm ] && [ -f build/guest/memcheck.elf ] && [ -f build/guest/touch.elf ] ||
	{ echo "bench: build sealvm and the guests first (make)" >&2; exit 1; }
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "bench: /dev/kvm is not usable" >&2; exit 1; }

mkdir -p "$B"
for t in bench/tools/*.c; do
	bin=$B/$(basename "$t" .c)
	[ "$bin" -nt "$t" ] || gcc -std=gnu11 -O2 -Wall -Wextra -Werror "$t" -o "$bin" -pthread -lcrypto
done
scripts/mkcerts.sh build/certs

# The driver kills every VMM it started however it ends; this trap covers the
# driver itself if this script is interrupted.
driver=
trap '[ -z "$driver" ] || kill "$driver" 2>/dev/null || true' EXIT
python3 bench/bench.py "$mode" &
driver=$!
wait "$driver"
