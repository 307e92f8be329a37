/* tamper_proxy: a TCP man-in-the-middle for the migration tests. It relays every
 * connection to a target and tampers, exactly and deterministically, with the
 * client->server bytes of the FIRST connection only (later ones, e.g. outcome
 * queries, pass through untouched). It runs until killed.
 *
 * usage: tamper_proxy [--port-file F] LISTEN_PORT TARGET_HOST:TARGET_PORT ACTION
 *   none | flip:OFFSET | cut:OFFSET | truncate:OFFSET | inject:OFFSET:HEX
 *   | drop:N | dup:N | swap:N
 * Offsets count client->server bytes of the first connection as the client sent
 * them. Records are TLS records when the stream starts with 0x16 (handshake),
 * else sealvm sections (24-byte header, len payload bytes, 8-byte trailer).
 *
 * stderr (one line each, all starting "tamper: "): the action when it takes
 * effect; "first connection closed after N bytes client->server" when it ends (or
 * when the proxy is killed first); "action not applied" if it never took effect. */
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#define BUF_SIZE (256 * 1024)      /* read size, and the most we queue before reading again */
#define HOLD_MAX (8u << 20)        /* one held record; a full PAGES section is ~4.2 MiB */
#define TLS_HDR 5
#define TLS_HANDSHAKE 0x16
#define SEC_HDR 24
#define SEC_TRAILER 8
#define CUT_DRAIN_MS 10000         /* how long a cut waits for the server to take the prefix */

enum act_kind { ACT_NONE, ACT_FLIP, ACT_CUT, ACT_TRUNCATE, ACT_DROP, ACT_DUP, ACT_SWAP, ACT_INJECT };

struct action {
	enum act_kind kind;
	uint64_t arg;              /* OFFSET, or record number N */
	uint8_t *inj;              /* inject: the bytes */
	size_t inj_len;
};

/* ---- output ---- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One write per line, so lines from different connections do not interleave. */
static void say(const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "tamper: ");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	if (write(STDERR_FILENO, line, strlen(line)) < 0) {
		/* nowhere left to report it */
	}
}

/* ---- byte queue ---- */

struct bq {
	uint8_t *p;
	size_t head, len, cap;
};

/* Makes room for n more bytes at the tail. */
static int bq_reserve(struct bq *q, size_t n, struct err *e)
{
	size_t cap;
	uint8_t *p;

	if (q->len == 0)
		q->head = 0;
	if (q->head + q->len + n <= q->cap)
		return 0;
	if (q->head) {
		memmove(q->p, q->p + q->head, q->len);
		q->head = 0;
	}
	if (q->len + n <= q->cap)
		return 0;
	cap = q->cap ? q->cap : BUF_SIZE;
	while (cap < q->len + n)
		cap *= 2;
	p = realloc(q->p, cap);
	if (!p)
		return err_set(e, -ENOMEM, "out of memory queueing %zu bytes", q->len + n);
	q->p = p;
	q->cap = cap;
	return 0;
}

static uint8_t *bq_tail(struct bq *q)
{
	return q->p + q->head + q->len;
}

static int bq_put(struct bq *q, const void *d, size_t n, struct err *e)
{
	int r;

	if (n == 0)
		return 0;
	r = bq_reserve(q, n, e);
	if (r < 0)
		return r;
	memcpy(bq_tail(q), d, n);
	q->len += n;
	return 0;
}

static void bq_drop(struct bq *q, size_t n)
{
	q->head += n;
	q->len -= n;
	if (q->len == 0)
		q->head = 0;
}

static void bq_free(struct bq *q)
{
	free(q->p);
	memset(q, 0, sizeof(*q));
}

/* ---- the tampering filter (client->server of the first connection) ---- */

enum stream_kind { STREAM_UNKNOWN, STREAM_TLS, STREAM_SEC };

