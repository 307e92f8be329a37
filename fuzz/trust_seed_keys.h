/* Public keys of the host that made the seed corpora of the trust fuzzers
 * (fuzz/corpus/fuzz_{evidence,audit,table,policy}: a real swtpm quote, audit log and
 * signed files), so that mutated seeds get past the signature checks and reach the
 * later stages. Public keys only; the private halves were thrown away. */
#ifndef SEALVM_FUZZ_TRUST_SEED_KEYS_H
#define SEALVM_FUZZ_TRUST_SEED_KEYS_H

#include <string.h>

#include "trust/keys.h"

/* the TPM attestation key (ECDSA P-256) of seed host "hosta" */
#define SEED_AK_PEM                                                                                     \
	"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEG5jmENY66mwxJ2sIzhQ/UlO/thsi\n" \
	"IfEXlYJM57kjoLkSjQkMIX9zhCXRuAtNH5FDGMBgvgoSglnmEDiY9MPQSQ==\n-----END PUBLIC KEY-----\n"
/* its audit key (Ed25519) */
#define SEED_AUDIT_PEM \
	"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAUvrMv5kI2eYGEFCnr/ZBCSI4cuwIBoRqL/5HVNxAXrE=\n-----END PUBLIC KEY-----\n"
/* the administrator key (Ed25519) that signed the seed table and policy */
#define SEED_ADMIN_PEM \
	"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAeYv840QyuXhlV+/Dj6m5am6m5j3mKQHcfUsZG2ztxA8=\n-----END PUBLIC KEY-----\n"
/* the sealvm build the seed host measured */
#define SEED_EXE_SHA256 "bcada6b83a2e9a573a3579a02ffd50bade9c7e0863934349523bf6c361c044fc"

static inline EVP_PKEY *seed_key(const char *pem)
{
	EVP_PKEY *k = NULL;

	if (key_public_from_pem(pem, strlen(pem), &k, NULL) < 0)
		__builtin_trap();
	return k;
}

#endif
