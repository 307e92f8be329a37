/* Destination side of a live migration: admit, receive, verify, load, decide,
 * run. The incoming copy runs only once COMMITTED is durably decided here; a
 * source asking what happened gets an answer from that decision, and asking
 * before there is one decides ABORTED (so a late COMMIT can no longer win). */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate/attest_phase.h"
#include "migrate/bind.h"
#include "migrate/migrate.h"
#include "migrate/outcome.h"
#include "migrate/pool.h"
#include "migrate/receive.h"
#include "vm/reserve.h"

enum in_phase { IN_WAITING, IN_RECEIVING, IN_READY, IN_COMMITTED, IN_FAILED, IN_ORPHANED };

static const char *const phase_names[] = { "waiting", "receiving", "ready", "committed", "failed", "orphaned" };

struct join {
	struct pool_conn *c;
	uint8_t nonce[MIG_NONCE_LEN];
};

struct incoming {
	struct incoming_params p;
	struct chan_listener *listener;
	struct pool *pool;
	struct outcome_store store;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum in_phase phase;
	bool cancelled;
	char cancel_why[128];
	/* the migration being received (phase >= RECEIVING) */
	struct pool_conn *offer;             /* lane 0 handed in by the pool, not yet taken */
	struct mig_hello hello;
	uint8_t id[16];
	uint8_t src_fp[32];
	char src_name[64];
	struct labels labels;                /* the VM's, from the trust phase */
	uint32_t nchan;
	struct join joins[MIG_MAX_CHANNELS];
	struct rx *rx;                       /* while receiving: to interrupt it */
	struct pool_conn *lane0;             /* while READY: to interrupt the wait for COMMIT */
	bool fenced;                         /* a query decided ABORTED first */
	bool reached_ready;                  /* a source may have sent COMMIT: linger on failure */
	/* the committed VM */
	struct machine *m;
	bool vm_ended;
	bool orphan_dropped;                 /* the orphan's source asked: it resumes its own copy */
	char vm_end_why[128];
};

/* Test fault: a destination that sends a record one byte a second, each in its
 * own TLS record, so no single read on the source ever times out. */
static int trickle_writev(struct bstream *bs, const struct iovec *iov, int n, struct err *e)
{
	struct chan *c = bs->ctx;
	int i;

	for (i = 0; i < n; i++)
		for (size_t k = 0; k < iov[i].iov_len; k++) {
			int r = chan_write(c, (const uint8_t *)iov[i].iov_base + k, 1, e);
			if (r == 0)
				r = chan_flush(c, e);
			if (r < 0)
				return r;
			sleep(1);
		}
	return 0;
}

static int send_rec(struct pool_conn *c, uint32_t id, const void *buf, size_t len, const char *trickle_fault,
		    struct err *e)
{
	struct bstream t = { .writev_all = trickle_writev, .ctx = c->ch }, *orig = c->w.bs;
	struct iovec iov = { (void *)buf, len };
	int r;

	if (!mig_fault(trickle_fault))
		return pool_conn_send(c, id, buf, len, e);
	c->w.bs = &t;
	r = sec_write(&c->w, id, 1, &iov, 1, e);
	c->w.bs = orig;
	return r;
}

/* ---- answers ---- */

static void refuse(struct pool_conn *c, const char *why)
{
	struct mig_hello_ack a = { .proto = MIG_PROTO_VERSION, .status = MIG_REFUSE };

	snprintf(a.reason, sizeof(a.reason), "%s", why);
	pool_conn_send(c, SEC_HELLO_ACK, &a, sizeof(a), NULL);
	pool_conn_close(c);
}

static int accept_with(struct incoming *in, struct pool_conn *c, uint32_t channels,
		       const uint8_t nonce[MIG_NONCE_LEN], struct err *e)
{
	struct mig_hello_ack a = { .proto = MIG_PROTO_VERSION, .status = MIG_ACCEPT, .channels = channels };

	memcpy(a.nonce, nonce, MIG_NONCE_LEN);
	memcpy(a.host_id, in->p.sd->host_id, 16);
	return send_rec(c, SEC_HELLO_ACK, &a, sizeof(a), "trickle-hello-ack", e);
}

