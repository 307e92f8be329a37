# Live migration over TLS while the guest dirties memory: the checker stays clean
# and its heartbeat continues at the destination; the source exits 0.
. "$(dirname "$0")/../lib.sh"
certs

# ws MiB : dirty rate MB/s : downtime target ms. 64 MB/s, then ~340 MB/s (this
# machine's ceiling) against a 0 ms target, which only an empty round meets: the
# migration must still converge (auto-converge throttles the vCPU, at most 50%,
# when rounds stop shrinking; whether it had to depends on the guest's pacing).
# The last field is the number of parallel TLS channels.
for c in 16:64:50:1 32:512:0:4; do
  IFS=: read -r ws rate dt ch <<<"$c"
  note "migrating a 512 MiB VM, memcheck ws=$ws rate=$rate light=1"
  port=$(free_port)
  start_dst dst "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostb"
  start_src src 512M "ws=$ws rate=$rate light=1 hb=250" --tls-dir "$CERTS/hosta"
  hb_after "$T/src.out" 2 30 || fail "source guest not running"
  ctl "$T/src.sock" migrate "tls://127.0.0.1:$port" --downtime-ms "$dt" --max-throttle 50 --channels "$ch" > "$T/report.json" || {
    cat "$T/report.json" "$T/src.log" "$T/dst.log"; fail "migration failed"; }
  cat "$T/report.json"
  grep -q '"result": "committed"' "$T/report.json" || fail "not committed"
  grep -q '"transport": "tls"' "$T/report.json" || fail "not over TLS"
  grep -q '"cipher": "TLS_AES' "$T/report.json" || fail "no TLS 1.3 AES suite"
  grep -q '"converged": true' "$T/report.json" || fail "did not converge"
  grep -q "\"channels\": $ch," "$T/report.json" || fail "not $ch channels"
  grep -Eq '"throttle_pct": (0|20|30|40|50),' "$T/report.json" || fail "throttle beyond --max-throttle 50"
  for f in total_ms downtime_ms bytes pages_sent zero_pages rounds src_cpu_s dest_cpu_s throughput_mb_s; do
    grep -q "\"$f\"" "$T/report.json" || fail "report lacks $f"
  done
  wait_exit "$SRC_PID" 20; rc=$?
  [ $rc -eq 0 ] || fail "source exited $rc after the hand-over"
  last=$(hb_field "$T/src.out" seq)
  note "source stopped at heartbeat $last; destination must continue past it"
  hb_after "$T/dst.out" "$last" 30 || fail "heartbeat did not continue at the destination"
  first=$(grep -Eo '^HB seq=[0-9]+' "$T/dst.out" | head -n 1 | cut -d= -f2)
  [ "$first" -gt "$last" ] || fail "destination heartbeat restarted at $first (source was at $last)"
  # the checker sweeps the whole working set at the destination
  p0=$(hb_field "$T/dst.out" passes)
  n=0; while [ "$(hb_field "$T/dst.out" passes)" -le "$p0" ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done
  [ "$(hb_field "$T/dst.out" passes)" -gt "$p0" ] || fail "no full verification pass at the destination"
  check_clean "$T/dst.out"
  ctl "$T/dst.sock" quit >/dev/null
  wait_exit "$DST_PID" 20 || fail "destination did not quit"
  rm -f "$T"/*.out "$T"/*.log
done
echo ok
