/* The tamper-evident audit log (DESIGN.md §1 property 8): STATE_DIR/audit.jsonl, one
 * JSON object a line, appended by every sealvm process of the host (an exclusive lock
 * serialises them).
 *
 *   {"seq": 12, "time": "2026-11-29T12:00:00.123Z", "prev": "<sha256>", "event": "attest", ...}
 *
 * seq counts from 0 without gaps; prev is the SHA-256 of the previous line's bytes
 * (without its newline; 64 zeros for record 0): a hash chain, so editing, deleting,
 * inserting or reordering a record breaks the link to the next one.
 *
 * A hash chain alone can be recomputed by whoever edits it, and says nothing when the
 * end is cut off. So every AUDIT_HEAD_EVERY records, and when a process closes the log,
 * a signed head is appended:
 *
 *   {..., "event": "head", "key": "<fingerprint>", "sig": "<base64>",
 *    "tpm": {"counter": 41, "attest": "<base64 TPMS_ATTEST>", "sig": "<base64>"}}
 *
 * "sig" is the host's audit key's signature over "sealvm-audit-head-v1\n" || prev || seq ||
 * time (covering every record before the head, and the head's own fields). With a TPM, the head also increments the
 * TPM's NV counter and has the attestation key certify it (TPM2_NV_Certify) with that
 * same message's SHA-256 as qualifying data: a signed statement, made by the TPM, that
 * this chain position came with this counter value. Counter values of consecutive
 * heads must be consecutive, and the last head's must equal the TPM's counter now.
 *
 * What is detected, and what is not:
 *  - any edit, deletion, insertion or reordering before the last signed head;
 *  - a cut at the start (record 0 missing) and a torn last line;
 *  - with a TPM and a live check: cutting off one or more signed heads at the end
 *    (the counter has moved on; nobody can make it go back or certify an old value);
 *  - NOT detected: cutting records after the last signed head (at most
 *    AUDIT_HEAD_EVERY-1 records; none after a clean close); without a TPM, cutting the
 *    log at any signed head (the file alone cannot say how long it was);
 *  - NOT detected: anything done by root on a host with a software TPM (root can read
 *    the audit key and swtpm's state, and so re-sign a rewritten log or roll the
 *    counter back by restoring swtpm's state files). */
#ifndef SEALVM_TRUST_AUDIT_H
#define SEALVM_TRUST_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trust/keys.h"
#include "util/err.h"

#define AUDIT_HEAD_EVERY  16
#define AUDIT_RECORD_MAX  8192      /* bytes a line */
#define AUDIT_FILE_MAX    (256u << 20)

struct audit_log;

struct audit_opts {
	const char *path;           /* usually STATE_DIR/audit.jsonl */
	const char *key_path;       /* the host's audit key (private, 0600) */
	const char *tpm_spec;       /* NULL: heads carry no TPM counter */
	unsigned head_every;        /* 0: AUDIT_HEAD_EVERY */
};

/* Opens (creating) the log. A last line torn by a crash is cut off and the cut is
 * recorded ("audit-torn"). */
int audit_open(const struct audit_opts *o, struct audit_log **out, struct err *e);
/* Appends {"seq", "time", "prev", "event": event, ...fields}. fields (borrowed, may be
 * NULL) must not use the keys seq, time, prev, event. Thread-safe. */
int audit_append(struct audit_log *l, const char *event, json_t *fields, struct err *e);
/* The same with the record as JSON text holding "event" and its fields. */
int audit_append_json(struct audit_log *l, const char *record, struct err *e);
/* Appends a signed head now. */
int audit_sign_head(struct audit_log *l, struct err *e);
/* Appends a closing head (best effort) and closes. NULL is a no-op. */
void audit_close(struct audit_log *l);

struct audit_verify_opts {
	EVP_PKEY *key;              /* the audit key's public key; NULL: heads are not checked */
	EVP_PKEY *ak;               /* the TPM attestation key; NULL: TPM parts are not checked */
	const char *tpm_spec;       /* live check of the TPM counter; NULL: none */
};

struct audit_report {
	bool ok;
	size_t records, heads;
	long long bad_record;       /* first broken record (-1: none) */
	char reason[512];           /* "OK ..." or why bad_record is broken */
	long long last_head;        /* seq of the last signed head (-1: none) */
	size_t unsigned_tail;       /* records after the last signed head */
	bool tpm_checked;           /* counter values were verified against the AK */
	uint64_t last_counter;
};

/* Checks the whole log text; never fails (the verdict is in r). */
void audit_verify(const char *text, size_t len, const struct audit_verify_opts *o, struct audit_report *r);

/* The message a head's signature covers (its SHA-256 is the TPM qualifying data);
 * returns its length, 0 if n is too small. */
size_t audit_head_message(const uint8_t prev[32], uint64_t seq, const char *time, uint8_t *out, size_t n);

#endif
