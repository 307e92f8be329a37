# A destination that cannot prove who it is, a source that may not send to it, or a
# destination that cannot take the VM: the migration is refused with an error naming
# the cause, the VM keeps running at the source, and nothing runs at the destination.
. "$(dirname "$0")/../lib.sh"
certs

# tls dirs that also check the CRL (ca/crl.pem revokes the "revoked" host)
for h in hosta hostb; do
  cp -r "$CERTS/$h" "$T/$h-crl" && cp "$CERTS/ca/crl.pem" "$T/$h-crl/" || fail "cannot copy $h"
done
cp -r "$CERTS/hosta" "$T/openkey" && chmod 644 "$T/openkey/key.pem"

start_src src 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"

# try NAME DST_TLS_DIR REGEX [--src-tls DIR] [dst args]: one refused migration.
try() {
  local name=$1 dir=$2 re=$3 port out src_tls=(); shift 3
  if [ "${1:-}" = --src-tls ]; then src_tls=(--tls-dir "$2"); shift 2; fi
  port=$(free_port)
  start_dst "dst_$name" "tls://127.0.0.1:$port" --tls-dir "$dir" "$@"
  out=$(ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" "${src_tls[@]}" 2>&1) && fail "$name: migration succeeded: $out"
  echo "$name: $(echo "$out" | tail -n 1)"
  echo "$out" | grep -Eq -- "$re" || fail "$name: error does not name the cause /$re/: $out"
  alive "$SRC_PID" || fail "$name: source died"
  still_running src
  [ -s "$T/dst_$name.out" ] && fail "$name: guest output appeared at the destination"
  ctl "$T/dst_$name.sock" status | grep -q '"state": "incoming"' || fail "$name: destination not still waiting"
  kill "$DST_PID" 2>/dev/null
}

note "destinations that cannot prove they are a destination host of this cluster"
try otherca "$CERTS/badca" "not trusted"
try wrongname "$CERTS/wrongname" "name mismatch"
try expired "$CERTS/expired" "expired"
try cahost "$CERTS/cahost" "not acceptable for its role: it is a CA certificate"
try clientonly "$CERTS/clientonly" "lacks serverAuth"
try revoked_dst "$CERTS/revoked" "revoked" --src-tls "$T/hosta-crl"
note "sources a destination does not admit"
try src_cahost "$CERTS/hostb" "peer rejected our certificate" --src-tls "$CERTS/cahost"
grep -q "it is a CA certificate" "$T/dst_src_cahost.log" || fail "destination did not say why it refused the CA certificate"
try src_serveronly "$CERTS/hostb" "peer rejected our certificate" --src-tls "$CERTS/serveronly"
grep -q "lacks clientAuth" "$T/dst_src_serveronly.log" || fail "destination did not say why it refused serveronly"
try src_revoked "$T/hostb-crl" "peer rejected our certificate" --src-tls "$CERTS/revoked"
try allow_from "$CERTS/hostb" "not admitted here \(--allow-from hostc,hostb\)" --allow-from hostc,hostb
try openkey "$CERTS/hostb" "key.pem is a secret but is readable by group or others .*chmod 600" --src-tls "$T/openkey"
try nomem "$CERTS/hostb" "destination refused: not enough memory" --mem-limit 128M

note "an allowed source is admitted"
port=$(free_port)
start_dst dst_allowed "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb" --allow-from hostc,hosta
ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" --tls-dir "$T/hosta-crl" > "$T/allowed.json" ||
  { cat "$T/allowed.json"; fail "allowed source refused"; }
grep -q '"result": "committed"' "$T/allowed.json" || fail "not committed"
wait_exit "$SRC_PID" 20 || fail "source did not exit after the hand-over"
hb_after "$T/dst_allowed.out" 1 30 || fail "VM not running at the destination"
ctl "$T/dst_allowed.sock" quit >/dev/null

note "plain tcp:// must be asked for on both sides"
start_src src2 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
port=$(free_port)
"$SEALVM" run --incoming "tcp://127.0.0.1:$port" --serial none --state-dir "$T/tcpdst.state" >"$T/tcpdst.log" 2>&1 &&
  fail "a destination started on tcp:// without --insecure"
grep -q "add --insecure" "$T/tcpdst.log" || fail "unclear error: $(cat "$T/tcpdst.log")"
start_dst dst_tcp "tcp://127.0.0.1:$port" --insecure
out=$(ctl "$T/src2.sock" migrate "tcp://127.0.0.1:$port" 2>&1) && fail "migrated over tcp:// without --insecure"
echo "$out" | grep -q "add --insecure" || fail "unclear error: $out"
[ -s "$T/dst_tcp.out" ] && fail "guest output at the tcp destination"
ctl "$T/src2.sock" migrate "tcp://127.0.0.1:$port" --insecure > "$T/tcp.json" || { cat "$T/tcp.json"; fail "--insecure migration failed"; }
grep -q '"transport": "tcp (INSECURE)"' "$T/tcp.json" || fail "insecure transport not reported"
ctl "$T/dst_tcp.sock" quit >/dev/null

out=$(ctl "$T/dst_allowed.sock" status 2>&1)
port=$(free_port)
start_src src3 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"
out=$(ctl "$T/src3.sock" migrate "tls://127.0.0.1:$port" 2>&1) && fail "migrating to nobody succeeded"
echo "$out" | grep -q "Connection refused" || fail "no-listener error unclear: $out"
still_running src3
echo ok
