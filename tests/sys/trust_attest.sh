# Attestation with real swtpm instances, one per host, through the sealvm commands:
# host init, the administrator's signed table and policy, measuring at start, quotes and
# their verification. Refused: a sealvm binary with one byte changed, a host not in the
# table, a replayed quote, a forged table (also stops sealvm from starting), an expired
# or revoked entry, a stale table; secrets readable by others; policy decisions at the
# source and at the destination, each naming its rule. Open mode is announced and logged.
. "$(dirname "$0")/../lib.sh"

S=$SEALVM
ADMIN="--admin-key $T/admin.pub.pem"
"$S" admin keygen --out "$T/admin.pem" >/dev/null || fail "admin keygen"
[ "$(stat -c %a "$T/admin.pem")" = 600 ] || fail "admin key is not 0600"

for h in hosta hostb hostc; do
  start_swtpm "$h"
  "$S" host init --state-dir "$T/$h" --tpm "$TPM_SPEC" --name "$h" --admin-key "$T/admin.pub.pem" \
    >"$T/$h.init.log" 2>&1 || fail "host init $h: $(cat "$T/$h.init.log")"
done
note "three hosts, three swtpm instances, initialised"

json_str() { python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }
EXE=$(sha256sum "$S" | cut -d' ' -f1)
# table: hosta and hostb (hostc is unknown); EXTRA_B is spliced into hostb's entry
make_table() { # OUT SERIAL EXTRA_B
  cat >"$T/table.json" <<J
{"type":"sealvm-table","version":1,"serial":$2,"sealvm":["$EXE"],
 "hosts":[{"name":"hosta","ak":$(json_str "$T/hosta/ak.pem"),"trust":2},
          {"name":"hostb","ak":$(json_str "$T/hostb/ak.pem"),"trust":2$3}]}
J
  "$S" admin sign --key "$T/admin.pem" --out "$1" "$T/table.json" >/dev/null || fail "signing $1"
}
make_table "$T/table.signed" 2 ""
cat >"$T/policy.json" <<'J'
{"type":"sealvm-policy","version":1,"serial":1,
 "groups":{"cluster":["hosta","hostb"]},
 "sensitive":[{"class":"secret"}],
 "roles":[{"name":"tenant-acme-ops","principals":["uid:1000"],"ops":["migrate"],"labels":{"tenant":"acme"},
           "from":["@cluster"],"to":["@cluster"]},
          {"name":"admins","principals":["user:root"],"ops":["*"],"from":["@cluster"],"to":["@cluster"]},
          {"name":"cluster-peers","principals":["host:@cluster"],"ops":["migrate"],"from":["@cluster"],"to":["@cluster"]}],
 "deny":[{"name":"secret-not-to-hosta","principals":["*"],"ops":["migrate"],"labels":{"class":"secret"},"to":["hosta"]}]}
J
"$S" admin sign --key "$T/admin.pem" --out "$T/policy.signed" "$T/policy.json" >/dev/null || fail "signing policy"
"$S" admin verify $ADMIN "$T/table.signed" >/dev/null || fail "admin verify table"

# every host starts (measures) with the table and policy
for h in hosta hostb hostc; do
  "$S" host measure --state-dir "$T/$h" --table "$T/table.signed" --policy "$T/policy.signed" \
    >"$T/$h.measure.log" 2>&1 || fail "measure $h: $(cat "$T/$h.measure.log")"
done
grep -q "not in the integrity validation table" "$T/hostc.measure.log" || fail "hostc was not warned it is not in the table"
n=$(wc -l <"$T/hostb/eventlog.jsonl")
[ "$n" -eq 2 ] || fail "hostb event log has $n lines, expected 2 (executable, configuration)"

