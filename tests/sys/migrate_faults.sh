# Faults at each phase of a migration: the migration aborts with a clear error,
# the VM keeps running at the source with a clean memory check, and at no time
# do two copies run.
. "$(dirname "$0")/../lib.sh"
certs
make -s -C "$ROOT" build/tools/tamper_proxy >/dev/null || fail "cannot build tamper_proxy"
PROXY=$ROOT/build/tools/tamper_proxy

start_src src 256M "ws=8 rate=16 hb=250" --tls-dir "$CERTS/hosta"

# abort_case NAME SCHEME ACTION REGEX [dst env]: one migration through the proxy.
abort_case() {
  local name=$1 scheme=$2 action=$3 re=$4 port pport out; shift 4
  port=$(free_port)
  local insecure=()
  [ "$scheme" = tcp ] && insecure=(--insecure)
  bg "dst_$name" env "$@" "$SEALVM" run --incoming "$scheme://127.0.0.1:$port" --tls-dir "$CERTS/hostb" \
    --serial "file:$T/dst_$name.out" --state-dir "$T/dst_$name.state" "${insecure[@]}"
  local dpid=$!
  wait_for "$T/dst_$name.log" "waiting for an incoming VM" 20 || fail "$name: no destination"
  local ppid=
  if [ "$action" = direct ]; then
    pport=$port
  else
    rm -f "$T/pport"
    bg "proxy_$name" "$PROXY" --port-file "$T/pport" 0 "127.0.0.1:$port" "$action"
    ppid=$!
    wait_for "$T/pport" "^[0-9]+" 10 || fail "$name: proxy did not start"
    pport=$(cat "$T/pport")
  fi
  out=$(ctl "$T/src.sock" migrate "$scheme://127.0.0.1:$pport" --timeout-ms 5000 "${insecure[@]}" 2>&1) &&
    fail "$name: migration succeeded through a tampered stream: $out"
  echo "$name: $(echo "$out" | tail -n 1)"
  echo "$out" | grep -Eq -- "$re" || fail "$name: error /$re/ not in: $out"
  if [ -n "$ppid" ]; then
    kill "$ppid" 2>/dev/null; sleep 0.2
    grep -q "action not applied" "$T/proxy_$name.log" && fail "$name: the proxy never tampered: $(cat "$T/proxy_$name.log")"
  fi
  wait_exit "$dpid" 10 >/dev/null
  alive "$dpid" && fail "$name: destination still alive after the abort"
  [ -s "$T/dst_$name.out" ] && fail "$name: the VM ran at the destination"
  still_running src
  CASES=$((CASES + 1))
}
CASES=0
# TLS: every alteration is a failed record MAC at the destination.
abort_case tls_flip tls flip:300000 "aborted during .*(reset|Broken pipe|closed|alert|timed out)"
abort_case tls_dup tls dup:40 "aborted during .*(reset|Broken pipe|closed|alert|timed out)"
abort_case tls_drop tls drop:40 "aborted during .*(reset|Broken pipe|closed|alert|timed out)"
abort_case tls_swap tls swap:40 "aborted during .*(reset|Broken pipe|closed|alert|timed out)"
abort_case tls_cut tls cut:400000 "aborted during .*(reset|Broken pipe|closed|alert|timed out)"
abort_case tls_trunc tls truncate:400000 "aborted during .*(reset|Broken pipe|closed|alert|timed out)"
abort_case tls_inject tls inject:300000:deadbeef "aborted during .*(reset|Broken pipe|closed|alert|timed out)"
# Plain TCP: sequence numbers, checksums and the transcript catch the same.
abort_case tcp_flip tcp flip:300000 "checksum mismatch|corrupt"
abort_case tcp_dup tcp dup:3 "sequence number|corrupt"
abort_case tcp_drop tcp drop:3 "sequence number|corrupt"
abort_case tcp_swap tcp swap:3 "sequence number|corrupt"
abort_case tcp_inject tcp inject:300000:deadbeef "corrupt|unknown section|checksum"
# The destination dies mid-stream (deaths around COMMIT: tests/sys/handover.sh).
abort_case dst_killed tls none "connection|closed|reset|Broken pipe" SEALVM_TEST_FAULT=die-during-pages
note "$CASES abort cases: all detected, source kept running"
echo ok
