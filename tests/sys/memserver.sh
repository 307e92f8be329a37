# The memory server (sealvm memserver, issue 11 phase 1): capacity reserved up front and
# refused beyond it; a store only its creator's certificate may read, write or free; the
# hand-over by grant and adoption; ephemeral stores freed when their creator disconnects,
# declined or expired grants; hostile clients sending malformed records are told why and
# dropped while others are served; --allow-from; and the server's memory never holds the
# plaintext of a sealed page (while a page stored as non-sensitive is found there: the
# scan works).
. "$(dirname "$0")/../lib.sh"
certs
TOOL=$ROOT/build/tools/ms_tool
[ -x "$TOOL" ] || fail "build/tools/ms_tool is missing (make)"

start_ms() { # NAME [extra args]: a memory server on a free port; sets MS_PID, MS_URI
  local name=$1; shift
  local port; port=$(free_port)
  bg "$name" "$SEALVM" memserver --listen "tls://127.0.0.1:$port" --tls-dir "$CERTS/hostc" \
    --control "$T/$name.sock" --state-dir "$T/$name.state" "$@"
  MS_PID=$!
  wait_for "$T/$name.log" "serving on" 60 || fail "the memory server did not start: $(cat "$T/$name.log")"
  MS_URI="tls://127.0.0.1:$port"
}
ms() { # CERT ARGS...: ms_tool as host CERT
  local c=$1; shift
  "$TOOL" "$MS_URI" --tls-dir "$CERTS/$c" --timeout 10000 "$@"
}
status() { ctl "$T/ms.sock" status | tr -d ' \n'; }
store_state() { # ID: the state of that store in ctl status, or "gone"
  python3 -c 'import json,sys; s=[x for x in json.load(sys.stdin)["stores"] if x["id"]==sys.argv[1]]; print(s[0]["state"] if s else "gone")' "$1" < <(ctl "$T/ms.sock" status)
}

SA=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1
SB=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2
SC=ccccccccccccccccccccccccccccccc3
SD=ddddddddddddddddddddddddddddddd4
SE=eeeeeeeeeeeeeeeeeeeeeeeeeeeeeee5
SP=fffffffffffffffffffffffffffffff6
SECRET="SEALVM-SECRET-$RANDOM$RANDOM-"
PUBLIC="SEALVM-PUBLIC-$RANDOM$RANDOM-"

