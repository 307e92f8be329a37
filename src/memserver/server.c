#include "memserver/server.h"

#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "channel/channel.h"
#include "migrate/pool.h"
#include "util/hex.h"
#include "vm/reserve.h"

struct conn {
	struct pool_conn *c;
	struct conn *next;
};

struct ms_server {
	struct ms_server_params p;
	char uri[300], tls_dir[4096], allow[512];
	struct ram_reserve reserve;
	uint8_t *mem;
	uint64_t mem_size;
	struct ms_stores *st;
	struct chan_listener *listener;
	struct pool *pool;
	int stopfd;
	pthread_t keeper;
	bool keeper_started;
	uint8_t boot_id[16];
	uint64_t started_ns;

	pthread_mutex_t lock;        /* conns and the counters below */
	struct conn *conns;
	int nconns;
	uint64_t sessions, conns_total, refused, violations;
	uint64_t req[MS_OP_MAX + 1], failed[MS_OP_MAX + 1];
	uint64_t bytes_in, bytes_out, blobs_in, blobs_out;
};

/* The first record of a connection, as greet read it. */
struct greeting {
	struct ms_hdr h;
	struct ms_hello hello;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_s(void)
{
	return mono_ns() / 1000000000ull;
}

static int send_rec(struct chan *ch, uint16_t op, uint64_t tag, const void *body, uint32_t len, struct err *e)
{
	struct ms_hdr h = { .op = op, .len = len, .tag = tag };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, len } };
	int r = chan_writev(ch, iov, len ? 2 : 1, e);

	return r ? r : chan_flush(ch, e);
}

static void send_error(struct chan *ch, uint64_t tag, int status, const char *msg)
{
	struct ms_error er;

	memset(&er, 0, sizeof(er));
	er.status = status;
	snprintf(er.msg, sizeof(er.msg), "%s", msg);
	send_rec(ch, MS_ERROR, tag, &er, sizeof(er), NULL);
}

/* Pool thread, within the handshake deadline: the client's HELLO. */
static int greet(void *opaque, struct pool_conn *c, void *out, struct err *e)
{
	struct greeting *g = out;
	char why[160];
	int r;

	(void)opaque;
	_Static_assert(sizeof(struct greeting) <= POOL_HELLO_MAX, "greeting too large for the pool");
	r = chan_read_full(c->ch, &g->h, sizeof(g->h), e);
	if (r < 0)
		return r;
	if (g->h.op != MS_HELLO || g->h.len != sizeof(g->hello)) {
		snprintf(why, sizeof(why), "not a memory server client: first record %s of %u bytes",
			 ms_op_name(g->h.op), g->h.len);
		send_error(c->ch, g->h.tag, -EPROTO, why);
		return err_set(e, -EPROTO, "%s", why);
	}
	r = chan_read_full(c->ch, &g->hello, sizeof(g->hello), e);
	if (r < 0)
		return r;
	if (g->hello.proto != MS_PROTO_VERSION) {
		snprintf(why, sizeof(why), "the client speaks memory server protocol %u; this server speaks %u",
			 g->hello.proto, MS_PROTO_VERSION);
		send_error(c->ch, g->h.tag, -EPROTONOSUPPORT, why);
		return err_set(e, -EPROTONOSUPPORT, "%s", why);
	}
	return 0;
}

static void count(struct ms_server *s, uint16_t op, int r, uint64_t in, uint64_t out, uint32_t blobs_in,
		  uint32_t blobs_out)
{
	pthread_mutex_lock(&s->lock);
	if (op >= 1 && op <= MS_OP_MAX) {
		s->req[op]++;
		if (r)
			s->failed[op]++;
	}
	if (r == 1)
		s->violations++;
	s->bytes_in += in;
	s->bytes_out += out;
	s->blobs_in += blobs_in;
	s->blobs_out += blobs_out;
	pthread_mutex_unlock(&s->lock);
}