struct filter {
	const struct action *act;
	uint64_t in_off;           /* client bytes consumed */
	bool applied;              /* the action took effect */
	bool done;                 /* nothing left to do: the rest passes through */
	bool stop;                 /* cut/truncate offset reached: no more bytes to the server */
	/* record actions (drop, dup, swap) */
	enum stream_kind kind;
	uint64_t rec;              /* number of the record being parsed */
	uint64_t rec_off;          /* its offset in the stream */
	uint64_t rec_left;         /* its bytes still to come after the header */
	bool in_body;
	bool held;                 /* the record is held back rather than forwarded */
	uint8_t hdr[SEC_HDR];
	size_t hdr_have;
	struct bq hold;
	size_t first_len;          /* swap: bytes of record N at the start of hold */
	uint64_t first_off;
};

static bool is_record_action(const struct action *a)
{
	return a->kind == ACT_DROP || a->kind == ACT_DUP || a->kind == ACT_SWAP;
}

static size_t hdr_size(const struct filter *f)
{
	return f->kind == STREAM_TLS ? TLS_HDR : SEC_HDR;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Bytes after the header, or -ERANGE for a length no stream can have. */
static int body_size(const struct filter *f, uint64_t *body)
{
	uint64_t len;

	if (f->kind == STREAM_TLS) {
		*body = (uint64_t)f->hdr[3] << 8 | f->hdr[4];
		return 0;
	}
	len = le64(f->hdr + 16);
	if (len > UINT64_MAX - SEC_HDR - SEC_TRAILER)
		return -ERANGE;
	*body = len + SEC_TRAILER;
	return 0;
}

static bool is_target(const struct filter *f)
{
	const struct action *a = f->act;

	return f->rec == a->arg || (a->kind == ACT_SWAP && a->arg != UINT64_MAX && f->rec == a->arg + 1);
}

/* Releases whatever is held back, unchanged, and stops tampering. */
static int give_up(struct filter *f, struct bq *out, struct err *e)
{
	int r = bq_put(out, f->hold.p + f->hold.head, f->hold.len, e);

	if (r == 0 && !f->in_body)
		r = bq_put(out, f->hdr, f->hdr_have, e);
	f->hdr_have = 0;
	bq_free(&f->hold);
	f->done = true;
	return r;
}

static int begin_record(struct filter *f, struct bq *out, struct err *e)
{
	size_t hl = hdr_size(f);
	uint64_t body;

	f->rec_off = f->in_off - hl;
	if (body_size(f, &body) < 0 || (is_target(f) && body > HOLD_MAX - hl)) {
		say("error: record %llu at offset %llu claims more than the %u-byte bound on a "
		    "held record; passing the rest through untouched",
		    (unsigned long long)f->rec, (unsigned long long)f->rec_off, HOLD_MAX);
		return give_up(f, out, e);
	}
	f->held = is_target(f);
	f->in_body = true;
	f->rec_left = body;
	f->hdr_have = 0;
	return bq_put(f->held ? &f->hold : out, f->hdr, hl, e);
}

/* Record N+1 of a swap is complete: send it, then N. */
static int finish_swap(struct filter *f, struct bq *out, struct err *e)
{
	const uint8_t *h = f->hold.p + f->hold.head;
	size_t second = f->hold.len - f->first_len;
	int r;

	r = bq_put(out, h + f->first_len, second, e);
	if (r == 0)
		r = bq_put(out, h, f->first_len, e);
	if (r < 0)
		return r;
	say("swap records %llu and %llu (%zu and %zu bytes) at offset %llu",
	    (unsigned long long)f->act->arg, (unsigned long long)f->rec, f->first_len, second,
	    (unsigned long long)f->first_off);
	return 0;
}

/* A held record is complete: apply the action to it. */
static int act_on_held(struct filter *f, struct bq *out, struct err *e)
{
	const uint8_t *h = f->hold.p + f->hold.head;
	size_t n = f->hold.len;
	int r = 0;

	switch (f->act->kind) {
	case ACT_DROP:
		say("drop record %llu (%zu bytes) at offset %llu", (unsigned long long)f->rec, n,
		    (unsigned long long)f->rec_off);
		break;
	case ACT_DUP:
		r = bq_put(out, h, n, e);
		if (r == 0)
			r = bq_put(out, h, n, e);
		if (r == 0)
			say("dup record %llu (%zu bytes) at offset %llu", (unsigned long long)f->rec, n,
			    (unsigned long long)f->rec_off);
		break;
	case ACT_SWAP:
		if (f->rec == f->act->arg) {
			f->first_len = n;
			f->first_off = f->rec_off;
			return 0;     /* keep holding until N+1 is complete */
		}
		r = finish_swap(f, out, e);
		break;
	default:
		break;
	}
	bq_free(&f->hold);
	f->applied = true;
	f->done = true;
	return r;
}

static int end_record(struct filter *f, struct bq *out, struct err *e)
{
	int r = 0;

	f->in_body = false;
	if (f->held)
		r = act_on_held(f, out, e);
	f->held = false;
	f->rec++;
	return r;
}

/* Gathers a header; returns the bytes consumed. */
static size_t take_header(struct filter *f, const uint8_t *d, size_t n)
{
	size_t k;

	if (f->kind == STREAM_UNKNOWN) {
		f->kind = d[0] == TLS_HANDSHAKE ? STREAM_TLS : STREAM_SEC;
		say("first connection carries %s", f->kind == STREAM_TLS ? "TLS records" : "sealvm sections");
	}
	k = hdr_size(f) - f->hdr_have;
	if (k > n)
		k = n;
	memcpy(f->hdr + f->hdr_have, d, k);
	f->hdr_have += k;
	f->in_off += k;
	return k;
}

static int feed_records(struct filter *f, const uint8_t *d, size_t n, struct bq *out, struct err *e)
{
	while (n > 0 && !f->done) {
		size_t k;
		int r = 0;

		if (!f->in_body) {
			k = take_header(f, d, n);
			if (f->hdr_have == hdr_size(f))
				r = begin_record(f, out, e);
		} else {
			k = f->rec_left < n ? f->rec_left : n;
			r = bq_put(f->held ? &f->hold : out, d, k, e);
			f->rec_left -= k;
			f->in_off += k;
		}
		if (r == 0 && f->in_body && f->rec_left == 0)
			r = end_record(f, out, e);
		if (r < 0)
			return r;
		d += k;
		n -= k;
	}
	f->in_off += n;
	return bq_put(out, d, n, e);
}

/* The cut/truncate offset is reached: the connection loop carries it out. */
static void reach_stop(struct filter *f)
{
	f->stop = true;
	f->done = true;
}

static int feed_offset(struct filter *f, uint8_t *d, size_t n, struct bq *out, struct err *e)
{
	const struct action *a = f->act;
	uint64_t k = a->arg - f->in_off;     /* where the offset falls in this chunk */
	int r;

	if (f->stop) {                       /* truncated: the rest is dropped */
		f->in_off += n;
		return 0;
	}
	if (f->done || a->arg < f->in_off || k >= n) {
		f->in_off += n;
		return bq_put(out, d, n, e);
	}
	if (a->kind == ACT_FLIP) {
		say("flip byte at offset %llu (0x%02x -> 0x%02x)", (unsigned long long)a->arg, d[k], d[k] ^ 1);
		d[k] ^= 1;
		f->applied = f->done = true;
		f->in_off += n;
		return bq_put(out, d, n, e);
	}
	r = bq_put(out, d, k, e);
	if (r == 0 && a->kind == ACT_INJECT) {
		r = bq_put(out, a->inj, a->inj_len, e);
		say("inject %zu bytes at offset %llu", a->inj_len, (unsigned long long)a->arg);
		f->applied = f->done = true;
		if (r == 0)
			r = bq_put(out, d + k, n - k, e);
	} else {
		reach_stop(f);
	}
	f->in_off += n;
	return r;
}

/* An offset that falls between chunks (0, the end of a chunk, the end of the
 * stream) takes effect at once: a client waiting for an answer must not delay it. */
static int filter_at_boundary(struct filter *f, struct bq *out, struct err *e)
{
	const struct action *a = f->act;
	bool offset_action = a->kind == ACT_CUT || a->kind == ACT_TRUNCATE || a->kind == ACT_INJECT;

	if (!offset_action || f->done || f->in_off != a->arg)
		return 0;
	if (a->kind == ACT_CUT || a->kind == ACT_TRUNCATE)
		reach_stop(f);
	if (a->kind == ACT_INJECT) {
		say("inject %zu bytes at offset %llu", a->inj_len, (unsigned long long)a->arg);
		f->applied = f->done = true;
		return bq_put(out, a->inj, a->inj_len, e);
	}
	return 0;
}

/* Takes a chunk of client bytes (may change them in place) and queues what the
 * server should get. */
static int filter_feed(struct filter *f, uint8_t *d, size_t n, struct bq *out, struct err *e)
{
	int r;

	if (is_record_action(f->act))
		return feed_records(f, d, n, out, e);
	if (f->act->kind == ACT_NONE) {
		f->in_off += n;
		return bq_put(out, d, n, e);
	}
	r = feed_offset(f, d, n, out, e);
	return r < 0 ? r : filter_at_boundary(f, out, e);
}

/* The client shut down writing: release anything held back, unchanged. */
static int filter_eof(struct filter *f, struct bq *out, struct err *e)
{
	int r = filter_at_boundary(f, out, e);

	if (r == 0 && is_record_action(f->act) && !f->done)
		r = give_up(f, out, e);
	return r;
}

/* ---- relaying ---- */

/* What the first connection did, for the summary (also printed if killed first). */
static struct {
	pthread_mutex_t lock;
	bool started, summarized;
	uint64_t in, sent;
	bool applied;
} first = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const struct action *g_act;
static struct sockaddr_storage g_target;
static socklen_t g_target_len;

struct dir {
	int src, dst;
	struct bq out;
	struct filter *f;          /* NULL: pass through */
	bool eof;                  /* src sent EOF (or is no longer read) */
	bool shut;                 /* dst was shut down for writing */
	bool broken;               /* writing to dst failed */
	uint64_t in, sent;
};

struct conn {
	int client, server;
	unsigned long no;          /* 1 for the first connection */
	struct dir c2s, s2c;
	struct filter f;
	uint8_t *scratch;
	bool reset;                /* end abortively (RST) */
	bool cutting;
	long long cut_deadline;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_cut(const struct conn *c)
{
	return c->c2s.f && c->f.stop && c->f.act->kind == ACT_CUT;
}

static bool can_read(const struct conn *c, const struct dir *d)
{
	return !d->eof && !d->broken && d->out.len < BUF_SIZE && !(d == &c->c2s && is_cut(c));
}

static bool dir_finished(const struct dir *d)
{
	return d->broken || (d->eof && d->shut && d->out.len == 0);
}

static void note_first(const struct conn *c)
{
	if (c->no != 1)
		return;
	pthread_mutex_lock(&first.lock);
	first.in = c->c2s.in;
	first.sent = c->c2s.sent;
	first.applied = c->f.applied;
	pthread_mutex_unlock(&first.lock);
}

/* Sends what is queued; a failure means dst is gone, so stop reading src too. */
static void dir_write(struct dir *d)
{
	while (d->out.len && !d->broken) {
		ssize_t n = send(d->dst, d->out.p + d->out.head, d->out.len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			d->broken = true;
			d->eof = true;
			bq_drop(&d->out, d->out.len);
			return;
		}
		bq_drop(&d->out, n);
		d->sent += n;
	}
}

/* Reads one chunk: straight into the queue when passing through, else via the filter. */
static int dir_read(struct conn *c, struct dir *d, struct err *e)
{
	uint8_t *buf = c->scratch;
	ssize_t n;
	int r;

	if (!d->f) {
		r = bq_reserve(&d->out, BUF_SIZE, e);
		if (r < 0)
			return r;
		buf = bq_tail(&d->out);
	}
	do
		n = recv(d->src, buf, BUF_SIZE, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0)
		return err_sys(e, -errno, "%s reset the connection", d == &c->c2s ? "client" : "server");
	d->in += n;
	if (n == 0) {
		d->eof = true;
		return d->f ? filter_eof(d->f, &d->out, e) : 0;
	}
	if (!d->f) {
		d->out.len += n;
		return 0;
	}
	return filter_feed(d->f, buf, n, &d->out, e);
}

/* Passes EOF on once everything before it is out; a truncate ends the stream early. */
static void dir_pass_eof(struct conn *c, struct dir *d)
{
	bool trunc = d->f && d->f->stop && d->f->act->kind == ACT_TRUNCATE;

	if (d->shut || d->broken || d->out.len || !(d->eof || trunc))
		return;
	shutdown(d->dst, SHUT_WR);
	d->shut = true;
	if (trunc && !d->f->applied) {
		d->f->applied = true;
		say("truncate at offset %llu (server sees EOF; the client's further bytes are dropped)",
		    (unsigned long long)d->f->act->arg);
	}
}

/* Bytes the server's kernel has not acknowledged yet: a reset would discard them,
 * so a cut waits for 0 to land after exactly OFFSET bytes. */
static int server_unsent(int fd)
{
	int unsent = 0;

	return ioctl(fd, SIOCOUTQ, &unsent) < 0 ? 0 : unsent;
}

/* A cut waits for the prefix to reach the server, then resets both sides. */
static bool cut_now(struct conn *c)
{
	int unsent;

	if (!is_cut(c) || c->c2s.out.len || c->c2s.broken)
		return is_cut(c) && c->c2s.broken;
	if (!c->cutting) {
		c->cutting = true;
		c->cut_deadline = now_ms() + CUT_DRAIN_MS;
	}
	unsent = server_unsent(c->server);
	if (unsent && now_ms() < c->cut_deadline)
		return false;
	c->f.applied = true;
	if (unsent)
		say("cut at offset %llu (both connections reset; the server had not taken the last %d "
		    "bytes after %d ms)", (unsigned long long)c->f.act->arg, unsent, CUT_DRAIN_MS);
	else
		say("cut at offset %llu (both connections reset)", (unsigned long long)c->f.act->arg);
	return true;
}

static short events_for(const struct conn *c, int fd)
{
	short ev = 0;

	if ((fd == c->client && can_read(c, &c->c2s)) || (fd == c->server && can_read(c, &c->s2c)))
		ev |= POLLIN;
	if ((fd == c->server && c->c2s.out.len) || (fd == c->client && c->s2c.out.len))
		ev |= POLLOUT;
	return ev;
}

static int relay_step(struct conn *c, struct dir *d, short rev, struct err *e)
{
	int r = 0;

	if ((rev & (POLLIN | POLLHUP | POLLERR)) && can_read(c, d))
		r = dir_read(c, d, e);
	dir_write(d);
	dir_pass_eof(c, d);
	return r;
}

/* Relays both directions until both have ended, or one side resets. */
static int relay(struct conn *c, struct err *e)
{
	while (!(dir_finished(&c->c2s) && dir_finished(&c->s2c))) {
		struct pollfd p[2] = {
			{ .fd = c->client, .events = events_for(c, c->client) },
			{ .fd = c->server, .events = events_for(c, c->server) },
		};
		int r;

		if (cut_now(c)) {
			c->reset = true;
			return 0;
		}
		r = poll(p, 2, c->cutting ? 5 : -1);
		if (r < 0 && errno != EINTR)
			return err_sys(e, -errno, "poll");
		if (r <= 0)
			continue;
		r = relay_step(c, &c->c2s, p[0].revents, e);
		if (r == 0)
			r = relay_step(c, &c->s2c, p[1].revents, e);
		note_first(c);
		if (r < 0)
			return r;
	}
	return 0;
}

static void set_nonblocking(int fd)
{
	int one = 1;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* forward small writes at once rather than wait for Nagle */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void close_conn(int fd, bool reset)
{
	if (fd < 0)
		return;
	if (reset) {
		struct linger l = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(fd);
}

static int connect_target(struct err *e)
{
	int fd = socket(g_target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return err_sys(e, -errno, "socket");
	while (connect(fd, (struct sockaddr *)&g_target, g_target_len) < 0) {
		int r = -errno;
		if (r == -EINTR)
			continue;
		close(fd);
		return err_sys(e, r, "cannot connect to the target");
	}
	return fd;
}

static void summarize_first(bool killed)
{
	pthread_mutex_lock(&first.lock);
	if (!first.summarized) {
		first.summarized = true;
		if (!first.started)
			say("no connection was made%s", killed ? " before the proxy was stopped" : "");
		else
			say("first connection closed after %llu bytes client->server (%llu reached the server)%s",
			    (unsigned long long)first.in, (unsigned long long)first.sent,
			    killed ? " [proxy stopped while it was open]" : "");
		if (!first.applied && g_act->kind != ACT_NONE)
			say("action not applied");
	}
	pthread_mutex_unlock(&first.lock);
}

static void conn_setup(struct conn *c)
{
	c->c2s = (struct dir){ .src = c->client, .dst = c->server };
	c->s2c = (struct dir){ .src = c->server, .dst = c->client };
	if (c->no == 1) {
		c->f = (struct filter){ .act = g_act };
		c->c2s.f = &c->f;
	}
}

static int conn_run(struct conn *c, struct err *e)
{
	int r;

	c->scratch = malloc(BUF_SIZE);
	if (!c->scratch)
		return err_set(e, -ENOMEM, "out of memory");
	r = connect_target(e);
	if (r < 0)
		return r;
	c->server = r;
	conn_setup(c);
	set_nonblocking(c->client);
	set_nonblocking(c->server);
	if (c->c2s.f) {
		r = filter_at_boundary(&c->f, &c->c2s.out, e);
		if (r < 0)
			return r;
	}
	return relay(c, e);
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	struct err e = { 0 };
	int r = conn_run(c, &e);

	if (r < 0) {
		say("connection %lu: %s", c->no, e.msg);
		c->reset = true;
	}
	close_conn(c->client, c->reset || c->c2s.broken || c->s2c.broken);
	close_conn(c->server, c->reset || c->c2s.broken || c->s2c.broken);
	note_first(c);
	if (c->no == 1)
		summarize_first(false);
	else
		say("connection %lu closed (%llu bytes client->server, %llu server->client)", c->no,
		    (unsigned long long)c->c2s.in, (unsigned long long)c->s2c.in);
	bq_free(&c->c2s.out);
	bq_free(&c->s2c.out);
	bq_free(&c->f.hold);
	free(c->scratch);
	free(c);
	return NULL;
}

static int spawn_conn(int client, unsigned long no, struct err *e)
{
	struct conn *c = calloc(1, sizeof(*c));
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	c->client = client;
	c->server = -1;
	c->no = no;
	if (no == 1) {
		pthread_mutex_lock(&first.lock);
		first.started = true;
		pthread_mutex_unlock(&first.lock);
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, conn_thread, c);
	pthread_attr_destroy(&attr);
	if (r) {
		free(c);
		return err_sys(e, -r, "pthread_create");
	}
	return 0;
}

/* ---- setup ---- */

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || (*end && *end != ':') ? -EINVAL : 0;
}

static int parse_hex(const char *s, struct action *a, struct err *e)
{
	size_t n = strlen(s);

	if (n == 0 || n % 2)
		return err_set(e, -EINVAL, "inject needs an even, non-empty number of hex digits");
	a->inj = malloc(n / 2);
	if (!a->inj)
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int b;
		if (sscanf(s + 2 * i, "%2x", &b) != 1 || !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i + 1]))
			return err_set(e, -EINVAL, "bad hex digits in \"%s\"", s);
		a->inj[i] = b;
	}
	a->inj_len = n / 2;
	return 0;
}

static int parse_action(const char *s, struct action *a, struct err *e)
{
	static const struct { const char *name; enum act_kind kind; } names[] = {
		{ "flip:", ACT_FLIP }, { "cut:", ACT_CUT }, { "truncate:", ACT_TRUNCATE },
		{ "drop:", ACT_DROP }, { "dup:", ACT_DUP }, { "swap:", ACT_SWAP },
		{ "inject:", ACT_INJECT },
	};
	const char *colon;

	memset(a, 0, sizeof(*a));
	if (!strcmp(s, "none"))
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i].name);
		if (strncmp(s, names[i].name, n))
			continue;
		a->kind = names[i].kind;
		colon = strchr(s + n, ':');
		if (parse_u64(s + n, &a->arg) < 0 || (colon != NULL) != (a->kind == ACT_INJECT))
			return err_set(e, -EINVAL, "bad action \"%s\"", s);
		return a->kind == ACT_INJECT ? parse_hex(colon + 1, a, e) : 0;
	}
	return err_set(e, -EINVAL, "unknown action \"%s\"", s);
}

