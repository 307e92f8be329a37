# The owner's console follows its VM: a read-write terminal client, a read-only one, a VNC
# viewer (through `sealvm console --vnc`) and the web bridge (`--web`; the browser itself is
# console_web.sh's) stay with the VM across two live migrations (A -> B -> C).
# The guest prints numbered heartbeats; every serial byte arrives exactly once at the client
# (checked against the guest's output grammar and numbering), the screen after the move is the
# screen before (plus the heartbeat), keys typed while the VM is frozen mid-migration reach it at
# its new host exactly once, and the VNC viewer's connection never breaks. A canary typed before
# the migration appears in no log, ctl answer, migration stream on the wire, or snapshot plaintext.
. "$(dirname "$0")/../lib.sh"
certs
PROBE=$ROOT/build/tools/console_probe
ATK="python3 $ROOT/tests/tools/console_attacker.py"
OCA=$CERTS/ownerca/ca.pem

# start_host NAME TLSDIR CONSOLEPORT [run args...]
start_host() {
  local name=$1 dir=$2 cport=$3; shift 3
  bg "$name" "$SEALVM" run --tls-dir "$CERTS/$dir" --console "tls://127.0.0.1:$cport" --owner-ca "$OCA" \
    --control "$T/$name.sock" --state-dir "$T/$name.state" "$@"
}
screen() { timeout 20 "$SEALVM" console "$1" --tls-dir "$CERTS/owner" --screen; }
# the screen once its status line is whole (the guest blanks it before each heartbeat)
whole_screen() {
  local s i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    s=$(screen "$1") || return 1
    echo "$s" | sed -n 25p | grep -q "^HB [0-9]" && { echo "$s"; return 0; }
  done
  echo "$s"
}

