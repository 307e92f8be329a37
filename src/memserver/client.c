#include "memserver/client.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "channel/channel.h"

struct req {
	struct req *next;
	uint64_t tag;
	uint64_t key;            /* GET */
	uint16_t op;
	uint32_t len;
	uint32_t expect;         /* answer bytes at most: counted against the window */
	ms_done_fn fn;
	void *arg;
	uint8_t *payload;        /* len bytes; freed once sent */
};

struct ms_client {
	struct chan *ch;
	struct ms_server_info info;
	int timeout_ms;
	pthread_t io;
	bool io_started;
	int evfd;                /* wakes the I/O thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;     /* room in the queue, answers for waiters, drained */
	struct req *q_head, *q_tail;   /* queued, not sent */
	uint32_t queued;
	struct req *f_head, *f_tail;   /* sent, answers awaited in this order */
	uint32_t inflight;
	uint64_t inflight_bytes;
	uint64_t next_tag;
	uint64_t completed;      /* requests answered or failed */
	uint64_t submitted;
	bool dead, closing;
	struct err why;
	uint8_t *abuf;           /* one answer */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wake(struct ms_client *c)
{
	uint64_t one = 1;

	if (write(c->evfd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow: it is readable then anyway */
	}
}

int ms_check_answer(uint16_t req_op, uint64_t req_tag, uint64_t req_key, const struct ms_hdr *h, const uint8_t *body,
		    struct err *e)
{
	if (h->tag != req_tag)
		return err_set(e, -EPROTO, "the memory server answered request %llu where %llu was next",
			       (unsigned long long)h->tag, (unsigned long long)req_tag);
	if (h->flags || !ms_reply_len_ok(req_op, h->op, h->len))
		return err_set(e, -EPROTO, "the memory server answered %s with %s of %u bytes", ms_op_name(req_op),
			       ms_op_name(h->op), h->len);
	if (h->op == MS_ERROR) {
		const struct ms_error *er = (const struct ms_error *)body;
		if (er->status >= 0 || er->status < -4095)
			return err_set(e, -EPROTO, "the memory server refused %s with status %d", ms_op_name(req_op),
				       er->status);
		return 0;
	}
	if (req_op == MS_GET) {
		const struct ms_get_reply *g = (const struct ms_get_reply *)body;
		if (g->key != req_key || g->len != h->len - sizeof(*g) || g->pad)
			return err_set(e, -EPROTO, "the memory server answered GET %llu with blob %llu of %u bytes",
				       (unsigned long long)req_key, (unsigned long long)g->key, g->len);
	}
	return 0;
}

/* Completes r with result res (status, msg filled) and frees it. */
static void complete(struct ms_client *c, struct req *r, struct ms_result *res)
{
	res->op = r->op;
	res->key = r->key;
	if (r->fn)
		r->fn(r->arg, res);
	free(r->payload);
	free(r);
	pthread_mutex_lock(&c->lock);
	c->completed++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* The connection is lost: everything pending fails with its reason. */
static void fail_all(struct ms_client *c, int code, const char *msg)
{
	struct req *list, *r;

	pthread_mutex_lock(&c->lock);
	if (!c->dead) {
		c->dead = true;
		err_set(&c->why, code, "%s", msg);
	}
	/* outstanding first: their answers were due first */
	if (c->f_tail) {
		c->f_tail->next = c->q_head;
		list = c->f_head;
	} else {
		list = c->q_head;
	}
	c->f_head = c->f_tail = c->q_head = c->q_tail = NULL;
	c->queued = c->inflight = 0;
	c->inflight_bytes = 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	while ((r = list)) {
		struct ms_result res = { .status = code, .msg = msg };
		list = r->next;
		complete(c, r, &res);
	}
}

/* Reads one answer and completes the oldest outstanding request with it. */
static int read_answer(struct ms_client *c, struct err *e)
{
	struct ms_result res = { .msg = "" };
	struct ms_hdr h;
	struct req *r;
	int rc;

	rc = chan_read_full(c->ch, &h, sizeof(h), e);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	r = c->f_head;
	pthread_mutex_unlock(&c->lock);
	if (!r)
		return err_set(e, -EPROTO, "the memory server sent %s with no request outstanding", ms_op_name(h.op));
	if (h.len > MS_GET_REPLY_MAX || !ms_reply_len_ok(r->op, h.op, h.len))
		return ms_check_answer(r->op, r->tag, r->key, &h, c->abuf, e);
	rc = chan_read_full(c->ch, c->abuf, h.len, e);
	if (rc == 0)
		rc = ms_check_answer(r->op, r->tag, r->key, &h, c->abuf, e);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	c->f_head = r->next;
	if (!c->f_head)
		c->f_tail = NULL;
	c->inflight--;
	c->inflight_bytes -= r->expect;
	pthread_mutex_unlock(&c->lock);
	if (h.op == MS_ERROR) {
		struct ms_error *er = (struct ms_error *)c->abuf;
		ms_error_fix(er);
		res.status = er->status;
		res.msg = er->msg;
	} else if (r->op == MS_GET) {
		res.len = ((const struct ms_get_reply *)c->abuf)->len;
		res.blob = c->abuf + sizeof(struct ms_get_reply);
	} else if (h.len) {
		memcpy(&res.u, c->abuf, h.len < sizeof(res.u) ? h.len : sizeof(res.u));
	}
	complete(c, r, &res);
	return 0;
}

static void *io_thread(void *arg)
{
	struct ms_client *c = arg;
	uint64_t last_rx = mono_ns();
	struct err e = { 0 };
	int r = 0;

	while (r == 0) {
		struct req *send = NULL, **tail = &send;
		bool waiting;

		pthread_mutex_lock(&c->lock);
		if (c->closing) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		/* move what fits in the window from the queue to the outstanding list */
		while (c->q_head && c->inflight_bytes + c->q_head->expect <= MS_WINDOW_BYTES) {
			struct req *q = c->q_head;
			c->q_head = q->next;
			if (!c->q_head)
				c->q_tail = NULL;
			c->queued--;
			q->next = NULL;
			if (c->f_tail)
				c->f_tail->next = q;
			else
				c->f_head = q;
			c->f_tail = q;
			if (c->inflight == 0)
				last_rx = mono_ns(); /* the answer clock starts with the first outstanding request */
			c->inflight++;
			c->inflight_bytes += q->expect;
			*tail = q;  /* the send list shares nodes with the outstanding list: walk it by count */
			tail = &q->next;
		}
		waiting = c->f_head != NULL;
		pthread_cond_broadcast(&c->cond); /* room in the queue */
		pthread_mutex_unlock(&c->lock);

		/* send: the nodes from `send` up to the end of the outstanding list */
		for (struct req *q = send; q && r == 0; q = q->next) {
			struct ms_hdr h = { .op = q->op, .len = q->len, .tag = q->tag };
			struct iovec iov[2] = { { &h, sizeof(h) }, { q->payload, q->len } };
			r = chan_writev(c->ch, iov, 2, &e);
			free(q->payload);
			q->payload = NULL;
		}
		if (r == 0 && send)
			r = chan_flush(c->ch, &e);
		if (r < 0)
			break;
		if (waiting && chan_pending(c->ch) > 0) {
			r = read_answer(c, &e);
			last_rx = mono_ns();
			continue;
		}
		{
			struct pollfd pf[2] = { { .fd = c->evfd, .events = POLLIN },
						{ .fd = chan_fd(c->ch), .events = POLLIN } };
			int n = poll(pf, waiting ? 2 : 1, waiting ? 100 : -1);
			if (n < 0 && errno != EINTR) {
				r = err_sys(&e, -errno, "poll");
				break;
			}
			if (pf[0].revents & POLLIN) {
				uint64_t v;
				if (read(c->evfd, &v, sizeof(v)) < 0) {
					/* another wake-up took it */
				}
			}
			if (waiting && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
				r = read_answer(c, &e);
				last_rx = mono_ns();
			} else if (waiting && c->timeout_ms > 0 &&
				   mono_ns() - last_rx > (uint64_t)c->timeout_ms * 1000000ull) {
				r = err_set(&e, -ETIMEDOUT, "no answer from the memory server %s for %d ms", c->info.name,
					    c->timeout_ms);
			}
		}
	}
	if (r < 0)
		fail_all(c, r, e.msg);
	return NULL;
}

/* Queues a request whose payload (len bytes) the client now owns. */
static int enqueue(struct ms_client *c, uint16_t op, uint64_t key, uint8_t *payload, uint32_t len, uint32_t expect,
		   ms_done_fn fn, void *arg)
{
	struct req *r = calloc(1, sizeof(*r));

	if (!r) {
		free(payload);
		return -ENOMEM;
	}
	*r = (struct req){ .key = key, .op = op, .len = len, .expect = expect, .fn = fn, .arg = arg, .payload = payload };
	pthread_mutex_lock(&c->lock);
	if (c->dead || c->closing || c->queued >= MS_CLIENT_QUEUE) {
		int rc = c->dead || c->closing ? -EPIPE : -EAGAIN;
		pthread_mutex_unlock(&c->lock);
		free(payload);
		free(r);
		return rc;
	}
	r->tag = ++c->next_tag;
	if (c->q_tail)
		c->q_tail->next = r;
	else
		c->q_head = r;
	c->q_tail = r;
	c->queued++;
	c->submitted++;
	pthread_mutex_unlock(&c->lock);
	wake(c);
	return 0;
}

/* The most an answer to op can be: what it counts against the window. */
static uint32_t expect_for(uint16_t op)
{
	_Static_assert(sizeof(struct ms_stat_reply) <= sizeof(struct ms_error) &&
			       sizeof(struct ms_create_reply) <= sizeof(struct ms_error) &&
			       sizeof(struct ms_put_reply) <= sizeof(struct ms_error),
		       "an ERROR is the longest answer but GET's");
	return MS_HDR_SIZE + (op == MS_GET ? MS_GET_REPLY_MAX : sizeof(struct ms_error));
}

int ms_client_submit(struct ms_client *c, uint16_t op, const void *payload, uint32_t len, ms_done_fn fn, void *arg)
{
	uint8_t *p;

	if (op == MS_HELLO || op == MS_PUT || op == MS_GET || !ms_req_len_ok(op, len))
		return -EINVAL;
	p = malloc(len);
	if (!p)
		return -ENOMEM;
	memcpy(p, payload, len);
	return enqueue(c, op, 0, p, len, expect_for(op), fn, arg);
}

int ms_client_get_async(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint64_t key, ms_done_fn fn,
			void *arg)
{
	struct ms_key_req *q = malloc(sizeof(*q));

	if (!q)
		return -ENOMEM;
	memcpy(q->store, store, MS_STORE_ID_LEN);
	q->key = key;
	return enqueue(c, MS_GET, key, (uint8_t *)q, sizeof(*q), expect_for(MS_GET), fn, arg);
}

int ms_client_put_async(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint32_t n, const uint64_t *keys,
			const uint8_t *const *blobs, const uint32_t *lens, ms_done_fn fn, void *arg)
{
	size_t total = sizeof(struct ms_put_head) + n * sizeof(struct ms_put_ent), len;
	uint8_t *p;

	if (n < 1 || n > MS_PUT_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		if (lens[i] < 1 || lens[i] > MS_BLOB_MAX)
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++)
			if (keys[i] == keys[j])
				return -EINVAL;
		total += lens[i];
	}
	p = malloc(total);
	if (!p)
		return -ENOMEM;
	len = ms_encode_put(p, store, n, keys, blobs, lens);
	return enqueue(c, MS_PUT, 0, p, (uint32_t)len, expect_for(MS_PUT), fn, arg);
}

int ms_client_wait_room(struct ms_client *c, struct err *e)
{
	int r = 0;

	pthread_mutex_lock(&c->lock);
	while (!c->dead && !c->closing && c->queued >= MS_CLIENT_QUEUE)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->dead || c->closing)
		r = err_set(e, -EPIPE, "%s", c->dead ? c->why.msg : "client closed");
	pthread_mutex_unlock(&c->lock);
	return r;
}

int ms_client_drain(struct ms_client *c, struct err *e)
{
	int r = 0;

	pthread_mutex_lock(&c->lock);
	uint64_t target = c->submitted;
	while (c->completed < target)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->dead)
		r = err_set(e, c->why.code ? c->why.code : -EPIPE, "%s", c->why.msg);
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* ---- synchronous requests ---- */

struct waiter {
	struct ms_client *c;
	bool done;
	int status;
	char msg[MS_MSG_MAX];
	struct ms_result res;
	uint8_t *blob;           /* GET: where the blob goes */
};

static void waiter_done(void *arg, const struct ms_result *r)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->c->lock);
	w->res = *r;
	w->status = r->status;
	snprintf(w->msg, sizeof(w->msg), "%s", r->msg ? r->msg : "");
	if (r->status == 0 && r->op == MS_GET && w->blob)
		memcpy(w->blob, r->blob, r->len);
	w->done = true;
	pthread_cond_broadcast(&w->c->cond);
	pthread_mutex_unlock(&w->c->lock);
}

