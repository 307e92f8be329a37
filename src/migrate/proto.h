/* Live-migration protocol records (payloads of state sections, see state/section.h).
 *
 * source                          destination
 *   HELLO {version, RAM, id}  -->
 *                             <-- HELLO_ACK {accept | refuse + reason}
 *   ROUND, PAGES ... (pre-copy rounds; vCPUs running)
 *   ROUND (empty, every channel), SYNC -->
 *                             <-- SYNC_ACK (all sent so far is applied)
 *   PAGES, SERIAL, VCPU, VM, END  (vCPUs paused: stop and copy)
 *                             <-- READY (verified and loaded, not running) | ABORT
 *   COMMIT                    -->
 *                             <-- COMMIT_ACK (running)
 * With N channels, channels 1..N-1 open after HELLO_ACK, each with HELLO flag
 * JOIN (same id, its index) and the same client certificate; every round starts
 * with a ROUND record on every channel, and the destination applies round k+1 on
 * any channel only once every channel has finished round k. Each channel ends
 * with its own END; the state goes on channel 0.
 * A later connection with HELLO flag QUERY asks what became of migration `id`. */
#ifndef SEALVM_MIGRATE_PROTO_H
#define SEALVM_MIGRATE_PROTO_H

#include <stdint.h>

#define MIG_PROTO_VERSION 1
#define MIG_HELLO_QUERY 1u
#define MIG_HELLO_JOIN 2u
#define MIG_MAX_CHANNELS 8

enum mig_status {
	MIG_ACCEPT = 0,
	MIG_REFUSE = 1,
	MIG_OUTCOME_COMMITTED = 2,  /* answer to a QUERY: the VM runs here */
	MIG_OUTCOME_ABORTED = 3,    /* answer to a QUERY: discarded here, never ran */
	MIG_OUTCOME_UNKNOWN = 4,    /* answer to a QUERY: no such migration here */
};

struct mig_hello {
	uint32_t proto;
	uint32_t flags;
	uint64_t ram_size;
	uint32_t nr_vcpus;
	uint32_t channels;         /* HELLO: channels to use; JOIN: this channel's index */
	uint8_t id[16];
};

struct mig_hello_ack {
	uint32_t proto;
	uint32_t status;
	uint32_t channels;         /* channels the destination accepts */
	uint32_t pad;
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

struct mig_commit {
	uint8_t id[16];
};

struct mig_commit_ack {
	uint64_t resume_ns;        /* destination: COMMIT received → vCPU running */
	uint64_t cpu_ns;           /* destination's CPU time spent receiving */
	uint64_t bytes_received;
};

struct mig_abort {
	char reason[256];
};

#endif