/* Store lifecycle in the log: who created, granted, adopted, freed what. */
static void note(const struct ms_who *w, const struct ms_hdr *h, const uint8_t *p, int r)
{
	char id[33];

	if (r != 0 || (h->op != MS_CREATE && h->op != MS_FREE && h->op != MS_GRANT && h->op != MS_ADOPT &&
		       h->op != MS_DECLINE))
		return;
	ms_store_hex(p, id);
	if (h->op == MS_CREATE)
		fprintf(stderr, "sealvm memserver: store %s created by %s (quota %llu blobs%s)\n", id, w->name,
			(unsigned long long)((const struct ms_create *)p)->quota,
			((const struct ms_create *)p)->flags & MS_CREATE_EPHEMERAL ? ", ephemeral" : "");
	else
		fprintf(stderr, "sealvm memserver: store %s %s by %s\n", id,
			h->op == MS_FREE ? "freed" : h->op == MS_GRANT ? "granted" : h->op == MS_ADOPT ? "adopted" : "declined",
			w->name);
}

static bool stopping(struct ms_server *s)
{
	struct pollfd pf = { .fd = s->stopfd, .events = POLLIN };

	return poll(&pf, 1, 0) > 0;
}

/* Waits until the connection has bytes to read (1) or the server stops (0). */
static int wait_readable(struct ms_server *s, struct chan *ch)
{
	for (;;) {
		struct pollfd pf[2] = { { .fd = chan_fd(ch), .events = POLLIN }, { .fd = s->stopfd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pf[1].revents)
			return 0;
		if (pf[0].revents)
			return 1;
	}
}

static void serve(struct ms_server *s, struct pool_conn *c, const struct greeting *g)
{
	struct ms_who w = { 0 };
	struct ms_hello_reply hr = { .proto = MS_PROTO_VERSION, .blob_max = MS_BLOB_MAX, .put_max = MS_PUT_MAX,
				     .window = MS_WINDOW_BYTES };
	struct ms_totals t;
	struct conn cn = { .c = c };
	uint8_t *buf = NULL, *ans = NULL;
	struct err e = { 0 };
	bool refused = false;
	char why[300];
	int r, freed;

	memcpy(w.fp, c->fp, sizeof(w.fp));
	snprintf(w.name, sizeof(w.name), "%s", c->peer[0] ? c->peer : "an unauthenticated tcp client");
	pthread_mutex_lock(&s->lock);
	w.session = ++s->sessions;
	if (s->p.allow_from && chan_kind(c->ch) == CHAN_TLS && !chan_peer_named_in(c->ch, s->p.allow_from)) {
		snprintf(why, sizeof(why), "%s is not admitted here (--allow-from %s)", w.name, s->p.allow_from);
		refused = true;
	} else if (s->nconns >= MS_MAX_CONNS || stopping(s)) {
		snprintf(why, sizeof(why), "busy: %d connections already (or stopping)", s->nconns);
		refused = true;
	} else {
		cn.next = s->conns;
		s->conns = &cn;
		s->nconns++;
		s->conns_total++;
	}
	if (refused)
		s->refused++;
	pthread_mutex_unlock(&s->lock);
	if (refused) {
		fprintf(stderr, "sealvm memserver: refused a client from %s: %s\n", c->where, why);
		chan_set_timeout(c->ch, 2000);
		send_error(c->ch, g->h.tag, -EACCES, why);
		pool_conn_close(c);
		return;
	}

	ms_stores_totals(s->st, &t);
	if (s->p.sd)
		memcpy(hr.host_id, s->p.sd->host_id, sizeof(hr.host_id));
	memcpy(hr.boot_id, s->boot_id, sizeof(hr.boot_id));
	hr.capacity = t.slots;
	hr.free = t.slots - t.promised;
	chan_set_timeout(c->ch, s->p.io_timeout_ms);
	buf = aligned_alloc(8, MS_FRAME_MAX + 8);
	ans = aligned_alloc(8, MS_HDR_SIZE + MS_GET_REPLY_MAX + 8);
	r = buf && ans ? send_rec(c->ch, MS_HELLO | MS_REPLY, g->h.tag, &hr, sizeof(hr), &e)
		       : err_set(&e, -ENOMEM, "connection buffers");
	while (r == 0) {
		struct ms_hdr h;
		size_t alen;
		int hr2;

		/* answers go out once nothing more is waiting: one flush per burst of requests */
		if (chan_pending(c->ch) == 0) {
			r = chan_flush(c->ch, &e);
			if (r == 0 && (r = wait_readable(s, c->ch)) <= 0)
				break;
		}
		r = chan_read_full(c->ch, &h, sizeof(h), &e);
		if (r < 0)
			break;
		if (ms_req_len_ok(h.op, h.len) && (r = chan_read_full(c->ch, buf, h.len, &e)) < 0)
			break;
		hr2 = ms_handle(s->st, &w, mono_s(), &h, buf, ans, &alen);
		note(&w, &h, buf, hr2);
		count(s, h.op, hr2, MS_HDR_SIZE + (ms_req_len_ok(h.op, h.len) ? h.len : 0), alen,
		      h.op == MS_PUT && hr2 == 0 ? ((const struct ms_put_head *)buf)->count : 0,
		      h.op == MS_GET && hr2 == 0);
		r = chan_write(c->ch, ans, alen, &e);
		if (r == 0 && hr2 == 1) {
			const struct ms_error *er = (const struct ms_error *)(ans + MS_HDR_SIZE);
			fprintf(stderr, "sealvm memserver: closing the connection of %s (%s): %s\n", w.name, c->where,
				er->msg);
			chan_flush(c->ch, NULL);
			break;
		}
	}
	if (r < 0 && r != -ENODATA && !stopping(s))
		fprintf(stderr, "sealvm memserver: connection of %s (%s) ended: %s\n", w.name, c->where, e.msg);
	free(buf);
	free(ans);
	freed = ms_stores_session_end(s->st, w.session);
	if (freed)
		fprintf(stderr, "sealvm memserver: %d ephemeral store%s of %s freed: its connection ended\n", freed,
			freed == 1 ? "" : "s", w.name);
	pthread_mutex_lock(&s->lock);
	for (struct conn **pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == &cn) {
			*pp = cn.next;
			break;
		}
	s->nconns--;
	pthread_mutex_unlock(&s->lock);
	pool_conn_close(c);
}

static void dispatch(void *opaque, struct pool_conn *c, const void *hello)
{
	serve(opaque, c, hello);
}

/* Grants run out even when nobody asks. */
static void *keeper(void *arg)
{
	struct ms_server *s = arg;

	for (;;) {
		struct pollfd pf = { .fd = s->stopfd, .events = POLLIN };
		int freed;
		if (poll(&pf, 1, 1000) > 0)
			break;
		freed = ms_stores_expire(s->st, mono_s());
		if (freed)
			fprintf(stderr, "sealvm memserver: %d store%s freed: granted, never adopted, creator gone\n",
				freed, freed == 1 ? "" : "s");
	}
	return NULL;
}

int ms_server_start(const struct ms_server_params *p, struct ms_server **out, struct err *e)
{
	struct ms_server *s = calloc(1, sizeof(*s));
	uint64_t nslots;
	int r;

	if (!s)
		return err_set(e, -ENOMEM, "memory server");
	s->p = *p;
	snprintf(s->uri, sizeof(s->uri), "%s", p->uri);
	s->p.uri = s->uri;
	if (p->tls_dir) {
		snprintf(s->tls_dir, sizeof(s->tls_dir), "%s", p->tls_dir);
		s->p.tls_dir = s->tls_dir;
	}
	if (p->allow_from) {
		snprintf(s->allow, sizeof(s->allow), "%s", p->allow_from);
		s->p.allow_from = s->allow;
	}
	if (!s->p.hello_timeout_ms)
		s->p.hello_timeout_ms = 10000;
	if (!s->p.io_timeout_ms)
		s->p.io_timeout_ms = 30000;
	pthread_mutex_init(&s->lock, NULL);
	s->stopfd = -1;
	s->started_ns = mono_ns();
	nslots = p->capacity / MS_BLOB_MAX;
	s->mem_size = (nslots * MS_BLOB_MAX + 4095) & ~4095ull;
	if (nslots == 0 || s->mem_size < (2ull << 20)) {
		r = err_set(e, -EINVAL, "--capacity must be at least 2M");
		goto fail;
	}
	if (RAND_bytes(s->boot_id, sizeof(s->boot_id)) != 1) {
		r = err_set(e, -EIO, "cannot draw a boot id");
		goto fail;
	}
	/* the capacity is real before anyone is promised any of it */
	r = ram_reserve_start(&s->reserve, s->mem_size, e);
	if (r == 0) {
		s->mem = ram_reserve_take(&s->reserve, s->mem_size);
		r = s->mem ? ram_reserve_wait(&s->reserve, e) : err_set(e, -ENOMEM, "cannot take the reservation");
	}
	if (r == 0)
		r = ms_stores_new(s->mem, nslots, &s->st, e);
	if (r == 0)
		r = chan_listen(p->uri, p->tls_dir, &s->listener, e);
	if (r == 0 && chan_listener_kind(s->listener) == CHAN_TCP && !p->insecure)
		r = err_set(e, -EINVAL, "%s would serve unauthenticated clients, who could all use each other's stores: use tls://, or add --insecure for a measurement",
			    p->uri);
	if (r == 0 && (s->stopfd = eventfd(0, EFD_CLOEXEC)) < 0)
		r = err_sys(e, -errno, "eventfd");
	if (r == 0) {
		struct pool_proto pp = { .greet = greet, .dispatch = dispatch };
		r = pool_start_proto(s->listener, s->p.hello_timeout_ms, &pp, s, &s->pool, e);
	}
	if (r == 0 && pthread_create(&s->keeper, NULL, keeper, s) == 0)
		s->keeper_started = true;
	else if (r == 0)
		r = err_set(e, -ENOMEM, "cannot start the grant timer");
	if (r < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	ms_server_stop(s);
	return r;
}

int ms_server_port(struct ms_server *s)
{
	return chan_listener_port(s->listener);
}

json_t *ms_server_status(struct ms_server *s)
{
	struct ms_totals t;
	json_t *o, *req = json_object(), *stores = ms_stores_json(s->st, mono_s());

	ms_stores_totals(s->st, &t);
	pthread_mutex_lock(&s->lock);
	for (int op = 1; req && op <= MS_OP_MAX; op++) {
		if (op == MS_HELLO)
			continue;
		json_object_set_new(req, ms_op_name((uint32_t)op), json_pack("{s:I, s:I}", "count", (json_int_t)s->req[op],
									   "refused", (json_int_t)s->failed[op]));
	}
	o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
		      "state", "serving", "listen", s->uri, "port", chan_listener_port(s->listener),
		      "capacity_bytes", (json_int_t)(t.slots * MS_BLOB_MAX), "capacity_blobs", (json_int_t)t.slots,
		      "promised_blobs", (json_int_t)t.promised, "free_blobs", (json_int_t)(t.slots - t.promised),
		      "used_blobs", (json_int_t)t.used, "stored_bytes", (json_int_t)t.bytes,
		      "reserved_bytes", (json_int_t)s->mem_size, "connections", s->nconns,
		      "connections_total", (json_int_t)s->conns_total, "refused_connections", (json_int_t)s->refused,
		      "protocol_violations", (json_int_t)s->violations, "bytes_in", (json_int_t)s->bytes_in,
		      "bytes_out", (json_int_t)s->bytes_out, "blobs_in", (json_int_t)s->blobs_in,
		      "blobs_out", (json_int_t)s->blobs_out, "requests", req, "stores", stores);
	pthread_mutex_unlock(&s->lock);
	if (o) {
		char hid[33];
		hex_encode(s->boot_id, 16, hid);
		json_object_set_new(o, "boot_id", json_string(hid));
		json_object_set_new(o, "stores_count", json_integer((json_int_t)t.stores));
		json_object_set_new(o, "uptime_s", json_real((double)(mono_ns() - s->started_ns) / 1e9));
	}
	return o;
}

void ms_server_stop(struct ms_server *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	if (s->stopfd >= 0 && write(s->stopfd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow: it is readable then anyway */
	}
	/* every connection's thread returns: its poll sees the stop, a blocked read or write fails */
	pthread_mutex_lock(&s->lock);
	for (struct conn *c = s->conns; c; c = c->next)
		chan_shutdown(c->c->ch);
	pthread_mutex_unlock(&s->lock);
	pool_stop(s->pool);
	if (s->keeper_started)
		pthread_join(s->keeper, NULL);
	chan_listener_close(s->listener);
	ms_stores_free(s->st);
	ram_reserve_stop(&s->reserve);
	if (s->mem)
		munmap(s->mem, s->mem_size);
	if (s->stopfd >= 0)
		close(s->stopfd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
