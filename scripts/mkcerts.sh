#!/usr/bin/env bash
# Creates a test PKI for sealvm's TLS channels with the openssl command line.
#
# Usage: scripts/mkcerts.sh DIR
#
#   DIR/ca/{ca.pem,key.pem}          the cluster CA
#   DIR/hosta/{ca.pem,cert.pem,key.pem}   CN=hosta, SAN DNS:hosta, DNS:localhost, IP:127.0.0.1, DNS:<hostname>, IP:10.77.0.1
#   DIR/hostb/...                          CN=hostb, same SANs but DNS:hostb, IP:10.77.0.2
#   DIR/hostc/...                          CN=hostc, DNS:hostc, a third good host (allow-list tests)
#   DIR/badca/...       host signed by another CA; its ca.pem is that other CA (DIR/otherca/)
#   DIR/wrongname/...   right CA, SAN only DNS:wrong.example, IP:127.0.0.9
#   DIR/expired/...     right CA, validity entirely in the past (2020)
#   DIR/cahost/...      right CA and names, but a CA certificate (CA:TRUE) used as a host's
#   DIR/serveronly/...  right CA and names, extended key usage serverAuth only (no source role)
#   DIR/clientonly/...  right CA and names, extended key usage clientAuth only (no destination role)
#   DIR/noeku/...       right CA and names, no extended key usage at all
#   DIR/revoked/...     right CA and names, revoked: DIR/ca/crl.pem lists it
#   DIR/ownerca/{ca.pem,key.pem}     a VM owner's CA (the console's trust root, --owner-ca)
#   DIR/owner/...       the owner's console client: cert.pem from the owner CA; its ca.pem is
#                       the cluster CA (what the owner checks the host's certificate against)
#   DIR/operator/...    an operator's certificate from the cluster CA (must not reach a console)
#
# Keys are EC P-256. Idempotent: does nothing if DIR already holds a complete, valid set.
# Quiet on success; on failure prints the openssl output.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
command -v openssl >/dev/null || { echo "mkcerts: openssl not found (apt-get install openssl)" >&2; exit 1; }

hosts=(hosta hostb hostc badca wrongname expired cahost serveronly clientonly noeku revoked owner operator)

complete() {
	local h
	[ -s "$dir/ca/ca.pem" ] && [ -s "$dir/ca/key.pem" ] && [ -s "$dir/ca/crl.pem" ] || return 1
	for h in "${hosts[@]}"; do
		[ -s "$dir/$h/ca.pem" ] && [ -s "$dir/$h/cert.pem" ] && [ -s "$dir/$h/key.pem" ] || return 1
	done
	openssl verify -CAfile "$dir/ca/ca.pem" "$dir/hosta/cert.pem" "$dir/hostb/cert.pem" >/dev/null 2>&1 || return 1
	openssl x509 -in "$dir/hosta/cert.pem" -noout -checkend 86400 >/dev/null 2>&1 || return 1
}
complete && exit 0

mkdir -p "$dir"
work=$(mktemp -d "$dir/.mkcerts.XXXXXX")
log=$work/log
trap 'rm -rf "$work"' EXIT
umask 077

run() {
	if ! "$@" >>"$log" 2>&1; then
		echo "mkcerts: failed: $*" >&2
		cat "$log" >&2
		exit 1
	fi
}

