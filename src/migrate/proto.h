/* Live-migration protocol records, version 3 (payloads of state sections, see
 * state/section.h). The states and messages are named as in model/handover.pml.
 *
 * source                                   destination
 *   connection 0 (mutual TLS)            --> (admitted concurrently with others)
 *   -- source: policy (who may move this VM from here to the certificate's host) --
 *   HELLO {MIGRATE, id, shape, channels} -->
 *   ATTEST_REQ {mode, nonce_s, labels}   -->  (the trust phase, attest_phase.h)
 *                                            open mode at both ends: nothing more
 *                                        <-- ATTEST {evidence for nonce_s, nonce_d}
 *   -- source verifies the destination --
 *   ATTEST {evidence for nonce_d}        -->
 *                                            verifies the source, asks its policy
 *                                            (source host, VM labels), then admits
 *                                        <-- HELLO_ACK {accept | refuse + reason,
 *                                                       nonce, host id}
 *   connections 1..N-1: HELLO {JOIN, id, index} --> <-- HELLO_ACK {nonce}
 *   ROUND, PAGES ... (pre-copy rounds; vCPUs running)
 *   ROUND (empty, every channel), SYNC   -->
 *                                        <-- SYNC_ACK (all sent so far is applied)
 *   -- source pauses; READY must come within --ready-timeout-ms --
 *   PAGES, SERIAL, VCPU, VM, END (every channel; END is a MAC keyed with that
 *   TLS session's exporter keying material over id, nonce, lane and transcript)
 *                                        <-- READY (verified, loaded, vCPUs created
 *                                                   and parked; COMMITTED prepared)
 *                                        |   ABORT {reason}
 *   COMMIT {id, flags}                   -->
 *                                            decide COMMITTED durably (outcome.h),
 *                                            then run the VM
 *                                        <-- COMMIT_ACK
 *
 * After COMMIT, a source without COMMIT_ACK asks on a new mutually authenticated
 * connection to the same destination certificate:
 *   HELLO {QUERY, id}                    -->
 *                                        <-- OUTCOME {id, host id, outcome}
 * The destination answers from its durable decision; if there is none yet, it
 * first decides ABORTED (a fence: a COMMIT arriving later is refused), so the
 * answer "never ran" is final. Only OUTCOME_ABORTED with the right id and host id
 * lets the source resume; anything else leaves its VM paused (UNCERTAIN). */
#ifndef SEALVM_MIGRATE_PROTO_H
#define SEALVM_MIGRATE_PROTO_H

#include <stdint.h>

/* 3: the trust phase (ATTEST_REQ, ATTEST) between HELLO and HELLO_ACK */
#define MIG_PROTO_VERSION 3
#define MIG_MAX_CHANNELS 8
#define MIG_NONCE_LEN 32

enum mig_hello_kind {
	MIG_KIND_MIGRATE = 0,      /* a new migration; this connection is channel 0 */
	MIG_KIND_QUERY = 1,        /* what became of migration id? */
	MIG_KIND_JOIN = 2,         /* extra channel `channels` of migration id */
};

enum mig_status {
	MIG_ACCEPT = 0,
	MIG_REFUSE = 1,
};

#define MIG_HELLO_PAUSED 1u       /* the VM is paused by its operator and stays paused */

struct mig_hello {
	uint32_t proto;
	uint32_t kind;             /* enum mig_hello_kind */
	uint64_t ram_size;
	uint32_t nr_vcpus;
	uint32_t channels;         /* MIGRATE: channels to use; JOIN: this channel's index */
	uint8_t id[16];
	uint64_t populated_pages;  /* MIGRATE: pages the source will send at most once each in round 0 */
	uint32_t flags;
	uint32_t pad;
};

struct mig_hello_ack {
	uint32_t proto;
	uint32_t status;           /* enum mig_status */
	uint32_t channels;         /* channels the destination accepts */
	uint32_t pad;
	uint8_t nonce[MIG_NONCE_LEN];  /* fresh for this connection: END is bound to it */
	uint8_t host_id[16];       /* the destination's state directory */
	char reason[200];
};

struct mig_round {
	uint32_t round;
	uint32_t pad;
	uint64_t pages;
};

struct mig_sync {
	uint64_t pages;            /* page entries sent so far, all channels */
};

struct mig_ready {
	uint64_t pages_received;
	uint64_t load_ns;          /* destination: END received → state loaded */
};

#define MIG_COMMIT_PAUSED 1u     /* keep the VM paused (by its operator) after the hand-over */

struct mig_commit {
	uint8_t id[16];
	uint32_t flags;
	uint32_t pad;
};

struct mig_commit_ack {
	uint64_t resume_ns;        /* destination: COMMIT received → vCPU running */
	uint64_t cpu_ns;           /* destination's CPU time spent receiving */
	uint64_t bytes_received;
};

struct mig_abort {
	char reason[256];
};

enum mig_outcome {
	MIG_OUTCOME_RUNNING = 1,   /* committed; the VM runs (or is paused) here now */
	MIG_OUTCOME_ABORTED = 2,   /* it never ran here and never will (decided, durable) */
	MIG_OUTCOME_GONE = 3,      /* committed, ran here, and has since stopped or been lost */
	MIG_OUTCOME_REFUSED = 4,   /* the question was refused (reason says why) */
};

struct mig_outcome_rec {
	uint32_t proto;
	uint32_t outcome;          /* enum mig_outcome */
	uint8_t id[16];
	uint8_t host_id[16];
	char reason[200];
};

/* TLS exporter label for the END MAC key (RFC 8446 §7.5). */
#define MIG_EXPORTER_LABEL "EXPORTER-sealvm-migration-end"

#endif
