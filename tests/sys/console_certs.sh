# The owner's console checks certificates as strictly as the migration channels (one shared
# TLS context, channel/tls_ctx.c): the server takes from the owner's CA only a leaf certificate
# made for a client (CA:FALSE, clientAuth) and not listed in --owner-crl; the owner's client
# takes only a host certificate made for a server, not revoked in its crl.pem, and refuses its
# own key file when others can read it.
. "$(dirname "$0")/../lib.sh"
certs
OCA=$CERTS/ownerca/ca.pem

# An owner CA with a signing database, for certificates of every shape and a revocation list.
mkdir -p "$T/oca/db"
cp "$CERTS/ownerca/ca.pem" "$CERTS/ownerca/key.pem" "$T/oca/"
: >"$T/oca/db/index.txt"; echo 1000 >"$T/oca/db/serial"; echo 01 >"$T/oca/db/crlnumber"
cat >"$T/oca.cnf" <<CNF
[ ca ]
default_ca = oca
[ oca ]
database = $T/oca/db/index.txt
serial = $T/oca/db/serial
crlnumber = $T/oca/db/crlnumber
new_certs_dir = $T/oca/db
certificate = $T/oca/ca.pem
private_key = $T/oca/key.pem
default_md = sha256
default_days = 2
default_crl_days = 2
policy = any
unique_subject = no
[ any ]
commonName = supplied
[ client ]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = clientAuth
[ server ]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = serverAuth
[ noeku ]
basicConstraints = critical, CA:FALSE
[ nobc ]
extendedKeyUsage = clientAuth
[ isca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
extendedKeyUsage = clientAuth
CNF
mkowner() { # NAME EXTENSIONS
  mkdir -p "$T/$1"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$T/$1/key.pem" -out "$T/$1.csr" 2>/dev/null || fail "openssl req $1"
  openssl ca -batch -notext -config "$T/oca.cnf" -extensions "$2" -in "$T/$1.csr" \
    -out "$T/$1/cert.pem" >/dev/null 2>&1 || fail "openssl ca $1"
  cp "$CERTS/owner/ca.pem" "$T/$1/ca.pem"
  chmod 600 "$T/$1/key.pem"
}
mkowner good client
mkowner revoked client
mkowner serveronly server
mkowner noeku noeku
mkowner nobc nobc
mkowner isca isca_ext
openssl ca -batch -config "$T/oca.cnf" -revoke "$T/revoked/cert.pem" >/dev/null 2>&1 || fail "revoke"
openssl ca -batch -config "$T/oca.cnf" -gencrl -out "$T/owner.crl" >/dev/null 2>&1 || fail "gencrl"

start_vm() { # NAME TLS_DIR [run options...]
  local name=$1 dir=$2; shift 2
  CPORT=$(free_port)
  bg "$name" "$SEALVM" run --kernel "$GUEST/console.elf" --mem 64M --tls-dir "$dir" \
    --console "tls://127.0.0.1:$CPORT" --owner-ca "$OCA" "$@" \
    --control "$T/$name.sock" --state-dir "$T/$name.state"
  VM=$!
  wait_for "$T/$name.log" "owner's console on port" 10 || fail "console server did not start"
  URI=tls://127.0.0.1:$CPORT
}
screen() { timeout 20 "$SEALVM" console "$URI" --tls-dir "$1" --screen 2>&1; }

start_vm vm "$CERTS/hosta" --owner-crl "$T/owner.crl"
out=$(screen "$T/good") || fail "a good owner certificate was refused: $out"
echo "$out" | grep -q "sealvm console test guest" || fail "good owner saw no screen"

refused() { # DIR SERVER-LOG-WORDS
  local out
  out=$(screen "$1") && fail "$(basename "$1") attached: $out"
  echo "$out" | grep -q "sealvm console test guest" && fail "$(basename "$1") saw the screen"
  wait_for "$T/vm.log" "refused a client: .*$2" 5 || fail "server did not say '$2' for $(basename "$1")"
  echo "$(basename "$1") refused: $(grep -o "refused a client: .*$2.*" "$T/vm.log" | tail -n 1)"
}
note "the server refuses owner-CA certificates unfit for a console client"
refused "$T/serveronly" "lacks clientAuth"
refused "$T/noeku" "has no extended key usage"
refused "$T/nobc" "no basicConstraints CA:FALSE"
refused "$T/isca" "it is a CA certificate"
refused "$T/revoked" "revoked"
screen "$T/good" | grep -q "sealvm console test guest" || fail "the good owner was refused after the others"

note "the owner's client refuses a readable key file"
chmod 644 "$T/good/key.pem"
out=$(screen "$T/good") && fail "client used a world-readable key: $out"
echo "$out" | grep -q "key.pem" || fail "unclear refusal of the key file: $out"
chmod 600 "$T/good/key.pem"
kill $VM; wait $VM 2>/dev/null

note "the owner's client refuses a host certificate not made for a server"
start_vm co "$CERTS/clientonly"
out=$(screen "$T/good") && fail "client accepted a clientAuth-only host certificate: $out"
echo "$out" | grep -q "lacks serverAuth" || fail "unclear refusal: $out"
kill $VM; wait $VM 2>/dev/null

note "the owner's client refuses a revoked host certificate (crl.pem beside its ca.pem)"
start_vm rv "$CERTS/revoked"
cp "$CERTS/ca/crl.pem" "$T/good/crl.pem"
out=$(screen "$T/good") && fail "client accepted a revoked host: $out"
echo "$out" | grep -q "revoked" || fail "unclear refusal: $out"
rm "$T/good/crl.pem"
out=$(screen "$T/good") || fail "without the CRL the same host should be accepted: $out"
kill $VM; wait $VM 2>/dev/null

note "a console with --owner-crl that is not a revocation list does not start"
out=$("$SEALVM" run --kernel "$GUEST/console.elf" --mem 64M --tls-dir "$CERTS/hosta" \
  --console tls://127.0.0.1:1 --owner-ca "$OCA" --owner-crl "$OCA" --state-dir "$T/x.state" 2>&1) &&
  fail "a CA file was taken for a revocation list"
echo "$out" | grep -q "no usable PEM revocation list" || fail "unclear error: $out"
echo "console certificate checks passed"
