/* Source side of a live migration: pre-copy, stop and copy, then the hand-over.
 * The VM runs here until the destination has verified a complete copy; before
 * COMMIT every failure resumes it here. After COMMIT it resumes only on an
 * authenticated answer from the destination, bound to this migration and that
 * destination's state, that it never ran the VM (proto.h); a refused or reset
 * connection, a timeout or garbage prove nothing, so the VM stays paused. */
#include <openssl/rand.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "migrate/attest_phase.h"
#include "migrate/bind.h"
#include "migrate/migrate.h"
#include "migrate/proto.h"
#include "migrate/receive.h"   /* mig_fault */
#include "migrate/throttle.h"
#include "migrate/watchdog.h"
#include "state/pages.h"
#include "util/pagemap.h"
#include "vmm/snapshot.h"

double thread_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* One channel: its connection, framing and share of each round's pages. */
struct lane {
	struct src *s;
	struct chan *ch;
	struct sec_writer w;
	struct sec_reader r;
	bool framed;
	struct pages_stats ps;
	struct sec_bind bind;      /* END's key and binding for this channel's session */
	uint64_t *idx, n;          /* this round's pages for this lane */
	pthread_t thread;
	bool started;
	struct err e;
	int rc;
};

struct src {
	struct machine *m;
	const struct migrate_params *p;
	struct migrate_report *rep;
	int nlanes;
	struct lane lanes[MIG_MAX_CHANNELS];
	struct chan *ch;           /* lane 0: control records and state */
	struct sec_writer *w;
	struct sec_reader *r;
	uint64_t *bitmap, *idx;
	uint64_t populated;        /* pages populated when the migration started */
	uint8_t id[16];
	migrate_progress_fn fn;
	void *opaque;
	struct migrate_progress prog;
	/* round hand-off to the lane threads */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t gen, done;
	bool zero_markers, quit;
	bool paused;               /* stop and copy: guest memory is stable */
	bool paused_vm;            /* the operator paused the VM: it stays paused */
	bool ends_sent;            /* every lane's END went out: the destination may hold a whole copy */
	uint64_t t_ack;            /* COMMIT_ACK received */
	uint32_t round;
	struct migrate_ctl *ctl;
	struct watchdog wd;
	/* live progress inside a round (every lane adds what it sent) */
	_Atomic uint64_t round_sent;
	uint64_t round_n, round_t0, round_b0;
};

