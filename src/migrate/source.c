/* Source side of a live migration: pre-copy, stop and copy, then the hand-over.
 * The VM runs here until the destination has verified a complete copy; before
 * COMMIT every failure resumes it here, after COMMIT it never resumes on its own
 * while the destination may be running it. */
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "migrate/migrate.h"
#include "migrate/proto.h"
#include "migrate/throttle.h"
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

struct src {
	struct machine *m;
	const struct migrate_params *p;
	struct migrate_report *rep;
	struct chan *ch;
	struct sec_writer w;
	struct sec_reader r;
	struct pages_stats ps;
	uint64_t *bitmap, *idx;
	uint8_t id[16];
	migrate_progress_fn fn;
	void *opaque;
	struct migrate_progress prog;
};

static void progress(struct src *s, const char *phase)
{
	s->prog.phase = phase;
	if (s->fn)
		s->fn(s->opaque, &s->prog);
}

/* Reads the next record, which must be of type want; an ABORT names the peer's reason. */
static int expect(struct src *s, uint32_t want, void *buf, size_t len, struct err *e)
{
	struct sec_hdr h;
	int r = sec_read_hdr(&s->r, &h, e);

	if (r < 0)
		return r;
	if (h.id == SEC_ABORT) {
		struct mig_abort a;
		r = sec_read_exact(&s->r, &h, &a, sizeof(a), e);
		if (r < 0)
			return r;
		a.reason[sizeof(a.reason) - 1] = 0;
		return err_set(e, -ECONNABORTED, "destination aborted: %s", a.reason);
	}
	if (h.id != want)
		return err_set(e, -EPROTO, "destination sent %s, expected %s", sec_name(h.id), sec_name(want));
	return sec_read_exact(&s->r, &h, buf, len, e);
}

static int send_rec(struct src *s, uint32_t id, const void *buf, size_t len, bool flush, struct err *e)
{
	struct iovec iov = { (void *)buf, len };
	int r = sec_write(&s->w, id, 1, &iov, 1, e);

	return r == 0 && flush ? chan_flush(s->ch, e) : r;
}