static int wait_for(struct ms_client *c, struct waiter *w, int submitted, const char *what, struct err *e)
{
	if (submitted == -EAGAIN) {
		if (ms_client_wait_room(c, e) < 0)
			return -EPIPE;
		return 1; /* try again */
	}
	if (submitted < 0) {
		pthread_mutex_lock(&c->lock);
		if (c->dead)
			err_set(e, submitted, "%s: %s", what, c->why.msg);
		else
			err_set(e, submitted, "%s: cannot submit", what);
		pthread_mutex_unlock(&c->lock);
		return submitted;
	}
	pthread_mutex_lock(&c->lock);
	while (!w->done)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	if (w->status < 0)
		return err_set(e, w->status, "%s", w->msg);
	return 0;
}

static int sync_op(struct ms_client *c, uint16_t op, const void *payload, uint32_t len, struct waiter *w,
		   struct err *e)
{
	int r;

	w->c = c;
	do {
		r = wait_for(c, w, ms_client_submit(c, op, payload, len, waiter_done, w), ms_op_name(op), e);
	} while (r == 1);
	return r;
}

int ms_client_create(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint64_t quota, uint32_t flags,
		     struct ms_create_reply *out, struct err *e)
{
	struct ms_create q = { .quota = quota, .flags = flags };
	struct waiter w = { 0 };
	int r;

