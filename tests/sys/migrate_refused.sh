# A destination that cannot prove who it is, or cannot take the VM, gets nothing:
# the migration is refused with a clear error and the VM keeps running at the source.
. "$(dirname "$0")/../lib.sh"
certs

start_src src 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"

try() { # NAME DST_TLS_DIR REGEX [dst args]
  local name=$1 dir=$2 re=$3 port out; shift 3
  port=$(free_port)
  start_dst "dst_$name" "tls://127.0.0.1:$port" --tls-dir "$dir" "$@"
  out=$(ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" 2>&1) && fail "$name: migration succeeded: $out"
  echo "$name: $out" | tail -n 1
  echo "$out" | grep -Eq -- "$re" || fail "$name: error does not name the cause /$re/: $out"
  alive "$SRC_PID" || fail "$name: source died"
  still_running src
  [ -s "$T/dst_$name.out" ] && fail "$name: guest output appeared at the destination"
  kill "$DST_PID" 2>/dev/null
}

try otherca "$CERTS/badca" "not trusted"
try wrongname "$CERTS/wrongname" "name mismatch"
try expired "$CERTS/expired" "expired"
try nomem "$CERTS/hostb" "destination refused: not enough memory" --mem-limit 128M
port=$(free_port)
out=$(ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" 2>&1) && fail "migrating to nobody succeeded"
echo "$out" | grep -q "Connection refused" || fail "no-listener error unclear: $out"
still_running src

note "a peer that connects and never speaks does not hold the destination: it is dropped after 10 s"
port=$(free_port)
start_dst dst_silent "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
exec 9<>"/dev/tcp/127.0.0.1/$port" || fail "cannot open the silent connection"
t0=$SECONDS
ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" > "$T/silent.json" || { cat "$T/silent.json"; fail "migration after a silent peer failed"; }
exec 9>&-
grep -q '"result": "committed"' "$T/silent.json" || fail "not committed"
[ $((SECONDS - t0)) -le 30 ] || fail "the silent peer held the destination for $((SECONDS - t0)) s"
grep -q "refused a connection: .*handshake timed out" "$T/dst_silent.log" || fail "silent peer not reported: $(cat "$T/dst_silent.log")"
echo ok