/* Tells the source why, then drains what it still sends until it hangs up, so
 * the reason is read rather than lost to a connection reset. */
static void send_abort(struct pool_conn *c, const char *why)
{
	struct mig_abort a;
	char buf[65536];
	uint64_t end = now_ns() + 3000000000ull;

	memset(&a, 0, sizeof(a));
	snprintf(a.reason, sizeof(a.reason), "%s", why);
	chan_set_timeout(c->ch, 500);
	pool_conn_send(c, SEC_ABORT, &a, sizeof(a), NULL);
	while (now_ns() < end && chan_read_full(c->ch, buf, 1, NULL) == 0)
		;
}

/* Under in->lock: the answer to "what became of id?" (see the file comment). */
static uint32_t outcome_for(struct incoming *in, const struct pool_conn *c, const uint8_t id[16], char *why,
			    size_t n)
{
	struct outcome_rec rec;
	struct err e = { 0 };
	bool current = in->phase >= IN_RECEIVING && !memcmp(id, in->id, 16);
	int r;

	if (current && chan_kind(c->ch) == CHAN_TLS && memcmp(c->fp, in->src_fp, 32)) {
		snprintf(why, n, "only the source of a migration may ask about it");
		return MIG_OUTCOME_REFUSED;
	}
	if (current && (in->phase == IN_RECEIVING || in->phase == IN_READY)) {
		/* the source gave up on us: settle it as never run, then stop receiving */
		r = outcome_decide_now(&in->store, id, OUTCOME_ABORTED, in->src_name, &rec, &e);
		if (r == 0) {
			in->fenced = true;
			if (in->rx)
				rx_interrupt(in->rx);
			if (in->lane0)
				chan_shutdown(in->lane0->ch);
			snprintf(why, n, "the source asked before COMMIT arrived: never ran here");
			mig_audit(in->p.trust, "migrate-fence", id, "destination", c->peer, why);
			return MIG_OUTCOME_ABORTED;
		}
		if (r != -EEXIST) {
			snprintf(why, n, "cannot record the outcome: %s", e.msg);
			return MIG_OUTCOME_REFUSED;
		}
	} else {
		r = outcome_read(&in->store, id, &rec, &e);
		if (r == -ENOENT) {
			/* never seen (or never got this far): settle it so it can never run here */
			r = outcome_decide_now(&in->store, id, OUTCOME_ABORTED, c->peer, &rec, &e);
			if (r == 0) {
				snprintf(why, n, "no such migration ran here; it never will");
				mig_audit(in->p.trust, "migrate-fence", id, "destination", c->peer, why);
				return MIG_OUTCOME_ABORTED;
			}
			if (r == -EEXIST)
				r = 0;
		}
		if (r < 0) {
			snprintf(why, n, "cannot read the outcome: %s", e.msg);
			return MIG_OUTCOME_REFUSED;
		}
	}
	if (rec.kind == OUTCOME_ABORTED && !rec.forced[0]) {
		if (current && in->phase == IN_ORPHANED && !in->orphan_dropped) {
			/* the source is alive and resumes its copy: the one held here is not needed */
			in->orphan_dropped = true;
			snprintf(why, n, "never ran here; the copy held here is discarded");
			mig_audit(in->p.trust, "migrate-orphan-discarded", id, "destination", c->peer,
				  "its source asked and resumes the VM");
			return MIG_OUTCOME_ABORTED;
		}
		snprintf(why, n, "never ran here");
		return MIG_OUTCOME_ABORTED;
	}
	if (rec.kind == OUTCOME_ABORTED && !(current && in->phase == IN_COMMITTED && !in->vm_ended)) {
		snprintf(why, n, "settled as aborted, then run here by the operator (%s); it is no longer running",
			 rec.forced);
		return MIG_OUTCOME_GONE;
	}
	if (current && in->phase == IN_COMMITTED && !in->vm_ended) {
		snprintf(why, n, "running here");
		return MIG_OUTCOME_RUNNING;
	}
	snprintf(why, n, "committed here and ran; since then it %s",
		 current && in->vm_ended ? in->vm_end_why :
		 rec.ended[0] ? rec.ended : "is no longer running (its sealvm process ended)");
	return MIG_OUTCOME_GONE;
}