	memcpy(q.store, store, MS_STORE_ID_LEN);
	r = sync_op(c, MS_CREATE, &q, sizeof(q), &w, e);
	if (r == 0 && out)
		*out = w.res.u.create;
	return r;
}

int ms_client_put(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint32_t n, const uint64_t *keys,
		  const uint8_t *const *blobs, const uint32_t *lens, struct ms_put_reply *out, struct err *e)
{
	struct waiter w = { .c = c };
	int r, s;

	do {
		s = ms_client_put_async(c, store, n, keys, blobs, lens, waiter_done, &w);
		if (s == -EINVAL)
			return err_set(e, -EINVAL, "PUT: 1 to %u blobs of 1 to %u bytes, distinct keys", MS_PUT_MAX,
				       MS_BLOB_MAX);
		r = wait_for(c, &w, s, "PUT", e);
	} while (r == 1);
	if (r == 0 && out)
		*out = w.res.u.put;
	return r;
}

int ms_client_get(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint64_t key, uint8_t *blob,
		  uint32_t *len, struct err *e)
{
	struct waiter w = { .c = c, .blob = blob };
	int r;

	do
		r = wait_for(c, &w, ms_client_get_async(c, store, key, waiter_done, &w), "GET", e);
	while (r == 1);
	if (r == 0)
		*len = w.res.len;
	return r;
}

