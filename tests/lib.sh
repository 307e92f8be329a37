# Shared helpers for system tests (sourced). Every process a test starts is
# killed when the test exits; every wait is bounded.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEALVM=$ROOT/build/sealvm
GUEST=$ROOT/build/guest
T=$(mktemp -d /tmp/sealvm-test.XXXXXX)
PIDS=()
export SEALVM_STATE_DIR=$T/default.state  # a test never touches the machine's own state

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "$*"; exit 77; }
note() { echo "-- $*"; }

# bg NAME CMD...: starts CMD in the background, output in $T/NAME.log; sets $!.
bg() {
  local name=$1; shift
  "$@" >"$T/$name.log" 2>&1 &
  PIDS+=($!)
}

# wait_for FILE REGEX SECONDS: waits until a line of FILE matches.
wait_for() {
  local f=$1 re=$2 n=$(( $3 * 10 ))
  while [ $n -gt 0 ]; do
    grep -Eq -- "$re" "$f" 2>/dev/null && return 0
    sleep 0.1; n=$((n - 1))
  done
  echo "timed out waiting for /$re/ in $f; it ends with:"; tail -n 5 "$f" 2>/dev/null
  return 1
}

# wait_exit PID SECONDS: waits for a process to end; prints its status.
wait_exit() {
  local pid=$1 n=$(( $2 * 10 ))
  while [ $n -gt 0 ]; do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; return $?; }
    sleep 0.1; n=$((n - 1))
  done
  return 124
}

alive() { kill -0 "$1" 2>/dev/null; }

ctl() { "$SEALVM" ctl --timeout 120 "$@"; }

# free_port: a TCP port no socket uses, below the kernel's ephemeral range (a port an
# outgoing connection holds is not listening, but still cannot be bound).
free_port() {
  local p lo
  lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  while :; do
    p=$(( 10000 + RANDOM % (lo - 10000) ))
    ss -tanH 2>/dev/null | awk '{ print $4 }' | grep -q ":$p\$" || { echo $p; return; }
  done
}

# certs: test CA, hosts and bad certificates, made once per build.
certs() {
  CERTS=$ROOT/build/certs
  "$ROOT/scripts/mkcerts.sh" "$CERTS" >/dev/null || fail "mkcerts failed"
}

# complete_lines FILE: the file without a last line still being written.
complete_lines() {
  local c
  c=$(cat "$1" 2>/dev/null; echo x)   # one read; the x keeps a trailing newline
  c=${c%x}
  [ "${c: -1}" = $'\n' ] || c=${c%$'\n'*}
  printf '%s\n' "$c"
}

# Last heartbeat counters of a memcheck serial log (complete lines only).
hb_field() { # FILE FIELD
  complete_lines "$1" | grep -Eo "^HB .*" | tail -n 1 | grep -Eo "$2=[0-9]+" | cut -d= -f2
}

# start_src NAME MEM CMDLINE [extra run args]: boots memcheck with a control socket
# at $T/NAME.sock and serial at $T/NAME.out; sets SRC_PID.
start_src() {
  local name=$1 mem=$2 cmd=$3; shift 3
  bg "$name" "$SEALVM" run --kernel "$GUEST/memcheck.elf" --cmdline "$cmd" --mem "$mem" \
    --serial "file:$T/$name.out" --control "$T/$name.sock" --state-dir "$T/$name.state" "$@"
  SRC_PID=$!
  wait_for "$T/$name.out" "^READY" 120 || fail "memcheck did not fill its working set"
}

# start_dst NAME URI [extra run args]: an incoming sealvm; sets DST_PID.
start_dst() {
  local name=$1 uri=$2; shift 2
  bg "$name" "$SEALVM" run --incoming "$uri" --serial "file:$T/$name.out" --control "$T/$name.sock" \
    --state-dir "$T/$name.state" "$@"
  DST_PID=$!
  wait_for "$T/$name.log" "waiting for an incoming VM" 20 || fail "destination did not listen"
}

