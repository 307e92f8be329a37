# The VNC path: `sealvm console --vnc` opens a local port; a VNC viewer (libvncclient) sees the
# guest's text screen, pushed by the console server and rendered by libvncserver in the client,
# read back from the framebuffer pixels by exact glyph match; keys typed in the viewer reach the
# guest through the PS/2 keyboard, and a read-only session's viewer cannot type.
. "$(dirname "$0")/../lib.sh"
certs
PROBE=$ROOT/build/tools/console_probe
CPORT=$(free_port)
bg vm "$SEALVM" run --kernel "$GUEST/console.elf" --mem 64M --tls-dir "$CERTS/hosta" \
  --console "tls://127.0.0.1:$CPORT" --owner-ca "$CERTS/ownerca/ca.pem" --cmdline hb=0
wait_for "$T/vm.log" "owner's console on port" 10 || fail "console server did not start"
URI=tls://127.0.0.1:$CPORT

note "a VNC viewer types through the keyboard and reads the screen"
VPORT=$(free_port)
bg vnc "$SEALVM" console "$URI" --tls-dir "$CERTS/owner" --vnc "127.0.0.1:$VPORT"
wait_for "$T/vnc.log" "VNC viewers may connect" 10 || fail "local VNC port not opened"
timeout 30 "$PROBE" vnc "127.0.0.1:$VPORT" "Typed via VNC" >"$T/fb1.txt" || { cat "$T/fb1.txt"; fail "VNC viewer failed"; }
cat "$T/fb1.txt"
timeout 30 "$PROBE" vnc "127.0.0.1:$VPORT" >"$T/fb.txt" || fail "second VNC viewer failed"
grep -q "^ sealvm console test guest - type here" "$T/fb.txt" || fail "framebuffer lacks the guest's title"
grep -q "^sealvm> Typed via VNC" "$T/fb.txt" || fail "framebuffer lacks the text typed through VNC"

note "the framebuffer shows exactly the screen the guest drew"
timeout 20 "$SEALVM" console "$URI" --tls-dir "$CERTS/owner" --screen >"$T/screen.txt" || fail "screen query failed"
cur=$(sed -n 's/^cursor \([0-9]*\),\([0-9]*\) on$/\1 \2/p' "$T/screen.txt")
[ -n "$cur" ] || fail "no cursor line"
# every cell must match, except the cursor cell (drawn with an underline) which reads as '?'
python3 - "$T/screen.txt" "$T/fb.txt" $cur <<'PY' || fail "framebuffer text differs from the screen"
import sys
scr = open(sys.argv[1]).read().split('\n')[:25]
fb = open(sys.argv[2]).read().split('\n')[:25]
r, c = int(sys.argv[3]), int(sys.argv[4])
fb[r] = fb[r][:c] + scr[r][c] + fb[r][c + 1:]
bad = [(i, a, b) for i, (a, b) in enumerate(zip(scr, fb)) if a != b]
for i, a, b in bad:
    print(f"row {i}: screen {a!r}\n        vnc    {b!r}")
sys.exit(1 if bad or len(fb) != 25 else 0)
PY

note "a read-only session's viewer cannot type"
RPORT=$(free_port)
bg vncro "$SEALVM" console "$URI" --tls-dir "$CERTS/owner" --read-only --vnc "127.0.0.1:$RPORT"
wait_for "$T/vncro.log" "VNC viewers may connect" 10 || fail "read-only VNC port not opened"
timeout 30 "$PROBE" vnc "127.0.0.1:$RPORT" "zzro" >"$T/fbro.txt" || fail "read-only viewer failed"
grep -q "zzro" "$T/fbro.txt" && fail "a read-only viewer typed into the guest"
grep -q "^sealvm> Typed via VNC" "$T/fbro.txt" || fail "read-only viewer does not see the screen"
echo "console VNC checks passed"
