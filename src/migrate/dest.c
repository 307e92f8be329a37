/* Destination side of a live migration: admit, receive, verify, load, and run
 * only on COMMIT. Anything else discards the incoming copy; it never runs. */
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include "migrate/migrate.h"
#include "migrate/proto.h"
#include "state/pages.h"

/* Test-only fault injection (SEALVM_TEST_FAULT): lets the test suite make a
 * destination die or hang at an exact protocol point. */
static bool fault(const char *name)
{
	const char *f = getenv("SEALVM_TEST_FAULT");
	return f && !strcmp(f, name);
}

static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb = 0;
	char line[128];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

struct dst {
	struct chan *ch;
	struct sec_writer w;
	struct sec_reader r;
	bool framed;
	int index;
	struct rx *rx;
	struct pages_stats ps;
	pthread_t thread;
	bool started;
	struct err e;
	int rc;
};

/* What the lanes share while receiving: the RAM, a round barrier and the
 * first error, which stops every lane. */
struct rx {
	struct machine *m;
	int n;
	struct dst lanes[MIG_MAX_CHANNELS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t reached[MIG_MAX_CHANNELS];   /* ROUND markers seen per lane */
	bool failed;
};

/* Round k+1 data may overwrite a page sent in round k on another lane, so a
 * lane enters a round only when every lane has finished the previous one. */
static int rx_barrier(struct rx *x, int lane, uint32_t round, struct err *e)
{
	int i;
	bool all;

	pthread_mutex_lock(&x->lock);
	x->reached[lane]++;
	pthread_cond_broadcast(&x->cond);
	for (;;) {
		for (all = true, i = 0; i < x->n; i++)
			if (x->reached[i] < x->reached[lane])
				all = false;
		if (all || x->failed)
			break;
		pthread_cond_wait(&x->cond, &x->lock);
	}
	all = !x->failed;
	pthread_mutex_unlock(&x->lock);
	(void)round;
	return all ? 0 : err_set(e, -ECANCELED, "another channel failed");
}

/* First failure: remember it and wake every lane (blocked readers included). */
static void rx_fail(struct rx *x)
{
	int i;

	pthread_mutex_lock(&x->lock);
	if (!x->failed) {
		x->failed = true;
		for (i = 1; i < x->n; i++)
			if (x->lanes[i].ch)
				chan_shutdown(x->lanes[i].ch);
	}
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

static void rx_done(struct rx *x, int lane)
{
	pthread_mutex_lock(&x->lock);
	x->reached[lane] = UINT32_MAX; /* finished: never holds the others back */
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

static int send_rec(struct dst *d, uint32_t id, const void *buf, size_t len, struct err *e)
{
	struct iovec iov = { (void *)buf, len };
	int r = sec_write(&d->w, id, 1, &iov, 1, e);

	return r ? r : chan_flush(d->ch, e);
}

/* Tells the source why, then reads and drops what it still sends until it
 * hangs up, so the reason is read rather than lost to a connection reset. */
static void send_abort(struct dst *d, const char *why)
{
	struct mig_abort a;
	char buf[65536];
	uint64_t end = now_ns() + 3000000000ull;
	int fd = chan_fd(d->ch);

	memset(&a, 0, sizeof(a));
	snprintf(a.reason, sizeof(a.reason), "%s", why);
	chan_set_timeout(d->ch, 500);
	send_rec(d, SEC_ABORT, &a, sizeof(a), NULL);
	while (now_ns() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) > 0 && read(fd, buf, sizeof(buf)) <= 0)
			break;
	}
}

static int read_hello(struct dst *d, struct mig_hello *h, struct err *e)
{
	struct sec_hdr hd;
	int r = sec_read_hdr(&d->r, &hd, e);

	if (r < 0)
		return r;
	if (hd.id != SEC_HELLO)
		return err_set(e, -EPROTO, "source sent %s, expected HELLO", sec_name(hd.id));
	return sec_read_exact(&d->r, &hd, h, sizeof(*h), e);
}

static int answer_with(struct dst *d, uint32_t status, uint32_t channels, const char *reason, struct err *e)
{
	struct mig_hello_ack a = { .proto = MIG_PROTO_VERSION, .status = status, .channels = channels };

	snprintf(a.reason, sizeof(a.reason), "%s", reason ? reason : "");
	return send_rec(d, SEC_HELLO_ACK, &a, sizeof(a), e);
}

static int answer(struct dst *d, uint32_t status, const char *reason, struct err *e)
{
	return answer_with(d, status, 1, reason, e);
}

static int answer_channels(struct dst *d, uint32_t channels, struct err *e)
{
	return answer_with(d, MIG_ACCEPT, channels, NULL, e);
}

static int admit(const struct incoming_params *p, const struct mig_hello *h, char *why, size_t n)
{
	uint64_t avail = mem_available();

	if (h->proto != MIG_PROTO_VERSION) {
		snprintf(why, n, "protocol version %u not supported (this destination speaks %u)", h->proto,
			 MIG_PROTO_VERSION);
		return -EPROTO;
	}
	if (h->nr_vcpus < 1 || h->nr_vcpus > VM_MAX_VCPUS || h->ram_size < VM_MIN_RAM || h->ram_size > VM_MAX_RAM ||
	    h->ram_size % PAGE_SIZE) {
		snprintf(why, n, "VM shape not supported (%u vCPUs, %llu bytes)", h->nr_vcpus,
			 (unsigned long long)h->ram_size);
		return -EINVAL;
	}
	if (p->max_ram && h->ram_size > p->max_ram) {
		snprintf(why, n, "not enough memory: VM needs %llu MiB, this host admits %llu MiB",
			 (unsigned long long)(h->ram_size >> 20), (unsigned long long)(p->max_ram >> 20));
		return -ENOMEM;
	}
	if (avail && h->ram_size > avail) {
		snprintf(why, n, "not enough memory: VM needs %llu MiB, %llu MiB available",
			 (unsigned long long)(h->ram_size >> 20), (unsigned long long)(avail >> 20));
		return -ENOMEM;
	}
	return 0;
}

/* Receives one lane up to its END. Lane 0 also carries the state sections,
 * which go to ld. */
static int lane_receive(struct dst *d, struct machine_loader *ld, struct err *e)
{
	struct machine *m = d->rx->m;
	struct sec_hdr h;
	int r;

	for (;;) {
		r = sec_read_hdr(&d->r, &h, e);
		if (r < 0)
			break;
		if (h.id == SEC_PAGES) {
			r = pages_recv(&d->r, &h, m->vm.ram, m->vm.ram_pages, &d->ps, e);
			if (r == 0 && fault("die-during-pages") && d->ps.data_pages > 500)
				_exit(99);
		} else if (h.id == SEC_ROUND) {
			struct mig_round rd;
			r = sec_read_exact(&d->r, &h, &rd, sizeof(rd), e);
			if (r == 0)
				r = rx_barrier(d->rx, d->index, rd.round, e);
		} else if (h.id == SEC_ABORT) {
			struct mig_abort a;
			r = sec_read_exact(&d->r, &h, &a, sizeof(a), e);
			a.reason[sizeof(a.reason) - 1] = 0;
			if (r == 0)
				r = err_set(e, -ECONNABORTED, "%s", a.reason);
		} else if (h.id == SEC_SYNC && ld) {
			/* the ROUND before it held every lane until all had caught up */
			struct mig_sync sy;
			r = sec_read_exact(&d->r, &h, &sy, sizeof(sy), e);
			if (r == 0)
				r = send_rec(d, SEC_SYNC_ACK, &sy, sizeof(sy), e);
		} else if (h.id == SEC_END) {
			r = sec_check_end(&d->r, &h, d->ps.data_pages + d->ps.markers, e);
			if (r == 0)
				rx_done(d->rx, d->index);
			break;
		} else if (ld) {
			r = machine_load_section(ld, &d->r, &h, e);
		} else {
			r = err_set(e, -EPROTO, "unexpected %s section on channel %d", sec_name(h.id), d->index);
		}
		if (r < 0)
			break;
	}
	if (r < 0)
		rx_fail(d->rx);
	return r;
}

static void *lane_thread(void *arg)
{
	struct dst *d = arg;

	d->rc = lane_receive(d, NULL, &d->e);
	return NULL;
}

/* Receives every lane up to END and loads the state; the machine is ready but paused. */
static int receive(struct rx *x, uint64_t *load_ns, struct err *e)
{
	struct machine_loader ld;
	uint64_t t;
	int r, i;

	machine_loader_init(&ld);
	ld.nr_vcpus = (uint32_t)x->m->nr_vcpus;
	for (i = 1; i < x->n; i++)
		if (pthread_create(&x->lanes[i].thread, NULL, lane_thread, &x->lanes[i]) == 0)
			x->lanes[i].started = true;
	r = lane_receive(&x->lanes[0], &ld, e);
	for (i = 1; i < x->n; i++) {
		struct dst *d = &x->lanes[i];
		if (d->started)
			pthread_join(d->thread, NULL);
		d->started = false;
		/* a lane's own failure says more than "another channel failed" */
		if (d->rc < 0 && (r == 0 || r == -ECANCELED)) {
			*e = d->e;
			r = err_wrap(e, "channel %d", i);
		}
	}
	t = now_ns();
	if (r == 0)
		r = machine_load_commit(x->m, &ld, e);
	*load_ns = now_ns() - t;
	machine_loader_fini(&ld);
	return r;
}

/* Serves one connection after the hand-over: only outcome queries. */
static void answer_query(struct incoming *in, struct chan *c)
{
	struct dst d = { .ch = c };
	struct mig_hello h;
	struct err e = { 0 };

	chan_set_timeout(c, 2000);
	if (sec_writer_init(&d.w, chan_bstream(c), &e) == 0 && sec_reader_init(&d.r, chan_bstream(c), &e) == 0 &&
	    read_hello(&d, &h, &e) == 0) {
		bool ours = (h.flags & MIG_HELLO_QUERY) && !memcmp(h.id, in->id, sizeof(h.id));
		answer(&d, ours ? MIG_OUTCOME_COMMITTED : (h.flags & MIG_HELLO_QUERY) ? MIG_OUTCOME_UNKNOWN : MIG_REFUSE,
		       ours ? "running here" : "this host already runs a migrated VM", &e);
	}
	sec_writer_fini(&d.w);
	sec_reader_fini(&d.r);
	chan_close(c);
}

static void *query_thread(void *arg)
{
	struct incoming *in = arg;

	while (!in->stop) {
		struct chan *c;
		struct err e = { 0 };
		if (chan_accept(in->listener, 200, &c, &e) == 0) /* short: quitting waits for it */
			answer_query(in, c);
	}
	return NULL;
}

/* Waits for the source's first connection: a HELLO that is not a query. */
static int accept_source(struct incoming *in, const struct incoming_params *p, struct dst *d,
			 struct mig_hello *h, struct err *e)
{
	/* A peer that fails authentication or asks questions does not end the wait. */
	for (;;) {
		struct err ae = { 0 };
		/* a peer that connects and never completes the handshake is dropped after 10 s */
		int r = chan_accept(in->listener, 10000, &d->ch, &ae);
		if (r == -ETIMEDOUT && !strstr(ae.msg, "handshake"))
			continue; /* nobody came: keep waiting */
		if (r < 0) {
			fprintf(stderr, "sealvm: refused a connection: %s\n", ae.msg);
			continue;
		}
		chan_set_timeout(d->ch, (int)p->timeout_ms);
		d->framed = sec_writer_init(&d->w, chan_bstream(d->ch), e) == 0 &&
			    sec_reader_init(&d->r, chan_bstream(d->ch), e) == 0;
		r = d->framed ? read_hello(d, h, &ae) : -ENOMEM;
		if (r == 0 && (h->flags & (MIG_HELLO_QUERY | MIG_HELLO_JOIN))) {
			answer(d, MIG_OUTCOME_UNKNOWN, "no VM arrived here", NULL);
			r = -EAGAIN;
		}
		if (r == 0)
			return 0;
		if (r != -EAGAIN)
			fprintf(stderr, "sealvm: dropped a connection: %s\n", ae.msg);
		sec_writer_fini(&d->w);
		sec_reader_fini(&d->r);
		chan_close(d->ch);
		d->ch = NULL;
		d->framed = false;
	}
}

/* Extra channels: each must authenticate as the first connection did (same
 * certificate) and name this migration and a free channel index. */
static int accept_lanes(struct incoming *in, const struct incoming_params *p, struct rx *x,
			const uint8_t id[16], struct err *e)
{
	unsigned char fp0[32], fp[32];
	int i, r;

	if (x->n > 1 && chan_kind(x->lanes[0].ch) == CHAN_TLS &&
	    (r = chan_peer_fingerprint(x->lanes[0].ch, fp0, e)) < 0)
		return r;
	for (i = 1; i < x->n; i++) {
		struct mig_hello h;
		struct dst d = { .rx = x };
		r = chan_accept(in->listener, (int)p->timeout_ms, &d.ch, e);
		if (r < 0)
			return err_wrap(e, "waiting for channel %d", i);
		chan_set_timeout(d.ch, (int)p->timeout_ms);
		d.framed = sec_writer_init(&d.w, chan_bstream(d.ch), e) == 0 &&
			   sec_reader_init(&d.r, chan_bstream(d.ch), e) == 0;
		r = d.framed ? read_hello(&d, &h, e) : -ENOMEM;
		if (r == 0 && (!(h.flags & MIG_HELLO_JOIN) || memcmp(h.id, id, 16) || h.channels < 1 ||
			       h.channels >= (uint32_t)x->n || x->lanes[h.channels].ch))
			r = err_set(e, -EPROTO, "connection %d is not a channel of this migration", i);
		if (r == 0 && chan_kind(d.ch) == CHAN_TLS &&
		    (chan_peer_fingerprint(d.ch, fp, e) < 0 || memcmp(fp, fp0, 32)))
			r = err_set(e, -EACCES, "channel %d presented another certificate than the first", i);
		if (r == 0)
			r = answer(&d, MIG_ACCEPT, NULL, e);
		if (r < 0) {
			if (d.framed) {
				sec_writer_fini(&d.w);
				sec_reader_fini(&d.r);
			}
			chan_close(d.ch);
			return r;
		}
		d.index = (int)h.channels;
		x->lanes[d.index] = d;
	}
	return 0;
}

static int wait_commit(struct dst *d, const uint8_t id[16], struct err *e)
{
	struct mig_commit cm;
	struct sec_hdr hd;
	int r = sec_read_hdr(&d->r, &hd, e);

	if (r == 0 && hd.id != SEC_COMMIT)
		r = err_set(e, -EPROTO, "source sent %s instead of COMMIT", sec_name(hd.id));
	if (r == 0)
		r = sec_read_exact(&d->r, &hd, &cm, sizeof(cm), e);
	if (r == 0 && memcmp(cm.id, id, sizeof(cm.id)))
		r = err_set(e, -EPROTO, "COMMIT names another migration");
	return r;
}

static void rx_close(struct rx *x)
{
	int i;

	for (i = 0; i < MIG_MAX_CHANNELS; i++) {
		struct dst *d = &x->lanes[i];
		if (d->framed) {
			sec_writer_fini(&d->w);
			sec_reader_fini(&d->r);
		}
		chan_close(d->ch);
		d->ch = NULL;
	}
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->cond);
	free(x);
}

