/* Destination side of a live migration: admit, receive, verify, load, and run
 * only on COMMIT. Anything else discards the incoming copy; it never runs. */
#include <stdio.h>
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
};

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

static int answer(struct dst *d, uint32_t status, const char *reason, struct err *e)
{
	struct mig_hello_ack a = { .proto = MIG_PROTO_VERSION, .status = status };

	snprintf(a.reason, sizeof(a.reason), "%s", reason ? reason : "");
	return send_rec(d, SEC_HELLO_ACK, &a, sizeof(a), e);
}

static int admit(const struct incoming_params *p, const struct mig_hello *h, char *why, size_t n)
{
	uint64_t avail = mem_available();

	if (h->proto != MIG_PROTO_VERSION) {
		snprintf(why, n, "protocol version %u not supported (this destination speaks %u)", h->proto,
			 MIG_PROTO_VERSION);
		return -EPROTO;
	}
	if (h->nr_vcpus != 1 || h->ram_size < VM_MIN_RAM || h->ram_size > VM_MAX_RAM ||
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

/* Receives the stream up to END and loads it; the machine is ready but paused. */
static int receive(struct dst *d, struct machine *m, uint64_t *load_ns, struct err *e)
{
	struct machine_loader ld;
	struct pages_stats ps = { 0 };
	struct sec_hdr h;
	int r;

	machine_loader_init(&ld);
	for (;;) {
		r = sec_read_hdr(&d->r, &h, e);
		if (r < 0)
			break;
		if (h.id == SEC_PAGES) {
			r = pages_recv(&d->r, &h, m->vm.ram, m->vm.ram_pages, &ps, e);
			if (r == 0 && fault("die-during-pages") && ps.data_pages > 2000)
				_exit(99);
		} else if (h.id == SEC_ROUND) {
			struct mig_round rd;
			r = sec_read_exact(&d->r, &h, &rd, sizeof(rd), e);
		} else if (h.id == SEC_ABORT) {
			struct mig_abort a;
			r = sec_read_exact(&d->r, &h, &a, sizeof(a), e);
			a.reason[sizeof(a.reason) - 1] = 0;
			if (r == 0)
				r = err_set(e, -ECONNABORTED, "%s", a.reason);
		} else if (h.id == SEC_END) {
			uint64_t t = now_ns();
			r = sec_check_end(&d->r, &h, ps.data_pages + ps.markers, e);
			if (r == 0)
				r = machine_load_commit(m, &ld, e);
			*load_ns = now_ns() - t;
			break;
		} else {
			r = machine_load_section(&ld, &d->r, &h, e);
		}
		if (r < 0)
			break;
	}
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
		if (chan_accept(in->listener, 1000, &c, &e) == 0)
			answer_query(in, c);
	}
	return NULL;
}

int migrate_incoming(const struct incoming_params *p, struct machine *m, struct incoming *in,
		     struct err *e)
{
	struct mig_hello h;
	struct mig_commit cm;
	struct mig_ready ready = { 0 };
	struct dst d = { 0 };
	double cpu0;
	char why[200];
	bool inited = false;
	int r;

	memset(in, 0, sizeof(*in));
	r = chan_listen(p->uri, p->tls_dir, &in->listener, e);
	if (r < 0)
		return r;
	fprintf(stderr, "sealvm: waiting for an incoming VM on %s (port %d)\n", p->uri,
		chan_listener_port(in->listener));
	/* A peer that fails authentication or asks questions does not end the wait. */
	for (;;) {
		struct err ae = { 0 };
		/* a peer that connects and never completes the handshake is dropped after 10 s */
		r = chan_accept(in->listener, 10000, &d.ch, &ae);
		if (r == -ETIMEDOUT && !strstr(ae.msg, "handshake"))
			continue; /* nobody came: keep waiting */
		if (r < 0) {
			fprintf(stderr, "sealvm: refused a connection: %s\n", ae.msg);
			continue;
		}
		chan_set_timeout(d.ch, (int)p->timeout_ms);
		sec_writer_init(&d.w, chan_bstream(d.ch), e);
		sec_reader_init(&d.r, chan_bstream(d.ch), e);
		r = read_hello(&d, &h, &ae);
		if (r == 0 && (h.flags & MIG_HELLO_QUERY)) {
			answer(&d, MIG_OUTCOME_UNKNOWN, "no VM arrived here", NULL);
			r = -EAGAIN;
		}
		if (r == 0)
			break;
		if (r != -EAGAIN)
			fprintf(stderr, "sealvm: dropped a connection: %s\n", ae.msg);
		sec_writer_fini(&d.w);
		sec_reader_fini(&d.r);
		chan_close(d.ch);
		d.ch = NULL;
	}
	cpu0 = thread_cpu_s();
	memcpy(in->id, h.id, sizeof(in->id));
	r = admit(p, &h, why, sizeof(why));
	if (r == 0) {
		r = machine_init(m, h.ram_size, p->serial_fd, e);
		inited = r == 0;
		if (r < 0)
			snprintf(why, sizeof(why), "cannot create the VM: %s", e->msg);
	}
	if (r < 0) {
		answer(&d, MIG_REFUSE, why, NULL);
		err_set(e, r, "refused the incoming VM: %s", why);
		goto out;
	}
	r = answer(&d, MIG_ACCEPT, NULL, e);
	if (r == 0)
		r = receive(&d, m, &ready.load_ns, e);
	if (r < 0) {
		err_wrap(e, "incoming migration failed");
		send_abort(&d, e->msg);
		goto out;
	}
	ready.pages_received = d.r.seq;
	r = send_rec(&d, SEC_READY, &ready, sizeof(ready), e);
	if (r == 0 && fault("die-after-ready"))
		_exit(99);
	if (r == 0) {
		struct sec_hdr hd;
		r = sec_read_hdr(&d.r, &hd, e);
		if (r == 0 && hd.id != SEC_COMMIT)
			r = err_set(e, -EPROTO, "source sent %s instead of COMMIT", sec_name(hd.id));
		if (r == 0)
			r = sec_read_exact(&d.r, &hd, &cm, sizeof(cm), e);
		if (r == 0 && memcmp(cm.id, h.id, sizeof(cm.id)))
			r = err_set(e, -EPROTO, "COMMIT names another migration");
	}
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
		r = machine_start(m, e);
		ack.resume_ns = now_ns() - t;
		ack.cpu_ns = (uint64_t)((thread_cpu_s() - cpu0) * 1e9);
		ack.bytes_received = chan_bytes_received(d.ch);
		if (r == 0)
			send_rec(&d, SEC_COMMIT_ACK, &ack, sizeof(ack), NULL); /* the VM runs: an ack lost now is the source's to resolve */
	}
out:
	if (d.ch) {
		sec_writer_fini(&d.w);
		sec_reader_fini(&d.r);
		chan_close(d.ch);
	}
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
