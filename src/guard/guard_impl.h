/* The guard's state, shared by its measuring loop (guard.c) and its control commands
 * (guard_ctl.c). The loop measures without the lock and publishes under it. */
#ifndef SEALVM_GUARD_GUARD_IMPL_H
#define SEALVM_GUARD_GUARD_IMPL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include "guard/guard.h"
#include "guard/hostmeas.h"
#include "guard/mark.h"
#include "guard/procmeas.h"
#include "util/err.h"

struct trust_ctx;
struct ctl_server;

struct watched {
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];   /* "" for the guard itself */
	uint64_t sock_dev, sock_ino;
	bool self, socket_gone, seen, announced;
	struct vmm_proc *p;
	pid_t pid;
	struct proc_result last;
	uint64_t measured, failures, repeats, sweeps;
	char fail_check[16], fail_reason[600];    /* the failure last recorded (repeats are counted) */
	int64_t first_ms;
	struct watched *next;
};

struct guard {
	struct guard_opts o;
	char control[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct trust_ctx *tc;
	struct hostmeas *hm;
	struct module_set mods;
	struct procmeas_ref ref;
	uint8_t *vdso;
	struct ctl_server *ctl;
	int wakefd;
	atomic_bool stop;
	pid_t alarm_pids[8];

	pthread_mutex_t lock;           /* everything below */
	struct watched *w;
	struct host_result host;
	char host_fail_check[16], host_fail_reason[600];
	bool untrusted, untrusted_restored;
	struct guard_mark mark;
	int64_t untrusted_at_ms;        /* CLOCK_REALTIME */
	uint64_t untrusted_round;
	int64_t started_ms;
	uint64_t rounds, overruns, failures;
	uint64_t last_round_ns, max_round_ns, sum_round_ns, cpu_ns;
	uint64_t first_round_ns, first_cpu_ns;  /* round 0: opening and reading every file */
	int64_t last_round_start_ms;
	int64_t cur_round_start_ms, prev_round_start_ms;    /* the round running, the one before */
	int64_t untrusted_round_start_ms, untrusted_prev_round_start_ms;
	uint64_t rehashed_bytes, quotes, nmodules;
	/* since the last audit summary */
	uint64_t sum_rounds, sum_measurements, sum_failures, sum_max_ns, sum_ns;
	int64_t sum_since_ms;
	json_t *evacuations;            /* (phase 2) */
	char note[300];                 /* the latest thing worth saying that is not a failure */
};

int64_t guard_realtime_ms(void);
/* ctl_handler_fn of the guard's control socket. */
struct ctl_peer;
json_t *guard_handle(void *opaque, const struct ctl_peer *peer, const char *cmd, json_t *req, struct err *e);

#endif