void migrate_ctl_init(struct migrate_ctl *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

void migrate_ctl_fini(struct migrate_ctl *c)
{
	pthread_mutex_destroy(&c->lock);
}

/* Stops the migration before COMMIT: every blocked channel operation returns.
 * Called with c->lock held; false if it was too late (COMMIT sent) or no
 * migration runs. The flag and the commit decision share the lock, so a
 * cancel that succeeds is one the hand-over sees before it commits. */
static bool interrupt_locked(struct migrate_ctl *c, const char *why)
{
	int i;

	if (!c->running || c->committing)
		return false;
	if (!c->interrupted) {
		c->interrupted = true;
		snprintf(c->why, sizeof(c->why), "%s", why);
		for (i = 0; i < MIG_MAX_CHANNELS; i++)
			if (c->lanes[i])
				chan_shutdown(c->lanes[i]);
	}
	return true;
}

static void interrupt(void *opaque, const char *why)
{
	struct migrate_ctl *c = opaque;

	pthread_mutex_lock(&c->lock);
	interrupt_locked(c, why);
	pthread_mutex_unlock(&c->lock);
}

int migrate_cancel(struct migrate_ctl *c, const char *why, struct err *e)
{
	int r = 0;

	pthread_mutex_lock(&c->lock);
	if (!c->running)
		r = err_set(e, -ESRCH, "no migration is running");
	else if (!interrupt_locked(c, why))
		r = err_set(e, -EBUSY, "too late to cancel: COMMIT was sent, the outcome is the destination's");
	pthread_mutex_unlock(&c->lock);
	return r;
}

static bool interrupted(struct src *s)
{
	bool r;

	pthread_mutex_lock(&s->ctl->lock);
	r = s->ctl->interrupted;
	pthread_mutex_unlock(&s->ctl->lock);
	return r;
}

/* After a failure: an interruption's reason says more than "channel shut down". */
static int why_interrupted(struct src *s, int r, struct err *e)
{
	pthread_mutex_lock(&s->ctl->lock);
	if (s->ctl->interrupted)
		r = err_set(e, -ECANCELED, "%s", s->ctl->why);
	pthread_mutex_unlock(&s->ctl->lock);
	return r;
}

static void progress(struct src *s, const char *phase)
{
	s->prog.phase = phase;
	if (s->fn)
		s->fn(s->opaque, &s->prog);
}

static int lane_expect(struct lane *l, uint32_t want, void *buf, size_t len, struct err *e);

/* Reads the next record, which must be of type want; an ABORT names the peer's reason. */
static int expect(struct src *s, uint32_t want, void *buf, size_t len, struct err *e)
{
	return lane_expect(&s->lanes[0], want, buf, len, e);
}

/* The rest of lane_expect, once the header is read. */
static int lane_expect_body(struct lane *l, const struct sec_hdr *hp, uint32_t want, void *buf, size_t len,
			    struct err *e)
{
	struct sec_hdr h = *hp;
	int r;

	if (h.id == SEC_ABORT) {
		struct mig_abort a;
		r = sec_read_exact(&l->r, &h, &a, sizeof(a), e);
		if (r < 0)
			return r;
		a.reason[sizeof(a.reason) - 1] = 0;
		return err_set(e, -ECONNABORTED, "destination aborted: %s", a.reason);
	}
	if (h.id != want)
		return err_set(e, -EPROTO, "destination sent %s, expected %s", sec_name(h.id), sec_name(want));
	return sec_read_exact(&l->r, &h, buf, len, e);
}

static int lane_expect(struct lane *l, uint32_t want, void *buf, size_t len, struct err *e)
{
	struct sec_hdr h;
	int r = sec_read_hdr(&l->r, &h, e);

	return r < 0 ? r : lane_expect_body(l, &h, want, buf, len, e);
}

/* The destination's console address (tls://HOST:PORT; an empty HOST means the host
 * this migration reached), for the VM's console clients to follow it there. */
static int console_addr(struct src *s, const struct sec_hdr *h, struct err *e)
{
	char a[512], full[300];
	const char *host = strstr(s->p->uri, "://"), *port;
	size_t i;
	int r;

	if (h->len < 8 || h->len >= sizeof(a))
		return err_set(e, -EPROTO, "destination console address of %llu bytes", (unsigned long long)h->len);
	r = sec_read_exact(s->r, h, a, h->len, e);
	if (r < 0)
		return r;
	a[h->len] = 0;
	for (i = 0; i < h->len; i++)
		if (a[i] <= 0x20 || a[i] >= 0x7f)
			return err_set(e, -EPROTO, "destination console address is not printable");
	if (strncmp(a, "tls://", 6))
		return err_set(e, -EPROTO, "destination console address is not tls://HOST:PORT");
	port = strrchr(s->p->uri, ':');
	if (a[6] == ':' && host && port && port > host + 3)
		snprintf(full, sizeof(full), "tls://%.*s%s", (int)(port - host - 3), host + 3, a + 6);
	else
		snprintf(full, sizeof(full), "%s", a);
	machine_set_successor(s->m, full);
	return 0;
}

/* READY, after the destination's console address when it has a console. */
static int expect_ready(struct src *s, struct mig_ready *ready, struct err *e)
{
	struct sec_hdr h;
	int r = sec_read_hdr(s->r, &h, e);

	if (r == 0 && h.id == SEC_CONSOLE_ADDR) {
		r = console_addr(s, &h, e);
		if (r == 0)
			r = sec_read_hdr(s->r, &h, e);
	}
	return r < 0 ? r : lane_expect_body(&s->lanes[0], &h, SEC_READY, ready, sizeof(*ready), e);
}

static int lane_send(struct lane *l, uint32_t id, const void *buf, size_t len, bool flush, struct err *e)
{
	struct iovec iov = { (void *)buf, len };
	int r = sec_write(&l->w, id, 1, &iov, 1, e);

	return r == 0 && flush ? chan_flush(l->ch, e) : r;
}

static int send_rec(struct src *s, uint32_t id, const void *buf, size_t len, bool flush, struct err *e)
{
	return lane_send(&s->lanes[0], id, buf, len, flush, e);
}

#define REFUSED_RETRY_MS 3000 /* a destination started a moment ago may not listen yet */

static int lane_open(struct src *s, struct lane *l, struct err *e)
{
	struct chan *c = NULL;
	uint64_t t0 = now_ns();
	int r;
	uint8_t fp[32];

	/* connecting is part of the hello phase: its deadline bounds it too (the
	 * watchdog can only interrupt a channel once it exists) */
	uint32_t cto = s->p->hello_timeout_ms && s->p->hello_timeout_ms < s->p->timeout_ms ? s->p->hello_timeout_ms
											       : s->p->timeout_ms;

	/* nothing is sent before HELLO, so a refused first connect is safe to retry */
	while ((r = chan_connect(s->p->uri, s->p->tls_dir, (int)cto, &c, e)) == -ECONNREFUSED &&
	       l == &s->lanes[0] && now_ns() - t0 < REFUSED_RETRY_MS * 1000000ull && !interrupted(s))
		usleep(100000);

	if (r < 0)
		return r;
	pthread_mutex_lock(&s->ctl->lock);
	l->ch = c;
	s->ctl->lanes[l - s->lanes] = c;
	if (s->ctl->interrupted) /* interrupted while connecting */
		chan_shutdown(c);
	pthread_mutex_unlock(&s->ctl->lock);
	chan_set_timeout(l->ch, (int)s->p->timeout_ms);
	l->s = s;
	/* every channel must reach the same destination certificate */
	if (chan_kind(c) == CHAN_TLS) {
		r = chan_peer_fingerprint(c, fp, e);
		if (r < 0)
			return r;
		if (l == &s->lanes[0])
			memcpy(s->ctl->q.dest_fp, fp, 32);
		else if (memcmp(fp, s->ctl->q.dest_fp, 32))
			return err_set(e, -EACCES, "channel %d reached another destination certificate than channel 0",
				       (int)(l - s->lanes));
	}
	r = sec_writer_init(&l->w, chan_bstream(l->ch), e);
	if (r == 0)
		r = sec_reader_init(&l->r, chan_bstream(l->ch), e);
	l->framed = r == 0;
	return r;
}

static int hello_on(struct lane *l, uint32_t kind, uint32_t channels, uint32_t *accepted, struct err *e)
{
	struct src *s = l->s;
	struct mig_hello h = { .proto = MIG_PROTO_VERSION, .kind = kind, .ram_size = s->m->vm.ram_size,
			       .nr_vcpus = (uint32_t)s->m->nr_vcpus, .channels = channels,
			       .populated_pages = s->populated,
			       .flags = s->paused_vm ? MIG_HELLO_PAUSED : 0 };
	struct iovec iov = { &h, sizeof(h) };
	struct mig_hello_ack a;
	uint32_t index = kind == MIG_KIND_JOIN ? channels : 0;
	int r;

	memcpy(h.id, s->id, sizeof(h.id));
	r = sec_write(&l->w, SEC_HELLO, MIG_PROTO_VERSION, &iov, 1, e);
	if (r == 0 && kind == MIG_KIND_MIGRATE) {
		progress(s, "attest");
		r = mig_trust_src_exchange(s->p->trust, l->ch, &l->w, &l->r, s->id, e);
		if (r == 0)
			progress(s, "hello");   /* admission */
	}
	if (r == 0)
		r = chan_flush(l->ch, e);
	if (r == 0)
		r = lane_expect(l, SEC_HELLO_ACK, &a, sizeof(a), e);
	if (r < 0)
		return r;
	a.reason[sizeof(a.reason) - 1] = 0;
	if (a.proto != MIG_PROTO_VERSION)
		return err_set(e, -EPROTO, "destination speaks migration protocol version %u, this sealvm %u",
			       a.proto, MIG_PROTO_VERSION);
	if (a.status != MIG_ACCEPT)
		return err_set(e, -EREMOTEIO, "destination refused: %s", a.reason);
	if (kind == MIG_KIND_MIGRATE)
		memcpy(s->ctl->q.host_id, a.host_id, 16);
	else if (memcmp(a.host_id, s->ctl->q.host_id, 16))
		return err_set(e, -EPROTO, "channel %u reached another destination host than channel 0", index);
	/* END on this channel is bound to this session and the destination's nonce */
	r = mig_bind(l->ch, s->id, a.nonce, index, &l->bind, e);
	l->w.bind = &l->bind;
	/* from here on TLS's AEAD authenticates every byte: no section checksums */
	l->w.no_checksum = l->r.no_checksum = chan_kind(l->ch) == CHAN_TLS;
	if (accepted)
		*accepted = a.channels;
	return r;
}

/* HELLO on channel 0, then the extra channels, each its own authenticated TLS
 * connection that joins this migration by id, within --hello-timeout-ms. */
static int hello(struct src *s, struct err *e)
{
	uint32_t want = s->p->channels ? s->p->channels : 1, got = 1;
	int r, i;

	if (want > MIG_MAX_CHANNELS)
		want = MIG_MAX_CHANNELS;
	r = hello_on(&s->lanes[0], MIG_KIND_MIGRATE, want, &got, e);
	if (r < 0)
		return r;
	s->ctl->q.valid = true;
	if (got < 1 || got > want)
		return err_set(e, -EPROTO, "destination accepted %u channels of %u", got, want);
	for (i = 1; i < (int)got; i++) {
		r = lane_open(s, &s->lanes[i], e);
		if (r == 0)
			r = hello_on(&s->lanes[i], MIG_KIND_JOIN, (uint32_t)i, NULL, e);
		s->nlanes = i + 1;
		if (r < 0)
			return err_wrap(e, "channel %d", i);
	}
	s->rep->channels = (uint32_t)s->nlanes;
	return 0;
}

/* Turns the dirty bitmap into a list of page indices and clears it. */
static uint64_t collect(struct src *s)
{
	uint64_t words = (s->m->vm.ram_pages + 63) / 64, n = 0, w;

	for (w = 0; w < words; w++) {
		uint64_t b = s->bitmap[w];
		while (b) {
			s->idx[n++] = w * 64 + (uint64_t)__builtin_ctzll(b);
			b &= b - 1;
		}
		s->bitmap[w] = 0;
	}
	return n;
}

/* True if the peer already hung up or sent something unasked for. */
static bool lane_peer_gone(struct lane *l)
{
	struct pollfd p = { .fd = chan_fd(l->ch), .events = POLLIN };

	return chan_pending(l->ch) > 0 || poll(&p, 1, 0) != 0;
}

static bool peer_gone(struct src *s)
{
	return lane_peer_gone(&s->lanes[0]);
}

/* The destination speaks during the stream only to abort: read its reason. */
static int check_peer(struct lane *l, struct err *e)
{
	struct mig_abort a;

	if (!lane_peer_gone(l))
		return 0;
	return lane_expect(l, SEC_ABORT, &a, sizeof(a), e) ? e->code
							: err_set(e, -EPROTO, "destination sent an unexpected record");
}

#define CHECK_EVERY 8192 /* pages (32 MiB) between looks for an ABORT */

/* When another lane broke, the destination usually said why on channel 0:
 * prefer its ABORT reason (waiting briefly) to "connection closed". */
static void abort_reason(struct src *s, struct err *e)
{
	struct lane *l = &s->lanes[0];
	struct pollfd p = { .fd = chan_fd(l->ch), .events = POLLIN };
	struct err ae = { 0 };

	if (chan_pending(l->ch) == 0 && poll(&p, 1, 1000) <= 0)
		return;
	if (check_peer(l, &ae) < 0 && strstr(ae.msg, "destination aborted"))
		*e = ae;
}

/* A ROUND marker, then this lane's pages of the round. */
/* Bytes on the wire so far, every lane (their counters are atomic). */
static uint64_t sent_bytes(struct src *s)
{
	uint64_t b = 0;
	int i;

	for (i = 0; i < s->nlanes; i++)
		if (s->lanes[i].ch)
			b += chan_bytes_sent(s->lanes[i].ch);
	return b;
}

/* During a round: what is left of it and the rate so far (channel 0 publishes). */
static void round_progress(struct src *s)
{
	uint64_t sent = atomic_load(&s->round_sent), dt = now_ns() - s->round_t0;

	s->prog.remaining_pages = sent < s->round_n ? s->round_n - sent : 0;
	if (dt > 20000000ull)
		s->prog.rate_mbps = (double)(sent_bytes(s) - s->round_b0) * 1e3 / (double)dt;
	progress(s, s->prog.phase);
}

static int lane_round(struct lane *l, uint32_t round, bool zero_markers, struct err *e)
{
	struct mig_round rd = { .round = round, .pages = l->n };
	struct src *s = l->s;
	uint64_t off;
	int r = lane_send(l, SEC_ROUND, &rd, sizeof(rd), false, e);

	for (off = 0; r == 0 && off < l->n; off += CHECK_EVERY) {
		uint64_t k = l->n - off < CHECK_EVERY ? l->n - off : CHECK_EVERY;
		/* without a checksum a page needs no staging copy: one torn while it is read
		 * was written meanwhile, so the dirty log sends it again */
		r = pages_send(&l->w, s->m->vm.ram, l->idx + off, k, zero_markers, s->paused || l->w.no_checksum,
			       &l->ps, e);
		if (r == 0)
			r = check_peer(l, e);
		atomic_fetch_add(&s->round_sent, k);
		if (l == &s->lanes[0] && !s->paused)
			round_progress(s);
	}
	return r;
}

static void *lane_thread(void *arg)
{
	struct lane *l = arg;
	struct src *s = l->s;
	uint64_t seen = 0;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->gen == seen && !s->quit)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->quit)
			break;
		seen = s->gen;
		pthread_mutex_unlock(&s->lock);
		if (l->rc == 0)
			l->rc = lane_round(l, s->round, s->zero_markers, &l->e);
		pthread_mutex_lock(&s->lock);
		s->done++;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Deals s->idx[0..n) to the lanes in 256-page batches, round-robin, so every
 * lane gets a similar mix of zero and data pages. */