nonce() { openssl rand -hex 32; }
quote() { # HOST NONCE OUT
  "$S" attest quote --state-dir "$T/$1" --nonce "$2" --out "$3" 2>"$T/quote.err" || fail "quote $1: $(cat "$T/quote.err")"
}
verify() { # TABLE NONCE PEER EVIDENCE -> prints the verdict, returns the exit status
  "$S" attest verify --table "$1" $ADMIN --nonce "$2" --peer "$3" --policy-serial 1 "$4"
}
expect_refused() { # WHAT CHECK MESSAGE TABLE NONCE PEER EVIDENCE
  local what=$1 check=$2 msg=$3 out; shift 3
  out=$(verify "$@") && fail "$what: accepted: $out"
  echo "$out" | grep -q "failed ($check)" || fail "$what: wrong check: $out"
  echo "$out" | grep -q -- "$msg" || fail "$what: reason does not say '$msg': $out"
  note "$what: $out"
}

# a good destination
N=$(nonce)
quote hostb "$N" "$T/b.ev"
out=$(verify "$T/table.signed" "$N" hostb "$T/b.ev") || fail "hostb refused: $out"
note "$out"
# and the source, attested by the destination (mutual)
N2=$(nonce)
quote hosta "$N2" "$T/a.ev"
verify "$T/table.signed" "$N2" hosta "$T/a.ev" >/dev/null || fail "hosta refused"

expect_refused "replayed quote" nonce "different challenge" "$T/table.signed" "$(nonce)" hostb "$T/b.ev"
expect_refused "quote relayed to another peer" host "TLS peer is hosta" "$T/table.signed" "$N" hosta "$T/b.ev"
N=$(nonce)
quote hostc "$N" "$T/c.ev"
expect_refused "unknown host" host "hostc is not in the integrity validation table" "$T/table.signed" "$N" hostc "$T/c.ev"
N=$(nonce)
quote hostb "$N" "$T/b.ev"
make_table "$T/revoked.signed" 2 ',"revoked":true'
expect_refused "revoked entry" host "revoked" "$T/revoked.signed" "$N" hostb "$T/b.ev"
make_table "$T/expired.signed" 2 ',"expires":1000000000'
expect_refused "expired entry" host "expired" "$T/expired.signed" "$N" hostb "$T/b.ev"
make_table "$T/newer.signed" 3 ""
expect_refused "stale table at the destination" measurement "table is stale (serial 2, ours is 3)" \
  "$T/newer.signed" "$N" hostb "$T/b.ev"

# a forged table: refused by verify, and sealvm does not start with it
sed 's/"trust": 2/"trust": 9/' "$T/table.signed" >"$T/forged.signed"
cmp -s "$T/table.signed" "$T/forged.signed" && fail "could not forge the table"
out=$(verify "$T/forged.signed" "$N" hostb "$T/b.ev" 2>&1) && fail "forged table accepted"
echo "$out" | grep -q "changed after it was signed" || fail "forged table: $out"
out=$("$S" host measure --state-dir "$T/hosta" --table "$T/forged.signed" --policy "$T/policy.signed" 2>&1) &&
  fail "sealvm started with a forged table"
echo "$out" | grep -q "forged.signed.*changed after it was signed" || fail "forged table start: $out"
note "forged table: $out"
"$S" admin keygen --out "$T/rogue.pem" >/dev/null
"$S" admin sign --key "$T/rogue.pem" --out "$T/rogue.signed" "$T/table.json" >/dev/null
out=$("$S" host measure --state-dir "$T/hosta" --table "$T/rogue.signed" --policy "$T/policy.signed" 2>&1) &&
  fail "sealvm started with a table signed by another key"
echo "$out" | grep -q "not signed by the administrator key" || fail "rogue table: $out"

# a secret readable by others stops the start
chmod 644 "$T/hosta/audit-key.pem"
out=$("$S" host measure --state-dir "$T/hosta" --table "$T/table.signed" --policy "$T/policy.signed" 2>&1) &&
  fail "sealvm started with an audit key readable by others"
echo "$out" | grep -q "chmod 600" || fail "world-readable key: $out"
chmod 600 "$T/hosta/audit-key.pem"

