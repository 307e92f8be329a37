#!/usr/bin/env bash
# make demo: boot the memory-checker guest on "host A", migrate it over mutually
# authenticated TLS 1.3 to "host B" while it dirties memory, and show that it
# carries on there with every page intact.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build
D=$(mktemp -d /tmp/sealvm-demo.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
waitfor() { for _ in $(seq 1 "$3"0); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timed out: $1"; exit 1; }

say "1. A test CA and two host identities (scripts/mkcerts.sh -> $B/certs)"
scripts/mkcerts.sh "$B/certs"
ls "$B/certs/hosta" "$B/certs/hostb"

port=$(( 30000 + RANDOM % 10000 ))
say "2. Host B waits for a VM on tls://127.0.0.1:$port"
$B/sealvm run --incoming "tls://127.0.0.1:$port" --tls-dir "$B/certs/hostb" --state-dir "$D/hostb.state" \
  --serial "file:$D/hostb.serial" --control "$D/hostb.sock" >"$D/hostb.log" 2>&1 &
pids+=($!)
waitfor "$D/hostb.log" "waiting for an incoming VM" 10
cat "$D/hostb.log"

say "3. Host A boots the memory checker (32 MiB working set, rewriting pages at 64 MB/s)"
$B/sealvm run --kernel $B/guest/memcheck.elf --cmdline "ws=32 rate=64 light=1 hb=500" --mem 512M \
  --tls-dir "$B/certs/hosta" --state-dir "$D/hosta.state" \
  --serial "file:$D/hosta.serial" --control "$D/hosta.sock" >"$D/hosta.log" 2>&1 &
src=$!; pids+=($src)
waitfor "$D/hosta.serial" "^HB seq=3 " 120
tail -n 3 "$D/hosta.serial"

say "4. Live migration A -> B over TLS 1.3 (both sides verify certificates)"
$B/sealvm ctl "$D/hosta.sock" migrate "tls://127.0.0.1:$port" --downtime-ms 50
wait "$src" && echo "host A's sealvm exited 0 after the hand-over"
last=$(grep -Eo '^HB seq=[0-9]+' "$D/hosta.serial" | tail -n 1)

say "5. The guest carries on at host B (host A stopped at '$last')"
sleep 3
tail -n 4 "$D/hostb.serial"
if grep -q '^BAD' "$D/hostb.serial"; then echo "corrupt pages found!"; exit 1; fi
echo "no corrupt page: every page holds its index and the version the guest expects"
$B/sealvm ctl "$D/hostb.sock" status
$B/sealvm ctl "$D/hostb.sock" quit >/dev/null
say "Done. Logs and serial output in $D"
