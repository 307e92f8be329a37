/* The integrity guard (issue 13): one per host, a process of its own next to the VMM
 * processes it watches. Every interval it
 *
 *  1. finds the VMMs: the control sockets in --vms; each socket's listener is the VMM
 *     process (SO_PEERCRED gives its pid), pinned at first sight (procmeas.h);
 *  2. measures each of them (procmeas.h), itself too, and the host (hostmeas.h);
 *  3. re-hashes a bounded slice of the code files they map (module.h);
 *  4. on a failed measurement: records it in the audit log, marks the host untrusted
 *     (mark.h: the TPM and a file, so no VM is migrated to it), and raises the alarm
 *     (stderr, the audit log, the control socket, and --alarm-cmd if given).
 *
 * Every result goes to the audit log, compressed: a watched process's first
 * measurement, every failure (a repeated identical failure is counted, not
 * repeated), a process going away, and a summary of the passing rounds every
 * audit_every_ms. Its own control socket answers `status`, `measurements`,
 * `evacuations` and `quit`. */
#ifndef SEALVM_GUARD_GUARD_H
#define SEALVM_GUARD_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct guard_opts {
	const char *state_dir, *vms_dir, *table, *policy, *tls_dir;
	const char *control;            /* the guard's own control socket (NULL: STATE_DIR/guard.sock) */
	const char *alarm_cmd;          /* run with the reason as arguments on an alarm (NULL: none) */
	unsigned interval_ms;           /* default 100 */
	bool back_to_back;              /* no pause between rounds (tests and benchmarks: --interval 0) */
	uint64_t rounds;                /* stop after this many rounds (0: run until told) */
	unsigned audit_every_ms;        /* summary of passing rounds (default 60000) */
	uint64_t sweep_bytes;           /* resident code and RELRO compared in turn, a round a process (default 64 KiB) */
	uint64_t rehash_bytes;          /* code files re-hashed a round (default 256 KiB) */
	unsigned tpm_every;             /* quote every N rounds, and when the event log changes (default 10) */
	bool no_self;                   /* do not measure the guard's own process */
};

/* Runs the guard until SIGINT/SIGTERM, `quit`, or opts->rounds. Returns 0, or an
 * error that kept it from starting (or from running on). */
int guard_run(const struct guard_opts *o, struct err *e);

#endif