static void deal(struct src *s, uint64_t n)
{
	uint64_t off;
	int i = 0;

	for (i = 0; i < s->nlanes; i++)
		s->lanes[i].n = 0;
	for (off = 0, i = 0; off < n; off += PAGES_BATCH, i = (i + 1) % s->nlanes) {
		struct lane *l = &s->lanes[i];
		uint64_t k = n - off < PAGES_BATCH ? n - off : PAGES_BATCH;
		memcpy(l->idx + l->n, s->idx + off, k * sizeof(uint64_t));
		l->n += k;
	}
}

/* Sends a round on every lane at once (lane 0 on this thread) and waits for all. */
static int send_round(struct src *s, uint32_t round, uint64_t n, bool zero_markers, struct err *e)
{
	int i, r;

	atomic_store(&s->round_sent, 0);
	s->round_n = n;
	s->round_t0 = now_ns();
	s->round_b0 = sent_bytes(s);
	if (s->nlanes == 1) {
		s->lanes[0].idx = s->idx;
		s->lanes[0].n = n;
		return lane_round(&s->lanes[0], round, zero_markers, e);
	}
	deal(s, n);
	pthread_mutex_lock(&s->lock);
	s->round = round;
	s->zero_markers = zero_markers;
	s->done = 0;
	s->gen++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	r = lane_round(&s->lanes[0], round, zero_markers, e);
	if (r < 0) /* unblock the other lanes rather than wait out their timeouts */
		for (i = 1; i < s->nlanes; i++)
			chan_shutdown(s->lanes[i].ch);
	pthread_mutex_lock(&s->lock);
	while (s->done < (uint64_t)s->nlanes - 1)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	for (i = 1; r == 0 && i < s->nlanes; i++)
		if (s->lanes[i].rc < 0) {
			*e = s->lanes[i].e;
			r = err_wrap(e, "channel %d", i);
		}
	return r;
}

