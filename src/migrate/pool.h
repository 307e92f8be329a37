/* The destination's front door: accepts connections and runs their TLS
 * handshakes and HELLOs concurrently, so idle, slow or junk connections cannot
 * delay a real source or disturb a migration in progress (DESIGN §1 property 7).
 *
 * Pending connections (not yet through the handshake and HELLO) are bounded in
 * total and per peer address; past a bound the oldest pending one is dropped.
 * Each must finish its handshake and send its HELLO within a deadline. A
 * connection that does is handed, with its HELLO, to the dispatch callback,
 * which owns it from then on. */
#ifndef SEALVM_MIGRATE_POOL_H
#define SEALVM_MIGRATE_POOL_H

#include <stdint.h>

#include "channel/channel.h"
#include "migrate/proto.h"
#include "state/section.h"

#define POOL_MAX_PENDING 64
#define POOL_MAX_PER_ADDR 16

/* One admitted connection, framed for sections. */
struct pool_conn {
	struct chan *ch;
	struct sec_writer w;
	struct sec_reader r;
	uint8_t fp[32];            /* SHA-256 of the peer certificate (zero for tcp://) */
	char peer[64];             /* its subject CN ("" for tcp://) */
	char where[96];            /* host:port */
};

/* Called on a pool thread with a connection whose HELLO (well-formed, this
 * protocol version) was read; takes ownership of c. */
typedef void (*pool_dispatch_fn)(void *opaque, struct pool_conn *c, const struct mig_hello *h);

struct pool;

int pool_start(struct chan_listener *l, int hello_timeout_ms, pool_dispatch_fn fn, void *opaque,
	       struct pool **out, struct err *e);

/* The same front door for another protocol (the memory server's): greet reads and
 * checks the connection's first record into hello (at most POOL_HELLO_MAX bytes)
 * within what is left of the deadline, and may answer a refusal itself; 0 hands the
 * connection to dispatch. Such connections are not framed for sections (c->w and
 * c->r are unused). */
#define POOL_HELLO_MAX 256
struct pool_proto {
	int (*greet)(void *opaque, struct pool_conn *c, void *hello, struct err *e);
	void (*dispatch)(void *opaque, struct pool_conn *c, const void *hello);
};
int pool_start_proto(struct chan_listener *l, int hello_timeout_ms, const struct pool_proto *proto, void *opaque,
		     struct pool **out, struct err *e);
/* Stops accepting, drops pending connections, waits for every pool thread
 * (dispatch callbacks included) to finish. */
void pool_stop(struct pool *p);

/* Writes one record and flushes. */
int pool_conn_send(struct pool_conn *c, uint32_t id, const void *buf, size_t len, struct err *e);
void pool_conn_close(struct pool_conn *c);

/* Connections seen, and dropped before dispatch (failed, timed out, evicted). */
void pool_counts(struct pool *p, uint64_t *accepted, uint64_t *dropped);

#endif
