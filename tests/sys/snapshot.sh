# Snapshot -> kill -> restore: the memory checker stays clean and its counters
# continue; a snapshot taken while the guest dirties memory restores as cleanly;
# damaged snapshot files are refused with a clear error and never run.
. "$(dirname "$0")/../lib.sh"

for rate in 0 64; do
  note "memcheck ws=16 rate=$rate: snapshot, kill, restore"
  start_src src 256M "ws=16 rate=$rate hb=250"
  hb_after "$T/src.out" 3 30 || fail "guest not running"
  ctl "$T/src.sock" snapshot "$T/snap" > "$T/snap.json" || fail "snapshot failed: $(cat "$T/snap.json")"
  cat "$T/snap.json"
  grep -q '"data_pages"' "$T/snap.json" || fail "no snapshot report"
  ctl "$T/src.sock" status | grep -q '"state": "running"' || fail "VM not resumed after the snapshot"
  kill -9 "$SRC_PID"; wait "$SRC_PID" 2>/dev/null
  last=$(hb_field "$T/src.out" seq); writes=$(hb_field "$T/src.out" writes)
  note "killed at heartbeat $last ($writes writes); restoring"
  bg restored "$SEALVM" run --restore "$T/snap" --serial "file:$T/restored.out" --control "$T/restored.sock"
  rpid=$!
  hb_after "$T/restored.out" "$last" 30 || { cat "$T/restored.log"; fail "heartbeat did not continue after restore"; }
  first=$(grep -Eo '^HB seq=[0-9]+' "$T/restored.out" | head -n 1 | cut -d= -f2)
  [ "$first" -le "$((last + 1))" ] || fail "restored heartbeat starts at $first, past the snapshot (source at $last)"
  # the checker sweeps the whole working set after the restore, and it stays clean
  p0=$(hb_field "$T/restored.out" passes)
  n=0; while [ "$(hb_field "$T/restored.out" passes)" -le "$p0" ] && [ $n -lt 900 ]; do sleep 0.1; n=$((n+1)); done
  [ "$(hb_field "$T/restored.out" passes)" -gt "$p0" ] || fail "no full verification pass after restore"
  check_clean "$T/restored.out"
  [ "$(hb_field "$T/restored.out" writes)" -ge "$writes" ] || [ "$rate" = 0 ] || fail "write counter went backwards"
  ctl "$T/restored.sock" quit >/dev/null
  wait_exit "$rpid" 10 || fail "restored VM did not quit"
  cp "$T/snap" "$T/good.snap"
  rm -f "$T"/src.* "$T"/restored.*
done

note "damaged snapshots are refused before anything runs"
size=$(stat -c %s "$T/good.snap")
refuse() { # NAME REGEX
  local out rc
  out=$(timeout 30 "$SEALVM" run --restore "$T/$1" --serial "file:$T/$1.out" 2>&1); rc=$?
  echo "$1 -> $rc: $out"
  [ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "$1: exit $rc"
  echo "$out" | grep -Eq -- "$2" || fail "$1: message /$2/ not in: $out"
  [ -s "$T/$1.out" ] && fail "$1: the guest ran"
  return 0
}
head -c $((size / 2)) "$T/good.snap" > "$T/truncated"; refuse truncated "truncated|end of stream"
head -c $((size - 8)) "$T/good.snap" > "$T/no_trailer"; refuse no_trailer "truncated|end of stream"
cp "$T/good.snap" "$T/flipped"
printf '\xff' | dd of="$T/flipped" bs=1 seek=$((size / 3)) conv=notrunc 2>/dev/null
refuse flipped "checksum mismatch|corrupt"
cp "$T/good.snap" "$T/foreign"; printf 'NOTASNAP' | dd of="$T/foreign" bs=1 seek=0 conv=notrunc 2>/dev/null
refuse foreign "not a sealvm snapshot"
cp "$T/good.snap" "$T/future"; printf '\x09' | dd of="$T/future" bs=1 seek=8 conv=notrunc 2>/dev/null
refuse future "newer than this sealvm"
: > "$T/empty"; refuse empty "not a sealvm snapshot"
cp "$T/good.snap" "$T/extra"; printf 'junk' >> "$T/extra"; refuse extra "after its END"
# a section with a future version: bump CONFIG's version field (offset 16+4) and fix nothing else
cp "$T/good.snap" "$T/secver"; printf '\x07' | dd of="$T/secver" bs=1 seek=20 conv=notrunc 2>/dev/null
refuse secver "has version 7"
refuse missing.snap "cannot open snapshot"
echo ok