static int hello(struct src *s, struct err *e)
{
	struct mig_hello h = { .proto = MIG_PROTO_VERSION, .ram_size = s->m->vm.ram_size, .nr_vcpus = 1 };
	struct mig_hello_ack a;
	int r;

	memcpy(h.id, s->id, sizeof(h.id));
	r = send_rec(s, SEC_HELLO, &h, sizeof(h), true, e);
	if (r == 0)
		r = expect(s, SEC_HELLO_ACK, &a, sizeof(a), e);
	if (r < 0)
		return r;
	a.reason[sizeof(a.reason) - 1] = 0;
	if (a.proto != MIG_PROTO_VERSION)
		return err_set(e, -EPROTO, "destination speaks migration protocol version %u, this sealvm %u",
			       a.proto, MIG_PROTO_VERSION);
	if (a.status != MIG_ACCEPT)
		return err_set(e, -EREMOTEIO, "destination refused: %s", a.reason);
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
static bool peer_gone(struct src *s)
{
	struct pollfd p = { .fd = chan_fd(s->ch), .events = POLLIN };

	return chan_pending(s->ch) > 0 || poll(&p, 1, 0) != 0;
}

/* The destination speaks during the stream only to abort: read its reason. */
static int check_peer(struct src *s, struct err *e)
{
	struct mig_abort a;

	if (!peer_gone(s))
		return 0;
	return expect(s, SEC_ABORT, &a, sizeof(a), e) ? e->code
						   : err_set(e, -EPROTO, "destination sent an unexpected record");
}

#define CHECK_EVERY 8192 /* pages (32 MiB) between looks for an ABORT */

static int send_round(struct src *s, uint32_t round, uint64_t n, bool zero_markers, struct err *e)
{
	struct mig_round rd = { .round = round, .pages = n };
	uint64_t off;
	int r = send_rec(s, SEC_ROUND, &rd, sizeof(rd), false, e);

	for (off = 0; r == 0 && off < n; off += CHECK_EVERY) {
		uint64_t k = n - off < CHECK_EVERY ? n - off : CHECK_EVERY;
		r = pages_send(&s->w, s->m->vm.ram, s->idx + off, k, zero_markers, &s->ps, e);
		if (r == 0)
			r = check_peer(s, e);
	}
	return r;
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
	s->ps.zero_pages += m->vm.ram_pages - (uint64_t)pop;
	n = (uint64_t)pop;
	for (;;) {
		s->prog.round = round;
		s->prog.remaining_pages = n;
		progress(s, "precopy");
		t = now_ns();
		bytes0 = s->w.bytes;
		r = send_round(s, round, n, round > 0, e);
		if (r < 0)
			break;
		t = now_ns() - t;
		/* small rounds are latency-bound: keep the larger-sample rate when there is one */
		if (t > 0 && s->w.bytes > bytes0 && (rate == 0 || s->w.bytes - bytes0 > (1u << 20)))
			rate = (double)(s->w.bytes - bytes0) / (double)t;
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
	return r;
}

/* Paused: the last dirty pages, the device and CPU state, and END. */
static int stop_and_copy(struct src *s, uint64_t left, struct err *e)
{
	struct machine *m = s->m;
	uint64_t before = s->ps.data_pages + s->ps.markers, n;
	int r;

	/* pages dirtied since the last fetch join the ones already pending */
	for (n = 0; n < left; n++)
		s->bitmap[s->idx[n] / 64] |= 1ULL << (s->idx[n] % 64);
	r = vm_dirty_log_fetch(&m->vm, s->bitmap, e);
	if (r < 0)
		return r;
	n = collect(s);
	s->prog.remaining_pages = n;
	progress(s, "stop-and-copy");
	r = send_round(s, s->rep->rounds, n, true, e);
	if (r == 0)
		r = machine_save_state(m, &s->w, e);
	if (r == 0)
		r = sec_write_end(&s->w, s->ps.data_pages + s->ps.markers, e);
	if (r == 0)
		r = chan_flush(s->ch, e);
	s->rep->final_pages = s->ps.data_pages + s->ps.markers - before;
	return r;
}

/* After an unacknowledged COMMIT: ask the destination, on new connections, what
 * became of the VM. Only a definite answer, or proof that the destination
 * process is gone (connection refused), ends the wait. */
static enum migrate_result resolve_outcome(struct src *s, struct err *e)
{
	uint64_t deadline = now_ns() + (uint64_t)s->p->outcome_wait_ms * 1000000ull;
	char why[256];

	snprintf(why, sizeof(why), "%s", e->msg);
	while (now_ns() < deadline) {
		struct mig_hello h = { .proto = MIG_PROTO_VERSION, .flags = MIG_HELLO_QUERY };
		struct mig_hello_ack a;
		struct sec_writer w;
		struct sec_reader rd;
		struct sec_hdr hd;
		struct chan *c;
		struct err qe = { 0 };
		struct iovec iov = { &h, sizeof(h) };
		int r;

		memcpy(h.id, s->id, sizeof(h.id));
		r = chan_connect(s->p->uri, s->p->tls_dir, 2000, &c, &qe);
		if (r == -ECONNREFUSED) {
			err_set(e, -ECONNABORTED,
				"COMMIT was not acknowledged (%s) and the destination is gone (connection refused): VM resumed here",
				why);
			return MIGRATE_ABORTED;
		}
		if (r == 0) {
			chan_set_timeout(c, 2000);
			sec_writer_init(&w, chan_bstream(c), &qe);
			sec_reader_init(&rd, chan_bstream(c), &qe);
			r = sec_write(&w, SEC_HELLO, 1, &iov, 1, &qe);
			if (r == 0)
				r = chan_flush(c, &qe);
			if (r == 0)
				r = sec_read_hdr(&rd, &hd, &qe);
			if (r == 0 && hd.id != SEC_HELLO_ACK)
				r = -EPROTO;
			if (r == 0)
				r = sec_read_exact(&rd, &hd, &a, sizeof(a), &qe);
			sec_writer_fini(&w);
			sec_reader_fini(&rd);
			chan_close(c);
			if (r == 0 && a.status == MIG_OUTCOME_COMMITTED)
				return MIGRATE_COMMITTED;
			if (r == 0 && (a.status == MIG_OUTCOME_ABORTED || a.status == MIG_OUTCOME_UNKNOWN)) {
				err_set(e, -ECONNABORTED,
					"COMMIT was not acknowledged (%s); the destination reports it never ran the VM: VM resumed here",
					why);
				return MIGRATE_ABORTED;
			}
		}
		usleep(300 * 1000);
	}
	err_set(e, -ETIMEDOUT,
		"COMMIT sent but not acknowledged (%s) and the destination could not be asked for %u ms: VM kept PAUSED here so that it never runs twice; resume it with `ctl resume` only once the destination is known not to run it",
		why, s->p->outcome_wait_ms);
	return MIGRATE_UNCERTAIN;
}

static int handover(struct src *s, struct err *e)
{
	struct mig_ready ready;
	struct mig_commit cm;
	struct mig_commit_ack ack;
	int r;

	progress(s, "verify");
	r = expect(s, SEC_READY, &ready, sizeof(ready), e);
	if (r < 0)
		return r;
	s->rep->dest_load_ns = ready.load_ns;
	/* Last point of no return: if the peer is already gone, abort before COMMIT. */
	if (peer_gone(s))
		return err_set(e, -ECONNRESET, "destination closed the connection after READY");
	memcpy(cm.id, s->id, sizeof(cm.id));
	progress(s, "commit");
	r = send_rec(s, SEC_COMMIT, &cm, sizeof(cm), true, e);
	if (r == 0)
		r = expect(s, SEC_COMMIT_ACK, &ack, sizeof(ack), e);
	if (r < 0) {
		s->rep->result = resolve_outcome(s, e);
		return s->rep->result == MIGRATE_COMMITTED ? 0 : -ECONNABORTED;
	}
	s->rep->dest_resume_ns = ack.resume_ns;
	s->rep->dest_cpu_s = (double)ack.cpu_ns / 1e9;
	s->rep->result = MIGRATE_COMMITTED;
	return 0;
}

int migrate_source(struct machine *m, const struct migrate_params *p, struct migrate_report *rep,
		   migrate_progress_fn fn, void *opaque, struct err *e)
{
	struct src s = { .m = m, .p = p, .rep = rep, .fn = fn, .opaque = opaque };
	uint64_t t0 = now_ns(), t_pause = 0, left = 0;
	double cpu0 = thread_cpu_s();
	bool paused = false;
	int r;

	memset(rep, 0, sizeof(*rep));
	rep->ram_bytes = m->vm.ram_size;
	rep->result = MIGRATE_ABORTED;
	if (machine_state(m) != MACHINE_RUNNING)
		return err_set(e, -EINVAL, "cannot migrate a machine that is %s",
			       machine_state_name(machine_state(m)));
	s.bitmap = calloc((m->vm.ram_pages + 63) / 64, sizeof(uint64_t));
	s.idx = malloc(m->vm.ram_pages * sizeof(uint64_t));
	if (!s.bitmap || !s.idx || RAND_bytes(s.id, sizeof(s.id)) != 1) {
		free(s.bitmap);
		free(s.idx);
		return err_set(e, -ENOMEM, "migration buffers");
	}
	progress(&s, "connect");
	r = chan_connect(p->uri, p->tls_dir, (int)p->timeout_ms, &s.ch, e);
	if (r == 0) {
		chan_set_timeout(s.ch, (int)p->timeout_ms);
		rep->transport = chan_kind(s.ch) == CHAN_TLS ? "tls" : "tcp (INSECURE)";
		snprintf(rep->cipher, sizeof(rep->cipher), "%s", chan_cipher(s.ch));
		r = sec_writer_init(&s.w, chan_bstream(s.ch), e);
		if (r == 0)
			r = sec_reader_init(&s.r, chan_bstream(s.ch), e);
		if (r == 0)
			r = hello(&s, e);
		if (r == 0)
			r = precopy(&s, &left, e);
		if (r == 0) {
			t_pause = now_ns();
			machine_pause(m);
			paused = true;
			r = stop_and_copy(&s, left, e);
		}
		if (r == 0)
			r = handover(&s, e);
		rep->bytes_sent = chan_bytes_sent(s.ch);
		rep->bytes_received = chan_bytes_received(s.ch);
		rep->payload_bytes = chan_payload_sent(s.ch);
	}
	rep->data_pages = s.ps.data_pages;
	rep->zero_pages = s.ps.zero_pages;
	rep->zero_markers = s.ps.markers;
	if (m->vm.dirty_logging)
		vm_dirty_log_stop(&m->vm, NULL);
	if (r < 0 && rep->result == MIGRATE_ABORTED) {
		/* Before COMMIT (or the destination proved it never ran the VM): tell the
		 * destination why, then carry on here. */
		if (s.ch) {
			struct mig_abort a;
			memset(&a, 0, sizeof(a));
			snprintf(a.reason, sizeof(a.reason), "source aborted: %s", e->msg);
			chan_set_timeout(s.ch, 500);
			send_rec(&s, SEC_ABORT, &a, sizeof(a), true, NULL);
		}
		if (paused)
			machine_resume(m);
		err_wrap(e, "migration aborted during %s; the VM runs on here", s.prog.phase ? s.prog.phase : "setup");
	}
	if (s.ch) {
		sec_writer_fini(&s.w);
		sec_reader_fini(&s.r);
		chan_close(s.ch);
	}
	if (rep->result == MIGRATE_COMMITTED) {
		rep->downtime_ns = now_ns() - t_pause;
		machine_stop(m, STOP_MIGRATED, 0, "migrated to the destination");
		r = 0;
	}
	rep->total_ns = now_ns() - t0;
	rep->src_cpu_s = thread_cpu_s() - cpu0;
	free(s.bitmap);
	free(s.idx);
	progress(&s, rep->result == MIGRATE_COMMITTED ? "committed" :
		     rep->result == MIGRATE_UNCERTAIN ? "uncertain (paused)" : "aborted");
	return r;
}
