/* The memory server's stores (proto.h says what they are and who may do what): the
 * capacity reserved up front, cut into blob slots; per store its quota, owner, grant
 * and a table from key to slot. No I/O here: the server feeds it parsed requests with
 * the identity and session (connection) that sent them, so the rules are tested and
 * fuzzed without a network.
 *
 * Capacity: the sum of all quotas never exceeds the slots (CREATE is refused instead),
 * so a PUT within its store's quota always finds a slot. Freed slots are wiped. The
 * key tables live outside the reserved memory: 32 bytes per blob of quota (under 1% of
 * the blobs they index). At most MS_MAX_STORES stores.
 *
 * Thread-safe: one lock around every call. Time is given in seconds of a monotonic
 * clock (grants expire). */
#ifndef SEALVM_MEMSERVER_STORE_H
#define SEALVM_MEMSERVER_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "memserver/proto.h"
#include "util/err.h"

#define MS_MAX_STORES 256

/* Who sent a request: the peer certificate's SHA-256 and name, and its connection. */
struct ms_who {
	uint8_t fp[MS_FP_LEN];
	char name[64];
	uint64_t session;
};

struct ms_stores;

/* mem: nslots * MS_BLOB_MAX bytes, reserved by the caller (and kept by it). */
int ms_stores_new(uint8_t *mem, uint64_t nslots, struct ms_stores **out, struct err *e);
void ms_stores_free(struct ms_stores *s);

int ms_store_create(struct ms_stores *s, const struct ms_who *w, const struct ms_create *c,
		    struct ms_create_reply *out, struct err *e);
int ms_store_put(struct ms_stores *s, const struct ms_who *w, const struct ms_put_view *v, struct ms_put_reply *out,
		 struct err *e);
/* Copies the blob into blob (MS_BLOB_MAX bytes). */
int ms_store_get(struct ms_stores *s, const struct ms_who *w, const struct ms_key_req *q, uint8_t *blob,
		 uint32_t *len, struct err *e);
int ms_store_drop(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN],
		  struct ms_free_reply *out, struct err *e);
int ms_store_stat(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN], uint64_t now,
		  struct ms_stat_reply *out, struct err *e);
int ms_store_grant(struct ms_stores *s, const struct ms_who *w, const struct ms_grant *g, uint64_t now,
		   struct ms_stat_reply *out, struct err *e);
int ms_store_adopt(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN], uint64_t now,
		   struct ms_stat_reply *out, struct err *e);
int ms_store_decline(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN],
		     struct err *e);

/* A connection ended: its ephemeral stores are freed, unless granted (then they wait
 * for the grantee). Returns the number freed. */
int ms_stores_session_end(struct ms_stores *s, uint64_t session);
/* Ends grants past their time; frees the ephemeral stores so left without a creator.
 * Returns the number freed. */
int ms_stores_expire(struct ms_stores *s, uint64_t now);

struct ms_totals {
	uint64_t slots, promised, used, bytes, stores;
};
void ms_stores_totals(struct ms_stores *s, struct ms_totals *t);
/* Every store: id, owner, state, blobs, quota, bytes, requests. */
json_t *ms_stores_json(struct ms_stores *s, uint64_t now);

#endif
