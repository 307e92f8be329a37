/* rogue_source: a source built from sealvm's own library that holds a valid
 * cluster certificate and tries to make a destination run a stream that was not
 * produced for the session it arrives on.
 *
 * usage: rogue_source URI TLS_DIR KERNEL MODE [URI2]
 *   honest   a correctly bound stream (the control case: it must be accepted)
 *   v2       a source of migration protocol version 2 (before the trust phase):
 *            it must be told, in a HELLO_ACK it can read, which version to speak
 *   replay   a stream prepared and bound for a session with URI2, replayed byte
 *            for byte on a session with URI
 *   unbound  a stream whose END is the old, unbound transcript hash (version 1),
 *            as an old sealvm or an old snapshot file carried it
 * It boots KERNEL in a small VM of its own to have real state to send, and ends
 * with "rogue: destination said: ..." for the test to read. Exit 0 if the
 * destination committed, 3 if it refused or aborted. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel/channel.h"
#include "migrate/bind.h"
#include "migrate/proto.h"
#include "state/pages.h"
#include "util/pagemap.h"
#include "vmm/machine.h"

/* A bstream into memory: the "recording". */
struct mem {
	struct bstream bs;
	uint8_t *p;
	size_t len, cap;
};

static int mem_writev(struct bstream *bs, const struct iovec *iov, int n, struct err *e)
{
	struct mem *m = bs->ctx;
	int i;

	for (i = 0; i < n; i++) {
		if (m->len + iov[i].iov_len > m->cap) {
			size_t cap = (m->len + iov[i].iov_len) * 2;
			uint8_t *q = realloc(m->p, cap);
			if (!q)
				return err_set(e, -ENOMEM, "out of memory");
			m->p = q;
			m->cap = cap;
		}
		memcpy(m->p + m->len, iov[i].iov_base, iov[i].iov_len);
		m->len += iov[i].iov_len;
	}
	return 0;
}

struct session {
	struct chan *c;
	struct sec_writer w;
	struct sec_reader r;
	struct mig_hello_ack ack;
};

static int open_session(const char *uri, const char *tls, struct machine *m, const uint8_t id[16],
			uint32_t proto, struct session *s, struct err *e)
{
	struct mig_hello h = { .proto = proto, .kind = MIG_KIND_MIGRATE, .ram_size = m->vm.ram_size,
			       .nr_vcpus = 1, .channels = 1 };
	struct iovec iov = { &h, sizeof(h) };
	struct sec_hdr hd;
	int r;

	memcpy(h.id, id, 16);
	r = chan_connect(uri, tls, 5000, &s->c, e);
	if (r == 0)
		r = sec_writer_init(&s->w, chan_bstream(s->c), e);
	if (r == 0)
		r = sec_reader_init(&s->r, chan_bstream(s->c), e);
	if (r == 0)
		r = sec_write(&s->w, SEC_HELLO, proto, &iov, 1, e);
	if (r == 0 && proto == MIG_PROTO_VERSION) {
		/* the trust phase of an open-mode source: its (no) labels */
		static const char req[] = "{\"labels\":{},\"mode\":\"open\"}";
		struct iovec ri = { (void *)req, sizeof(req) - 1 };
		r = sec_write(&s->w, SEC_ATTEST_REQ, 1, &ri, 1, e);
	}
	if (r == 0)
		r = chan_flush(s->c, e);
	if (r == 0)
		r = sec_read_hdr(&s->r, &hd, e);
	if (r == 0 && hd.id != SEC_HELLO_ACK)
		r = err_set(e, -EPROTO, "got %s", sec_name(hd.id));
	if (r == 0)
		r = sec_read_exact(&s->r, &hd, &s->ack, sizeof(s->ack), e);
	if (r == 0 && s->ack.status != MIG_ACCEPT)
		r = err_set(e, -EACCES, "refused at HELLO (it speaks protocol %u): %s", s->ack.proto, s->ack.reason);
	/* as sealvm: after HELLO_ACK on TLS, no section checksums */
	s->w.no_checksum = s->r.no_checksum = r == 0 && chan_kind(s->c) == CHAN_TLS;
	return r;
}

/* The whole stream after HELLO (pages, state, END) written by w. */
static int write_stream(struct machine *m, struct sec_writer *w, bool unbound_end, struct err *e)
{
	uint64_t *idx = malloc(m->vm.ram_pages * sizeof(uint64_t));
	struct pages_stats st = { 0 };
	struct mig_round rd = { 0 };
	struct iovec iov = { &rd, sizeof(rd) };
	int64_t n = idx ? pagemap_populated(m->vm.ram, m->vm.ram_pages, idx, e) : -ENOMEM;
	int r = n < 0 ? (int)n : 0;

	if (r == 0)
		r = sec_write(w, SEC_ROUND, 1, &iov, 1, e);
	if (r == 0)
		r = pages_send(w, m->vm.ram, idx, (uint64_t)n, false, true, &st, e);
	if (r == 0)
		r = machine_save_state(m, w, SAVE_MIGRATION, e);
	if (r == 0 && unbound_end) {
		/* what sealvm's END was before streams were bound: the bare transcript */
		struct { uint64_t sections, pages; uint8_t t[32]; } end = { w->seq, st.data_pages, { 0 } };
		struct iovec ie = { &end, sizeof(end) };
		sec_writer_digest(w, end.t);
		r = sec_write(w, SEC_END, 1, &ie, 1, e);
	} else if (r == 0) {
		r = sec_write_end(w, st.data_pages + st.markers, e);
	}
	free(idx);
	return r;
}