static int start_lanes(struct src *s, struct err *e)
{
	int i;

	for (i = 1; i < s->nlanes; i++) {
		struct lane *l = &s->lanes[i];
		l->idx = malloc(s->m->vm.ram_pages * sizeof(uint64_t));
		if (!l->idx || pthread_create(&l->thread, NULL, lane_thread, l))
			return err_set(e, -ENOMEM, "cannot start channel %d", i);
		l->started = true;
	}
	if (s->nlanes > 1) {
		s->lanes[0].idx = malloc(s->m->vm.ram_pages * sizeof(uint64_t));
		if (!s->lanes[0].idx)
			return err_set(e, -ENOMEM, "channel buffers");
	}
	return 0;
}

static void stop_lanes(struct src *s)
{
	int i;

	pthread_mutex_lock(&s->lock);
	s->quit = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < MIG_MAX_CHANNELS; i++) {
		struct lane *l = &s->lanes[i];
		if (l->started)
			pthread_join(l->thread, NULL);
		if (l->idx != s->idx)
			free(l->idx);
		l->idx = NULL;
		if (l->framed) {
			sec_writer_fini(&l->w);
			sec_reader_fini(&l->r);
		}
		pthread_mutex_lock(&s->ctl->lock);
		s->ctl->lanes[i] = NULL;
		pthread_mutex_unlock(&s->ctl->lock);
		chan_close(l->ch);
		l->ch = NULL;
	}
}

/* Sums the lanes' page counts into the report. */
static void sum_pages(struct src *s, struct pages_stats *t)
{
	int i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < s->nlanes; i++) {
		t->data_pages += s->lanes[i].ps.data_pages;
		t->zero_pages += s->lanes[i].ps.zero_pages;
		t->markers += s->lanes[i].ps.markers;
	}
}

/* Before the pause: wait until the destination has applied everything sent so
 * far. Socket buffers hold megabytes; without this the guest would stay paused
 * while the destination works through the previous round. */
