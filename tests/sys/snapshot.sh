# Snapshot -> kill -> restore: the memory checker stays clean and its counters
# continue; a snapshot taken while the guest dirties memory restores as cleanly.
# Snapshots are sealed: no guest plaintext in the file; a file altered anywhere,
# truncated, extended, from an older unsealed format or sealed with another key
# is refused before anything runs; a planted temporary file or symlink is never
# written through.
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
  bg restored "$SEALVM" run --restore "$T/snap" --serial "file:$T/restored.out" --control "$T/restored.sock" \
    --state-dir "$T/src.state"
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
  rm -rf "$T/keep.state"; cp -r "$T/src.state" "$T/keep.state"
  rm -rf "$T"/src.* "$T"/restored.*
done

note "no guest plaintext in the file (the guest's own strings are in its RAM)"
grep -c "HB seq" "$GUEST/memcheck.elf" >/dev/null || fail "memcheck.elf lacks the string the test looks for"
grep -q "HB seq" "$T/good.snap" && fail "guest memory readable in the snapshot file"

note "damaged snapshots are refused before anything runs"
size=$(stat -c %s "$T/good.snap")
refuse() { # NAME REGEX [run args]
  local out rc name=$1 re=$2; shift 2
  [ $# -gt 0 ] || set -- --state-dir "$T/keep.state"
  out=$(timeout 30 "$SEALVM" run --restore "$T/$name" --serial "file:$T/$name.out" "$@" 2>&1); rc=$?
  echo "$name -> $rc: $out"
  [ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "$name: exit $rc"
  echo "$out" | grep -Eq -- "$re" || fail "$name: message /$re/ not in: $out"
  [ -s "$T/$name.out" ] && fail "$name: the guest ran"
  return 0
}
flip() { # NAME OFFSET: a copy of the good file with one byte changed
  cp "$T/good.snap" "$T/$1"
  printf '\xa5' | dd of="$T/$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
head -c $((size / 2)) "$T/good.snap" > "$T/truncated"; refuse truncated "truncated"
head -c $((size - 8)) "$T/good.snap" > "$T/no_tail"; refuse no_tail "truncated"
head -c 64 "$T/good.snap" > "$T/header_only"; refuse header_only "truncated"
flip flipped $((size / 3)); refuse flipped "failed authentication"
flip flipped_end $((size - 3)); refuse flipped_end "failed authentication"
flip flipped_salt 30; refuse flipped_salt "failed authentication"
flip flipped_len 64; refuse flipped_len "failed authentication|truncated"
cp "$T/good.snap" "$T/foreign"; printf 'NOTASNAP' | dd of="$T/foreign" bs=1 seek=0 conv=notrunc 2>/dev/null
refuse foreign "not a sealvm snapshot"
cp "$T/good.snap" "$T/future"; printf '\x09' | dd of="$T/future" bs=1 seek=8 conv=notrunc 2>/dev/null
refuse future "newer than this sealvm"
cp "$T/good.snap" "$T/format1"; printf '\x01' | dd of="$T/format1" bs=1 seek=8 conv=notrunc 2>/dev/null
refuse format1 "unsealed snapshot \(format 1"
: > "$T/empty"; refuse empty "not a sealvm snapshot"
cp "$T/good.snap" "$T/extra"; printf 'junk' >> "$T/extra"; refuse extra "after its final chunk"
cp "$T/good.snap" "$T/otherkey"; refuse otherkey "sealed with another key" --state-dir "$T/other.state"
refuse missing.snap "cannot open snapshot"

note "a key file of the operator's choosing; one others can read is refused"
openssl rand -hex 32 > "$T/k1"; chmod 600 "$T/k1"
start_src src 256M "ws=4 rate=0 hb=250"
hb_after "$T/src.out" 1 30 || fail "guest not running"
ctl "$T/src.sock" snapshot "$T/keyed.snap" --key-file "$T/k1" >/dev/null || fail "snapshot with --key-file failed"
refuse keyed.snap "sealed with another key"
cp "$T/k1" "$T/k2"; chmod 644 "$T/k2"
refuse keyed.snap "chmod 600" --key-file "$T/k2" --state-dir "$T/keep.state"
out=$(ctl "$T/src.sock" snapshot "$T/k2.snap" --key-file "$T/k2" 2>&1) && fail "snapshot with a readable key accepted"
echo "$out" | grep -q "chmod 600" || fail "unclear: $out"
bg keyed "$SEALVM" run --restore "$T/keyed.snap" --key-file "$T/k1" --serial "file:$T/keyed.out" \
  --control "$T/keyed.sock" --state-dir "$T/keyed.state"
hb_after "$T/keyed.out" 0 30 || fail "the keyed snapshot did not restore"
ctl "$T/keyed.sock" quit >/dev/null

note "planted temporary files and symlinks are never written through"
echo precious > "$T/victim"; echo precious > "$T/victim2"
ln -s "$T/victim" "$T/s3.tmp"
ln -s "$T/victim2" "$T/s4"
ctl "$T/src.sock" snapshot "$T/s3" >/dev/null || fail "snapshot beside a planted .tmp failed"
ctl "$T/src.sock" snapshot "$T/s4" >/dev/null || fail "snapshot over a symlink failed"
[ "$(cat "$T/victim")" = precious ] && [ "$(cat "$T/victim2")" = precious ] || fail "a planted symlink was written through"
[ -L "$T/s3.tmp" ] || fail "the planted .tmp was replaced"
[ -f "$T/s4" ] && [ ! -L "$T/s4" ] || fail "the snapshot did not replace the symlink with a file"
[ "$(stat -c %a "$T/s3")" = 600 ] || fail "snapshot file is not private: $(stat -c %a "$T/s3")"
ls "$T" | grep -q '\.[0-9a-f]*\.tmp$' && fail "temporary files left behind"
echo ok
