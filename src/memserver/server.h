/* `sealvm memserver`: a sub-host for split migration (proto.h). It listens for mutual
 * TLS connections through the migration destination's front door (migrate/pool.h:
 * concurrent handshakes, bounded per address, each with a deadline), reserves its
 * capacity up front (vm/reserve.h: mapped and populated before it listens), and serves
 * each connection on its own thread: requests in order, answers batched until the
 * client has nothing more in flight. A connection that breaks the protocol gets an
 * ERROR naming the fault and is closed; the others are not disturbed. */
#ifndef SEALVM_MEMSERVER_SERVER_H
#define SEALVM_MEMSERVER_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "memserver/proto.h"
#include "memserver/store.h"
#include "util/err.h"
#include "util/statedir.h"

#define MS_MAX_CONNS 128         /* connections served at once */

struct ms_server_params {
	const char *uri;         /* tls://ADDR:PORT (tcp:// only with insecure) */
	const char *tls_dir;
	const char *allow_from;  /* comma-separated certificate names, or NULL: any host of the CA */
	bool insecure;
	uint64_t capacity;       /* bytes of blobs */
	const struct state_dir *sd;
	int hello_timeout_ms;    /* handshake and HELLO (default 10000) */
	int io_timeout_ms;       /* no progress within a record, or on an answer (default 30000) */
};

struct ms_server;

/* Reserves and populates the capacity, then listens. */
int ms_server_start(const struct ms_server_params *p, struct ms_server **out, struct err *e);
int ms_server_port(struct ms_server *s);
/* Stores, bytes, capacity, connections and request counts (for ctl status). */
json_t *ms_server_status(struct ms_server *s);
/* Stops listening, closes every connection, frees every store and the capacity. */
void ms_server_stop(struct ms_server *s);

/* One request, as a connection's thread handles it (exposed for tests and fuzzing):
 * answers the record h with payload p (len h->len, 8-byte aligned) from w into ans
 * (room for MS_HDR_SIZE + MS_GET_REPLY_MAX bytes); *anslen gets the answer's length.
 * Returns 0 if the request succeeded, a negative errno if it was refused (the answer
 * is an ERROR; the connection goes on), or 1 if it broke the protocol (the answer is
 * an ERROR; the connection must be closed). */
int ms_handle(struct ms_stores *st, const struct ms_who *w, uint64_t now_s, const struct ms_hdr *h,
	      const uint8_t *p, uint8_t *ans, size_t *anslen);

#endif
