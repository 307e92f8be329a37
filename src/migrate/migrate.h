/* Live migration: the source engine (pre-copy rounds, stop and copy, transactional
 * hand-over, outcome queries) and the destination (admit, receive, verify, load,
 * decide, run). The protocol is in proto.h; DESIGN.md §3 has the rules. */
#ifndef SEALVM_MIGRATE_MIGRATE_H
#define SEALVM_MIGRATE_MIGRATE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "channel/channel.h"
#include "migrate/proto.h"
#include "trust/labels.h"
#include "util/err.h"
#include "util/statedir.h"
#include "vmm/machine.h"

struct mig_trust;
struct trust_ctx;

struct migrate_params {
	const char *uri;
	const char *tls_dir;
	uint32_t downtime_ms;      /* target for the stop-and-copy phase */
	uint32_t max_rounds;
	uint32_t timeout_ms;       /* bound on every single wait for the peer */
	uint32_t hello_timeout_ms; /* connect → every channel admitted, overall */
	uint32_t ready_timeout_ms; /* vCPUs paused → READY, overall (then abort and resume) */
	uint32_t outcome_wait_ms;  /* how long to ask for the outcome after an unacknowledged COMMIT */
	uint32_t max_throttle;     /* auto-converge: most of the vCPU's time to take, percent */
	uint32_t channels;         /* parallel TLS connections for pages */
	bool insecure;             /* tcp:// asked for explicitly */
	struct mig_trust *trust;   /* labels, principal, attestation (attest_phase.h); NULL: open mode */
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
	MIGRATE_ABORTED,           /* failed before COMMIT (or the destination proved it never ran): runs here */
	MIGRATE_UNCERTAIN,         /* COMMIT sent, outcome unknown: VM kept paused here */
};

/* What an outcome query needs; filled in once the destination accepted. */
struct migrate_query {
	bool valid;
	char uri[300];
	char tls_dir[PATH_MAX];
	uint8_t id[16];
	uint8_t host_id[16];       /* the destination's state directory, from HELLO_ACK */
	uint8_t dest_fp[32];       /* SHA-256 of the destination's certificate */
};

/* Shared between a running migration and the control commands that may stop it. */
struct migrate_ctl {
	pthread_mutex_t lock;
	bool running;
	bool committing;           /* COMMIT is being or was sent: no cancel any more */
	bool interrupted;
	char why[256];
	struct chan *lanes[MIG_MAX_CHANNELS];
	struct migrate_query q;
};

void migrate_ctl_init(struct migrate_ctl *c);
void migrate_ctl_fini(struct migrate_ctl *c);
/* Stops a migration before COMMIT (the VM then runs on at the source);
 * -EBUSY once COMMIT is on its way, -ESRCH when none runs. */
int migrate_cancel(struct migrate_ctl *c, const char *why, struct err *e);

struct migrate_report {
	enum migrate_result result;
	char id[33];
	const char *transport;
	char cipher[64];
	uint64_t ram_bytes;
	uint64_t total_ns, downtime_ns, dest_resume_ns, dest_load_ns;
	uint64_t admit_ns;         /* connect → every channel admitted (trust phase included) */
	uint64_t bytes_sent, bytes_received, payload_bytes;
	uint64_t data_pages, zero_pages, zero_markers;
	uint32_t rounds;
	uint64_t final_pages;      /* pages sent while paused */
	bool converged;            /* remaining set fitted the downtime target */
	uint32_t throttle_pct;     /* highest vCPU throttle auto-converge applied */
	uint32_t channels;
	bool paused_vm;            /* the VM was paused by its operator and stays so */
	double src_cpu_s, dest_cpu_s;
};

typedef void (*migrate_progress_fn)(void *opaque, const struct migrate_progress *p);

/* Migrates m (running, or paused by its operator only). On MIGRATE_COMMITTED the
 * machine is stopped (STOP_MIGRATED); on MIGRATE_UNCERTAIN it stays paused
 * (PAUSE_MIGRATION held) and ctl->q says whom to ask. */
