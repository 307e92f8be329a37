/* Live migration: the source engine (pre-copy rounds, stop and copy, transactional
 * hand-over) and the destination (verify, load, wait for COMMIT). */
#ifndef SEALVM_MIGRATE_MIGRATE_H
#define SEALVM_MIGRATE_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "channel/channel.h"
#include "util/err.h"
#include "vmm/machine.h"

struct migrate_params {
	const char *uri;
	const char *tls_dir;
	uint32_t downtime_ms;      /* target for the stop-and-copy phase */
	uint32_t max_rounds;
	uint32_t timeout_ms;       /* bound on every wait for the peer */
	uint32_t outcome_wait_ms;  /* how long to seek the outcome after an unacknowledged COMMIT */
	uint32_t max_throttle;     /* auto-converge: most of the vCPU's time to take, percent */
	uint32_t channels;         /* parallel TLS connections for pages */
};

/* Live progress, readable while the migration runs. */
struct migrate_progress {
	uint32_t round;
	uint64_t remaining_pages;
	double rate_mbps;
	uint32_t throttle_pct;
	const char *phase;
};

enum migrate_result {
	MIGRATE_COMMITTED,         /* the destination runs the VM; this copy is stopped */
	MIGRATE_ABORTED,           /* failed before COMMIT; the VM runs here again */
	MIGRATE_UNCERTAIN,         /* COMMIT sent, outcome unknown: VM kept paused here */
};

struct migrate_report {
	enum migrate_result result;
	const char *transport;
	char cipher[64];
	uint64_t ram_bytes;
	uint64_t total_ns, downtime_ns, dest_resume_ns, dest_load_ns;
	uint64_t bytes_sent, bytes_received, payload_bytes;
	uint64_t data_pages, zero_pages, zero_markers;
	uint32_t rounds;
	uint64_t final_pages;      /* pages sent while paused */
	bool converged;            /* remaining set fitted the downtime target */
	uint32_t throttle_pct;     /* highest vCPU throttle auto-converge applied */
	uint32_t channels;
	double src_cpu_s, dest_cpu_s;
};

typedef void (*migrate_progress_fn)(void *opaque, const struct migrate_progress *p);

int migrate_source(struct machine *m, const struct migrate_params *p, struct migrate_report *rep,
		   migrate_progress_fn fn, void *opaque, struct err *e);

struct incoming_params {
	const char *uri;
	const char *tls_dir;
	int serial_fd;
	uint64_t max_ram;          /* refuse VMs larger than this (0: host's available memory) */
	uint32_t timeout_ms;
};

struct incoming {
	struct chan_listener *listener;
	uint8_t id[16];
	pthread_t query_thread;
	bool query_started;
	volatile int stop;
};

/* Waits for one VM and returns it in m, running. The listener stays open to answer
 * outcome queries (incoming_fini closes it). */
int migrate_incoming(const struct incoming_params *p, struct machine *m, struct incoming *in,
		     struct err *e);
void incoming_fini(struct incoming *in);

/* Thread CPU time in seconds. */
double thread_cpu_s(void);

#endif
