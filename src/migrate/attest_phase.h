/* The trust phase of a migration (protocol version 3, proto.h; DESIGN.md §3 phase 2):
 * on channel 0, between HELLO and HELLO_ACK, before any page and before the
 * destination reserves anything.
 *
 *   source                                          destination
 *   policy: may the control socket's uid move
 *   this VM from here to the host the destination's
 *   certificate names?  (before anything is sent)
 *   HELLO, ATTEST_REQ {"mode", "nonce", "labels"} -->
 *                                                   a sensitive VM over tcp://: refused
 *                                                   modes must match: refused otherwise
 *                          <-- ATTEST {"evidence": quote for nonce_s, "nonce": nonce_d}
 *   verify the destination (table, measurement,
 *   nonce bound to this TLS session, certificate name)
 *   ATTEST {"evidence": quote for nonce_d}        -->
 *                                                   verify the source the same way; policy:
 *                                                   may host:SOURCE move a VM with these
 *                                                   labels from SOURCE to here?
 *                          <-- HELLO_ACK (admission: accept, or refuse + reason)
 *
 * In open mode at both ends ATTEST_REQ carries only the labels (they travel with the
 * VM either way) and nothing is attested. A trusted host and an open-mode host refuse
 * each other, saying which runs in open mode. Nonces are bound to the TLS session
 * (attest_bind_chan); over tcp:// (--insecure) there is no session to bind to and no
 * certificate: the quote is then bound to the nonce alone, the peer is whoever the
 * evidence names, and VMs whose labels the policy marks sensitive are refused at both
 * ends. Every decision (attestation pass or fail, policy allow or deny) goes to the
 * audit log with the migration id. */
#ifndef SEALVM_MIGRATE_ATTEST_PHASE_H
#define SEALVM_MIGRATE_ATTEST_PHASE_H

#include <stdbool.h>
#include <stdint.h>

#include "channel/channel.h"
#include "migrate/pool.h"
#include "state/section.h"
#include "trust/attest.h"
#include "trust/host.h"
#include "trust/labels.h"
#include "trust/policy.h"
#include "util/err.h"

#define MIG_ATTEST_REQ_MAX 8192

/* The source's side: what it brings, and what it learns. */
struct mig_trust {
	struct trust_ctx *tc;          /* this process's trust; NULL: open mode, nothing recorded */
	struct labels labels;          /* the VM's labels */
	struct principal who;          /* who asked (the control socket's peer) */
	bool who_known;                /* false: the kernel did not say (refused in trusted mode) */
	/* results */
	bool attested;                 /* the destination passed attestation */
	char peer[HOST_NAME_MAX_];     /* the destination's name (certificate, or attested over tcp://) */
	uint64_t attest_ns;            /* ATTEST_REQ sent → our own evidence sent */
};

/* ATTEST_REQ, parsed (untrusted input). */
struct mig_attest_req {
	bool trusted;
	uint8_t nonce[ATTEST_NONCE_LEN];
	struct labels labels;
};

/* ATTEST, parsed (untrusted input): the evidence as text for attest_verify. */
struct mig_attest_msg {
	bool has_nonce;                /* the destination's challenge for the source */
	uint8_t nonce[ATTEST_NONCE_LEN];
	char *evidence;                /* malloc'd */
	size_t evidence_len;
};

int mig_attest_req_parse(const void *buf, size_t len, struct mig_attest_req *out, struct err *e);
int mig_attest_msg_parse(const void *buf, size_t len, struct mig_attest_msg *out, struct err *e);
void mig_attest_msg_free(struct mig_attest_msg *m);

/* Source, before connecting: a sensitive VM never goes over tcp://. */
int mig_trust_src_transport(struct mig_trust *t, const char *uri, struct err *e);
/* Source, channel 0 connected, nothing sent: the policy decision for this migration
 * (over tcp:// in trusted mode it waits for the attested name, in the exchange). */
int mig_trust_src_policy(struct mig_trust *t, struct chan *c, const uint8_t id[16], struct err *e);
/* Source, HELLO written on channel 0: its half of the trust phase (flushes). */
int mig_trust_src_exchange(struct mig_trust *t, struct chan *c, struct sec_writer *w, struct sec_reader *r,
			   const uint8_t id[16], struct err *e);

/* Destination, channel 0 after its HELLO: its half of the trust phase, within
 * timeout_ms. 0: the source may be admitted, with *labels the VM's labels; otherwise
 * why holds the reason to refuse with (already recorded). */
int mig_trust_dst_exchange(struct trust_ctx *tc, struct pool_conn *c, const uint8_t id[16], uint32_t timeout_ms,
			   struct labels *labels, char *why, size_t n);

/* One migration event in the audit log (best effort): event, migration id, our role
 * ("source" or "destination"), the peer and a reason (any may be NULL). */
void mig_audit(struct trust_ctx *tc, const char *event, const uint8_t id[16], const char *role, const char *peer,
	       const char *reason);

#endif