static int outcome(struct session *s, bool honest)
{
	struct sec_hdr hd;
	struct err e = { 0 };
	int r;

	chan_set_timeout(s->c, 20000);
	r = sec_read_hdr(&s->r, &hd, &e);
	if (r == 0 && hd.id == SEC_READY && honest) {
		struct mig_ready ready;
		struct mig_commit cm = { 0 };
		struct iovec iov = { &cm, sizeof(cm) };
		if (sec_read_exact(&s->r, &hd, &ready, sizeof(ready), &e) < 0) {
			printf("rogue: destination said: READY unreadable: %s\n", e.msg);
			return 3;
		}
		/* the same id as in HELLO */
		memcpy(cm.id, s->w.bind->ctx, 16);
		sec_write(&s->w, SEC_COMMIT, 1, &iov, 1, &e);
		chan_flush(s->c, &e);
		r = sec_read_hdr(&s->r, &hd, &e);
		if (r == 0 && hd.id == SEC_COMMIT_ACK) {
			printf("rogue: destination said: COMMIT_ACK (it runs the stream)\n");
			return 0;
		}
	}
	if (r == 0 && hd.id == SEC_ABORT) {
		struct mig_abort a;
		if (sec_read_exact(&s->r, &hd, &a, sizeof(a), &e) == 0) {
			a.reason[sizeof(a.reason) - 1] = 0;
			printf("rogue: destination said: ABORT: %s\n", a.reason);
			return 3;
		}
	}
	printf("rogue: destination said: %s\n", r == 0 ? sec_name(hd.id) : e.msg);
	return r == 0 && hd.id == SEC_READY ? 0 : 3;
}

int main(int argc, char **argv)
{
	struct machine m;
	struct session s1 = { 0 }, s2 = { 0 };
	struct err e = { 0 };
	uint8_t id[16];
	struct sec_bind b1;
	const char *mode;
	int r;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: rogue_source URI TLS_DIR KERNEL honest|replay|unbound|v2 [URI2]\n");
		return 2;
	}
	mode = argv[4];
	if (!strcmp(mode, "replay") && argc != 6) {
		fprintf(stderr, "rogue: replay needs URI2 to record from\n");
		return 2;
	}
	if (machine_init(&m, 64ull << 20, 1, -1, &e) < 0 || machine_boot(&m, argv[3], "interval=50", &e) < 0 ||
	    machine_start(&m, &e) < 0) {
		fprintf(stderr, "rogue: cannot build its VM: %s\n", e.msg);
		return 2;
	}
	usleep(300000);
	machine_pause(&m, PAUSE_MIGRATION);
	RAND_bytes(id, sizeof(id));
	r = open_session(!strcmp(mode, "replay") ? argv[5] : argv[1], argv[2], &m, id,
			 !strcmp(mode, "v2") ? 2 : MIG_PROTO_VERSION, &s1, &e);
	if (r < 0) {
		printf("rogue: destination said: %s\n", e.msg);
		return 3;
	}
	if (mig_bind(s1.c, id, s1.ack.nonce, 0, &b1, &e) < 0)
		return 2;
	s1.w.bind = &b1;
	if (!strcmp(mode, "honest") || !strcmp(mode, "unbound")) {
		r = write_stream(&m, &s1.w, !strcmp(mode, "unbound"), &e);
		if (r == 0)
			r = chan_flush(s1.c, &e);
		return r < 0 ? (printf("rogue: destination said: %s\n", e.msg), 3) : outcome(&s1, !strcmp(mode, "honest"));
	}
	if (strcmp(mode, "replay")) {
		fprintf(stderr, "rogue: unknown mode %s\n", mode);
		return 2;
	}
	/* record a stream bound to session 1, then walk away from it */
	{
		struct mem rec = { .bs = { .writev_all = mem_writev } };
		struct sec_writer w;
		rec.bs.ctx = &rec;
		sec_writer_init(&w, &rec.bs, &e);
		w.seq = s1.w.seq; /* continues after HELLO, as on the wire */
		w.bind = &b1;
		if (write_stream(&m, &w, false, &e) < 0)
			return 2;
		chan_close(s1.c);
		/* ...and replay it, byte for byte, on a new session */
		r = open_session(argv[1], argv[2], &m, id, MIG_PROTO_VERSION, &s2, &e);
		if (r < 0) {
			printf("rogue: destination said: %s\n", e.msg);
			return 3;
		}
		s2.w.bind = &b1;
		r = chan_write(s2.c, rec.p, rec.len, &e);
		if (r == 0)
			r = chan_flush(s2.c, &e);
		if (r < 0) {
			printf("rogue: destination said: %s\n", e.msg);
			return 3;
		}
		return outcome(&s2, false);
	}
}