static int drain(struct src *s, uint32_t round, struct err *e)
{
	struct mig_round rd = { .round = round, .pages = 0 };
	struct mig_sync sy = { 0 }, ack;
	int i, r = 0;

	progress(s, "drain");
	for (i = s->nlanes - 1; r == 0 && i >= 0; i--) {
		r = lane_send(&s->lanes[i], SEC_ROUND, &rd, sizeof(rd), i > 0, e);
		sy.pages += s->lanes[i].ps.data_pages + s->lanes[i].ps.markers;
	}
	if (r == 0)
		r = send_rec(s, SEC_SYNC, &sy, sizeof(sy), true, e);
	return r ? r : expect(s, SEC_SYNC_ACK, &ack, sizeof(ack), e);
}

/* Stream bytes written on all lanes. */
static uint64_t wire_bytes(struct src *s)
{
	uint64_t b = 0;
	int i;

	for (i = 0; i < s->nlanes; i++)
		b += s->lanes[i].w.bytes;
	return b;
}

/* Pre-copy: everything once, then what was dirtied, until the rest fits the
 * downtime target at the rate measured, or rounds stop shrinking. Returns with
 * the pages still to send in s->idx[0..*left). */
static int precopy(struct src *s, uint64_t *left, struct err *e)
{
	struct machine *m = s->m;
	uint64_t n, best = UINT64_MAX, t, bytes0;
	uint32_t round = 0, stale = 0;
	struct throttle th;
	double rate = 0; /* bytes per ns */
	int64_t pop;
	int r;

	r = vm_dirty_log_start(&m->vm, e);
	if (r < 0)
		return r;
	throttle_init(&th, m);
	/* Round 0: every page ever populated; the destination starts zeroed, so
	 * zero pages need no marker. */
	pop = pagemap_populated(m->vm.ram, m->vm.ram_pages, s->idx, e);
	if (pop < 0)
		return (int)pop;
	s->lanes[0].ps.zero_pages += m->vm.ram_pages - (uint64_t)pop;
	n = (uint64_t)pop;
	for (;;) {
		if (machine_state(m) == MACHINE_STOPPED) {
			r = err_set(e, -ECANCELED, "the VM stopped during the migration");
			break;
		}
		if (interrupted(s)) {
			r = why_interrupted(s, -ECANCELED, e);
			break;
		}
		s->prog.round = round;
		s->prog.remaining_pages = n;
		progress(s, "precopy");
		t = now_ns();
		bytes0 = wire_bytes(s);
		r = send_round(s, round, n, round > 0, e);
		if (r < 0)
			break;
		t = now_ns() - t;
		/* small rounds are latency-bound: keep the larger-sample rate when there is one */
		if (t > 0 && wire_bytes(s) > bytes0 && (rate == 0 || wire_bytes(s) - bytes0 > (1u << 20)))
			rate = (double)(wire_bytes(s) - bytes0) / (double)t;
		s->prog.rate_mbps = rate * 1000.0;
		round++;
		r = vm_dirty_log_fetch(&m->vm, s->bitmap, e);
		if (r < 0)
			break;
		n = collect(s);
		if (n == 0 || (rate > 0 && (double)n * PAGE_SIZE / rate <= (double)s->p->downtime_ms * 1e6)) {
			s->rep->converged = true;
			break;
		}
		if (n < best) {
			best = n;
			stale = 0;
		} else if (++stale >= 2) {
			/* Not shrinking: hold the vCPU a growing share of its time
			 * (20%, then +10% a round, QEMU's auto-converge steps), up to
			 * --max-throttle; past that, stop and copy what is left. */
			int next = th.pct ? th.pct + 10 : 20;
			if (th.pct >= (int)s->p->max_throttle)
				break;
			if (next > (int)s->p->max_throttle)
				next = (int)s->p->max_throttle;
			r = throttle_set(&th, next);
			if (r < 0) {
				err_set(e, r, "cannot start the vCPU throttle");
				break;
			}
			s->rep->throttle_pct = (uint32_t)th.pct;
			s->prog.throttle_pct = (uint32_t)th.pct;
			stale = 0;
			best = n;
		}
		if (round >= s->p->max_rounds)
			break;
	}
	throttle_fini(&th);
	s->rep->rounds = round;
	*left = n;
	return r ? r : drain(s, round, e);
}

/* Paused: the last dirty pages, the device and CPU state, and an END on every
 * lane (each carries its own page count and transcript). */
static int stop_and_copy(struct src *s, uint64_t left, struct err *e)
{
	struct machine *m = s->m;
	struct pages_stats t;
	uint64_t before, n;
	int r, i;

	sum_pages(s, &t);
	before = t.data_pages + t.markers;
	/* pages dirtied since the last fetch join the ones already pending */
	for (n = 0; n < left; n++)
		s->bitmap[s->idx[n] / 64] |= 1ULL << (s->idx[n] % 64);
	r = vm_dirty_log_fetch(&m->vm, s->bitmap, e);
	if (r < 0)
		return r;
	n = collect(s);
	s->prog.remaining_pages = n;
	s->paused = true;
	progress(s, "stop-and-copy");
	r = send_round(s, s->rep->rounds, n, true, e);
	if (r == 0)
		r = machine_save_state(m, s->w, chan_kind(s->ch) == CHAN_TLS ? SAVE_MIGRATION : SAVE_MIGRATION_INSECURE, e);
	for (i = s->nlanes - 1; r == 0 && i >= 0; i--) {
		struct lane *l = &s->lanes[i];
		r = sec_write_end(&l->w, l->ps.data_pages + l->ps.markers, e);
		if (r == 0)
			r = chan_flush(l->ch, e);
	}
	s->ends_sent = r == 0;
	sum_pages(s, &t);
	s->rep->final_pages = t.data_pages + t.markers - before;
	return r;
}

