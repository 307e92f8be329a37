# Non-sensitive memory (issue 11): ranges the operator declares with `run --public` and
# the guest through the public-memory port (memcheck public=) travel with the VM through
# a snapshot and a migration, as the control socket and the guest itself see them; bad
# declarations are refused.
. "$(dirname "$0")/../lib.sh"
certs

pub_json() { # SOCK: the "public" object of ctl status, compact
  ctl "$1" status | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin).get("public"), sort_keys=True))'
}
want='{"pages": 1536, "ranges": [{"end": "0x300000", "start": "0x200000"}, {"end": "0x900000", "start": "0x800000"}, {"end": "0x1800000", "start": "0x1400000"}]}'

note "refused: --public with --restore, outside RAM, not page-aligned"
out=$("$SEALVM" run --restore /nonexistent --public 1M-2M 2>&1) && fail "--public accepted with --restore"
echo "$out" | grep -q "brings its own declarations" || fail "unclear: $out"
out=$("$SEALVM" run --kernel "$GUEST/counter.elf" --mem 64M --serial none --public 60M-80M 2>&1) && fail "--public outside RAM accepted"
echo "$out" | grep -q "is not guest RAM" || fail "unclear: $out"
out=$("$SEALVM" run --kernel "$GUEST/counter.elf" --mem 64M --serial none --public 4097-8192 2>&1) && fail "unaligned --public accepted"
echo "$out" | grep -q "page-aligned" || fail "unclear: $out"

note "the operator declares two ranges, the guest a third through the port"
start_src src 64M "ws=8 rate=16 light=1 hb=250 public=4" --public 0x200000-0x300000,8M-9M --tls-dir "$CERTS/hosta"
grep -q "^PUBLIC first=0x1400000 pages=1024 status=0 ranges=3 total=1536" "$T/src.out" ||
  fail "the guest's declaration: $(grep PUBLIC "$T/src.out")"
[ "$(pub_json "$T/src.sock")" = "$want" ] || fail "status shows $(pub_json "$T/src.sock")"
hb_after "$T/src.out" 2 30 || fail "guest not running"
grep -Eq '^HB .* pub=1536$' "$T/src.out" || fail "the guest does not read its declaration back: $(grep '^HB' "$T/src.out" | tail -n 1)"

note "snapshot and restore: the declarations come back, for the operator and the guest"
ctl "$T/src.sock" snapshot "$T/snap" >"$T/snap.json" || fail "snapshot: $(cat "$T/snap.json")"
last=$(hb_field "$T/src.out" seq)
bg restored "$SEALVM" run --restore "$T/snap" --serial "file:$T/restored.out" --control "$T/restored.sock" \
  --state-dir "$T/src.state"
hb_after "$T/restored.out" "$last" 30 || fail "the restored VM does not run: $(cat "$T/restored.log")"
[ "$(pub_json "$T/restored.sock")" = "$want" ] || fail "restored status shows $(pub_json "$T/restored.sock")"
grep -Eq '^HB .* pub=1536$' "$T/restored.out" || fail "restored guest: $(grep '^HB' "$T/restored.out" | tail -n 1)"
ctl "$T/restored.sock" quit >/dev/null

note "a migration carries them too"
port=$(free_port)
start_dst dst "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" >"$T/m.json" || fail "migration failed: $(cat "$T/m.json")"
grep -q '"result": "committed"' "$T/m.json" || fail "not committed: $(cat "$T/m.json")"
last=$(hb_field "$T/src.out" seq)
hb_after "$T/dst.out" "$last" 30 || fail "the VM does not run at the destination"
[ "$(pub_json "$T/dst.sock")" = "$want" ] || fail "destination status shows $(pub_json "$T/dst.sock")"
grep -Eq '^HB .* pub=1536$' "$T/dst.out" || fail "migrated guest: $(grep '^HB' "$T/dst.out" | tail -n 1)"
check_clean "$T/dst.out"

note "a VM that declared nothing carries no public-memory state"
start_src plain 64M "ws=4 rate=0 hb=250"
ctl "$T/plain.sock" status | grep -q '"public"' && fail "status of a VM without declarations shows public memory"
ctl "$T/plain.sock" quit >/dev/null
echo ok