# Our own configuration, so the system openssl.cnf does not matter.
cat >"$work/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = unused
[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ v3_subca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign, digitalSignature
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = $ENV::SAN
[ server_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectAltName         = $ENV::SAN
[ client_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectAltName         = $ENV::SAN
[ noeku_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
subjectAltName         = $ENV::SAN
[ ca ]
default_ca = sealvm_ca
[ sealvm_ca ]
database        = $ENV::CADB/index.txt
serial          = $ENV::CADB/serial
new_certs_dir   = $ENV::CADB
default_md      = sha256
policy          = any_policy
unique_subject  = no
copy_extensions = none
crlnumber       = $ENV::CADB/crlnumber
default_crl_days = 3650
email_in_dn     = no
[ any_policy ]
commonName = supplied
[ host_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = $ENV::SAN
EOF
export OPENSSL_CONF=$work/openssl.cnf
export SAN=DNS:unused

# mkca NAME CN: self-signed CA in $work/NAME/{ca.pem,key.pem} with a signing database.
mkca() {
	local d=$work/$1
	mkdir -p "$d/db"
	: >"$d/db/index.txt"
	openssl rand -hex 16 >"$d/db/serial"
	echo 01 >"$d/db/crlnumber"
	run openssl req -x509 -new -config "$OPENSSL_CONF" -extensions v3_ca \
		-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/key.pem" -out "$d/ca.pem" -days 3650 -subj "/CN=$2" -sha256
}

# mkhost NAME CA CN SAN [ca-options...]: key + certificate signed by CA in $work/NAME.
# Options may name another extension section (-extensions X) than host_ext.
mkhost() {
	local name=$1 ca=$2 cn=$3 san=$4 ext=host_ext
	shift 4
	if [ "${1:-}" = -extensions ]; then ext=$2; shift 2; fi
	local d=$work/$name
	mkdir -p "$d"
	run openssl req -new -config "$OPENSSL_CONF" \
		-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/key.pem" -out "$d/req.csr" -subj "/CN=$cn"
	CADB=$work/$ca/db SAN=$san run openssl ca -batch -notext -config "$OPENSSL_CONF" \
		-cert "$work/$ca/ca.pem" -keyfile "$work/$ca/key.pem" \
		-extensions "$ext" -in "$d/req.csr" -out "$d/cert.pem" "$@"
	cp "$work/$ca/ca.pem" "$d/ca.pem"
	rm -f "$d/req.csr"
}

export CADB=$work/ca/db
mkca ca "sealvm cluster CA"
mkca otherca "untrusted other CA"
mkca ownerca "VM owner CA"

hn=$(hostname 2>/dev/null || true)
extra=
case "$hn" in
	"" | localhost | *[!A-Za-z0-9.-]*) ;;
	*) extra=", DNS:$hn" ;;
esac
base="DNS:localhost, IP:127.0.0.1$extra"

mkhost hosta ca hosta "DNS:hosta, $base, IP:10.77.0.1" -days 825
mkhost hostb ca hostb "DNS:hostb, $base, IP:10.77.0.2" -days 825
mkhost hostc ca hostc "DNS:hostc, $base, IP:10.77.0.3" -days 825
mkhost badca otherca badca "$base" -days 825
mkhost wrongname ca wrongname "DNS:wrong.example, IP:127.0.0.9" -days 825
mkhost expired ca expired "$base" -startdate 20200101000000Z -enddate 20200201000000Z
mkhost cahost ca cahost "DNS:cahost, $base" -extensions v3_subca -days 825
mkhost serveronly ca serveronly "DNS:serveronly, $base" -extensions server_ext -days 825
mkhost clientonly ca clientonly "DNS:clientonly, $base" -extensions client_ext -days 825
mkhost noeku ca noeku "DNS:noeku, $base" -extensions noeku_ext -days 825
mkhost revoked ca revoked "DNS:revoked, $base" -days 825
CADB=$work/ca/db run openssl ca -batch -config "$OPENSSL_CONF" -cert "$work/ca/ca.pem" \
	-keyfile "$work/ca/key.pem" -revoke "$work/revoked/cert.pem"
CADB=$work/ca/db run openssl ca -batch -config "$OPENSSL_CONF" -cert "$work/ca/ca.pem" \
	-keyfile "$work/ca/key.pem" -gencrl -out "$work/ca/crl.pem"

mkhost owner ownerca owner "DNS:owner" -days 825
cp "$work/ca/ca.pem" "$work/owner/ca.pem"
mkhost operator ca operator "DNS:operator" -days 825

# Install: CA files first, hosts after, hosta last (its presence marks a complete set).
rm -rf "$dir/hosta"
for n in ca otherca ownerca hostb hostc badca wrongname expired cahost serveronly clientonly noeku revoked owner operator hosta; do
	rm -rf "${dir:?}/$n"
	mkdir -p "$dir/$n"
	cp "$work/$n/ca.pem" "$work/$n/key.pem" "$dir/$n/"
	[ -f "$work/$n/cert.pem" ] && cp "$work/$n/cert.pem" "$dir/$n/"
done
cp "$work/ca/crl.pem" "$dir/ca/crl.pem"
chmod 644 "$dir"/*/ca.pem "$dir"/*/cert.pem "$dir/ca/crl.pem" 2>/dev/null || true
chmod 600 "$dir"/*/key.pem
complete || { echo "mkcerts: generated set does not verify" >&2; exit 1; }
