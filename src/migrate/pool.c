#include "migrate/pool.h"

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A connection not yet through its handshake and HELLO. fd is a dup() of its
 * socket held until the slot is released, so shutting it down to evict the
 * connection can never hit a reused descriptor number. */
struct pending {
	bool used;
	bool evicted;
	int fd;
	uint64_t since_ns;
	char addr[64];
};

#define POOL_SLOTS (2 * POOL_MAX_PENDING)  /* evicted connections hold a slot until their worker ends */

struct pool {
	struct chan_listener *l;
	int hello_ms;
	pool_dispatch_fn fn;
	struct pool_proto proto;   /* another protocol's greeting (proto.greet set), else HELLO */
	void *opaque;
	int stopfd;
	pthread_t acceptor;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pending pend[POOL_SLOTS];
	int workers;               /* running worker threads */
	bool stopping;
	uint64_t accepted, dropped;
	uint64_t log_ns, log_suppressed;
};

struct worker_arg {
	struct pool *p;
	int slot;
	int fd;
	char where[96];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One line per second at most: a flood of junk connections must not flood the log. */
static void note_drop(struct pool *p, const char *where, const char *why)
{
	uint64_t now = mono_ns();
	bool say;

	pthread_mutex_lock(&p->lock);
	p->dropped++;
	say = now - p->log_ns >= 1000000000ull;
	if (say) {
		if (p->log_suppressed)
			fprintf(stderr, "sealvm: (%llu more connections dropped)\n",
				(unsigned long long)p->log_suppressed);
		p->log_ns = now;
		p->log_suppressed = 0;
	} else {
		p->log_suppressed++;
	}
	pthread_mutex_unlock(&p->lock);
	if (say)
		fprintf(stderr, "sealvm: dropped a connection from %s: %s\n", where, why);
}

int pool_conn_send(struct pool_conn *c, uint32_t id, const void *buf, size_t len, struct err *e)
{
	struct iovec iov = { (void *)buf, len };
	int r = sec_write(&c->w, id, 1, &iov, 1, e);

	return r ? r : chan_flush(c->ch, e);
}

void pool_conn_close(struct pool_conn *c)
{
	if (!c)
		return;
	sec_writer_fini(&c->w);
	sec_reader_fini(&c->r);
	chan_close(c->ch);
	free(c);
}

static int read_hello(struct pool_conn *c, struct mig_hello *h, struct err *e)
{
	struct sec_hdr hd;
	int r = sec_read_hdr(&c->r, &hd, e);

	if (r < 0)
		return r;
	if (hd.id != SEC_HELLO)
		return err_set(e, -EPROTO, "sent %s, expected HELLO", sec_name(hd.id));
	if (hd.version != MIG_PROTO_VERSION)
		return err_set(e, -EPROTONOSUPPORT, "speaks migration protocol %u; this sealvm speaks %u", hd.version,
			       MIG_PROTO_VERSION);
	r = sec_read_exact(&c->r, &hd, h, sizeof(*h), e);
	if (r == 0 && h->proto != MIG_PROTO_VERSION)
		r = err_set(e, -EPROTONOSUPPORT, "speaks migration protocol %u; this sealvm speaks %u", h->proto,
			    MIG_PROTO_VERSION);
	if (r == 0 && h->kind > MIG_KIND_JOIN)
		r = err_set(e, -EPROTO, "unknown HELLO kind %u", h->kind);
	return r;
}

static void release_slot(struct pool *p, int slot)
{
	pthread_mutex_lock(&p->lock);
	if (p->pend[slot].fd >= 0)
		close(p->pend[slot].fd);
	p->pend[slot] = (struct pending){ .fd = -1 };
	pthread_mutex_unlock(&p->lock);
}

static void *worker(void *arg)
{
	struct worker_arg *a = arg;
	struct pool *p = a->p;
	struct pool_conn *c = calloc(1, sizeof(*c));
	struct mig_hello h;
	uint64_t other[POOL_HELLO_MAX / 8];
	struct err e = { 0 };
	uint64_t t0 = mono_ns();
	int r = c ? 0 : err_set(&e, -ENOMEM, "out of memory");

	if (r == 0) {
		snprintf(c->where, sizeof(c->where), "%s", a->where);
		r = chan_handshake(p->l, a->fd, a->where, p->hello_ms, &c->ch, &e);
	} else {
		close(a->fd);
	}
	if (r == 0) {
		/* whatever is left of the deadline bounds the HELLO too */
		int64_t left = (int64_t)p->hello_ms - (int64_t)((mono_ns() - t0) / 1000000);
		chan_set_timeout(c->ch, left > 0 ? (int)left : 1);
		if (p->proto.greet) {
			if (chan_kind(c->ch) == CHAN_TLS)
				r = chan_peer_fingerprint(c->ch, c->fp, &e);
			snprintf(c->peer, sizeof(c->peer), "%s", chan_peer_name(c->ch));
			if (r == 0)
				r = p->proto.greet(p->opaque, c, other, &e);
		} else {
			if (sec_writer_init(&c->w, chan_bstream(c->ch), &e) < 0 ||
			    sec_reader_init(&c->r, chan_bstream(c->ch), &e) < 0)
				r = -ENOMEM;
			if (r == 0 && chan_kind(c->ch) == CHAN_TLS)
				r = chan_peer_fingerprint(c->ch, c->fp, &e);
			if (r == 0) {
				snprintf(c->peer, sizeof(c->peer), "%s", chan_peer_name(c->ch));
				r = read_hello(c, &h, &e);
			}
		}
	}
	release_slot(p, a->slot);
	if (r == 0) {
		chan_set_timeout(c->ch, 0);
		if (p->proto.greet)
			p->proto.dispatch(p->opaque, c, other);  /* owns c now */
		else
			p->fn(p->opaque, c, &h);  /* owns c now */
	} else {
		note_drop(p, a->where, e.msg);
		if (r == -EPROTONOSUPPORT && !p->proto.greet && c && c->ch) {
			/* say so in a form every version reads: a HELLO_ACK naming ours */
			struct mig_hello_ack ack = { .proto = MIG_PROTO_VERSION, .status = MIG_REFUSE };
			snprintf(ack.reason, sizeof(ack.reason), "the source %s", e.msg);
			chan_set_timeout(c->ch, 500);
			pool_conn_send(c, SEC_HELLO_ACK, &ack, sizeof(ack), NULL);
		}
		if (c && c->ch) {
			sec_writer_fini(&c->w);
			sec_reader_fini(&c->r);
			chan_close(c->ch);
		}
		free(c);
	}
	pthread_mutex_lock(&p->lock);
	p->workers--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	free(a);
	return NULL;
}

/* Under lock: a free slot for a connection from addr, first evicting the oldest
 * pending connection (from that address when it is the per-address bound) when
 * a bound is reached. */
static int take_slot(struct pool *p, const char *addr)
{
	int i, live = 0, n_addr = 0, oldest = -1, oldest_addr = -1, free_slot = -1;

	for (i = 0; i < POOL_SLOTS; i++) {
		struct pending *q = &p->pend[i];
		if (!q->used) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (q->evicted)
			continue;
		live++;
		if (oldest < 0 || q->since_ns < p->pend[oldest].since_ns)
			oldest = i;
		if (!strcmp(q->addr, addr)) {
			n_addr++;
			if (oldest_addr < 0 || q->since_ns < p->pend[oldest_addr].since_ns)
				oldest_addr = i;
		}
	}
	if (n_addr >= POOL_MAX_PER_ADDR || live >= POOL_MAX_PENDING) {
		int victim = n_addr >= POOL_MAX_PER_ADDR ? oldest_addr : oldest;
		/* its worker sees the handshake fail and releases the slot */
		shutdown(p->pend[victim].fd, SHUT_RDWR);
		p->pend[victim].evicted = true;
	}
	return free_slot;
}

static void *acceptor(void *arg)
{
	struct pool *p = arg;

	for (;;) {
		struct pollfd pf[2] = { { .fd = chan_listener_fd(p->l), .events = POLLIN },
					{ .fd = p->stopfd, .events = POLLIN } };
		struct worker_arg *a;
		struct err e = { 0 };
		char addr[64];
		pthread_t t;
		int fd, slot, r;

		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		a = calloc(1, sizeof(*a));
		if (!a)
			continue;
		r = chan_accept_fd(p->l, &fd, a->where, sizeof(a->where), addr, sizeof(addr), &e);
		if (r < 0) {
			free(a);
			if (r != -EAGAIN)
				usleep(10000); /* e.g. out of file descriptors: do not spin */
			continue;
		}
		pthread_mutex_lock(&p->lock);
		p->accepted++;
		slot = take_slot(p, addr);
		if (slot >= 0) {
			p->pend[slot] = (struct pending){ .used = true, .fd = dup(fd), .since_ns = mono_ns() };
			snprintf(p->pend[slot].addr, sizeof(p->pend[slot].addr), "%s", addr);
			p->workers++;
		}
		pthread_mutex_unlock(&p->lock);
		if (slot < 0) {
			close(fd);
			note_drop(p, a->where, "too many connections pending");
			free(a);
			continue;
		}
		a->p = p;
		a->slot = slot;
		a->fd = fd;
		if (pthread_create(&t, NULL, worker, a) == 0) {
			pthread_detach(t);
			continue;
		}
		release_slot(p, slot);
		close(fd);
		free(a);
		pthread_mutex_lock(&p->lock);
		p->workers--;
		pthread_mutex_unlock(&p->lock);
	}
	return NULL;
}

static int start(struct chan_listener *l, int hello_timeout_ms, pool_dispatch_fn fn, const struct pool_proto *proto,
		 void *opaque, struct pool **out, struct err *e)
{
	struct pool *p = calloc(1, sizeof(*p));
	int i;

	if (!p)
		return err_set(e, -ENOMEM, "connection pool");
	p->l = l;
	p->hello_ms = hello_timeout_ms;
	p->fn = fn;
	p->proto = *proto;
	p->opaque = opaque;
	for (i = 0; i < POOL_SLOTS; i++)
		p->pend[i].fd = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->stopfd = eventfd(0, EFD_CLOEXEC);
	if (p->stopfd < 0 || pthread_create(&p->acceptor, NULL, acceptor, p)) {
		if (p->stopfd >= 0)
			close(p->stopfd);
		free(p);
		return err_set(e, -ENOMEM, "cannot start the connection pool");
	}
	*out = p;
	return 0;
}

int pool_start(struct chan_listener *l, int hello_timeout_ms, pool_dispatch_fn fn, void *opaque,
	       struct pool **out, struct err *e)
{
	static const struct pool_proto migration = { 0 };

	return start(l, hello_timeout_ms, fn, &migration, opaque, out, e);
}

int pool_start_proto(struct chan_listener *l, int hello_timeout_ms, const struct pool_proto *proto, void *opaque,
		     struct pool **out, struct err *e)
{
	if (!proto->greet || !proto->dispatch)
		return err_set(e, -EINVAL, "a connection pool needs a greeting and a dispatcher");
	return start(l, hello_timeout_ms, NULL, proto, opaque, out, e);
}

void pool_stop(struct pool *p)
{
	uint64_t one = 1;
	int i;

	if (!p)
		return;
	if (write(p->stopfd, &one, sizeof(one)) < 0) {
		/* an eventfd write only fails on overflow */
	}
	pthread_join(p->acceptor, NULL);
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	for (i = 0; i < POOL_SLOTS; i++)
		if (p->pend[i].used && p->pend[i].fd >= 0)
			shutdown(p->pend[i].fd, SHUT_RDWR);
	while (p->workers > 0)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	close(p->stopfd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

void pool_counts(struct pool *p, uint64_t *accepted, uint64_t *dropped)
{
	pthread_mutex_lock(&p->lock);
	*accepted = p->accepted;
	*dropped = p->dropped;
	pthread_mutex_unlock(&p->lock);
}
