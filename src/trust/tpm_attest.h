/* Checking what a TPM signed, without a TPM: parses a marshalled TPMS_ATTEST (untrusted
 * input from a peer or a log; libtss2-mu does the unmarshalling, this file checks every
 * field that matters) and verifies the attestation key's signature with OpenSSL. */
#ifndef SEALVM_TRUST_TPM_ATTEST_H
#define SEALVM_TRUST_TPM_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trust/keys.h"
#include "util/err.h"

#define TPM_ATTEST_MAX 1024     /* bytes; a TPMS_ATTEST is a few hundred */

struct tpm_attest_info {
	uint8_t extra[64];          /* the qualifying data the TPM was given */
	size_t extra_len;
	uint64_t clock, firmware;
	uint32_t reset_count, restart_count;
	/* quotes */
	uint32_t pcr_mask;          /* PCRs of the SHA-256 bank covered (bit n = PCR n) */
	uint8_t pcr_digest[32];     /* SHA-256 over the quoted PCR values */
	/* NV certifications */
	uint64_t nv_value;          /* the counter (8 bytes, big-endian in the TPM) */
	uint32_t nv_index;
};

/* A quote: magic TPM_GENERATED, type ATTEST_QUOTE, exactly one bank (SHA-256) selected,
 * a 32-byte PCR digest, no trailing bytes. Errors say which field is wrong. */
int tpm_attest_parse_quote(const uint8_t *buf, size_t len, struct tpm_attest_info *out, struct err *e);
/* An NV certification of an 8-byte counter at offset 0. */
int tpm_attest_parse_nv(const uint8_t *buf, size_t len, struct tpm_attest_info *out, struct err *e);
/* 0 if sig (DER ECDSA) is ak's signature over SHA-256(buf), else -EBADMSG. */
int tpm_attest_verify(EVP_PKEY *ak, const uint8_t *buf, size_t len, const uint8_t *sig, size_t sig_len);

#endif