static int resolve_target(const char *s, struct err *e)
{
	char host[256];
	const char *colon = strrchr(s, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	size_t n;
	int r;

	if (!colon || colon == s || !colon[1])
		return err_set(e, -EINVAL, "target \"%s\" is not HOST:PORT", s);
	n = colon - s;
	if (s[0] == '[' && colon[-1] == ']') {     /* [v6 address]:port */
		s++;
		n -= 2;
	}
	if (n >= sizeof(host))
		return err_set(e, -EINVAL, "target host too long");
	memcpy(host, s, n);
	host[n] = 0;
	r = getaddrinfo(host, colon + 1, &hints, &res);
	if (r)
		return err_set(e, -EINVAL, "cannot resolve \"%s\": %s", host, gai_strerror(r));
	memcpy(&g_target, res->ai_addr, res->ai_addrlen);
	g_target_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int listen_on(unsigned int port, unsigned int *bound, struct err *e)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return err_sys(e, -errno, "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		int r = -errno;
		close(fd);
		return err_sys(e, r, "cannot listen on 127.0.0.1:%u", port);
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

/* Written to a temporary name and renamed, so a reader never sees half a line. */
static int write_port_file(const char *path, unsigned int port, struct err *e)
{
	char tmp[4096], line[16];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	n = snprintf(line, sizeof(line), "%u\n", port);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_sys(e, -errno, "cannot create %s", tmp);
	if (write(fd, line, n) != n || close(fd) < 0) {
		int r = -errno;
		unlink(tmp);
		return err_sys(e, r ? r : -EIO, "cannot write %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		int r = -errno;
		unlink(tmp);
		return err_sys(e, r, "cannot rename %s to %s", tmp, path);
	}
	return 0;
}

/* SIGTERM/SIGINT arrive on a signalfd so the summary is printed from normal code. */
static int block_signals(struct err *e)
{
	sigset_t s;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	fd = signalfd(-1, &s, SFD_CLOEXEC);
	return fd < 0 ? err_sys(e, -errno, "signalfd") : fd;
}

/* Accepts until a signal arrives. */
static int serve(int lfd, int sfd, struct err *e)
{
	unsigned long no = 0;

	for (;;) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		int c, r;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(e, -errno, "poll");
		}
		if (p[1].revents)
			return 0;
		if (!p[0].revents)
			continue;
		c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			return err_sys(e, -errno, "accept");
		}
		r = spawn_conn(c, ++no, e);
		if (r < 0) {
			close(c);
			return r;
		}
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tamper_proxy [--port-file F] LISTEN_PORT TARGET_HOST:TARGET_PORT ACTION\n"
		"  ACTION: none | flip:OFFSET | cut:OFFSET | truncate:OFFSET | inject:OFFSET:HEX\n"
		"          | drop:N | dup:N | swap:N   (first connection, client->server only)\n");
}

int main(int argc, char **argv)
{
	static struct action act;
	const char *port_file = NULL;
	struct err e = { 0 };
	unsigned long port;
	unsigned int bound = 0;
	char *end;
	int lfd, sfd, i = 1;

	if (argc > 2 && !strcmp(argv[1], "--port-file")) {
		port_file = argv[2];
		i = 3;
	}
	if (argc - i != 3) {
		usage();
		return 2;
	}
	port = strtoul(argv[i], &end, 10);
	if (*end || end == argv[i] || port > 65535) {
		usage();
		return 2;
	}
	if (parse_action(argv[i + 2], &act, &e) < 0 || resolve_target(argv[i + 1], &e) < 0) {
		fprintf(stderr, "tamper_proxy: %s\n", e.msg);
		return 2;
	}
	g_act = &act;
	sfd = block_signals(&e);
	lfd = sfd < 0 ? sfd : listen_on(port, &bound, &e);
	if (lfd < 0 || (port_file && write_port_file(port_file, bound, &e) < 0)) {
		fprintf(stderr, "tamper_proxy: %s\n", e.msg);
		return 1;
	}
	say("listening on 127.0.0.1:%u, forwarding to %s, action %s", bound, argv[i + 1], argv[i + 2]);
	if (serve(lfd, sfd, &e) < 0) {
		fprintf(stderr, "tamper_proxy: %s\n", e.msg);
		summarize_first(true);
		return 1;
	}
	summarize_first(true);
	return 0;
}
