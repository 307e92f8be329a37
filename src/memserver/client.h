/* A memory server client (proto.h): one connection, requests pipelined.
 *
 * Asynchronous use (a paged_ram provider's fault thread, the split source's senders):
 * ms_client_get_async / ms_client_put_async / ms_client_submit never block. They queue
 * the request and return; the client's I/O thread sends queued requests while the
 * answers outstanding stay within the server's window (MS_WINDOW_BYTES), reads the
 * answers in order, checks each (tag, op, lengths; a GET's key) and calls the request's
 * callback with the result, once, on the I/O thread. A callback must not block for long
 * or call a synchronous function of this client; it may submit more requests.
 *
 * If the connection fails (an error, a protocol violation by the server, no answer
 * within the timeout), every queued and outstanding request completes with that error,
 * and later submissions return -EPIPE: the caller decides what a lost sub-host means.
 *
 * Synchronous forms wait for their answer (from any thread but the I/O thread). */
#ifndef SEALVM_MEMSERVER_CLIENT_H
#define SEALVM_MEMSERVER_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "memserver/proto.h"
#include "util/err.h"

#define MS_CLIENT_QUEUE 4096     /* requests queued and not yet sent */

struct ms_client;

struct ms_server_info {
	uint8_t host_id[16];     /* the server's state directory */
	uint8_t boot_id[16];     /* its process: changes when it restarts (and lost its stores) */
	uint8_t fp[MS_FP_LEN];   /* SHA-256 of its certificate (zero for tcp://) */
	char name[64];           /* its certificate's name */
	uint64_t capacity, free; /* blobs, at connection time */
};

/* One request's outcome. */
struct ms_result {
	uint16_t op;             /* the request's op */
	int status;              /* 0, or a negative errno: the server's refusal or the connection's failure */
	const char *msg;         /* why ("" when status is 0) */
	uint64_t key;            /* GET: the key asked for */
	const uint8_t *blob;     /* GET: the blob, valid during the callback only */
	uint32_t len;
	union {
		struct ms_create_reply create;
		struct ms_put_reply put;
		struct ms_stat_reply stat;    /* STAT, GRANT, ADOPT */
		struct ms_free_reply freed;
		struct ms_ping ping;
	} u;
};
typedef void (*ms_done_fn)(void *arg, const struct ms_result *r);

/* Connects (TLS: the server's certificate must name the host of uri), says HELLO and
 * starts the I/O thread. timeout_ms bounds connecting, each wait for an answer, and any
 * socket wait. */
int ms_client_connect(const char *uri, const char *tls_dir, int timeout_ms, struct ms_client **out, struct err *e);
const struct ms_server_info *ms_client_info(struct ms_client *c);
/* False once the connection failed; e gets why. */
bool ms_client_ok(struct ms_client *c, struct err *e);
/* Fails what is still pending with -ECANCELED, stops the I/O thread, closes. NULL ok. */
void ms_client_close(struct ms_client *c);

/* Non-blocking submissions: 0 (fn will be called), -EAGAIN (queue full: call
 * ms_client_wait_room or try later), -EPIPE (connection failed; fn is not called),
 * -EINVAL (bad arguments). put copies the blobs. */
int ms_client_get_async(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint64_t key, ms_done_fn fn,
			void *arg);
int ms_client_put_async(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint32_t n, const uint64_t *keys,
			const uint8_t *const *blobs, const uint32_t *lens, ms_done_fn fn, void *arg);
/* Any other request (CREATE, FREE, STAT, GRANT, ADOPT, DECLINE, PING) with its payload. */
int ms_client_submit(struct ms_client *c, uint16_t op, const void *payload, uint32_t len, ms_done_fn fn, void *arg);
/* Blocks until the queue has room (0) or the connection failed (-EPIPE). */
int ms_client_wait_room(struct ms_client *c, struct err *e);
/* Blocks until everything submitted so far has been answered (0) or failed (<0). */
int ms_client_drain(struct ms_client *c, struct err *e);

/* Synchronous requests: 0, or the server's refusal / the connection's failure in e. */
int ms_client_create(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint64_t quota, uint32_t flags,
		     struct ms_create_reply *out, struct err *e);
int ms_client_put(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint32_t n, const uint64_t *keys,
		  const uint8_t *const *blobs, const uint32_t *lens, struct ms_put_reply *out, struct err *e);
/* blob: room for MS_BLOB_MAX bytes. */
int ms_client_get(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint64_t key, uint8_t *blob,
		  uint32_t *len, struct err *e);
int ms_client_free(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint64_t *blobs, struct err *e);
int ms_client_stat(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], struct ms_stat_reply *out,
		   struct err *e);
int ms_client_grant(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], const uint8_t grantee[MS_FP_LEN],
		    uint32_t ttl_s, struct ms_stat_reply *out, struct err *e);
int ms_client_adopt(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], struct ms_stat_reply *out,
		    struct err *e);
int ms_client_decline(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], struct err *e);
/* Round trip time of one PING. */
int ms_client_ping(struct ms_client *c, uint64_t *rtt_ns, struct err *e);

/* Checks one answer record against the request it answers (exposed for fuzzing):
 * 0, or -EPROTO with e naming the fault. */
int ms_check_answer(uint16_t req_op, uint64_t req_tag, uint64_t req_key, const struct ms_hdr *h, const uint8_t *body,
		    struct err *e);

#endif
