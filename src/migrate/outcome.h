/* Durable migration outcomes at the destination (DESIGN.md §3, hand-over rules).
 *
 * Each incoming migration ends in exactly one decision, recorded once per
 * migration id under STATE_DIR/outcomes/: COMMITTED (this host runs or ran the
 * VM) or ABORTED (it never ran here and never will). The decision is made by
 * link(2) of a fully written, fsync'd file to the id's name: whoever links
 * first decides, across threads and processes, and the answer survives a crash.
 * The destination decides COMMITTED before it starts the VM; answering a source
 * that asks "did you run it?" with ABORTED first decides ABORTED, so a COMMIT
 * arriving later can no longer win. */
#ifndef SEALVM_MIGRATE_OUTCOME_H
#define SEALVM_MIGRATE_OUTCOME_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/statedir.h"

enum outcome_kind {
	OUTCOME_COMMITTED = 1,
	OUTCOME_ABORTED = 2,
};

struct outcome_rec {
	uint32_t kind;            /* enum outcome_kind */
	uint64_t time_s;          /* when it was decided (wall clock) */
	char peer[64];            /* the source host (certificate name) */
	char ended[128];          /* COMMITTED: why the VM later stopped here ("" while it runs) */
	char forced[128];         /* ABORTED, then run here anyway by the operator: who and why */
};

struct outcome_store {
	char dir[PATH_MAX];
};

/* A decision written ahead (off the critical path) and linked in by outcome_decide. */
struct outcome_prep {
	char tmp[PATH_MAX + 64];
	char final[PATH_MAX + 64];
	bool ready;
};

#define OUTCOME_MAX_RECORDS 100000 /* beyond this, fences for unknown ids are refused */

int outcome_store_open(struct outcome_store *s, const struct state_dir *sd, struct err *e);
/* Writes the decision kind for id to a private temporary file and syncs it. */
int outcome_prepare(struct outcome_store *s, const uint8_t id[16], enum outcome_kind kind,
		    const char *peer, struct outcome_prep *p, struct err *e);
/* Makes the prepared decision the one for its id, durably. 0: this call decided.
 * -EEXIST: a decision was already there (in *existing when not NULL). */
int outcome_decide(struct outcome_store *s, struct outcome_prep *p, struct outcome_rec *existing,
		   struct err *e);
/* Removes a prepared decision that was not used. */
void outcome_discard(struct outcome_prep *p);
/* prepare + decide. */
int outcome_decide_now(struct outcome_store *s, const uint8_t id[16], enum outcome_kind kind,
		       const char *peer, struct outcome_rec *existing, struct err *e);
/* The decision for id: 0, or -ENOENT when none was made here. */
int outcome_read(struct outcome_store *s, const uint8_t id[16], struct outcome_rec *r, struct err *e);
/* A committed VM stopped here (quit, reset, migrated on): note why. */
int outcome_set_ended(struct outcome_store *s, const uint8_t id[16], const char *why, struct err *e);
/* An ABORTED migration whose complete copy the operator runs here anyway
 * (resume --force of an orphaned copy): later queries hear that it ran here. */
int outcome_set_forced(struct outcome_store *s, const uint8_t id[16], const char *why, struct err *e);
/* Parses a record file's contents (bounded, strict). */
int outcome_parse(const char *buf, size_t len, struct outcome_rec *r, struct err *e);
const char *outcome_name(uint32_t kind);

#endif