int ms_client_free(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], uint64_t *blobs, struct err *e)
{
	struct ms_store_req q;
	struct waiter w = { 0 };
	int r;

	memcpy(q.store, store, MS_STORE_ID_LEN);
	r = sync_op(c, MS_FREE, &q, sizeof(q), &w, e);
	if (r == 0 && blobs)
		*blobs = w.res.u.freed.blobs;
	return r;
}

static int store_op(struct ms_client *c, uint16_t op, const uint8_t store[MS_STORE_ID_LEN], struct ms_stat_reply *out,
		    struct err *e)
{
	struct ms_store_req q;
	struct waiter w = { 0 };
	int r;

	memcpy(q.store, store, MS_STORE_ID_LEN);
	r = sync_op(c, op, &q, sizeof(q), &w, e);
	if (r == 0 && out)
		*out = w.res.u.stat;
	return r;
}

int ms_client_stat(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], struct ms_stat_reply *out,
		   struct err *e)
{
	return store_op(c, MS_STAT, store, out, e);
}

int ms_client_adopt(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], struct ms_stat_reply *out,
		    struct err *e)
{
	return store_op(c, MS_ADOPT, store, out, e);
}

int ms_client_decline(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], struct err *e)
{
	return store_op(c, MS_DECLINE, store, NULL, e);
}

int ms_client_grant(struct ms_client *c, const uint8_t store[MS_STORE_ID_LEN], const uint8_t grantee[MS_FP_LEN],
		    uint32_t ttl_s, struct ms_stat_reply *out, struct err *e)
{
	struct ms_grant q = { .ttl_s = ttl_s };
	struct waiter w = { 0 };
	int r;

	memcpy(q.store, store, MS_STORE_ID_LEN);
	memcpy(q.grantee, grantee, MS_FP_LEN);
	r = sync_op(c, MS_GRANT, &q, sizeof(q), &w, e);
	if (r == 0 && out)
		*out = w.res.u.stat;
	return r;
}