# distinct free ports (free_port alone may repeat one nothing listens on yet)
P=()
while [ ${#P[@]} -lt 8 ]; do p=$(free_port); [[ " ${P[*]} " == *" $p "* ]] || P+=($p); done
CA=${P[0]}; CB=${P[1]}; CC=${P[2]}; MB=${P[3]}; MC=${P[4]}; REC=${P[5]}; VP=${P[6]}; WP=${P[7]}
start_host a hosta "$CA" --kernel "$GUEST/console.elf" --cmdline hb=20 --mem 64M
start_host b hostb "$CB" --incoming "tls://127.0.0.1:$MB"
SEALVM_TEST_FAULT=slow-ready start_host c hostc "$CC" --incoming "tls://127.0.0.1:$MC"
wait_for "$T/a.log" "owner's console on port" 10 || fail "source console did not start"
wait_for "$T/b.log" "waiting for an incoming VM" 10 || fail "destination b did not listen"
wait_for "$T/c.log" "waiting for an incoming VM" 10 || fail "destination c did not listen"
bg rec $ATK record "$REC" "127.0.0.1:$MB" "$T/wire.bin"

note "clients attach at A: read-write terminal, read-only terminal, VNC viewer"
mkfifo "$T/in"
"$SEALVM" console "tls://127.0.0.1:$CA" --tls-dir "$CERTS/owner" <"$T/in" >"$T/rw.out" 2>"$T/rw.err" &
PIDS+=($!); RW=$!
exec 3>"$T/in"
wait_for "$T/rw.err" "attached read-write" 10 || fail "owner not attached read-write"
"$SEALVM" console "tls://127.0.0.1:$CA" --tls-dir "$CERTS/owner" --read-only </dev/null >"$T/ro.out" 2>"$T/ro.err" &
PIDS+=($!)
wait_for "$T/ro.err" "attached read-only" 10 || fail "read-only session not attached"
bg vnc "$SEALVM" console "tls://127.0.0.1:$CA" --tls-dir "$CERTS/owner" --read-only --vnc "127.0.0.1:$VP"
wait_for "$T/vnc.log" "VNC viewers may connect" 10 || fail "local VNC port not opened"
bg web "$SEALVM" console "tls://127.0.0.1:$CA" --tls-dir "$CERTS/owner" --read-only --web "127.0.0.1:$WP"
wait_for "$T/web.log" "web console at" 10 || fail "web console not started"
CANARY="CANARY$RANDOM$RANDOM""zq"
printf '%s\r' "$CANARY" >&3
wait_for "$T/rw.out" "sealvm> $CANARY" 10 || fail "no echo of the canary"
bg fb "$PROBE" vnc-follow "127.0.0.1:$VP" "" "$T/moved" ""
wait_for "$T/fb.log" "cells matched" 20 || fail "VNC viewer did not see the screen"
grep -q "^sealvm> $CANARY" "$T/fb.log" || fail "VNC viewer does not show the canary"

note "migration A -> B (the destination listens for the console before READY)"
before=$(whole_screen "tls://127.0.0.1:$CA") || fail "screen query at A failed"
ctl "$T/a.sock" migrate "tls://127.0.0.1:$REC" >"$T/mig1.json" || { cat "$T/mig1.json"; fail "migration A -> B failed"; }
after=$(whole_screen "tls://127.0.0.1:$CB") || fail "screen query at B failed"
touch "$T/moved"
wait_for "$T/rw.err" "reconnected to tls://127.0.0.1:$CB read-write" 20 || fail "read-write client did not follow to B"
wait_for "$T/ro.err" "reconnected to tls://127.0.0.1:$CB read-only" 20 || fail "read-only client did not follow to B"
wait_for "$T/vnc.log" "reconnected to tls://127.0.0.1:$CB" 20 || fail "the VNC bridge did not follow to B"
wait_for "$T/web.log" "reconnected to tls://127.0.0.1:$CB" 20 || fail "the web bridge did not follow to B"
python3 -c 'import sys, urllib.request; sys.exit(0 if b"noVNC" in urllib.request.urlopen(sys.argv[1], timeout=10).read() else 1)' \
  "http://127.0.0.1:$WP/vnc_lite.html" || fail "the web console page is gone after the move"
grep -q "sending its clients to tls://127.0.0.1:$CB" "$T/a.log" || fail "A did not say where its clients went"

note "the screen at B is the screen at A (rows 0-23 and cursor), the heartbeat moved on"
python3 - <(echo "$before") <(echo "$after") <<'PY' || fail "screen after the migration differs"
import re, sys
b = open(sys.argv[1]).read().split('\n'); a = open(sys.argv[2]).read().split('\n')
bad = [i for i in range(24) if a[i] != b[i]]
for i in bad:
    print(f"row {i}: before {b[i]!r}\n        after  {a[i]!r}")
hb = lambda s: int(re.match(r'HB (\d+)', s).group(1))
if hb(a[24]) < hb(b[24]): print("heartbeat went back:", b[24], a[24]); bad.append(24)
if a[25] != b[25]: print("cursor moved:", b[25], a[25]); bad.append(25)
sys.exit(1 if bad else 0)
PY
echo "$after" | grep -q "^sealvm> $CANARY" || fail "the canary is gone from the screen at B (checks below would be void)"

note "the VNC viewer kept its connection and sees the screen at B"
wait_for "$T/fb.log" "== after" 30 || fail "VNC viewer did not get past the move"
wait_for "$T/fb.log" "cells matched.*" 30 >/dev/null
for i in $(seq 50); do [ "$(grep -c "cells matched" "$T/fb.log")" -ge 2 ] && break; sleep 0.1; done
awk '/^== after/{on=1} on' "$T/fb.log" >"$T/fb-after.txt"
grep -q "cells matched" "$T/fb-after.txt" || { cat "$T/fb.log"; fail "VNC viewer lost the screen after the move"; }
grep -q "^sealvm> $CANARY" "$T/fb-after.txt" || fail "VNC viewer does not show the canary after the move"
grep -q "VNC connection broke" "$T/fb.log" && fail "the VNC viewer's connection broke"

note "typing at B reaches the guest"
AFTER="after$RANDOM"
printf '%s\r' "$AFTER" >&3
wait_for "$T/rw.out" "sealvm> $AFTER" 10 || fail "input after the migration not echoed"

note "migration B -> C; keys typed while the VM is frozen mid-migration arrive at C exactly once"
ctl "$T/b.sock" migrate "tls://127.0.0.1:$MC" >"$T/mig2.json" 2>&1 &
M2=$!
for i in $(seq 200); do ctl "$T/b.sock" status 2>/dev/null | grep -Eq '"migration_phase": *"verify"' && break; sleep 0.02; done
ctl "$T/b.sock" status | grep -Eq '"migration_phase": *"verify"' || fail "never saw B paused waiting for READY"
DURING="during$RANDOM"
printf '%s\r' "$DURING" >&3
wait_exit $M2 30 || { cat "$T/mig2.json"; fail "migration B -> C failed"; }
wait_for "$T/rw.err" "reconnected to tls://127.0.0.1:$CC read-write" 20 || fail "read-write client did not follow to C"
wait_for "$T/rw.out" "sealvm> $DURING" 10 || fail "keys typed during the migration were lost"
sleep 1
exec 3>&-

note "every serial byte arrived exactly once, in order, across both moves"
for f in rw ro; do
python3 - "$T/$f.out" "$CANARY" "$AFTER" "$DURING" "$f" <<'PY' || fail "$f client's serial stream is not exactly once"
import re, sys
data = open(sys.argv[1], 'rb').read().decode('latin-1')
who = sys.argv[5]
# the guest's output grammar: a start, then echoed keys, Enter (a new prompt) and heartbeats
m = re.match(r'CONSOLE READY\r\nsealvm> ', data)
assert m, "stream does not start with the guest's banner"
pos, hbs, lines, cur = m.end(), [], [], ''
tok = re.compile(r'\r\nHB (\d+)\r\nsealvm> |\r\nsealvm> |[\x20-\x7e]')
while pos < len(data):
    t = tok.match(data, pos)
    if not t:
        rest = data[pos:]
        # the very end may be cut mid-heartbeat
        if re.fullmatch(r'\r(\n(H(B( \d*(\r(\n(s(e(a(l(v(m(>)?)?)?)?)?)?)?)?)?)?)?)?)?)?', rest):
            break
        sys.exit(f"{who}: unexpected bytes at {pos}: {data[pos:pos+40]!r}")
    if t.group(1):
        hbs.append(int(t.group(1)))
    elif t.group(0) == '\r\nsealvm> ':
        lines.append(cur); cur = ''
    else:
        cur += t.group(0)
    pos = t.end()
gaps = [(a, b) for a, b in zip(hbs, hbs[1:]) if b != a + 1]
assert hbs and not gaps, f"{who}: heartbeats not consecutive: {gaps[:5]}"
typed = [l for l in lines if l]
for word in sys.argv[2:5]:
    n = typed.count(word)
    assert n == 1, f"{who}: typed line {word!r} echoed {n} times (lines: {typed})"
print(f"{who}: {len(data)} bytes, heartbeats {hbs[0]}..{hbs[-1]} all once, typed lines {typed}")
PY
done

note "the console's cost in this run"
grep -h "console gap\|reconnected" "$T/rw.err" "$T/ro.err"
for j in mig1 mig2; do
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], "downtime %.2f ms, %d bytes" % (r["downtime_ms"], r["bytes"]))' "$T/$j.json" $j
done