int migrate_query_outcome(const struct migrate_query *q, int timeout_ms, enum mig_outcome *out,
			  char *reason, size_t n, struct err *e)
{
	struct mig_hello h = { .proto = MIG_PROTO_VERSION, .kind = MIG_KIND_QUERY };
	struct iovec iov = { &h, sizeof(h) };
	struct mig_outcome_rec o;
	struct sec_writer w;
	struct sec_reader rd;
	struct sec_hdr hd;
	struct chan *c;
	uint8_t fp[32];
	bool framed = false;
	int r;

	if (!q->valid)
		return err_set(e, -EINVAL, "nothing to ask: the destination never accepted");
	memcpy(h.id, q->id, sizeof(h.id));
	r = chan_connect(q->uri, q->tls_dir, timeout_ms, &c, e);
	if (r < 0)
		return r;
	chan_set_timeout(c, timeout_ms);
	if (chan_kind(c) == CHAN_TLS &&
	    (chan_peer_fingerprint(c, fp, e) < 0 || memcmp(fp, q->dest_fp, 32))) {
		r = err_set(e, -EACCES, "the answer would come from another certificate than the destination's");
		goto out;
	}
	r = sec_writer_init(&w, chan_bstream(c), e);
	if (r == 0) {
		r = sec_reader_init(&rd, chan_bstream(c), e);
		framed = r == 0;
	}
	if (r == 0)
		r = sec_write(&w, SEC_HELLO, MIG_PROTO_VERSION, &iov, 1, e);
	if (r == 0)
		r = chan_flush(c, e);
	if (r == 0)
		r = sec_read_hdr(&rd, &hd, e);
	if (r == 0 && hd.id != SEC_OUTCOME)
		r = err_set(e, -EPROTO, "destination answered %s to an outcome query", sec_name(hd.id));
	if (r == 0)
		r = sec_read_exact(&rd, &hd, &o, sizeof(o), e);
	if (r == 0) {
		o.reason[sizeof(o.reason) - 1] = 0;
		if (o.proto != MIG_PROTO_VERSION || memcmp(o.id, q->id, 16))
			r = err_set(e, -EPROTO, "the answer does not name this migration");
		else if (memcmp(o.host_id, q->host_id, 16))
			r = err_set(e, -EPROTO, "the answer comes from another state of the destination host (its state directory changed)");
		else if (o.outcome == MIG_OUTCOME_REFUSED)
			r = err_set(e, -EREMOTEIO, "destination could not answer: %s", o.reason);
		else if (o.outcome < MIG_OUTCOME_RUNNING || o.outcome > MIG_OUTCOME_GONE)
			r = err_set(e, -EPROTO, "unknown outcome %u", o.outcome);
	}
	if (r == 0) {
		*out = (enum mig_outcome)o.outcome;
		snprintf(reason, n, "%s", o.reason);
	}
out:
	if (framed) {
		sec_writer_fini(&w);
		sec_reader_fini(&rd);
	}
	chan_close(c);
	return r;
}

/* After an unacknowledged COMMIT: ask the destination. Only an authenticated
 * answer ends the wait; without one the VM stays paused (UNCERTAIN). */
static enum migrate_result resolve_outcome(struct src *s, struct err *e)
{
	uint64_t deadline = now_ns() + (uint64_t)s->p->outcome_wait_ms * 1000000ull;
	char why[256], last[256] = "no answer yet", reason[200];

	snprintf(why, sizeof(why), "%s", e->msg);
	progress(s, "resolve");
	for (;;) {
		enum mig_outcome o;
		struct err qe = { 0 };

		if (migrate_query_outcome(&s->ctl->q, 2000, &o, reason, sizeof(reason), &qe) == 0) {
			if (o == MIG_OUTCOME_RUNNING)
				return MIGRATE_COMMITTED;
			if (o == MIG_OUTCOME_ABORTED) {
				err_set(e, -ECONNABORTED,
					"COMMIT was not acknowledged (%s); the destination answered that it never ran the VM (%s): VM resumed here",
					why, reason);
				return MIGRATE_ABORTED;
			}
			err_set(e, -ETIMEDOUT,
				"UNCERTAIN: COMMIT was not acknowledged (%s) and the destination says the VM %s. It kept PAUSED here: resuming it (ctl resume --force) rolls it back to the hand-over point; do so only if the destination's copy is lost for good",
				why, reason);
			return MIGRATE_UNCERTAIN;
		}
		snprintf(last, sizeof(last), "%s", qe.msg);
		if (now_ns() >= deadline)
			break;
		usleep(300 * 1000);
	}
	err_set(e, -ETIMEDOUT,
		"UNCERTAIN: COMMIT was sent but not acknowledged (%s), and no authenticated answer came from the destination within %u ms (last: %s). The VM is kept PAUSED here so that it never runs twice; sealvm keeps asking. `ctl resume --force` runs it here anyway: do that only if the destination is known never to run it",
		why, s->p->outcome_wait_ms, last);
	return MIGRATE_UNCERTAIN;
}