int migrate_source(struct machine *m, const struct migrate_params *p, struct migrate_ctl *ctl,
		   struct migrate_report *rep, migrate_progress_fn fn, void *opaque, struct err *e);

/* One outcome query over a new mutually authenticated connection to the same
 * destination certificate: 0 with *out from an answer that names this migration
 * and this destination's host id, or an error (nothing that can be trusted). */
int migrate_query_outcome(const struct migrate_query *q, int timeout_ms, enum mig_outcome *out,
			  char *reason, size_t n, struct err *e);

/* ---- destination ---- */

struct incoming_params {
	const char *uri;
	const char *tls_dir;
	int serial_fd;
	uint64_t max_ram;           /* refuse VMs larger than this (0: host's available memory) */
	uint32_t timeout_ms;        /* bound on every single wait for the source */
	uint32_t hello_timeout_ms;  /* a connection's handshake and HELLO */
	uint32_t commit_timeout_ms; /* READY → COMMIT */
	uint32_t linger_ms;         /* after a failure past READY: keep answering outcome queries */
	const char *allow_from;     /* comma-separated certificate DNS names admitted as sources (NULL: any) */
	bool insecure;              /* tcp:// asked for explicitly */
	const struct state_dir *sd;
	struct trust_ctx *trust;    /* attestation, policy and audit (NULL: open mode, nothing recorded) */
	struct ram_reserve *reserve; /* memory made ready ahead (--reserve), or NULL */
	bool reserve_grow;          /* admit a VM larger than the reservation (the rest faults in) */
	bool keep_orphans;          /* source silent after READY: keep the copy paused (else discard) */
	/* Before READY, with the VM loaded but not running: the part above that owns
	 * extension state (the owner's console) takes it, or refuses the VM; addr gets
	 * where that console listens ("" for none), sent to the source for its clients.
	 * discard gives the machine back if the VM is then thrown away. */
	int (*prepare)(void *opaque, struct machine *m, char *addr, size_t len, struct err *e);
	void (*discard)(void *opaque, struct machine *m);
	void *hook_opaque;
};

struct incoming;

struct incoming_progress {
	const char *phase;          /* waiting, receiving, ready, committed, failed, orphaned */
	char source[64];
	uint32_t channels;
	uint64_t pages_received;
	uint64_t bytes_received;
	uint64_t connections, dropped;
	uint64_t reserved, reserve_ready; /* bytes reserved ahead and populated so far */
};

/* Listens and starts admitting connections (queries are answered at once). */
int incoming_start(const struct incoming_params *p, struct incoming **out, struct err *e);
/* Waits for one VM and returns it in m, committed and running (or paused by its
 * operator). Any failure discards the incoming copy, which never ran — except
 * -EOWNERDEAD: the source went silent after READY (it may have died with its
 * copy), the migration is settled as aborted, and m holds the complete copy,
 * started but paused, until the operator runs (incoming_orphan_run) or stops it,
 * or the source asks (it is alive: the copy is then stopped here). */
int incoming_wait_vm(struct incoming *in, struct machine *m, struct err *e);
/* Runs an orphaned copy (operator's resume --force, by who): queries then hear it ran here. */
int incoming_orphan_run(struct incoming *in, const char *who, struct err *e);
bool incoming_orphaned(struct incoming *in);
void incoming_get_progress(struct incoming *in, struct incoming_progress *p);
/* The labels the incoming VM came with (valid once incoming_wait_vm succeeded). */
void incoming_labels(struct incoming *in, struct labels *out);
/* Stops waiting or receiving (before the hand-over); returns false if the VM is committed already. */
bool incoming_cancel(struct incoming *in, const char *why);
/* The committed VM stopped here: queries now answer GONE with why. */
void incoming_vm_ended(struct incoming *in, const char *why);
/* Lingers if a source may still need an answer, then stops listening. */
void incoming_stop(struct incoming *in);

/* Thread CPU time in seconds. */
double thread_cpu_s(void);

#endif
