/* The host's "untrusted" mark, set by the integrity guard when a measurement fails.
 *
 * It is kept where the rest of the cluster sees it without asking the guard:
 *
 *  - in the TPM: a "guard-alarm" event (eventlog.h) extended into sealvm's PCR. Every
 *    attestation of this host carries it, and attest_verify refuses the host (check
 *    "guard"), so no source migrates a VM *to* it; a PCR cannot be un-extended, so only
 *    a TPM restart (a reboot, which also restarts every process the attacker touched)
 *    clears it. A destination that receives the host's VMs during an evacuation may
 *    accept the alarm explicitly (attest_expect.accept_guard_alarm).
 *  - in STATE_DIR/guard-alarm.json: so that a restarted guard, or a rebooted host,
 *    stays untrusted (the guard extends the event again into a fresh PCR) until an
 *    operator who has repaired the host removes it (`sealvm guard clear`).
 *
 * The guard counts the host untrusted while either holds: a cleared file does not make
 * a host trusted whose PCR still carries the alarm (no verifier would accept it).
 *
 *   {"time": "2026-11-30T10:00:00.123Z", "check": "code", "reason": "...", "target": "..."} */
#ifndef SEALVM_GUARD_MARK_H
#define SEALVM_GUARD_MARK_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define MARK_FILE "guard-alarm.json"

struct guard_mark {
	char time[40];
	char check[16];
	char target[128];
	char reason[600];
};

/* Sets the mark: the PCR event (unless the current event log already holds this very
 * alarm) and the file. *extended says whether the PCR was extended. */
int mark_set(const char *state_dir, const char *tpm_spec, const struct guard_mark *m, bool *extended,
	     struct err *e);
/* Reads STATE_DIR/guard-alarm.json: 0, -ENOENT when the host is not marked. */
int mark_load(const char *state_dir, struct guard_mark *m, struct err *e);
/* Whether the current event log (this TPM power cycle) holds a guard alarm. */
int mark_in_log(const char *state_dir, bool *present, struct err *e);
/* The same, and m (if present) gets the latest alarm's fields. */
int mark_from_log(const char *state_dir, struct guard_mark *m, bool *present, struct err *e);
/* Removes the file (the PCR keeps its alarm until the TPM restarts). */
int mark_clear(const char *state_dir, struct err *e);
/* The event data for m (canonical JSON, within EVENT_DATA_MAX); malloc'd. */
char *mark_event_data(const struct guard_mark *m);
/* The current time as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void mark_now(char *out, size_t n);

#endif
