# The web console: `sealvm console --web` serves Debian's noVNC (through websockify) on a local
# port, in front of the client's own VNC server, which renders the screen the console server
# pushes through the owner's TLS session; headless Chromium loads the page, and the guest's
# title and prompt are read off the screenshot's pixels.
. "$(dirname "$0")/../lib.sh"
certs
command -v chromium >/dev/null || fail "chromium missing (scripts/deps.sh test installs it)"
[ -f /usr/share/novnc/vnc_lite.html ] || fail "novnc missing (scripts/deps.sh test installs it)"
CPORT=$(free_port)
bg vm "$SEALVM" run --kernel "$GUEST/console.elf" --mem 64M --tls-dir "$CERTS/hosta" \
  --console "tls://127.0.0.1:$CPORT" --owner-ca "$CERTS/ownerca/ca.pem" --cmdline hb=0
wait_for "$T/vm.log" "owner's console on port" 10 || fail "console server did not start"
printf 'webcheck\r' | timeout 5 "$SEALVM" console "tls://127.0.0.1:$CPORT" --tls-dir "$CERTS/owner" >/dev/null 2>&1
WPORT=$(free_port)
bg web "$SEALVM" console "tls://127.0.0.1:$CPORT" --tls-dir "$CERTS/owner" --web "127.0.0.1:$WPORT"
wait_for "$T/web.log" "web console at" 10 || fail "web console not started"
for i in $(seq 50); do ss -ltn | grep -q ":$WPORT " && break; sleep 0.2; done
ss -ltn | grep -q ":$WPORT " || { cat "$T/web.log"; fail "websockify is not listening"; }
OUT=$ROOT/build/test-logs/console_web
# Debian's python3 (with python3-pil), whatever python3 comes first on PATH
timeout 120 /usr/bin/python3 "$ROOT/tests/tools/cdp_shot.py" "http://127.0.0.1:$WPORT/vnc_lite.html" \
  "$ROOT/build/tools/console_probe" "sealvm> webcheck" "$OUT" 60 >"$T/shot.txt"
rc=$?
cat "$T/shot.txt"
[ $rc -eq 0 ] || fail "the guest's prompt was not read on the web page (screenshot in $OUT)"
grep -q "^ sealvm console test guest - type here" "$T/shot.txt" || fail "title not read on the page"
echo "console web checks passed"