# hb_after FILE SEQ SECONDS: waits for a heartbeat numbered above SEQ.
hb_after() {
  local f=$1 seq=$2 n=$(( $3 * 10 )) s
  while [ $n -gt 0 ]; do
    s=$(hb_field "$f" seq)
    [ -n "$s" ] && [ "$s" -gt "$seq" ] && return 0
    sleep 0.1; n=$((n - 1))
  done
  echo "no heartbeat after seq $seq in $f:"; tail -n 3 "$f"
  return 1
}

# Last heartbeat counter of one processor of a multi-CPU memcheck ("CPU c seq=.." lines).
cpu_field() { # FILE CPU FIELD
  complete_lines "$1" | grep -E "^CPU $2 seq=" | tail -n 1 | grep -Eo " $3=[0-9]+" | cut -d= -f2
}

# cpu_hb_after FILE CPU SEQ SECONDS: waits for processor CPU's heartbeat numbered above SEQ.
cpu_hb_after() {
  local f=$1 c=$2 seq=$3 n=$(( $4 * 10 )) s
  while [ $n -gt 0 ]; do
    s=$(cpu_field "$f" "$c" seq)
    [ -n "$s" ] && [ "$s" -gt "$seq" ] && return 0
    sleep 0.1; n=$((n - 1))
  done
  echo "no heartbeat of CPU $c after seq $seq in $f:"; tail -n 3 "$f"
  return 1
}

# passes_after FILE PASSES SECONDS: waits until the checker has swept every page once
# more than PASSES (on several CPUs HB passes= is the fewest sweeps of any of them).
passes_after() {
  local f=$1 p=$2 n=$(( $3 * 10 )) s
  while [ $n -gt 0 ]; do
    s=$(hb_field "$f" passes)
    [ -n "$s" ] && [ "$s" -gt "$p" ] && return 0
    sleep 0.1; n=$((n - 1))
  done
  echo "no full verification pass after $p in $f:"; tail -n 3 "$f"
  return 1
}

# check_clean FILE: no corrupt page was ever reported.
check_clean() {
  grep -q "^BAD" "$1" && fail "memory checker found corrupt pages: $(grep -m3 '^BAD' "$1")"
  [ "$(hb_field "$1" bad)" = 0 ] || fail "heartbeat reports bad pages: $(grep '^HB' "$1" | tail -n 1)"
}

# still_running NAME: the VM answers, runs, and its checker keeps going clean.
still_running() {
  local name=$1 seq
  ctl "$T/$name.sock" status | grep -q '"state": "running"' || fail "$name is not running"
  seq=$(hb_field "$T/$name.out" seq)
  hb_after "$T/$name.out" "${seq:-0}" 10 || fail "$name's guest stopped making progress"
  check_clean "$T/$name.out"
}

# start_swtpm NAME: provisions a software TPM (swtpm_setup) with its state in $T/NAME.tpm
# and serves it with `swtpm socket` on a free loopback port pair (PORT, PORT+1 for
# control); the test's cleanup stops it. Sets TPM_SPEC (swtpm:host=127.0.0.1,port=PORT)
# and TPM_PID. Skips the test when swtpm is not installed.
start_swtpm() {
  local name=$1 dir=$T/$1.tpm p n=50
  command -v swtpm >/dev/null && command -v swtpm_setup >/dev/null ||
    skip "swtpm is not installed (apt-get install swtpm swtpm-tools)"
  mkdir -p "$dir"
  swtpm_setup --tpm2 --tpmstate "$dir" --createek --overwrite >"$T/$name.swtpm_setup.log" 2>&1 ||
    fail "swtpm_setup failed: $(tail -n 3 "$T/$name.swtpm_setup.log")"
  while :; do
    p=$(free_port)
    ss -ltn 2>/dev/null | grep -q ":$((p + 1)) " || break
  done
  bg "$name.swtpm" swtpm socket --tpm2 --tpmstate "dir=$dir" \
    --server "type=tcp,port=$p,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((p + 1)),bindaddr=127.0.0.1" \
    --flags not-need-init,startup-clear
  TPM_PID=$!
  while ! ss -ltn 2>/dev/null | grep -q "127.0.0.1:$p "; do
    n=$((n - 1))
    [ $n -gt 0 ] && alive "$TPM_PID" || fail "swtpm did not start: $(cat "$T/$name.swtpm.log")"
    sleep 0.1
  done
  TPM_SPEC="swtpm:host=127.0.0.1,port=$p"
}
