# Shared helpers for system tests (sourced). Every process a test starts is
# killed when the test exits; every wait is bounded.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEALVM=$ROOT/build/sealvm
GUEST=$ROOT/build/guest
T=$(mktemp -d /tmp/sealvm-test.XXXXXX)
PIDS=()

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

# free_port: a TCP port nothing listens on.
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 20000 ))
    ss -ltn 2>/dev/null | grep -q ":$p " || { echo $p; return; }
  done
}

# certs: test CA, hosts and bad certificates, made once per build.
certs() {
  CERTS=$ROOT/build/certs
  "$ROOT/scripts/mkcerts.sh" "$CERTS" >/dev/null || fail "mkcerts failed"
}

# Last heartbeat counters of a memcheck serial log.
hb_field() { # FILE FIELD
  grep -Eo "^HB .*" "$1" | tail -n 1 | grep -Eo "$2=[0-9]+" | cut -d= -f2
}