static void answer_query(struct incoming *in, struct pool_conn *c, const struct mig_hello *h)
{
	struct mig_outcome_rec o = { .proto = MIG_PROTO_VERSION };
	bool drop;

	memcpy(o.id, h->id, 16);
	memcpy(o.host_id, in->p.sd->host_id, 16);
	pthread_mutex_lock(&in->lock);
	o.outcome = outcome_for(in, c, h->id, o.reason, sizeof(o.reason));
	drop = in->orphan_dropped && in->phase == IN_ORPHANED && in->m;
	if (drop)
		in->phase = IN_FAILED;
	pthread_cond_broadcast(&in->cond);
	pthread_mutex_unlock(&in->lock);
	if (drop) {
		fprintf(stderr, "sealvm: the source of the orphaned copy asked and resumes the VM: discarding the copy held here\n");
		machine_stop(in->m, STOP_QUIT, 0, "orphaned copy discarded: its source resumes the VM");
	}
	chan_set_timeout(c->ch, 2000);
	pool_conn_send(c, SEC_OUTCOME, &o, sizeof(o), NULL);
	pool_conn_close(c);
}

static bool allowed_source(const struct incoming *in, struct pool_conn *c)
{
	char names[512], *tok, *save = NULL;

	if (!in->p.allow_from || chan_kind(c->ch) != CHAN_TLS)
		return true;
	snprintf(names, sizeof(names), "%s", in->p.allow_from);
	for (tok = strtok_r(names, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (chan_peer_has_name(c->ch, tok))
			return true;
	return false;
}

/* Pool thread: every admitted connection with its HELLO comes here. */
static void dispatch(void *opaque, struct pool_conn *c, const struct mig_hello *h)
{
	struct incoming *in = opaque;
	char why[200];

	if (h->kind == MIG_KIND_QUERY) {
		answer_query(in, c, h);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (h->kind == MIG_KIND_MIGRATE) {
		if (!allowed_source(in, c)) {
			snprintf(why, sizeof(why), "source %s is not admitted here (--allow-from %s)", c->peer,
				 in->p.allow_from);
		} else if (in->phase != IN_WAITING || in->offer || in->cancelled) {
			snprintf(why, sizeof(why), "busy: this destination is %s a VM",
				 in->phase == IN_COMMITTED ? "already running" : "already receiving");
		} else {
			in->offer = c;
			in->hello = *h;
			pthread_cond_broadcast(&in->cond);
			pthread_mutex_unlock(&in->lock);
			return;
		}
		pthread_mutex_unlock(&in->lock);
		fprintf(stderr, "sealvm: refused a migration from %s: %s\n", c->where, why);
		mig_audit(in->p.trust, "migrate-refused", h->id, "destination", c->peer, why);
		refuse(c, why);
		return;
	}
	/* JOIN: an extra channel of the migration being received, from the same source */
	if (in->phase != IN_RECEIVING || memcmp(h->id, in->id, 16) || h->channels < 1 ||
	    h->channels >= in->nchan || in->joins[h->channels].c) {
		snprintf(why, sizeof(why), "not a channel of the migration in progress");
	} else if (chan_kind(c->ch) == CHAN_TLS && memcmp(c->fp, in->src_fp, 32)) {
		snprintf(why, sizeof(why), "channel %u presented another certificate than channel 0", h->channels);
	} else {
		struct join *j = &in->joins[h->channels];
		struct err e = { 0 };
		if (RAND_bytes(j->nonce, MIG_NONCE_LEN) == 1 && accept_with(in, c, in->nchan, j->nonce, &e) == 0) {
			c->w.no_checksum = c->r.no_checksum = chan_kind(c->ch) == CHAN_TLS; /* as the source */
			j->c = c;
			pthread_cond_broadcast(&in->cond);
			pthread_mutex_unlock(&in->lock);
			return;
		}
		snprintf(why, sizeof(why), "cannot accept the channel: %s", e.msg);
	}
	pthread_mutex_unlock(&in->lock);
	fprintf(stderr, "sealvm: refused a channel from %s: %s\n", c->where, why);
	refuse(c, why);
}

/* ---- admission ---- */

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

static int admit(const struct incoming_params *p, const struct mig_hello *h, char *why, size_t n)
{
	uint64_t avail = mem_available();

	if (h->nr_vcpus < 1 || h->nr_vcpus > VM_MAX_VCPUS || h->ram_size < VM_MIN_RAM || h->ram_size > VM_MAX_RAM || h->ram_size % PAGE_SIZE ||
	    h->populated_pages > h->ram_size / PAGE_SIZE || h->channels < 1 || h->channels > MIG_MAX_CHANNELS) {
		snprintf(why, n, "VM shape not supported (%u vCPUs, %llu bytes, %u channels)", h->nr_vcpus,
			 (unsigned long long)h->ram_size, h->channels);
		return -EINVAL;
	}
	if (p->reserve && h->ram_size > p->reserve->size && !p->reserve_grow) {
		snprintf(why, n, "not enough memory: VM needs %llu MiB, this destination reserved %llu MiB (--reserve)",
			 (unsigned long long)(h->ram_size >> 20), (unsigned long long)(p->reserve->size >> 20));
		return -ENOMEM;
	}
	if (p->reserve && h->ram_size <= p->reserve->size)
		return 0; /* the memory is there already: no need to ask the host */
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

/* ---- the migration ---- */

int incoming_start(const struct incoming_params *p, struct incoming **out, struct err *e)
{
	struct incoming *in = calloc(1, sizeof(*in));
	int r;

	if (!in)
		return err_set(e, -ENOMEM, "incoming state");
	in->p = *p;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	r = outcome_store_open(&in->store, p->sd, e);
	if (r == 0)
		r = chan_listen(p->uri, p->tls_dir, &in->listener, e);
	if (r == 0 && chan_listener_kind(in->listener) == CHAN_TCP && !p->insecure)
		r = err_set(e, -EINVAL, "%s would receive the VM unencrypted and unauthenticated: use tls://, or add --insecure if that is really what you want",
			    p->uri);
	if (r == 0)
		r = pool_start(in->listener, (int)p->hello_timeout_ms, dispatch, in, &in->pool, e);
	if (r < 0) {
		chan_listener_close(in->listener);
		free(in);
		return r;
	}
	fprintf(stderr, "sealvm: waiting for an incoming VM on %s (port %d)\n", p->uri,
		chan_listener_port(in->listener));
	*out = in;
	return 0;
}

static void set_phase(struct incoming *in, enum in_phase ph)
{
	pthread_mutex_lock(&in->lock);
	in->phase = ph;
	pthread_cond_broadcast(&in->cond);
	pthread_mutex_unlock(&in->lock);
}

/* Waits for the source's channel 0 (or a cancel). */
static struct pool_conn *take_offer(struct incoming *in, struct err *e)
{
	struct pool_conn *c = NULL;

	pthread_mutex_lock(&in->lock);
	while (!in->offer && !in->cancelled)
		pthread_cond_wait(&in->cond, &in->lock);
	if (in->offer && !in->cancelled) {
		c = in->offer;
		in->offer = NULL;
		in->phase = IN_RECEIVING;
		memcpy(in->id, in->hello.id, 16);
		memcpy(in->src_fp, c->fp, 32);
		snprintf(in->src_name, sizeof(in->src_name), "%s", c->peer[0] ? c->peer : c->where);
	} else {
		err_set(e, -ECANCELED, "%s", in->cancel_why);
	}
	pthread_mutex_unlock(&in->lock);
	return c;
}

/* Waits until every extra channel joined (bounded). */
static int take_joins(struct incoming *in, struct rx *x, struct err *e)
{
	uint64_t deadline = now_ns() + (uint64_t)in->p.hello_timeout_ms * 1000000ull;
	uint32_t i, have;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	for (;;) {
		for (have = 1, i = 1; i < in->nchan; i++)
			have += in->joins[i].c != NULL;
		if (have == in->nchan || in->fenced || in->cancelled)
			break;
		if (now_ns() >= deadline) {
			r = err_set(e, -ETIMEDOUT, "only %u of %u channels joined within %u ms", have, in->nchan,
				    in->p.hello_timeout_ms);
			break;
		}
		{
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&in->cond, &in->lock, &ts);
		}
	}
	if (r == 0 && (in->fenced || in->cancelled))
		r = err_set(e, -ECANCELED, "%s", in->fenced ? "the source settled the migration as aborted" : in->cancel_why);
	for (i = 1; r == 0 && i < in->nchan; i++) {
		struct rx_lane *l = &x->lanes[i];
		l->c = in->joins[i].c;
		in->joins[i].c = NULL;
		l->index = (int)i;
		l->rx = x;
		r = mig_bind(l->c->ch, in->id, in->joins[i].nonce, i, &l->bind, e);
	}
	x->n = (int)in->nchan;
	if (r == 0)
		in->rx = x;
	pthread_mutex_unlock(&in->lock);
	return r;
}

static int wait_commit(struct pool_conn *c, const uint8_t id[16], uint32_t *flags, struct err *e)
{
	struct mig_commit cm;
	struct sec_hdr hd;
	int r = sec_read_hdr(&c->r, &hd, e);

	if (r == 0 && hd.id != SEC_COMMIT)
		r = err_set(e, -EPROTO, "source sent %s instead of COMMIT", sec_name(hd.id));
	if (r == 0)
		r = sec_read_exact(&c->r, &hd, &cm, sizeof(cm), e);
	if (r == 0 && memcmp(cm.id, id, sizeof(cm.id)))
		r = err_set(e, -EPROTO, "COMMIT names another migration");
	*flags = r == 0 ? cm.flags : 0;
	return r;
}

/* After READY: COMMIT, then decide COMMITTED and run; anything else settles
 * the migration as aborted. Returns 0 with the VM running. */
static int hand_over(struct incoming *in, struct machine *m, struct pool_conn *c0, struct outcome_prep *prep,
		     double cpu0, struct err *e)
{
	struct mig_commit_ack ack = { 0 };
	struct outcome_rec rec;
	uint32_t flags = 0;
	uint64_t t;
	int r;

	if (mig_fault("die-after-ready"))
		_exit(99);
	chan_set_timeout(c0->ch, (int)in->p.commit_timeout_ms);
	r = wait_commit(c0, in->id, &flags, e);
	pthread_mutex_lock(&in->lock);
	in->lane0 = NULL;
	if (r == 0 && in->fenced)
		r = err_set(e, -ECANCELED, "COMMIT came after the source had asked and been told it never ran here");
	if (r < 0) {
		/* no COMMIT: settle as aborted, unless a query already did */
		bool lost = r != -EPROTO && !in->fenced && !in->cancelled, settled = in->fenced;
		if (!in->fenced) {
			int d = outcome_decide_now(&in->store, in->id, OUTCOME_ABORTED, in->src_name, &rec, NULL);
			settled = d == 0;
			if (d == -EEXIST && rec.kind == OUTCOME_COMMITTED)
				fprintf(stderr, "sealvm: warning: another process recorded migration as committed\n");
		}
		if (lost && settled && in->p.keep_orphans) {
			/* The source went silent after READY: it may have died holding the only
			 * other copy. Keep this complete, verified one paused; it runs only if
			 * the operator says so (resume --force), and goes as soon as the source
			 * shows it is alive (it asks, and hears "never ran here"). */
			in->phase = IN_ORPHANED;
			in->m = m;
			pthread_mutex_unlock(&in->lock);
			mig_audit(in->p.trust, "migrate-orphaned", in->id, "destination", in->src_name, e->msg);
			err_wrap(e, "no COMMIT from the source; settled as aborted, and the complete copy is held here paused "
				    "in case the source died with its own (`resume --force` runs it, `quit --force` discards it)");
			return -EOWNERDEAD;
		}
		in->phase = IN_FAILED;
		pthread_mutex_unlock(&in->lock);
		return err_wrap(e, "no COMMIT from the source; the incoming VM is discarded and never ran");
	}
	if (mig_fault("die-on-commit"))
		_exit(99);
	t = now_ns();
	r = outcome_decide(&in->store, prep, &rec, e);
	if (r < 0) {
		in->phase = IN_FAILED;
		pthread_mutex_unlock(&in->lock);
		err_wrap(e, r == -EEXIST ? "migration already settled as %s here" : "cannot record COMMITTED",
			 outcome_name(rec.kind));
		send_abort(c0, e->msg);
		return r;
	}
	in->phase = IN_COMMITTED;
	in->m = m;
	pthread_mutex_unlock(&in->lock);
	if (mig_fault("die-after-commit"))
		_exit(99);
	if (mig_fault("hang-after-commit"))
		for (;;)
			pause();
	if (flags & MIG_COMMIT_PAUSED)
		machine_pause(m, PAUSE_OPERATOR);
	machine_resume(m, PAUSE_INCOMING);
	ack.resume_ns = now_ns() - t;
	ack.cpu_ns = (uint64_t)((thread_cpu_s() - cpu0) * 1e9);
	pthread_mutex_lock(&in->lock);
	ack.bytes_received = in->rx ? rx_bytes(in->rx) : 0;
	pthread_mutex_unlock(&in->lock);
	if (mig_fault("no-commit-ack")) {
		chan_shutdown(c0->ch); /* the VM runs; the acknowledgement is lost */
		return 0;
	}
	/* the VM runs: an acknowledgement lost now is the source's to resolve */
	pool_conn_send(c0, SEC_COMMIT_ACK, &ack, sizeof(ack), NULL);
	mig_audit(in->p.trust, "migrate-commit", in->id, "destination", in->src_name, "COMMITTED recorded; the VM runs here");
	return 0;
}

int incoming_wait_vm(struct incoming *in, struct machine *m, struct err *e)
{
	struct mig_ready ready = { 0 };
	struct machine_loader ld;
	struct outcome_prep prep = { 0 };
	struct pool_conn *c0;
	struct rx *x;
	uint8_t nonce[MIG_NONCE_LEN];
	char why[200], console[300] = "";
	bool inited = false, started = false, admitted = false, prepared = false;
	double cpu0;
	uint64_t t;
	int r;

	/* a VM refused at admission costs nothing: keep waiting for one we can take */
	for (;;) {
		c0 = take_offer(in, e);
		if (!c0) {
			set_phase(in, IN_FAILED);
			return e->code;
		}
		/* attestation and policy (attest_phase.h) before anything is reserved */
		r = mig_trust_dst_exchange(in->p.trust, c0, in->id, in->p.hello_timeout_ms, &in->labels, why, sizeof(why));
		if (r == 0)
			r = admit(&in->p, &in->hello, why, sizeof(why));
		if (r == 0)
			break;
		fprintf(stderr, "sealvm: refused the incoming VM from %s: %s\n", c0->where, why);
		mig_audit(in->p.trust, "migrate-refused", in->id, "destination", in->src_name, why);
		refuse(c0, why);
		set_phase(in, IN_WAITING);
	}
	cpu0 = thread_cpu_s();
	x = calloc(1, sizeof(*x));
	machine_loader_init(&ld);
	r = x ? 0 : -ENOMEM;
	if (r == 0) {
		uint8_t *ram = NULL;
		if (in->p.reserve && in->hello.ram_size <= in->p.reserve->size)
			ram = ram_reserve_take(in->p.reserve, in->hello.ram_size);
		else if (in->p.reserve)
			ram_reserve_stop(in->p.reserve); /* --reserve-grow: too small to use; faulted in as usual */
		r = machine_init_in(m, in->hello.ram_size, (int)in->hello.nr_vcpus, in->p.serial_fd, ram, e);
		inited = r == 0;
		if (r < 0)
			snprintf(why, sizeof(why), "cannot create the VM: %s", e->msg);
	}
	if (r < 0) {
		fprintf(stderr, "sealvm: refused the incoming VM from %s: %s\n", c0->where, why);
		mig_audit(in->p.trust, "migrate-refused", in->id, "destination", in->src_name, why);
		refuse(c0, why);
		err_set(e, r, "refused the incoming VM: %s", why);
		free(x);
		goto out;
	}
	rx_init(x, m);
	ld.nr_vcpus = (uint32_t)m->nr_vcpus;
	x->lanes[0] = (struct rx_lane){ .c = c0, .index = 0, .rx = x };
	pthread_mutex_lock(&in->lock);
	in->nchan = in->hello.channels;
	pthread_mutex_unlock(&in->lock);
	r = RAND_bytes(nonce, sizeof(nonce)) == 1 ? 0 : err_set(e, -EIO, "no randomness for the nonce");
	if (r == 0)
		r = mig_bind(c0->ch, in->id, nonce, 0, &x->lanes[0].bind, e);
	if (r == 0)
		r = accept_with(in, c0, in->nchan, nonce, e);
	/* from HELLO_ACK on, TLS's AEAD authenticates every byte: no section checksums */
	c0->w.no_checksum = c0->r.no_checksum = chan_kind(c0->ch) == CHAN_TLS;
	admitted = r == 0;
	if (admitted)
		mig_audit(in->p.trust, "migrate-start", in->id, "destination", in->src_name, "admitted");
	if (r == 0) {
		chan_set_timeout(c0->ch, (int)in->p.timeout_ms);
		r = take_joins(in, x, e);
	}
	if (r == 0)
		r = rx_receive(x, &ld, e);
	t = now_ns();
	/* everything that can fail here fails before READY: load into fresh vCPUs,
	 * start their threads (parked), and write the COMMITTED decision ahead */
	if (r == 0)
		r = machine_load_commit(m, &ld, e);
	if (r == 0 && in->p.prepare) {
		r = in->p.prepare(in->p.hook_opaque, m, console, sizeof(console), e);
		prepared = r == 0;
	}
	ready.load_ns = now_ns() - t;
	/* the capacity promised is real before READY: the VM's part of a reservation is populated */
	if (r == 0 && in->p.reserve && in->p.reserve->taken)
		r = ram_reserve_wait(in->p.reserve, e);
	if (r == 0)
		r = outcome_prepare(&in->store, in->id, OUTCOME_COMMITTED, in->src_name, &prep, e);
	if (r == 0) {
		machine_pause(m, PAUSE_INCOMING);
		r = machine_start(m, e);
		started = r == 0;
	}
	if (r == 0 && mig_fault("slow-ready"))
		sleep(3);
	pthread_mutex_lock(&in->lock);
	in->rx = NULL;
	if (r == 0 && (in->fenced || in->cancelled))
		r = err_set(e, -ECANCELED, "%s", in->fenced ? "the source settled the migration as aborted" : in->cancel_why);
	if (r == 0) {
		in->phase = IN_READY;
		in->lane0 = c0;
		in->reached_ready = true;
	}
	pthread_mutex_unlock(&in->lock);
	if (r < 0) {
		err_wrap(e, "incoming migration failed");
		send_abort(c0, e->msg);
		set_phase(in, IN_FAILED);
		goto out_rx;
	}
	ready.pages_received = rx_pages(x);
	r = console[0] ? pool_conn_send(c0, SEC_CONSOLE_ADDR, console, strlen(console), e) : 0;
	if (r == 0)
		r = send_rec(c0, SEC_READY, &ready, sizeof(ready), "trickle-ready", e);
	if (r == 0)
		r = hand_over(in, m, c0, &prep, cpu0, e);
	else
		set_phase(in, IN_FAILED);
	if (r == 0)
		fprintf(stderr, "sealvm: incoming VM from %s committed and running\n", in->src_name);
out_rx:
	pthread_mutex_lock(&in->lock);
	in->rx = NULL;
	in->lane0 = NULL;
	pthread_mutex_unlock(&in->lock);
	outcome_discard(&prep);
	rx_fini(x);
	free(x);
out:
	machine_loader_fini(&ld);
	if (r == -EOWNERDEAD)
		return r;   /* orphaned: the machine stays, paused, for the operator */
	if (r < 0 && admitted)
		mig_audit(in->p.trust, "migrate-abort", in->id, "destination", in->src_name, e->msg);
	if (r < 0) {
		set_phase(in, IN_FAILED);
		if (prepared && in->p.discard)
			in->p.discard(in->p.hook_opaque, m);
		if (inited)
			machine_destroy(m); /* stops the parked vCPU thread: the copy never ran */
		(void)started;
	}
	return r;
}

void incoming_get_progress(struct incoming *in, struct incoming_progress *p)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_lock(&in->lock);
	p->phase = phase_names[in->phase];
	snprintf(p->source, sizeof(p->source), "%s", in->src_name);
	p->channels = in->nchan;
	if (in->rx) {
		p->pages_received = rx_pages(in->rx);
		p->bytes_received = rx_bytes(in->rx);
	}
	pthread_mutex_unlock(&in->lock);
	pool_counts(in->pool, &p->connections, &p->dropped);
	if (in->p.reserve) {
		p->reserved = in->p.reserve->size;
		p->reserve_ready = atomic_load(&in->p.reserve->ready);
		if (p->reserve_ready > p->reserved)
			p->reserve_ready = p->reserved;
	}
}

bool incoming_cancel(struct incoming *in, const char *why)
{
	bool ok;

	pthread_mutex_lock(&in->lock);
	ok = in->phase != IN_COMMITTED;
	if (ok && !in->cancelled) {
		in->cancelled = true;
		snprintf(in->cancel_why, sizeof(in->cancel_why), "%s", why);
		if (in->phase == IN_RECEIVING || in->phase == IN_READY) {
			/* settle it first: a COMMIT racing with us must lose */
			if (outcome_decide_now(&in->store, in->id, OUTCOME_ABORTED, in->src_name, NULL, NULL) == 0) {
				in->fenced = true;
				mig_audit(in->p.trust, "migrate-fence", in->id, "destination", in->src_name, why);
			}
			if (in->rx)
				rx_interrupt(in->rx);
			if (in->lane0)
				chan_shutdown(in->lane0->ch);
		}
		pthread_cond_broadcast(&in->cond);
	}
	pthread_mutex_unlock(&in->lock);
	return ok;
}

void incoming_labels(struct incoming *in, struct labels *out)
{
	pthread_mutex_lock(&in->lock);
	*out = in->labels;
	pthread_mutex_unlock(&in->lock);
}

int incoming_orphan_run(struct incoming *in, const char *who, struct err *e)
{
	char why[128];
	int r = 0;

	pthread_mutex_lock(&in->lock);
	if (in->phase != IN_ORPHANED || in->orphan_dropped)
		r = err_set(e, -EINVAL, "there is no orphaned copy here");
	if (r == 0) {
		/* first make later queries hear that it runs here, then run it */
		snprintf(why, sizeof(why), "resume --force by %s", who && *who ? who : "the operator");
		r = outcome_set_forced(&in->store, in->id, why, e);
	}
	if (r == 0) {
		in->phase = IN_COMMITTED;
		mig_audit(in->p.trust, "migrate-orphan-run", in->id, "destination", in->src_name, why);
	}
	pthread_mutex_unlock(&in->lock);
	if (r == 0)
		machine_resume(in->m, PAUSE_INCOMING);
	return r;
}

bool incoming_orphaned(struct incoming *in)
{
	bool o;

	pthread_mutex_lock(&in->lock);
	o = in->phase == IN_ORPHANED;
	pthread_mutex_unlock(&in->lock);
	return o;
}

void incoming_vm_ended(struct incoming *in, const char *why)
{
	pthread_mutex_lock(&in->lock);
	if (in->phase == IN_COMMITTED && !in->vm_ended) {
		in->vm_ended = true;
		snprintf(in->vm_end_why, sizeof(in->vm_end_why), "%s", why && *why ? why : "stopped");
		outcome_set_ended(&in->store, in->id, in->vm_end_why, NULL);
	}
	pthread_mutex_unlock(&in->lock);
}

void incoming_stop(struct incoming *in)
{
	int i;

	if (!in)
		return;
	/* a source that sent COMMIT into a failure may still ask: keep answering a while */
	if (in->phase == IN_FAILED && in->reached_ready && in->p.linger_ms) {
		fprintf(stderr, "sealvm: answering outcome queries for %u ms before exiting\n", in->p.linger_ms);
		usleep((useconds_t)in->p.linger_ms * 1000);
	}
	pool_stop(in->pool);
	pool_conn_close(in->offer);
	for (i = 0; i < MIG_MAX_CHANNELS; i++)
		pool_conn_close(in->joins[i].c);
	chan_listener_close(in->listener);
	pthread_mutex_destroy(&in->lock);
	pthread_cond_destroy(&in->cond);
	free(in);
}
