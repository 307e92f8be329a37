# Shared set-up of the trusted-migration tests (sourced after lib.sh): the cluster
# administrator's key, one real swtpm and one initialised state directory per host,
# and the administrator's signed table and policy.
#
#   trust_host NAME        swtpm + `host init` into $T/NAME.state (cert $CERTS/NAME)
#   make_table OUT SERIAL [EXTRA_B]   table of hosta and hostb (EXTRA_B spliced into hostb's entry)
#   sign FILE.json OUT     the administrator signs
#   trusted NAME           the run options of a trusted process on host NAME
#   audit_has NAME REGEX   a record of NAME's audit log matches
certs
S=$SEALVM
"$S" admin keygen --out "$T/admin.pem" >/dev/null || fail "admin keygen"

trust_host() {
  start_swtpm "$1"
  "$S" host init --state-dir "$T/$1.state" --tpm "$TPM_SPEC" --name "$1" --admin-key "$T/admin.pub.pem" \
    >"$T/$1.init.log" 2>&1 || fail "host init $1: $(cat "$T/$1.init.log")"
}

json_str() { python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }

sign() { "$S" admin sign --key "$T/admin.pem" --out "$2" "$1" >/dev/null || fail "signing $1"; }

make_table() { # OUT SERIAL [EXTRA_B]
  local exe ca
  exe=$(sha256sum "$S" | cut -d' ' -f1)
  ca=$(sha256sum "$CERTS/hosta/ca.pem" | cut -d' ' -f1)
  cat >"$T/table.json" <<J
{"type":"sealvm-table","version":1,"serial":$2,"sealvm":["$exe"],"ca":["$ca"],
 "hosts":[{"name":"hosta","ak":$(json_str "$T/hosta.state/ak.pem"),"trust":2},
          {"name":"hostb","ak":$(json_str "$T/hostb.state/ak.pem"),"trust":2${3:-}}]}
J
  sign "$T/table.json" "$1"
}

trusted() { # NAME [TABLE]
  echo "--state-dir $T/$1.state --tls-dir $CERTS/$1 --table ${2:-$T/table.signed} --policy $T/policy.signed"
}

audit_has() { # NAME REGEX
  grep -Eq -- "$2" "$T/$1.state/audit.jsonl" || fail "$1's audit log has no record matching /$2/"
}

# report_field JSON_TEXT FIELD
report_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