static int handover(struct src *s, struct err *e)
{
	struct mig_ready ready;
	struct mig_commit cm = { .flags = s->paused_vm ? MIG_COMMIT_PAUSED : 0 };
	struct mig_commit_ack ack;
	struct iovec iov = { &cm, sizeof(cm) };
	int r;

	progress(s, "verify");
	r = expect_ready(s, &ready, e);
	watchdog_disarm(&s->wd);
	if (r < 0)
		return why_interrupted(s, r, e);
	s->rep->dest_load_ns = ready.load_ns;
	if (mig_fault("die-before-commit"))
		_exit(99);
	if (mig_fault("lose-link-before-commit")) {
		/* test fault: the link dies after READY and the source lives on */
		for (int i = 0; i < s->nlanes; i++)
			chan_shutdown(s->lanes[i].ch);
		return err_set(e, -ECONNRESET, "test: the link was lost after READY");
	}
	/* Last point of no return: if the peer is already gone, abort before COMMIT. */
	if (peer_gone(s))
		return err_set(e, -ECONNRESET, "destination closed the connection after READY");
	pthread_mutex_lock(&s->ctl->lock);
	if (!s->ctl->interrupted)
		s->ctl->committing = true;
	pthread_mutex_unlock(&s->ctl->lock);
	if (!s->ctl->committing)
		return why_interrupted(s, -ECANCELED, e);
	memcpy(cm.id, s->id, sizeof(cm.id));
	progress(s, "commit");
	if (getenv("SEALVM_TEST_FAULT") && !strcmp(getenv("SEALVM_TEST_FAULT"), "query-before-commit")) {
		/* test fault: a source whose COMMIT is delayed past its own query */
		enum mig_outcome o;
		char reason[200];
		if (migrate_query_outcome(&s->ctl->q, 2000, &o, reason, sizeof(reason), e) == 0)
			fprintf(stderr, "sealvm: test: asked before COMMIT, destination said %u (%s)\n", o, reason);
	}
	r = sec_write(s->w, SEC_COMMIT, 1, &iov, 1, e);
	if (r == 0)
		r = chan_flush(s->ch, e);
	if (r == 0)
		r = expect(s, SEC_COMMIT_ACK, &ack, sizeof(ack), e);
	if (r == -ECONNABORTED && strstr(e->msg, "destination aborted")) {
		/* an authenticated ABORT on this migration's own channel: it did not run */
		s->rep->result = MIGRATE_ABORTED;
		return r;
	}
	if (r < 0) {
		s->rep->result = resolve_outcome(s, e);
		return s->rep->result == MIGRATE_COMMITTED ? 0 : -ECONNABORTED;
	}
	s->t_ack = now_ns(); /* downtime ends here, not after our own clean-up */
	machine_handed_over(s->m); /* the console's clients follow now, not after our clean-up */
	s->rep->dest_resume_ns = ack.resume_ns;
	s->rep->dest_cpu_s = (double)ack.cpu_ns / 1e9;
	s->rep->result = MIGRATE_COMMITTED;
	return 0;
}

/* Running, or paused by its operator alone (it then stays paused after the hand-over). */
static int check_migratable(struct machine *m, bool *paused_vm, struct err *e)
{
	enum machine_run_state st = machine_state(m);
	unsigned held = machine_held(m);
	char names[64];

	*paused_vm = false;
	if (st == MACHINE_RUNNING)
		return 0;
	if (st == MACHINE_PAUSED && held == PAUSE_OPERATOR) {
		*paused_vm = true;
		return 0;
	}
	if (st == MACHINE_PAUSED)
		return err_set(e, -EBUSY, "cannot migrate: the VM is held paused by %s",
			       pause_holder_names(held, names, sizeof(names)));
	return err_set(e, -EINVAL, "cannot migrate a machine that is %s", machine_state_name(st));
}

int migrate_source(struct machine *m, const struct migrate_params *p, struct migrate_ctl *ctl,
		   struct migrate_report *rep, migrate_progress_fn fn, void *opaque, struct err *e)
{
	struct src s = { .m = m, .p = p, .rep = rep, .fn = fn, .opaque = opaque, .nlanes = 1, .ctl = ctl };
	struct pages_stats tot;
	uint64_t t0 = now_ns(), t_pause = 0, left = 0;
	double cpu0 = thread_cpu_s();
	bool paused = false;
	int64_t pop;
	int r;