# a destination whose sealvm differs from the table by one byte
cp "$S" "$T/sealvm-rebuilt"
python3 - "$T/sealvm-rebuilt" <<'P' || fail "could not patch the binary"
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = b.find(b"OPEN MODE")
assert i > 0
b[i + 8] ^= 0x20          # "OPEN MODE" -> "OPEN MODe": one byte, still runs
open(p, "wb").write(bytes(b))
P
[ "$(cmp -l "$S" "$T/sealvm-rebuilt" | wc -l)" -eq 1 ] || fail "the rebuilt binary differs in more than one byte"
"$T/sealvm-rebuilt" host measure --state-dir "$T/hostb" --table "$T/table.signed" --policy "$T/policy.signed" \
  >/dev/null 2>&1 || fail "the rebuilt binary did not start"
N=$(nonce)
quote hostb "$N" "$T/b2.ev"
expect_refused "sealvm binary with one byte changed" measurement "sealvm-rebuilt) is not allowed for hostb" \
  "$T/table.signed" "$N" hostb "$T/b2.ev"
n=$(wc -l <"$T/hostb/eventlog.jsonl")
note "hostb event log: $n lines"

# policy: the source asks who may move which VM where; the destination which source may send it
pol() { "$S" policy check --policy "$T/policy.signed" $ADMIN "$@"; }
expect_policy() { # allow|deny RULE ARGS...
  local want=$1 rule=$2 out rc; shift 2
  out=$(pol "$@"); rc=$?
  case $want in
    allow) [ $rc -eq 0 ] || fail "policy denied $*: $out" ;;
    deny)  [ $rc -eq 1 ] || fail "policy allowed $*: $out" ;;
  esac
  echo "$out" | grep -q "rule=$rule" || fail "policy $*: expected rule $rule: $out"
  echo "$out" | grep -q "\"$rule\"\|($rule)\|rule $rule" || fail "reason does not name $rule: $out"
}
expect_policy allow tenant-acme-ops --principal uid:1000 --op migrate --label tenant=acme --from hosta --to hostb
expect_policy deny default-deny --principal uid:1000 --op migrate --label tenant=globex --from hosta --to hostb
expect_policy deny default-deny --principal uid:1000 --op migrate --label tenant=acme --from hosta --to hostc
expect_policy deny default-deny --principal uid:1000 --op snapshot --label tenant=acme
expect_policy allow admins --principal uid:0 --op migrate --label class=secret --from hosta --to hostb
expect_policy deny secret-not-to-hosta --principal uid:0 --op migrate --label class=secret --from hostb --to hosta
expect_policy allow cluster-peers --principal host:hosta --op migrate --label tenant=acme --from hosta --to hostb
expect_policy deny default-deny --principal host:hostc --op migrate --label tenant=acme --from hostc --to hostb
expect_policy deny secret-not-to-hosta --principal host:hostb --op migrate --label class=secret --from hostb --to hosta
pol --principal uid:0 --op migrate --label class=secret --from hosta --to hostb | grep -q "encryption is mandatory" ||
  fail "class=secret is not reported as sensitive"

# open mode: no table, no policy
out=$("$S" host measure --state-dir "$T/open" 2>&1) || fail "open mode start: $out"
echo "$out" | grep -q "OPEN MODE" || fail "open mode not announced: $out"
grep -q '"event":"start".*"mode":"open"' "$T/open/audit.jsonl" || fail "open mode not in the audit log"
out=$("$S" host measure --state-dir "$T/hosta" --table "$T/table.signed" 2>&1) && fail "table without policy accepted"
echo "$out" | grep -q "go together" || fail "table without policy: $out"

for h in hosta hostb hostc open; do
  "$S" audit verify "$T/$h/audit.jsonl" >"$T/$h.audit.log" || fail "audit log of $h: $(cat "$T/$h.audit.log")"
done
echo ok