int ms_client_ping(struct ms_client *c, uint64_t *rtt_ns, struct err *e)
{
	struct ms_ping q = { mono_ns() };
	struct waiter w = { 0 };
	int r = sync_op(c, MS_PING, &q, sizeof(q), &w, e);

	if (r == 0 && w.res.u.ping.ns != q.ns)
		r = err_set(e, -EPROTO, "the memory server echoed another PING");
	if (r == 0 && rtt_ns)
		*rtt_ns = mono_ns() - q.ns;
	return r;
}

/* ---- connection ---- */

static int hello(struct ms_client *c, struct err *e)
{
	struct {
		struct ms_hdr h;
		struct ms_hello b;
	} q = { { .op = MS_HELLO, .len = sizeof(struct ms_hello), .tag = 0 }, { .proto = MS_PROTO_VERSION } };
	struct ms_hdr h;
	int r;

	r = chan_write(c->ch, &q, sizeof(q), e);
	if (r == 0)
		r = chan_read_full(c->ch, &h, sizeof(h), e);
	if (r < 0)
		return err_wrap(e, "memory server HELLO");
	if (h.len > MS_GET_REPLY_MAX || !ms_reply_len_ok(MS_HELLO, h.op, h.len) || h.tag != 0)
		return err_set(e, -EPROTO, "not a memory server (answered HELLO with %s of %u bytes)", ms_op_name(h.op),
			       h.len);
	r = chan_read_full(c->ch, c->abuf, h.len, e);
	if (r < 0)
		return r;
	if (h.op == MS_ERROR) {
		struct ms_error *er = (struct ms_error *)c->abuf;
		ms_error_fix(er);
		return err_set(e, er->status < 0 && er->status > -4096 ? er->status : -EPROTO,
			       "the memory server refused this client: %s", er->msg);
	}
	{
		const struct ms_hello_reply *hr = (const struct ms_hello_reply *)c->abuf;
		if (hr->proto != MS_PROTO_VERSION || hr->blob_max != MS_BLOB_MAX)
			return err_set(e, -EPROTONOSUPPORT, "the memory server speaks protocol %u (blobs of %u bytes); this client %u (%u)",
				       hr->proto, hr->blob_max, MS_PROTO_VERSION, MS_BLOB_MAX);
		memcpy(c->info.host_id, hr->host_id, 16);
		memcpy(c->info.boot_id, hr->boot_id, 16);
		c->info.capacity = hr->capacity;
		c->info.free = hr->free;
	}
	return 0;
}

int ms_client_connect(const char *uri, const char *tls_dir, int timeout_ms, struct ms_client **out, struct err *e)
{
	struct ms_client *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return err_set(e, -ENOMEM, "memory server client");
	c->timeout_ms = timeout_ms;
	c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->abuf = aligned_alloc(8, MS_GET_REPLY_MAX + 8);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (c->evfd < 0 || !c->abuf) {
		r = err_set(e, -ENOMEM, "memory server client");
		goto fail;
	}
	r = chan_connect(uri, tls_dir, timeout_ms, &c->ch, e);
	if (r < 0)
		goto fail;
	chan_set_timeout(c->ch, timeout_ms > 0 ? timeout_ms : 0);
	snprintf(c->info.name, sizeof(c->info.name), "%s", chan_kind(c->ch) == CHAN_TLS ? chan_peer_name(c->ch) : uri);
	if (chan_kind(c->ch) == CHAN_TLS && (r = chan_peer_fingerprint(c->ch, c->info.fp, e)) < 0)
		goto fail;
	r = hello(c, e);
	if (r < 0)
		goto fail;
	if (pthread_create(&c->io, NULL, io_thread, c)) {
		r = err_set(e, -ENOMEM, "cannot start the memory server client's thread");
		goto fail;
	}
	c->io_started = true;
	*out = c;
	return 0;
fail:
	ms_client_close(c);
	return r;
}

const struct ms_server_info *ms_client_info(struct ms_client *c)
{
	return &c->info;
}

bool ms_client_ok(struct ms_client *c, struct err *e)
{
	bool ok;

	pthread_mutex_lock(&c->lock);
	ok = !c->dead;
	if (!ok && e)
		*e = c->why;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

void ms_client_close(struct ms_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	pthread_mutex_unlock(&c->lock);
	if (c->io_started) {
		if (c->ch)
			chan_shutdown(c->ch); /* a blocked read or write returns */
		wake(c);
		pthread_join(c->io, NULL);
	}
	fail_all(c, -ECANCELED, "the memory server client was closed");
	chan_close(c->ch);
	if (c->evfd >= 0)
		close(c->evfd);
	free(c->abuf);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}