	memset(rep, 0, sizeof(*rep));
	rep->ram_bytes = m->vm.ram_size;
	rep->result = MIGRATE_ABORTED;
	r = check_migratable(m, &s.paused_vm, e);
	if (r < 0)
		return r;
	if (!strncmp(p->uri, "tcp://", 6) && !p->insecure)
		return err_set(e, -EINVAL,
			       "%s would send the VM unencrypted and unauthenticated: use tls://, or add --insecure if that is really what you want",
			       p->uri);
	if (!strncmp(p->uri, "tcp://", 6) && machine_has_ext(m))
		return err_set(e, -EPERM, "the VM's owner console travels only inside TLS: migrate it to tls://, never tcp://");
	machine_set_successor(m, "");
	rep->paused_vm = s.paused_vm;
	s.bitmap = calloc((m->vm.ram_pages + 63) / 64, sizeof(uint64_t));
	s.idx = malloc(m->vm.ram_pages * sizeof(uint64_t));
	if (!s.bitmap || !s.idx || RAND_bytes(s.id, sizeof(s.id)) != 1) {
		free(s.bitmap);
		free(s.idx);
		return err_set(e, -ENOMEM, "migration buffers");
	}
	pop = pagemap_populated(m->vm.ram, m->vm.ram_pages, s.idx, e);
	if (pop < 0) {
		free(s.bitmap);
		free(s.idx);
		return (int)pop;
	}
	s.populated = (uint64_t)pop;
	hex_encode(s.id, 16, rep->id);
	pthread_mutex_lock(&ctl->lock);
	ctl->running = true;
	ctl->committing = ctl->interrupted = false;
	memset(&ctl->q, 0, sizeof(ctl->q));
	snprintf(ctl->q.uri, sizeof(ctl->q.uri), "%s", p->uri);
	snprintf(ctl->q.tls_dir, sizeof(ctl->q.tls_dir), "%s", p->tls_dir ? p->tls_dir : "");
	memcpy(ctl->q.id, s.id, 16);
	pthread_mutex_unlock(&ctl->lock);
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	if (watchdog_start(&s.wd, interrupt, ctl) < 0)
		r = err_set(e, -ENOMEM, "cannot start the migration watchdog");
	if (r == 0) {
		char why[128];
		progress(&s, "connect");
		snprintf(why, sizeof(why), "the destination did not admit the migration within %u ms",
			 p->hello_timeout_ms);
		watchdog_arm(&s.wd, p->hello_timeout_ms, why);
		r = lane_open(&s, &s.lanes[0], e);
		/* who may move this VM to the host this certificate names: before anything is sent */
		if (r == 0) {
			progress(&s, "policy");
			r = mig_trust_src_policy(p->trust, s.lanes[0].ch, s.id, e);
		}
	}
	if (r == 0) {
		int i;
		s.ch = s.lanes[0].ch;
		s.w = &s.lanes[0].w;
		s.r = &s.lanes[0].r;
		rep->transport = chan_kind(s.ch) == CHAN_TLS ? "tls" : "tcp (INSECURE)";
		snprintf(rep->cipher, sizeof(rep->cipher), "%s", chan_cipher(s.ch));
		progress(&s, "hello");
		r = hello(&s, e);
		rep->admit_ns = now_ns() - t0;
		watchdog_disarm(&s.wd);
		if (r == 0)
			r = start_lanes(&s, e);
		if (r == 0)
			r = precopy(&s, &left, e);
		if (r == 0) {
			char why[128];
			snprintf(why, sizeof(why), "the destination was not READY within %u ms of the pause",
				 p->ready_timeout_ms);
			t_pause = now_ns();
			machine_pause(m, PAUSE_MIGRATION);
			watchdog_arm(&s.wd, p->ready_timeout_ms, why);
			paused = true;
			/* the guest may have ended (quit, reset, debug exit) meanwhile */
			if (machine_state(m) != MACHINE_PAUSED)
				r = err_set(e, -ECANCELED, "the VM %s during the migration",
					    m->stop_reason == STOP_QUIT ? "was told to quit" : "stopped");
			else
				r = stop_and_copy(&s, left, e);
		}
		if (r == 0)
			r = handover(&s, e);
		for (i = 0; i < s.nlanes; i++) {
			rep->bytes_sent += chan_bytes_sent(s.lanes[i].ch);
			rep->bytes_received += chan_bytes_received(s.lanes[i].ch);
			rep->payload_bytes += chan_payload_sent(s.lanes[i].ch);
		}
	}
	watchdog_stop(&s.wd);
	if (r < 0 && rep->result == MIGRATE_ABORTED)
		r = why_interrupted(&s, r, e);
	sum_pages(&s, &tot);
	rep->data_pages = tot.data_pages;
	rep->zero_pages = tot.zero_pages;
	rep->zero_markers = tot.markers;
	if (m->vm.dirty_logging)
		vm_dirty_log_stop(&m->vm, NULL);
	if (r < 0 && rep->result == MIGRATE_ABORTED) {
		/* Before COMMIT (or the destination proved it never ran the VM): tell the
		 * destination why, then carry on here. */
		if (s.ch) {
			struct mig_abort a;
			/* the destination's own reason beats "broken pipe" on some channel
			 * (our own refusal, -EACCES, is the reason: nothing to wait for) */
			if (!strstr(e->msg, "destination aborted") && !interrupted(&s) && r != -EACCES)
				abort_reason(&s, e);
			memset(&a, 0, sizeof(a));
			snprintf(a.reason, sizeof(a.reason), "source aborted: %s", e->msg);
			chan_set_timeout(s.ch, 500);
			send_rec(&s, SEC_ABORT, &a, sizeof(a), true, NULL);
		}
		if (paused)
			machine_resume(m, PAUSE_MIGRATION);
		if (s.ends_sent) {
			/* The ABORT may not have arrived, and a destination that got the whole
			 * stream keeps its copy in case we died: asking settles the migration
			 * there and tells it we run the VM (best effort, after the resume). */
			enum mig_outcome o;
			char reason[200];
			if (migrate_query_outcome(&ctl->q, 1000, &o, reason, sizeof(reason), NULL) == 0)
				fprintf(stderr, "sealvm: the destination confirmed the abort: %s\n", reason);
		}
		err_wrap(e, "migration aborted during %s; the VM %s here", s.prog.phase ? s.prog.phase : "setup",
			 s.paused_vm ? "stays paused (by its operator)" : "runs on");
	}
	stop_lanes(&s);
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.cond);
	if (rep->result == MIGRATE_COMMITTED) {
		rep->downtime_ns = (s.t_ack ? s.t_ack : now_ns()) - t_pause;
		machine_stop(m, STOP_MIGRATED, 0, "migrated to the destination");
		r = 0;
	}
	pthread_mutex_lock(&ctl->lock);
	ctl->running = false;
	pthread_mutex_unlock(&ctl->lock);
	rep->total_ns = now_ns() - t0;
	rep->src_cpu_s = thread_cpu_s() - cpu0;
	free(s.bitmap);
	free(s.idx);
	progress(&s, rep->result == MIGRATE_COMMITTED ? "committed" :
		     rep->result == MIGRATE_UNCERTAIN ? "uncertain (paused)" : "aborted");
	return r;
}