note "refused at start: tcp:// without --insecure, a capacity below 2M"
out=$("$SEALVM" memserver --listen tcp://127.0.0.1:0 --capacity 8M --state-dir "$T/x.state" 2>&1) && fail "tcp:// accepted without --insecure"
echo "$out" | grep -q "unauthenticated clients" || fail "unclear: $out"
out=$("$SEALVM" memserver --listen tls://127.0.0.1:0 --tls-dir "$CERTS/hostc" --capacity 1M --state-dir "$T/x.state" 2>&1) && fail "a 1M capacity was accepted"
echo "$out" | grep -q "at least 2M" || fail "unclear: $out"

note "capacity reserved up front (the process holds it before any store)"
start_ms ms --capacity 48M
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$MS_PID/status")
echo "memory server RSS ${rss} KiB with 48M capacity, no store yet"
[ "$rss" -ge $((46 * 1024)) ] || fail "the capacity is not really held (RSS ${rss} KiB)"
cap=$(ctl "$T/ms.sock" status | python3 -c 'import json,sys; print(json.load(sys.stdin)["capacity_blobs"])')
[ "$cap" -gt 11000 ] || fail "capacity of $cap blobs for 48M"

note "a store larger than the free capacity is refused; nothing is promised"
out=$(ms hosta create $SA $((cap + 1))) && fail "a store beyond capacity was created: $out"
echo "$out" | grep -q "not enough capacity" || fail "unclear refusal: $out"
status | grep -q '"promised_blobs":0,' || fail "a refused store promised capacity: $(status)"
ms hosta create $SA 2000 create $SB $((cap - 2000)) >"$T/c.out" || fail "two stores filling the capacity: $(cat "$T/c.out")"
out=$(ms hostb create $SC 1) && fail "a store beyond the promised capacity: $out"
echo "$out" | grep -q "not enough capacity" || fail "unclear refusal: $out"
ms hosta free $SB >/dev/null || fail "freeing the big store"

note "hosta fills its store; hostb can neither read, write, free, grant nor look at it"
ms hosta fill $SA 0 600 "$T/a.key" "$SECRET" verify $SA 0 600 "$T/a.key" "$SECRET" >"$T/fill.out" ||
  fail "hosta could not fill and verify its own store: $(cat "$T/fill.out")"
cat "$T/fill.out"
for cmd in "get $SA 5" "stat $SA" "free $SA" "grant $SA $CERTS/hostb/cert.pem 30" "fill $SA 0 1 $T/evil.key X" "adopt $SA"; do
  # shellcheck disable=SC2086
  out=$(ms hostb $cmd) && fail "hostb could '$cmd' hosta's store: $out"
  echo "$out" | grep -q "belongs to another host" || fail "hostb '$cmd': unclear refusal: $out"
done
ms hosta verify $SA 0 600 "$T/a.key" "$SECRET" stat $SA >"$T/v.out" || fail "hosta's store changed: $(cat "$T/v.out")"
grep -q "blobs=600 " "$T/v.out" || fail "$(cat "$T/v.out")"

note "hand-over: hosta creates, fills and grants; it disconnects; hostb adopts and becomes the sole owner"
ms hosta create $SB 300 ephemeral fill $SB 0 300 "$T/b.key" "$SECRET" grant $SB "$CERTS/hostb/cert.pem" 60 >"$T/g.out" ||
  fail "grant failed: $(cat "$T/g.out")"
grep -q "state=granted" "$T/g.out" || fail "$(cat "$T/g.out")"
[ "$(store_state $SB)" = granted ] || fail "a granted store did not outlive its creator's connection: $(store_state $SB)"
out=$(ms hostb get $SB 0) && fail "the grantee read before adopting: $out"
out=$(ms hostc adopt $SB) && fail "a third host adopted a store granted to hostb: $out"
ms hostb stat $SB adopt $SB verify $SB 0 300 "$T/b.key" "$SECRET" >"$T/ad.out" || fail "adoption failed: $(cat "$T/ad.out")"
grep -q "stat .*role=grantee" "$T/ad.out" && grep -q "adopt .*state=owned role=owner ttl=0 adoptions=1" "$T/ad.out" ||
  fail "$(cat "$T/ad.out")"
out=$(ms hosta get $SB 0) && fail "the source still reads the store after the hand-over: $out"
out=$(ms hosta free $SB) && fail "the source freed the store after the hand-over: $out"
[ "$(store_state $SB)" = owned ] || fail "the adopted store is $(store_state $SB)"

note "stores whose migration aborted are freed: creator gone before a grant, a declined grant, an expired one"
ms hosta create $SC 50 ephemeral fill $SC 0 50 "$T/c.key" "$SECRET" >/dev/null || fail "ephemeral store"
n=0; until [ "$(store_state $SC)" = gone ]; do n=$((n + 1)); [ $n -lt 50 ] || fail "an ephemeral store outlived its creator"; sleep 0.1; done
grep -q "ephemeral store of hosta freed: its connection ended" "$T/ms.log" || fail "no log of the freed store"
ms hosta create $SD 50 ephemeral grant $SD "$CERTS/hostb/cert.pem" 60 >/dev/null || fail "grant D"
[ "$(store_state $SD)" = granted ] || fail "D: $(store_state $SD)"
ms hostb decline $SD >/dev/null || fail "decline D"
[ "$(store_state $SD)" = gone ] || fail "a declined store whose creator is gone was kept: $(store_state $SD)"
ms hosta create $SE 50 ephemeral grant $SE "$CERTS/hostb/cert.pem" 2 >/dev/null || fail "grant E"
[ "$(store_state $SE)" = granted ] || fail "E: $(store_state $SE)"
n=0; until [ "$(store_state $SE)" = gone ]; do n=$((n + 1)); [ $n -lt 60 ] || fail "an expired grant kept its store"; sleep 0.1; done
grep -q "granted, never adopted, creator gone" "$T/ms.log" || fail "no log of the expired grant"
out=$(ms hostb adopt $SE) && fail "adopted an expired grant: $out"

note "hostile clients: every malformed record is refused and the connection dropped; the server serves on"
"$TOOL" "$MS_URI" --tls-dir "$CERTS/hostb" --timeout 3000 raw shortpayload >"$T/raw-short.out" &
short=$!
for k in badversion notmemserver badop hugelen badput dupkey secondhello flags junk; do
  "$TOOL" "$MS_URI" --tls-dir "$CERTS/hostb" --timeout 5000 raw $k >"$T/raw.out" 2>&1 || fail "raw $k: $(cat "$T/raw.out")"
  grep -Eq "^ok $k: refused \(-[0-9]+\): .*; then closed" "$T/raw.out" || fail "raw $k: $(cat "$T/raw.out")"
  cat "$T/raw.out"
done
ms hosta ping 50 verify $SA 0 600 "$T/a.key" "$SECRET" >"$T/p.out" ||
  fail "the server stopped serving others while a client trickled: $(cat "$T/p.out")"
grep "ping" "$T/p.out"
wait $short
grep -q "timed out" "$T/raw-short.out" || fail "a half record was answered: $(cat "$T/raw-short.out")"
alive "$MS_PID" || fail "the memory server died"
v=$(ctl "$T/ms.sock" status | python3 -c 'import json,sys; print(json.load(sys.stdin)["protocol_violations"])')
[ "$v" -ge 7 ] || fail "only $v protocol violations counted"

note "a role-mismatched certificate is refused at the handshake; --allow-from narrows the clients"
out=$("$TOOL" "$MS_URI" --tls-dir "$CERTS/serveronly" ping 1 2>&1) && fail "a server-only certificate was served: $out"
pid1=$MS_PID uri1=$MS_URI
start_ms ms2 --capacity 8M --allow-from hosta,hostc
ms hosta ping 1 >/dev/null || fail "an allowed client was refused"
out=$(ms hostb ping 1) && fail "--allow-from let hostb in: $out"
echo "$out" | grep -q "not admitted here (--allow-from hosta,hostc)" || fail "unclear: $out"
ctl "$T/ms2.sock" quit >/dev/null
wait_exit "$MS_PID" 10 || fail "quit did not stop the memory server"
MS_PID=$pid1 MS_URI=$uri1

note "the server's memory holds no plaintext of sealed pages (and does hold the non-sensitive ones)"
ms hosta create $SP 40 fill $SP 0 40 "$T/p.key" "$PUBLIC" plain >/dev/null || fail "plain fill"
scan() { # PID: how many times each marker appears in the process's readable memory
  python3 - "$1" "$SECRET" "$PUBLIC" <<'P'
import re, sys
pid, secret, public = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
hits = {secret: 0, public: 0}
with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
    for line in maps:
        f = line.split()
        if "r" not in f[1] or (len(f) > 5 and f[5] in ("[vvar]", "[vsyscall]")):
            continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        try:
            mem.seek(lo)
            data = mem.read(hi - lo)
        except (OSError, ValueError, OverflowError):
            continue
        for k in hits:
            hits[k] += data.count(k)
print(hits[secret], hits[public])
P
}
read -r s p < <(scan "$MS_PID")
echo "memory server memory: $s copies of the sealed pages' text, $p of the non-sensitive pages' text"
[ "$p" -ge 40 ] || fail "the scan did not find the non-sensitive pages stored in the clear ($p): the scan is blind"
[ "$s" -eq 0 ] || fail "the memory server's memory holds plaintext of sealed pages ($s copies)"
grep -q -- "$SECRET" "$T/ms.log" && fail "the memory server wrote plaintext to its log"
ms hosta verify $SA 0 600 "$T/a.key" "$SECRET" >/dev/null || fail "the sealed pages do not open after all"

note "quit frees everything"
ctl "$T/ms.sock" quit >/dev/null
wait_exit "$MS_PID" 10 || fail "the memory server did not stop"
grep -q "every store is freed" "$T/ms.log" || fail "no clean stop"
echo ok