note "an owner's console never travels over tcp://"
out=$(ctl "$T/c.sock" migrate "tcp://127.0.0.1:$(free_port)" --insecure 2>&1) && fail "insecure migration accepted: $out"
echo "$out" | grep -q "only inside TLS" || fail "unclear refusal: $out"

note "the canary reaches no operator-side sink"
for s in a b c; do ctl "$T/$s.sock" status >>"$T/ctl.out" 2>&1; ctl "$T/$s.sock" stats >>"$T/ctl.out" 2>&1; done
ctl "$T/c.sock" snapshot "$T/snap.bin" >>"$T/ctl.out" || fail "snapshot at C failed"
"$ROOT/build/tools/unseal" "$T/snap.bin" "$T/c.state/snapshot.key" "$T/snap.plain" || fail "cannot unseal the snapshot"
grep -q "sealvm console test guest" "$T/snap.plain" || fail "snapshot check is blind: guest text not found in it"
grep -q "SVCONSL1" "$T/snap.plain" || fail "the snapshot carries no sealed console state"
grep -q "SVCWRAP1" "$T/snap.plain" || fail "the snapshot's console key is not wrapped for the owner"
[ "$(stat -c %s "$T/wire.bin")" -gt 50000 ] || fail "the wire capture missed the migration"
grep -aq "sealvm console test guest" "$T/wire.bin" && fail "guest memory in the clear on the wire"
for f in "$T/wire.bin" "$T/snap.bin" "$T/snap.plain" "$T/ctl.out" "$T/mig1.json" "$T/mig2.json" "$T/a.log" \
         "$T/b.log" "$T/c.log"; do
  grep -aq "$CANARY" "$f" && fail "canary found in operator-side $(basename "$f")"
done
screen "tls://127.0.0.1:$CC" | grep -q "^sealvm> $CANARY" || fail "canary gone from the screen at C (the check above would be void)"
echo "console migration checks passed"
