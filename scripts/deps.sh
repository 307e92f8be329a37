#!/usr/bin/env bash
# Installs the Debian packages sealvm needs (when run as root), or says exactly what to install.
# Usage: deps.sh build|test|bench
set -euo pipefail
need=(gcc make binutils libc6-dev libssl-dev libjansson-dev libxxhash-dev openssl libtss2-dev
      libvncserver-dev zlib1g-dev console-setup-linux novnc websockify)
case "${1:-build}" in
  build) ;;
  test)  need+=(clang libclang-rt-14-dev iproute2 qemu-system-x86 procps python3 chromium python3-pil swtpm swtpm-tools util-linux spin) ;;
  bench) need+=(qemu-system-x86 gnuplot-nox openssl iproute2 python3 linux-perf) ;;
esac
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "sealvm: missing Debian packages; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "sealvm: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/sealvm-apt.XXXXXX)
apt-get update -qq >"$log" 2>&1 || true
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "sealvm: apt-get install ${missing[*]} failed" >&2
  exit 1
fi
rm -f "$log"
