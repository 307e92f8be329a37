# The audit log through `sealvm audit verify|show`, with a real swtpm: every way of
# tampering with STATE_DIR/audit.jsonl is reported with the first broken record and why;
# cutting signed heads off the end is caught by the TPM's audit counter; and what is not
# detectable (records after the last signed head, a cut at a head when the TPM is not
# asked) is shown as such.
. "$(dirname "$0")/../lib.sh"

S=$SEALVM
start_swtpm hosta
"$S" host init --state-dir "$T/st" --tpm "$TPM_SPEC" --name hosta >/dev/null || fail "host init"
LOG=$T/st/audit.jsonl
for i in $(seq 1 6); do
  "$S" audit append --state-dir "$T/st" "{\"event\":\"policy\",\"result\":\"deny\",\"rule\":\"r$i\",\"i\":$i}" ||
    fail "audit append"
done
out=$("$S" audit verify "$LOG") || fail "fresh log: $out"
echo "$out" | grep -q "OK: .*TPM counter certified" || fail "fresh log: $out"
note "$out"
"$S" audit show "$LOG" >"$T/show.txt" || fail "audit show"
grep -q 'policy .*result=deny rule=r3' "$T/show.txt" || fail "audit show: $(head -5 "$T/show.txt")"
grep -q 'head .*signed by .*TPM counter' "$T/show.txt" || fail "audit show has no heads"
cp "$LOG" "$T/good.jsonl"

broken() { # WHAT EXPECTED-REGEX [verify args]: the tampered $LOG must be reported
  local what=$1 re=$2 out; shift 2
  out=$("$S" audit verify "$LOG" "$@") && fail "$what: not detected: $out"
  echo "$out" | grep -Eq -- "$re" || fail "$what: unexpected report: $out"
  note "$what: $out"
  cp "$T/good.jsonl" "$LOG"
}
line() { sed -n "$1p" "$T/good.jsonl"; }

sed -i '3s/"rule":"r1"/"rule":"rX"/' "$LOG"
broken "edited record" 'record 3: .*hash of record 2'
sed -i '3d' "$LOG"
broken "deleted record" 'record 2: has seq 3'
{ line 1; line 2; line 4; line 3; sed -n '5,$p' "$T/good.jsonl"; } >"$LOG"
broken "reordered records" 'record 2: has seq 3'
sed -i '1,2d' "$LOG"
broken "cut at the start" 'starts at record 2.*beginning was cut off'
head -c -20 "$T/good.jsonl" >"$LOG"
broken "cut mid-record" 'incomplete last line'
{ sed -n '1,4p' "$T/good.jsonl"; line 3; sed -n '5,$p' "$T/good.jsonl"; } >"$LOG"
broken "duplicated record" 'record 4: has seq 2'
# the last signed head and what follows are cut off: the file alone looks fine...
last_head=$(grep -n '"event":"head"' "$T/good.jsonl" | tail -n 1 | cut -d: -f1)
head -n $((last_head - 1)) "$T/good.jsonl" >"$LOG"
out=$("$S" audit verify "$LOG" --no-tpm) || fail "cut at a head without the TPM: $out"
note "cut after a head, TPM not asked (undetectable from the file alone): $out"
# ...but the TPM's counter has moved on
broken "signed head cut off the end" 'signed head\(s\) were cut off the end'
# a head forged without the TPM (signed with the audit key, TPM part copied from an earlier head)
python3 - "$T/good.jsonl" "$LOG" <<'P'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
heads = [i for i, l in enumerate(lines) if json.loads(l)["event"] == "head"]
a, b = heads[-2], heads[-1]
hb = json.loads(lines[b]); hb["tpm"] = json.loads(lines[a])["tpm"]
lines[b] = json.dumps(hb, separators=(",", ":"))
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
P
broken "head with a copied TPM certification" 'another chain position'
# verified with another host's audit key
"$S" admin keygen --out "$T/other.pem" >/dev/null
broken "another host's key" 'not the host.s audit key' --key "$T/other.pub.pem"

# a crash mid-write: the next writer cuts the torn line, records the cut, and the log verifies
printf '{"seq":99,"time":"x","prev' >>"$LOG"
"$S" audit append --state-dir "$T/st" '{"event":"snapshot","file":"/tmp/x"}' || fail "append after a torn line"
grep -q '"event":"audit-torn"' "$LOG" || fail "the torn line was not recorded"
out=$("$S" audit verify "$LOG") || fail "after repairing a torn line: $out"
note "after a torn line: $out"
echo ok
