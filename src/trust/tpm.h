/* The host's TPM 2.0, reached through libtss2 (ESYS) and the swtpm TCTI.
 *
 * On this project's machines the TPM is a software TPM (Debian's swtpm in socket mode),
 * named "swtpm:host=ADDR,port=PORT" (PORT is the TPM command port; swtpm's control
 * port is PORT+1). swtpm serves one client at a time, and several sealvm processes
 * share a host's TPM (run, memserver, guard), so a connection is held only for the
 * duration of one operation: connect, do it, disconnect.
 *
 * Objects sealvm keeps in the TPM (created by `sealvm host init`):
 *   TPM_AK_HANDLE       the attestation key: a restricted ECDSA P-256 signing key
 *                       created as a primary key of the owner hierarchy and made
 *                       persistent; it signs only TPM-generated structures (quotes,
 *                       NV certifications), never arbitrary data
 *   TPM_COUNTER_INDEX   an NV counter (monotonic, survives restarts) certified into the
 *                       audit log's signed heads
 *   TPM_PCR             the PCR (SHA-256 bank) sealvm extends with its measurements
 *
 * A software TPM is not a hardware root of trust: root on the host can read swtpm's
 * state files (and so the AK's private key), roll them back, or replace swtpm. */
#ifndef SEALVM_TRUST_TPM_H
#define SEALVM_TRUST_TPM_H

#include <stddef.h>
#include <stdint.h>

#include "trust/keys.h"
#include "util/err.h"

#define TPM_AK_HANDLE     0x81000051u
#define TPM_COUNTER_INDEX 0x01500051u
#define TPM_PCR           15
/* TPMA_NV of the counter: owner writes, owner or index auth reads, type counter */
#define TPM_COUNTER_ATTRIBUTES (0x00000002u | 0x00020000u | 0x00040000u | 0x02000000u | (0x1u << 4))

struct tpm;

/* Checks a spec ("swtpm:host=H,port=P"; host defaults to 127.0.0.1, port to 2321). */
int tpm_spec_check(const char *spec, struct err *e);
/* Connects (and sends TPM2_Startup if the TPM needs it). Every TPM call below fails
 * after 10 s without an answer. */
int tpm_connect(const char *spec, struct tpm **out, struct err *e);
void tpm_disconnect(struct tpm *t);

/* Creates the attestation key and makes it persistent at TPM_AK_HANDLE, replacing
 * whatever was there. *ak gets its public key. A primary key is derived from the owner
 * seed and the template, so the same TPM always yields the same key. */
int tpm_create_ak(struct tpm *t, EVP_PKEY **ak, struct err *e);
/* Public key of the persistent attestation key (-ENOENT if there is none). */
int tpm_ak_public(struct tpm *t, EVP_PKEY **ak, struct err *e);

/* Defines the NV counter at TPM_COUNTER_INDEX unless it exists (an existing one is kept,
 * so the audit log's heads continue its sequence) and increments it once so it can be
 * read. A TPM starts a new counter at the highest value any of its counters had, so
 * even deleting and recreating it never rolls it back. */
int tpm_counter_define(struct tpm *t, struct err *e);
int tpm_counter_increment(struct tpm *t, uint64_t *value, struct err *e);
int tpm_counter_read(struct tpm *t, uint64_t *value, struct err *e);

int tpm_pcr_extend(struct tpm *t, int pcr, const uint8_t digest[32], struct err *e);
int tpm_pcr_read(struct tpm *t, int pcr, uint8_t value[32], struct err *e);

/* Something the attestation key signed: a marshalled TPMS_ATTEST and its ECDSA
 * signature over SHA-256(attest), converted to DER. */
struct tpm_signed {
	uint8_t *attest, *sig;
	size_t attest_len, sig_len;
};
void tpm_signed_free(struct tpm_signed *s);

/* TPM2_Quote of the SHA-256 bank's pcr with qualifying data qual (at most 64 bytes). */
int tpm_quote(struct tpm *t, int pcr, const uint8_t *qual, size_t qual_len, struct tpm_signed *out,
	      struct err *e);
/* TPM2_NV_Certify of the counter (8 bytes) with qualifying data qual. */
int tpm_counter_certify(struct tpm *t, const uint8_t *qual, size_t qual_len, struct tpm_signed *out,
			struct err *e);

#endif