int migrate_incoming(const struct incoming_params *p, struct machine *m, struct incoming *in,
		     struct err *e)
{
	struct mig_hello h;
	struct mig_ready ready = { 0 };
	struct rx *x = calloc(1, sizeof(*x));
	struct dst *d;
	double cpu0;
	char why[200];
	bool inited = false;
	int r;

	memset(in, 0, sizeof(*in));
	if (!x)
		return err_set(e, -ENOMEM, "incoming state");
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->cond, NULL);
	x->m = m;
	x->n = 1;
	d = &x->lanes[0];
	d->rx = x;
	r = chan_listen(p->uri, p->tls_dir, &in->listener, e);
	if (r < 0) {
		rx_close(x);
		return r;
	}
	fprintf(stderr, "sealvm: waiting for an incoming VM on %s (port %d)\n", p->uri,
		chan_listener_port(in->listener));
	accept_source(in, p, d, &h, e);
	cpu0 = thread_cpu_s();
	memcpy(in->id, h.id, sizeof(in->id));
	r = admit(p, &h, why, sizeof(why));
	if (r == 0) {
		r = machine_init(m, h.ram_size, (int)h.nr_vcpus, p->serial_fd, e);
		inited = r == 0;
		if (r < 0)
			snprintf(why, sizeof(why), "cannot create the VM: %s", e->msg);
	}
	if (r < 0) {
		answer(d, MIG_REFUSE, why, NULL);
		err_set(e, r, "refused the incoming VM: %s", why);
		goto out;
	}
	x->n = h.channels < 1 ? 1 : h.channels > MIG_MAX_CHANNELS ? MIG_MAX_CHANNELS : (int)h.channels;
	r = answer_channels(d, (uint32_t)x->n, e);
	if (r == 0)
		r = accept_lanes(in, p, x, h.id, e);
	if (r == 0)
		r = receive(x, &ready.load_ns, e);
	if (r < 0) {
		err_wrap(e, "incoming migration failed");
		send_abort(d, e->msg);
		goto out;
	}
	ready.pages_received = d->r.seq;
	r = send_rec(d, SEC_READY, &ready, sizeof(ready), e);
	if (r == 0 && fault("die-after-ready"))
		_exit(99);
	if (r == 0)
		r = wait_commit(d, h.id, e);
	if (r < 0) {
		err_wrap(e, "no COMMIT from the source; the incoming VM is discarded and never ran");
		goto out;
	}
	if (fault("hang-after-commit")) {
		for (;;)
			pause();
	}
	{
		uint64_t t = now_ns();
		struct mig_commit_ack ack = { 0 };
		int i;
		r = machine_start(m, e);
		ack.resume_ns = now_ns() - t;
		ack.cpu_ns = (uint64_t)((thread_cpu_s() - cpu0) * 1e9);
		for (i = 0; i < x->n; i++)
			ack.bytes_received += chan_bytes_received(x->lanes[i].ch);
		if (r == 0)
			send_rec(d, SEC_COMMIT_ACK, &ack, sizeof(ack), NULL); /* the VM runs: an ack lost now is the source's to resolve */
	}
out:
	rx_close(x);
	if (r < 0) {
		if (inited)
			machine_destroy(m);
		chan_listener_close(in->listener);
		in->listener = NULL;
		return r;
	}
	if (pthread_create(&in->query_thread, NULL, query_thread, in) == 0)
		in->query_started = true;
	return 0;
}

void incoming_fini(struct incoming *in)
{
	in->stop = 1;
	if (in->query_started)
		pthread_join(in->query_thread, NULL);
	in->query_started = false;
	chan_listener_close(in->listener);
	in->listener = NULL;
}
