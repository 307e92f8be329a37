/* The Attest phase (DESIGN.md §3 phase 2): a host proves what software it runs.
 *
 *   verifier                                        attester
 *   nonce = 32 random bytes          ── nonce ──>
 *   bound = attest_bind(nonce, EKM)                 bound = attest_bind(nonce, EKM)
 *                                    <── evidence ── attest_make_evidence(host, bound)
 *   attest_verify(evidence, bound, table, peer)
 *
 * EKM is the TLS 1.3 exporter secret of the session both ends share (RFC 8446 §7.5,
 * chan_export_keying_material with label "EXPORTER-sealvm-attest" and the nonce as
 * context), so a quote made for another session (relayed by a man in the middle, or
 * recorded earlier) does not verify: bound = SHA-256("sealvm-attest-v1" || nonce || EKM)
 * is the qualifying data of the TPM quote.
 *
 * Evidence (JSON; untrusted input to the verifier, at most ATTEST_EVIDENCE_MAX bytes):
 *   {"version": 1, "host": "hostb", "pcr": 15,
 *    "quote": "<base64 TPMS_ATTEST>", "sig": "<base64 DER ECDSA signature by the AK>",
 *    "events": [the event log, see eventlog.h]}
 *
 * The verifier refuses, naming the check that failed (attest_verdict.check):
 *   format       the evidence does not parse
 *   host         the host is not the TLS peer, not in the table, revoked, expired, below
 *                the table's minimum trust level, or the table itself expired
 *   signature    the quote is not signed by the host's attestation key in the table
 *   nonce        the quote answers another challenge (replayed, stale, or from another
 *                TLS session)
 *   pcr          the quote is not of sealvm's PCR, or the event log does not replay to it
 *   measurement  an event is not allowed: a sealvm executable not in the table, a trust
 *                configuration signed by another administrator, a stale table or
 *                policy, an unknown CA, or a host running without a table (open mode)
 *   guard        everything else holds, but the host's integrity guard has marked it
 *                untrusted (a "guard-alarm" event): no VM may be sent to it. A verifier
 *                receiving VMs from such a host (an evacuation) may accept it with
 *                attest_expect.accept_guard_alarm; the verdict then says guard_alarm. */
#ifndef SEALVM_TRUST_ATTEST_H
#define SEALVM_TRUST_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trust/table.h"
#include "util/err.h"

#define ATTEST_NONCE_LEN    32
#define ATTEST_BOUND_LEN    32
#define ATTEST_EVIDENCE_MAX (4u << 20)
#define ATTEST_EKM_LABEL    "EXPORTER-sealvm-attest"

struct chan;
struct x509_st;

/* Fresh random nonce (OpenSSL RAND_bytes). */
int attest_nonce(uint8_t nonce[ATTEST_NONCE_LEN], struct err *e);
/* bound = SHA-256("sealvm-attest-v1" || nonce || ekm). */
void attest_bind(const uint8_t nonce[ATTEST_NONCE_LEN], const uint8_t *ekm, size_t ekm_len,
		 uint8_t bound[ATTEST_BOUND_LEN]);
/* The same, with the EKM exported from this TLS channel (both ends get the same). */
int attest_bind_chan(struct chan *c, const uint8_t nonce[ATTEST_NONCE_LEN], uint8_t bound[ATTEST_BOUND_LEN],
		     struct err *e);

/* Quotes TPM_PCR with bound as qualifying data, under the event log's shared lock (no
 * other process extends the PCR between reading the log and quoting). *blob is
 * malloc'd JSON text. */
int attest_make_evidence(const char *state_dir, const char *tpm_spec, const char *host_name,
			 const uint8_t bound[ATTEST_BOUND_LEN], char **blob, size_t *len, struct err *e);

struct attest_expect {
	const char *peer_name;      /* the TLS peer's certificate name; required unless unbound */
	bool unbound;               /* no TLS session (tcp://, INSECURE): the quote is bound to the nonce
				     * alone and the evidence's own host name is taken as the peer, so a
				     * live relay is not detected */
	uint64_t policy_serial;     /* our policy's serial: older ones are stale (0: no check) */
	int64_t now;                /* Unix time for expiry checks (0: time(NULL)) */
	bool accept_guard_alarm;    /* verifying a source that evacuates its VMs: a guard alarm
				     * does not refuse it (verdict.guard_alarm says so) */
};

struct attest_verdict {
	bool ok;
	char check[16];             /* "ok" or the check that failed (see above) */
	char reason[512];           /* one sentence naming the host and the problem */
	char host[HOST_NAME_MAX_];
	int trust;                  /* the host's trust level (when the host was found) */
	size_t events;              /* event log length */
	bool guard_alarm;           /* the host's integrity guard marked it untrusted */
	char guard_reason[256];     /* what the guard found (from the latest alarm event) */
};

/* Never fails: every problem is a verdict with ok = false. */
void attest_verify(const void *blob, size_t len, const uint8_t bound[ATTEST_BOUND_LEN],
		   const struct trust_table *table, const struct attest_expect *x, struct attest_verdict *v);
/* The certificate name attest_expect.peer_name must hold (subject CN), or -EINVAL. */
int attest_cert_name(struct x509_st *cert, char *out, size_t n);

#endif
