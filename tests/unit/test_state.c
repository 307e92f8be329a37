/* State sections and PAGES through a memory-backed bstream, no KVM: round trips of
 * every size class, page transfer between two fake RAM buffers, and every way a
 * damaged stream must be refused (with a message naming the problem, never a crash). */
#include "dev/serial.h"
#include "state/pages.h"
#include "state/section.h"
#include "unit.h"
#include "vm/vcpu.h"
#include "vm/vm_state.h"
#include "vmm/machine.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PG 4096u
#define RAM_PAGES 1024u /* 4 MiB of fake RAM */

/* ---- memory bstream: writes append to a growing buffer, reads consume a buffer ---- */

struct membs {
	struct bstream bs;
	uint8_t *buf;
	size_t len, cap, pos;
	bool owned;
};

static int mem_writev(struct bstream *s, const struct iovec *iov, int n, struct err *e)
{
	struct membs *m = s->ctx;
	int i;

	for (i = 0; i < n; i++) {
		size_t l = iov[i].iov_len;
		if (m->len + l > m->cap) {
			size_t cap = m->cap ? m->cap : 4096;
			uint8_t *nb;
			while (cap < m->len + l)
				cap *= 2;
			nb = realloc(m->buf, cap);
			if (!nb)
				return err_set(e, -ENOMEM, "memory stream");
			m->buf = nb;
			m->cap = cap;
		}
		if (l)
			memcpy(m->buf + m->len, iov[i].iov_base, l);
		m->len += l;
	}
	return 0;
}

static int mem_read(struct bstream *s, void *buf, size_t len, struct err *e)
{
	struct membs *m = s->ctx;

	if (len > m->len - m->pos) {
		m->pos = m->len;
		return err_set(e, -ENODATA, "unexpected end of stream (truncated)");
	}
	memcpy(buf, m->buf + m->pos, len);
	m->pos += len;
	return 0;
}

static void mem_init(struct membs *m)
{
	memset(m, 0, sizeof(*m));
	m->bs.writev_all = mem_writev;
	m->bs.read_full = mem_read;
	m->bs.ctx = m;
	m->owned = true;
}

/* A reader over bytes it does not own. */
static void mem_reader(struct membs *m, const uint8_t *p, size_t len)
{
	mem_init(m);
	m->buf = (uint8_t *)p;
	m->len = m->cap = len;
	m->owned = false;
}

static void mem_free(struct membs *m)
{
	if (m->owned)
		free(m->buf);
	m->buf = NULL;
}

/* A writer with its stream, and byte offsets of section boundaries. */
struct wstream {
	struct membs m;
	struct sec_writer w;
	size_t cut[64];
	int ncut;
};

static void ws_init(struct wstream *s)
{
	struct err e = { 0 };

	mem_init(&s->m);
	CHECK(sec_writer_init(&s->w, &s->m.bs, &e) == 0);
	s->ncut = 0;
	s->cut[s->ncut++] = 0;
}

static void ws_mark(struct wstream *s)
{
	if (s->ncut < 64)
		s->cut[s->ncut++] = s->m.len;
}

static void ws_free(struct wstream *s)
{
	sec_writer_fini(&s->w);
	mem_free(&s->m);
}

static void ws_write(struct wstream *s, uint32_t id, uint32_t version, const void *p, size_t len)
{
	struct iovec iov = { (void *)p, len };
	struct err e = { 0 };
	int r = sec_write(&s->w, id, version, &iov, 1, &e);

	CHECKF(r == 0, "sec_write %s: %s", sec_name(id), e.msg);
	ws_mark(s);
}

static uint64_t rng = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_random(void *p, size_t n)
{
	uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

#define CHECK_MSG(e, sub)                                                           \
	CHECKF(strstr((e)->msg, (sub)) != NULL, "message \"%s\" lacks \"%s\"", (e)->msg, (sub))

/* ---- plausible saved states ---- */

static void good_vcpu(struct vcpu_state *s)
{
	memset(s, 0, sizeof(*s));
	s->version = VCPU_STATE_VERSION;
	s->nmsrs = 2;
	s->msrs[0].index = 0x10;
	s->msrs[1].index = 0x1b;
	s->ncpuid = 1;
	s->xsave_size = sizeof(struct kvm_xsave);
	s->mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
	s->sregs.cr0 = 0x11;
	s->regs.rip = 0x100000;
	s->regs.rflags = 2;
}

static void good_vm(struct vm_state *s)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->version = VM_STATE_VERSION;
	for (i = 0; i < 3; i++) {
		s->chips[i].chip_id = (uint32_t)i;
		s->pit.channels[i].mode = i ? 0xff : 2;
		s->pit.channels[i].rw_mode = 3;
	}
	s->chips[2].chip.ioapic.base_address = 0xfec00000;
}

static void good_serial(struct serial_state *s)
{
	struct serial u;

	serial_init(&u, -1, NULL, NULL);
	serial_input(&u, (const uint8_t *)"ok", 2);
	serial_save(&u, s);
	serial_destroy(&u);
}

/* ---- a receiver as snapshot restore runs it: CONFIG, then PAGES/state until END ---- */

struct rx {
	const struct sec_bind *bind;   /* what the reader expects END to be bound to */
	uint8_t *ram;
	uint64_t ram_pages;
	bool config_first;      /* expect CONFIG as the first section */
	struct machine_config cfg;
	struct pages_stats st;
	struct machine_loader ld;
	uint64_t sections;
	bool ended;
	size_t consumed;
};

static void rx_init(struct rx *x, uint8_t *ram, uint64_t ram_pages, bool config_first)
{
	memset(x, 0, sizeof(*x));
	x->ram = ram;
	x->ram_pages = ram_pages;
	x->config_first = config_first;
	machine_loader_init(&x->ld);
}

static void rx_fini(struct rx *x)
{
	machine_loader_fini(&x->ld);
}

static int rx_run(struct rx *x, const uint8_t *p, size_t len, struct err *e)
{
	struct membs m;
	struct sec_reader r;
	struct sec_hdr h;
	int rc;

	mem_reader(&m, p, len);
	rc = sec_reader_init(&r, &m.bs, e);
	r.bind = x->bind;
	if (rc == 0 && x->config_first) {
		rc = sec_read_hdr(&r, &h, e);
		if (rc == 0)
			rc = machine_config_read(&r, &h, &x->cfg, e);
		x->ld.nr_vcpus = x->cfg.nr_vcpus; /* as snapshot_restore does */
	}
	while (rc == 0 && !x->ended) {
		rc = sec_read_hdr(&r, &h, e);
		if (rc < 0)
			break;
		switch (h.id) {
		case SEC_PAGES:
			rc = pages_recv(&r, &h, x->ram, x->ram_pages, &x->st, e);
			break;
		case SEC_END:
			rc = sec_check_end(&r, &h, x->st.data_pages + x->st.markers, e);
			x->ended = rc == 0;
			break;
		default:
			rc = machine_load_section(&x->ld, &r, &h, e);
		}
	}
	x->sections = r.seq;
	x->consumed = m.pos;
	if (rc == 0 && m.pos != len)
		rc = err_set(e, -EPROTO, "data after END");
	sec_reader_fini(&r);
	return rc;
}

/* Runs a whole stream expecting failure; returns the code, e holds the message. */
static int rx_expect_fail(const uint8_t *p, size_t len, bool config_first, struct err *e)
{
	static uint8_t ram[RAM_PAGES * PG];
	struct rx x;
	int rc;

	memset(e, 0, sizeof(*e));
	rx_init(&x, ram, RAM_PAGES, config_first);
	rc = rx_run(&x, p, len, e);
	rx_fini(&x);
	CHECKF(rc < 0, "stream of %zu bytes accepted", len);
	CHECKF(e->msg[0] != 0, "failure %d without a message", rc);
	return rc;
}

/* ---- round trips ---- */

static void test_size_classes(void)
{
	/* id and payload length: empty, one byte, exact maxima of several types, PAGES' max */
	static const struct { uint32_t id; size_t len; int pieces; } cases[] = {
		{ SEC_ROUND, 0, 1 },
		{ SEC_SERIAL, 1, 1 },
		{ SEC_CONFIG, 64, 2 },
		{ SEC_CONFIG, 256, 3 },
		{ SEC_HELLO, 4096, 4 },
		{ SEC_ATTEST, 8192, 1 },
		{ SEC_VM, 16 * 1024, 5 },
		{ SEC_VCPU, 64 * 1024, 7 },
		{ SEC_PAGES, 8 + 1024 * (8 + 4096), 9 },
	};
	const size_t n = sizeof(cases) / sizeof(cases[0]);
	uint8_t *payload[16], *back;
	struct wstream s;
	struct membs rm;
	struct sec_reader r;
	struct sec_hdr h;
	struct err e = { 0 };
	uint8_t wd[32], rd[32], pre[32];
	size_t i;

	ws_init(&s);
	for (i = 0; i < n; i++) {
		size_t len = cases[i].len, off = 0;
		int k, pieces = cases[i].pieces;

		CHECK_INT(sec_max_len(cases[i].id) >= len, 1);
		payload[i] = malloc(len ? len : 1);
		fill_random(payload[i], len);
		if (i % 2 == 0) {
			/* one call with several iovecs */
			struct iovec iov[9];
			for (k = 0; k < pieces; k++) {
				size_t l = k == pieces - 1 ? len - off : len / (size_t)pieces;
				iov[k] = (struct iovec){ payload[i] + off, l };
				off += l;
			}
			CHECKF(sec_write(&s.w, cases[i].id, 1, iov, pieces, &e) == 0, "%s", e.msg);
		} else {
			/* streaming: begin with the length, add pieces, end */
			CHECKF(sec_begin(&s.w, cases[i].id, 1, len, &e) == 0, "%s", e.msg);
			for (k = 0; k < pieces; k++) {
				size_t l = k == pieces - 1 ? len - off : len / (size_t)pieces;
				struct iovec iov = { payload[i] + off, l };
				CHECKF(sec_add(&s.w, &iov, 1, &e) == 0, "%s", e.msg);
				off += l;
			}
			CHECKF(sec_end(&s.w, &e) == 0, "%s", e.msg);
		}
		CHECK_INT(s.w.seq, i + 1);
	}
	sec_writer_digest(&s.w, pre);
	CHECK(sec_write_end(&s.w, 77, &e) == 0);
	CHECK_INT(s.w.bytes, s.m.len);

	mem_reader(&rm, s.m.buf, s.m.len);
	CHECK(sec_reader_init(&r, &rm.bs, &e) == 0);
	back = malloc(8 + 1024 * (8 + 4096));
	for (i = 0; i < n; i++) {
		size_t len = cases[i].len, off = 0;

		CHECKF(sec_read_hdr(&r, &h, &e) == 0, "section %zu: %s", i, e.msg);
		CHECK_INT(h.id, cases[i].id);
		CHECK_INT(h.version, 1);
		CHECK_INT(h.seq, i);
		CHECK_INT(h.len, len);
		/* read in uneven chunks */
		while (off < len) {
			size_t l = len - off < 1000 ? len - off : 1000 + off % 7;
			CHECKF(sec_read(&r, back + off, l, &e) == 0, "%s", e.msg);
			off += l;
		}
		CHECKF(sec_read_end(&r, &e) == 0, "section %zu: %s", i, e.msg);
		CHECKF(memcmp(back, payload[i], len) == 0, "section %zu payload differs", i);
		free(payload[i]);
	}
	CHECK(sec_read_hdr(&r, &h, &e) == 0);
	CHECK_INT(h.id, SEC_END);
	CHECK_INT(h.seq, n);
	CHECKF(sec_check_end(&r, &h, 77, &e) == 0, "%s", e.msg);
	CHECK_INT(r.bytes, s.m.len);
	CHECK_INT(rm.pos, s.m.len);
	/* the transcripts agree before END (what END carries) and after it */
	CHECK(memcmp(r.pre_end, pre, 32) == 0);
	sec_reader_digest(&r, rd);
	sec_writer_digest(&s.w, wd);
	CHECK(memcmp(wd, rd, 32) == 0);
	CHECK(memcmp(wd, pre, 32) != 0);
	/* nothing after END: the next header is a clean truncation */
	CHECK_INT(sec_read_hdr(&r, &h, &e), -ENODATA);
	CHECK_MSG(&e, "truncated");
	free(back);
	sec_reader_fini(&r);
	ws_free(&s);
}

static void test_writer_misuse(void)
{
	struct wstream s;
	struct err e = { 0 };
	uint8_t b[16] = { 0 };
	struct iovec iov = { b, sizeof(b) };

	ws_init(&s);
	CHECK(sec_begin(&s.w, SEC_CONFIG, 1, 8, &e) == 0);
	CHECK_INT(sec_add(&s.w, &iov, 1, &e), -EOVERFLOW);
	CHECK_MSG(&e, "exceeds its announced 8 bytes");
	CHECK_INT(sec_begin(&s.w, SEC_CONFIG, 1, 8, &e), -EINVAL);
	CHECK_MSG(&e, "still open");
	ws_free(&s);

	ws_init(&s);
	CHECK(sec_begin(&s.w, SEC_CONFIG, 1, 32, &e) == 0);
	CHECK(sec_add(&s.w, &iov, 1, &e) == 0);
	CHECK_INT(sec_end(&s.w, &e), -EINVAL);
	CHECK_MSG(&e, "16 of 32 payload bytes");
	ws_free(&s);
}

static void test_reader_misuse(void)
{
	struct wstream s;
	struct membs rm;
	struct sec_reader r;
	struct sec_hdr h;
	struct err e = { 0 };
	uint8_t b[64] = { 1, 2, 3 };

	ws_init(&s);
	ws_write(&s, SEC_CONFIG, 1, b, 16);
	ws_write(&s, SEC_CONFIG, 1, b, 16);
	mem_reader(&rm, s.m.buf, s.m.len);
	CHECK(sec_reader_init(&r, &rm.bs, &e) == 0);
	CHECK(sec_read_hdr(&r, &h, &e) == 0);
	CHECK_INT(sec_read(&r, b, 17, &e), -EPROTO);
	CHECK_MSG(&e, "shorter than its contents");
	CHECK_INT(sec_read_hdr(&r, &h, &e), -EINVAL);
	CHECK_MSG(&e, "not finished");
	CHECK(sec_read(&r, b, 8, &e) == 0);
	CHECK_INT(sec_read_end(&r, &e), -EPROTO);
	CHECK_MSG(&e, "8 unread payload bytes");
	CHECK(sec_read(&r, b, 8, &e) == 0);
	CHECK(sec_read_end(&r, &e) == 0);
	CHECK(sec_read_hdr(&r, &h, &e) == 0);
	CHECK_INT(sec_read_exact(&r, &h, b, 20, &e), -EPROTO);
	CHECK_MSG(&e, "is 16 bytes, expected 20");
	sec_reader_fini(&r);
	ws_free(&s);
}

/* ---- pages ---- */

static bool all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* RAM with random pages, zero pages, one-byte pages, a whole zero batch and runs. */
static void make_ram(uint8_t *ram)
{
	uint64_t p;

	memset(ram, 0, (size_t)RAM_PAGES * PG);
	for (p = 0; p < RAM_PAGES; p++) {
		uint8_t *pg = ram + p * PG;
		unsigned kind = (unsigned)(rnd() % 8);

		if (p >= 256 && p < 512)
			continue; /* a batch of zero pages only */
		if (kind == 0 || p % 97 == 0)
			continue; /* zero */
		if (kind == 1)
			pg[rnd() % PG] = (uint8_t)(rnd() | 1); /* one byte set */
		else
			fill_random(pg, PG);
	}
}

static void pages_round_trip(bool markers)
{
	uint8_t *a = malloc((size_t)RAM_PAGES * PG), *b = malloc((size_t)RAM_PAGES * PG);
	uint64_t *idx = malloc(RAM_PAGES * sizeof(uint64_t));
	uint64_t i, nz = 0, z = 0, batches_with_data = 0;
	struct pages_stats st = { 0 };
	struct wstream s;
	struct rx x;
	struct err e = { 0 };
	int rc;

	make_ram(a);
	for (i = 0; i < RAM_PAGES; i++) {
		idx[i] = i;
		if (page_is_zero(a + i * PG))
			z++;
		else
			nz++;
	}
	for (i = 0; i < RAM_PAGES; i += PAGES_BATCH) {
		uint64_t k;
		for (k = i; k < i + PAGES_BATCH; k++)
			if (!page_is_zero(a + k * PG))
				break;
		batches_with_data += k < i + PAGES_BATCH;
	}
	CHECK(z > 256 && nz > 256);
	for (i = 0; i < RAM_PAGES; i++)
		CHECK_INT(page_is_zero(a + i * PG), all_zero(a + i * PG, PG));

	ws_init(&s);
	rc = pages_send(&s.w, a, idx, RAM_PAGES, markers, !markers /* both paths */, &st, &e);
	CHECKF(rc == 0, "pages_send: %s", e.msg);
	CHECK_INT(st.data_pages, nz);
	CHECK_INT(st.zero_pages, z);
	CHECK_INT(st.markers, markers ? z : 0);
	CHECK_INT(st.sections, markers ? RAM_PAGES / PAGES_BATCH : batches_with_data);
	CHECK_INT(s.w.seq, st.sections);
	CHECK(sec_write_end(&s.w, st.data_pages + st.markers, &e) == 0);

	/* with markers the receiver may hold stale data; without, it starts zeroed */
	memset(b, markers ? 0xa5 : 0, (size_t)RAM_PAGES * PG);
	rx_init(&x, b, RAM_PAGES, false);
	rc = rx_run(&x, s.m.buf, s.m.len, &e);
	CHECKF(rc == 0, "receive (markers %d): %s", markers, e.msg);
	CHECK(x.ended);
	CHECK(memcmp(a, b, (size_t)RAM_PAGES * PG) == 0);
	CHECK_INT(x.st.data_pages, nz);
	CHECK_INT(x.st.markers, markers ? z : 0);
	CHECK_INT(x.st.zero_pages, x.st.markers);
	CHECK_INT(x.st.sections, st.sections);
	CHECK_INT(x.sections, st.sections + 1);
	rx_fini(&x);
	ws_free(&s);

	/* a subset in an odd order: runs, a backwards step, scattered and zero pages */
	{
		static const uint64_t sub[] = { 5, 6, 7, 8, 100, 3, 900, 901, 902, 300, 17, 1023, 0 };
		const uint64_t ns = sizeof(sub) / sizeof(sub[0]);
		uint64_t sz = 0, snz = 0;

		for (i = 0; i < ns; i++) {
			if (page_is_zero(a + sub[i] * PG))
				sz++;
			else
				snz++;
		}
		memset(&st, 0, sizeof(st));
		ws_init(&s);
		CHECK(pages_send(&s.w, a, sub, ns, markers, false, &st, &e) == 0);
		CHECK_INT(st.sections, 1);
		CHECK_INT(st.data_pages, snz);
		CHECK_INT(st.zero_pages, sz);
		CHECK(sec_write_end(&s.w, st.data_pages + st.markers, &e) == 0);
		memset(b, 0xa5, (size_t)RAM_PAGES * PG);
		rx_init(&x, b, RAM_PAGES, false);
		CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
		for (i = 0; i < RAM_PAGES; i++) {
			bool sent = false, zero = page_is_zero(a + i * PG);
			uint64_t k;
			for (k = 0; k < ns; k++)
				sent |= sub[k] == i;
			if (sent && (!zero || markers))
				CHECKF(memcmp(a + i * PG, b + i * PG, PG) == 0, "page %llu", (unsigned long long)i);
			else
				CHECKF(b[i * PG] == 0xa5 && b[i * PG + PG - 1] == 0xa5,
				       "page %llu not sent but changed", (unsigned long long)i);
		}
		CHECK_INT(x.st.data_pages, snz);
		CHECK_INT(x.st.markers, markers ? sz : 0);
		rx_fini(&x);
		ws_free(&s);
	}
	free(a);
	free(b);
	free(idx);
}

/* ---- damaged streams ---- */

static void test_unknown_id(void)
{
	static const uint32_t ids[] = { 0, 11, 15, 28, 31, 47, 1000, UINT32_MAX };
	uint8_t b[8] = { 0 };
	struct err e;
	size_t i;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct wstream s;
		char want[64];

		ws_init(&s);
		ws_write(&s, ids[i], 1, b, sizeof(b));
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		snprintf(want, sizeof(want), "unknown section type %u", ids[i]);
		CHECK_MSG(&e, want);
		ws_free(&s);
	}
	CHECK_STR(sec_name(11), "unknown");
	CHECK_STR(sec_name(UINT32_MAX), "unknown");
	CHECK_STR(sec_name(SEC_PAGES), "PAGES");
}

static void test_sequence(void)
{
	struct serial_state ss;
	struct wstream s;
	uint8_t buf[4096];
	size_t l0, l1, l2, n;
	struct err e;

	good_serial(&ss);
	ws_init(&s);
	ws_write(&s, SEC_SERIAL, 1, &ss, sizeof(ss)); /* seq 0 */
	ws_write(&s, SEC_ROUND, 1, NULL, 0);          /* seq 1 (unexpected by the loader) */
	ws_write(&s, SEC_SERIAL, 1, &ss, sizeof(ss)); /* seq 2 */
	l0 = s.cut[1];
	l1 = s.cut[2] - s.cut[1];
	l2 = s.cut[3] - s.cut[2];
	CHECK(s.m.len < sizeof(buf) / 2);

	/* dropped: 0, 2 */
	memcpy(buf, s.m.buf, l0);
	memcpy(buf + l0, s.m.buf + s.cut[2], l2);
	n = l0 + l2;
	CHECK_INT(rx_expect_fail(buf, n, false, &e), -EPROTO);
	CHECK_MSG(&e, "sequence number 2");
	CHECK_MSG(&e, "dropped, duplicated or reordered");
	CHECK_MSG(&e, "at section 1");
	/* duplicated: 0, 0 */
	memcpy(buf + l0, s.m.buf, l0);
	CHECK_INT(rx_expect_fail(buf, 2 * l0, false, &e), -EPROTO);
	CHECK_MSG(&e, "sequence number 0");
	/* reordered: 0, 2, 1 */
	memcpy(buf + l0, s.m.buf + s.cut[2], l2);
	memcpy(buf + l0 + l2, s.m.buf + s.cut[1], l1);
	CHECK_INT(rx_expect_fail(buf, l0 + l2 + l1, false, &e), -EPROTO);
	CHECK_MSG(&e, "sequence");
	/* starting at 1 */
	CHECK_INT(rx_expect_fail(s.m.buf + s.cut[1], s.m.len - s.cut[1], false, &e), -EPROTO);
	CHECK_MSG(&e, "sequence number 1");
	ws_free(&s);
}

static void test_version(void)
{
	struct vcpu_state *vs = malloc(sizeof(*vs));
	struct wstream s;
	struct err e;

	good_vcpu(vs);
	ws_init(&s);
	ws_write(&s, SEC_VCPU, 2, vs, sizeof(*vs));
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
	CHECK_MSG(&e, "(VCPU) has version 2; this sealvm reads up to 1");
	ws_free(&s);

	ws_init(&s);
	ws_write(&s, SEC_PAGES, 0, vs, 64);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
	CHECK_MSG(&e, "version 0");
	ws_free(&s);

	ws_init(&s);
	ws_write(&s, SEC_END, UINT32_MAX, vs, 48);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
	CHECK_MSG(&e, "version 4294967295");
	ws_free(&s);
	free(vs);
}

static void test_length_max(void)
{
	static const uint32_t ids[] = { SEC_CONFIG, SEC_PAGES, SEC_VCPU, SEC_VM, SEC_SERIAL,
					SEC_END, SEC_HELLO, SEC_ROUND, SEC_ABORT };
	size_t i;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		uint64_t lens[2] = { sec_max_len(ids[i]) + 1, UINT64_MAX };
		int k;

		for (k = 0; k < 2; k++) {
			struct wstream s;
			struct err e;
			char want[128];

			/* only the header goes out: the reader must refuse it before the payload */
			ws_init(&s);
			CHECK(sec_begin(&s.w, ids[i], 1, lens[k], &e) == 0);
			CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
			snprintf(want, sizeof(want), "%s length %llu exceeds %llu", sec_name(ids[i]),
				 (unsigned long long)lens[k], (unsigned long long)sec_max_len(ids[i]));
			CHECK_MSG(&e, want);
			ws_free(&s);
		}
	}
	CHECK_INT(sec_max_len(SEC_END), sizeof(struct sec_end_payload));
	CHECK_INT(sec_max_len(SEC_PAGES), 8 + PAGES_MAX * (8 + 4096));
}

static void test_checksum(void)
{
	struct machine_config cfg = { .version = CONFIG_VERSION_1CPU, .nr_vcpus = 1, .ram_size = 4 << 20 };
	struct wstream s;
	uint8_t *buf;
	struct err e;
	size_t i;

	ws_init(&s);
	ws_write(&s, SEC_CONFIG, 1, &cfg, sizeof(cfg));
	CHECK(sec_write_end(&s.w, 0, &e) == 0);
	buf = malloc(s.m.len);
	/* every payload byte and every trailer byte of CONFIG */
	for (i = SEC_HDR_SIZE; i < s.cut[1]; i++) {
		memcpy(buf, s.m.buf, s.m.len);
		buf[i] ^= (uint8_t)(1u << (i % 8));
		CHECK_INT(rx_expect_fail(buf, s.m.len, true, &e), -EBADMSG);
		CHECK_MSG(&e, "stream corrupt at section 0: CONFIG checksum mismatch");
	}
	/* a flipped page byte in PAGES */
	{
		uint8_t page[PG];
		uint64_t idx = 3;
		struct pages_stats st = { 0 };

		ws_free(&s);
		ws_init(&s);
		ws_write(&s, SEC_CONFIG, 1, &cfg, sizeof(cfg));
		fill_random(page, PG);
		{
			static uint8_t ram[RAM_PAGES * PG];
			memcpy(ram + idx * PG, page, PG);
			CHECK(pages_send(&s.w, ram, &idx, 1, true, false, &st, &e) == 0);
		}
		CHECK(sec_write_end(&s.w, 1, &e) == 0);
		free(buf);
		buf = malloc(s.m.len);
		memcpy(buf, s.m.buf, s.m.len);
		buf[s.cut[1] + SEC_HDR_SIZE + 8 + 8 + 1234] ^= 0x40;
		CHECK_INT(rx_expect_fail(buf, s.m.len, true, &e), -EBADMSG);
		CHECK_MSG(&e, "PAGES checksum mismatch");
	}
	free(buf);
	ws_free(&s);
}

/* A small complete stream: CONFIG, PAGES (data, marker, data), SERIAL, VM, END. */
static void small_stream(struct wstream *s, const uint8_t *cfg_reserved)
{
	static uint8_t ram[RAM_PAGES * PG];
	struct machine_config cfg = { .version = CONFIG_VERSION_1CPU, .nr_vcpus = 1, .ram_size = 4 << 20 };
	uint64_t idx[3] = { 10, 11, 12 };
	struct pages_stats st = { 0 };
	struct serial_state ss;
	struct vm_state vms;
	struct err e = { 0 };

	if (cfg_reserved)
		memcpy(cfg.reserved, cfg_reserved, sizeof(cfg.reserved));
	memset(ram + 10 * PG, 0x11, PG);
	memset(ram + 11 * PG, 0, PG);
	memset(ram + 12 * PG, 0x33, PG);
	good_serial(&ss);
	good_vm(&vms);
	ws_init(s);
	ws_write(s, SEC_CONFIG, 1, &cfg, sizeof(cfg));
	CHECK(pages_send(&s->w, ram, idx, 3, true, false, &st, &e) == 0);
	ws_mark(s);
	ws_write(s, SEC_SERIAL, 1, &ss, sizeof(ss));
	ws_write(s, SEC_VM, 1, &vms, sizeof(vms));
	CHECK(sec_write_end(&s->w, st.data_pages + st.markers, &e) == 0);
	ws_mark(s);
}

static void test_truncation(void)
{
	static uint8_t ram[RAM_PAGES * PG];
	struct wstream s;
	struct rx x;
	struct err e = { 0 };
	size_t cut, bad = 0;

	small_stream(&s, NULL);
	/* the whole stream loads */
	rx_init(&x, ram, RAM_PAGES, true);
	CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
	CHECK(x.ended && x.ld.have_serial && x.ld.have_vm && !x.ld.have_vcpus);
	CHECK_INT(x.st.data_pages, 2);
	CHECK_INT(x.st.markers, 1);
	CHECK_INT(x.cfg.ram_size, 4 << 20);
	CHECK(ram[10 * PG] == 0x11 && ram[12 * PG + PG - 1] == 0x33);
	rx_fini(&x);

	/* every proper prefix is refused as truncated; the copy is exactly cut bytes so a
	 * read past it is an ASan report */
	for (cut = 0; cut < s.m.len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);
		int rc;

		memcpy(p, s.m.buf, cut);
		memset(&e, 0, sizeof(e));
		rx_init(&x, ram, RAM_PAGES, true);
		rc = rx_run(&x, p, cut, &e);
		rx_fini(&x);
		if (rc != -ENODATA || !strstr(e.msg, "truncated")) {
			if (bad++ < 5)
				CHECKF(0, "prefix of %zu bytes: %d %s", cut, rc, e.msg);
		}
		free(p);
	}
	CHECK_INT(bad, 0);
	/* trailing bytes after END */
	{
		uint8_t *p = malloc(s.m.len + 1);
		memcpy(p, s.m.buf, s.m.len);
		p[s.m.len] = 0;
		CHECK_INT(rx_expect_fail(p, s.m.len + 1, true, &e), -EPROTO);
		CHECK_MSG(&e, "data after END");
		free(p);
	}
	ws_free(&s);
}

/* Writes one PAGES section from raw parts (a sender that lies). */
static void raw_pages(struct wstream *s, uint32_t count, uint32_t flags, const uint64_t *ent, size_t nent,
		      size_t data_pages, int len_adjust)
{
	struct { uint32_t count, flags; } head = { count, flags };
	uint8_t *data = calloc(data_pages ? data_pages : 1, PG);
	struct iovec iov[3] = { { &head, sizeof(head) }, { (void *)ent, nent * 8 }, { data, data_pages * PG } };
	struct err e = { 0 };
	uint64_t len = sizeof(head) + nent * 8 + data_pages * PG;

	memset(data, 0x77, data_pages * PG);
	if (len_adjust < 0) {
		/* announce and send fewer bytes than the parts */
		len -= (uint64_t)-len_adjust;
		CHECK(sec_begin(&s->w, SEC_PAGES, 1, len, &e) == 0);
		{
			uint8_t *all = malloc(len ? len : 1);
			size_t off = 0;
			int i;
			for (i = 0; i < 3 && off < len; i++) {
				size_t l = iov[i].iov_len < len - off ? iov[i].iov_len : len - off;
				memcpy(all + off, iov[i].iov_base, l);
				off += l;
			}
			iov[0] = (struct iovec){ all, len };
			CHECK(sec_add(&s->w, iov, 1, &e) == 0);
			CHECK(sec_end(&s->w, &e) == 0);
			free(all);
		}
	} else {
		CHECK(sec_write(&s->w, SEC_PAGES, 1, iov, 3, &e) == 0);
	}
	ws_mark(s);
	free(data);
}

static void test_pages_bad(void)
{
	static uint8_t ram[RAM_PAGES * PG];
	struct wstream s;
	struct err e;
	char want[128];

	/* an index past RAM after a good one: nothing of the section lands */
	{
		uint64_t ent[2] = { 0, RAM_PAGES };
		struct rx x;
		int rc;

		memset(ram, 0x5a, PG);
		ws_init(&s);
		raw_pages(&s, 2, 0, ent, 2, 2, 0);
		rx_init(&x, ram, RAM_PAGES, false);
		memset(&e, 0, sizeof(e));
		rc = rx_run(&x, s.m.buf, s.m.len, &e);
		rx_fini(&x);
		CHECK_INT(rc, -ERANGE);
		snprintf(want, sizeof(want), "page %u is outside guest RAM (%u pages)", RAM_PAGES, RAM_PAGES);
		CHECK_MSG(&e, want);
		CHECK(ram[0] == 0x5a && ram[PG - 1] == 0x5a);
		ws_free(&s);
	}
	/* a zero marker past RAM, and absurd indices (no overflow in the page offset) */
	{
		static const uint64_t bad[] = { RAM_PAGES | PAGE_ENT_ZERO, (1ULL << 52) + 1, PAGE_ENT_ZERO - 1,
						UINT64_MAX };
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			ws_init(&s);
			raw_pages(&s, 1, 0, &bad[i], 1, (bad[i] & PAGE_ENT_ZERO) ? 0 : 1, 0);
			CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -ERANGE);
			CHECK_MSG(&e, "outside guest RAM");
			ws_free(&s);
		}
	}
	/* count 0, count above PAGES_MAX, flags set */
	{
		uint64_t ent[2] = { 1, 2 };

		ws_init(&s);
		raw_pages(&s, 0, 0, ent, 0, 0, 0);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "PAGES count 0");
		ws_free(&s);

		ws_init(&s);
		raw_pages(&s, PAGES_MAX + 1, 0, ent, 2, 0, 0);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		snprintf(want, sizeof(want), "PAGES count %u", PAGES_MAX + 1);
		CHECK_MSG(&e, want);
		ws_free(&s);

		ws_init(&s);
		raw_pages(&s, UINT32_MAX, 0, ent, 2, 0, 0);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "PAGES count 4294967295");
		ws_free(&s);

		ws_init(&s);
		raw_pages(&s, 1, 1, ent, 1, 1, 0);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "flags 1");
		ws_free(&s);
	}
	/* PAGES_MAX entries is fine */
	{
		uint64_t *ent = malloc(PAGES_MAX * sizeof(uint64_t));
		struct rx x;
		uint32_t i;

		for (i = 0; i < PAGES_MAX; i++)
			ent[i] = i | PAGE_ENT_ZERO;
		ws_init(&s);
		raw_pages(&s, PAGES_MAX, 0, ent, PAGES_MAX, 0, 0);
		CHECK(sec_write_end(&s.w, PAGES_MAX, &e) == 0);
		rx_init(&x, ram, RAM_PAGES, false);
		CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
		CHECK_INT(x.st.markers, PAGES_MAX);
		rx_fini(&x);
		ws_free(&s);
		free(ent);
	}
	/* lengths that do not match the entries */
	{
		uint64_t ent[3] = { 1, 2, 3 | PAGE_ENT_ZERO };

		/* two data entries, one page of data */
		ws_init(&s);
		raw_pages(&s, 3, 0, ent, 3, 1, 0);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "does not match 2 data pages");
		ws_free(&s);
		/* two data entries, three pages of data */
		ws_init(&s);
		raw_pages(&s, 3, 0, ent, 3, 3, 0);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "does not match 2 data pages");
		ws_free(&s);
		/* the right pages but one byte short */
		ws_init(&s);
		raw_pages(&s, 3, 0, ent, 3, 2, -1);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "does not match");
		ws_free(&s);
		/* entries cut short */
		ws_init(&s);
		raw_pages(&s, 3, 0, ent, 3, 0, -12);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "PAGES shorter than its 3 entries");
		ws_free(&s);
		/* shorter than its own head */
		ws_init(&s);
		raw_pages(&s, 3, 0, ent, 0, 0, -4);
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "PAGES too short");
		ws_free(&s);
	}
}

static void test_end(void)
{
	static uint8_t ram[RAM_PAGES * PG];
	struct pages_stats st = { 0 };
	uint64_t idx[3] = { 1, 2, 3 };
	struct wstream s, a, b;
	struct err e;

	memset(ram + PG, 0x42, 3 * PG);
	/* END announces one page more than was sent */
	ws_init(&s);
	CHECK(pages_send(&s.w, ram, idx, 3, true, false, &st, &e) == 0);
	CHECK(sec_write_end(&s.w, 4, &e) == 0);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
	CHECK_MSG(&e, "END announces 1 sections and 4 pages, received 1 and 3");
	ws_free(&s);

	/* END announcing a section more (its transcript is right) */
	{
		struct sec_end_payload end;
		uint8_t t[32];

		ws_init(&s);
		ws_write(&s, SEC_ROUND, 1, NULL, 0);
		memset(&end, 0, sizeof(end));
		end.sections = 2;
		sec_writer_digest(&s.w, t);
		sec_end_mac(NULL, 2, 0, t, end.mac);
		ws_write(&s, SEC_END, END_VERSION, &end, sizeof(end));
		{
			struct membs rm;
			struct sec_reader r;
			struct sec_hdr h;
			uint8_t none[1];

			mem_reader(&rm, s.m.buf, s.m.len);
			CHECK(sec_reader_init(&r, &rm.bs, &e) == 0);
			CHECK(sec_read_hdr(&r, &h, &e) == 0 && sec_read_exact(&r, &h, none, 0, &e) == 0);
			CHECK(sec_read_hdr(&r, &h, &e) == 0);
			CHECK_INT(sec_check_end(&r, &h, 0, &e), -EPROTO);
			CHECK_MSG(&e, "stream incomplete: END announces 2 sections");
			sec_reader_fini(&r);
		}
		ws_free(&s);
	}

	/* END of the wrong size */
	{
		uint8_t b40[40] = { 0 };
		ws_init(&s);
		ws_write(&s, SEC_END, END_VERSION, b40, sizeof(b40));
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "END is 40 bytes, expected 48");
		ws_free(&s);
	}

	/* an old, unbound END (version 1) */
	{
		uint8_t b48[48] = { 0 };
		ws_init(&s);
		ws_write(&s, SEC_END, 1, b48, sizeof(b48));
		CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
		CHECK_MSG(&e, "END version 1: an unbound stream");
		ws_free(&s);
	}

	/* transcript: stream B with stream A's END; same shape, one CONFIG byte differs */
	{
		uint8_t ra[48] = { 0 }, rb[48] = { 0 };
		uint8_t *mix;
		size_t enda, endb;

		rb[47] = 1;
		small_stream(&a, ra);
		small_stream(&b, rb);
		CHECK_INT(a.m.len, b.m.len);
		enda = a.cut[a.ncut - 2];
		endb = b.cut[b.ncut - 2];
		CHECK_INT(enda, endb);
		mix = malloc(b.m.len);
		memcpy(mix, b.m.buf, endb);
		memcpy(mix + endb, a.m.buf + enda, a.m.len - enda);
		CHECK_INT(rx_expect_fail(mix, b.m.len, true, &e), -EBADMSG);
		CHECK_MSG(&e, "stream not verified");
		/* and each stream on its own is fine */
		{
			struct rx x;
			rx_init(&x, ram, RAM_PAGES, true);
			CHECKF(rx_run(&x, b.m.buf, b.m.len, &e) == 0, "%s", e.msg);
			rx_fini(&x);
		}
		free(mix);
		ws_free(&a);
		ws_free(&b);
	}
}

/* A stream is bound to its session: END verifies only under the same key and
 * context (for a migration: exporter keying material, id and the destination's nonce). */
static void test_binding(void)
{
	static uint8_t ram[RAM_PAGES * PG];
	struct sec_bind a = { .ctx_len = 20 }, other_key, other_ctx;
	struct wstream s;
	struct rx x;
	struct err e;
	int rc;

	memset(a.key, 0x11, sizeof(a.key));
	memset(a.ctx, 0x22, 20);
	other_key = a;
	other_key.key[31] ^= 1;
	other_ctx = a;
	other_ctx.ctx[19] ^= 1;
	ws_init(&s);
	s.w.bind = &a;
	CHECK(sec_write_end(&s.w, 0, &e) == 0);
	rx_init(&x, ram, RAM_PAGES, false);
	x.bind = &a;
	rc = rx_run(&x, s.m.buf, s.m.len, &e);
	CHECKF(rc == 0, "bound stream refused: %s", e.msg);
	rx_fini(&x);
	rx_init(&x, ram, RAM_PAGES, false);
	x.bind = &other_key;
	CHECK_INT(rx_run(&x, s.m.buf, s.m.len, &e), -EBADMSG);
	rx_fini(&x);
	rx_init(&x, ram, RAM_PAGES, false);
	x.bind = &other_ctx;
	CHECK_INT(rx_run(&x, s.m.buf, s.m.len, &e), -EBADMSG);
	rx_fini(&x);
	/* and an unbound reader refuses it too */
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EBADMSG);
	ws_free(&s);
}

static void test_config(void)
{
	static const struct { uint32_t hver, version, nr_vcpus; uint64_t ram; const char *msg; } bad[] = {
		{ 3, 3, 1, 4 << 20, "(CONFIG) has version 3; this sealvm reads up to 2" },
		{ 1, 2, 2, 4 << 20, "machine config version 2 not supported (section version 1)" },
		{ 2, 1, 1, 4 << 20, "machine config version 1 not supported (section version 2)" },
		{ 1, 0, 1, 4 << 20, "machine config version 0" },
		{ 1, 1, 0, 4 << 20, "version 1 describes one vCPU, not 0" },
		{ 1, 1, 2, 4 << 20, "version 1 describes one vCPU, not 2" },
		{ 2, 2, 0, 4 << 20, "0 vCPUs (sealvm runs 1 to 64)" },
		{ 2, 2, 65, 4 << 20, "65 vCPUs (sealvm runs 1 to 64)" },
		{ 2, 2, UINT32_MAX, 4 << 20, "4294967295 vCPUs" },
		{ 1, 1, 1, 1 << 20, "RAM size 1048576 out of range" },
		{ 2, 2, 2, (64ULL << 30) + 4096, "out of range" },
		{ 1, 1, 1, (4 << 20) + 1, "out of range" },
		{ 1, 1, 1, UINT64_MAX, "out of range" },
	};
	static const struct { uint32_t version, nr_vcpus; } good[] = { { 1, 1 }, { 2, 1 }, { 2, 2 }, { 2, 64 } };
	static uint8_t ram[RAM_PAGES * PG];
	struct machine_config cfg;
	struct wstream s;
	struct err e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&cfg, 0, sizeof(cfg));
		cfg.version = bad[i].version;
		cfg.nr_vcpus = bad[i].nr_vcpus;
		cfg.ram_size = bad[i].ram;
		ws_init(&s);
		ws_write(&s, SEC_CONFIG, bad[i].hver, &cfg, sizeof(cfg));
		CHECK(rx_expect_fail(s.m.buf, s.m.len, true, &e) < 0);
		CHECK_MSG(&e, bad[i].msg);
		ws_free(&s);
	}
	/* version 1 (one vCPU, what sealvm wrote before multi-vCPU support) and version 2 */
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct rx x;

		memset(&cfg, 0, sizeof(cfg));
		cfg.version = good[i].version;
		cfg.nr_vcpus = good[i].nr_vcpus;
		cfg.ram_size = 4 << 20;
		ws_init(&s);
		ws_write(&s, SEC_CONFIG, cfg.version, &cfg, sizeof(cfg));
		CHECK(sec_write_end(&s.w, 0, &e) == 0);
		rx_init(&x, ram, RAM_PAGES, true);
		CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "config v%u, %u vCPUs: %s", cfg.version,
		       cfg.nr_vcpus, e.msg);
		CHECK_INT(x.cfg.nr_vcpus, good[i].nr_vcpus);
		CHECK_INT(x.ld.nr_vcpus, good[i].nr_vcpus);
		rx_fini(&x);
		ws_free(&s);
	}
	/* the first section must be CONFIG */
	ws_init(&s);
	ws_write(&s, SEC_ROUND, 1, NULL, 0);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, true, &e), -EPROTO);
	CHECK_MSG(&e, "stream does not start with a CONFIG section (found ROUND)");
	ws_free(&s);
	/* CONFIG of the wrong size */
	ws_init(&s);
	ws_write(&s, SEC_CONFIG, 1, &cfg, 32);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, true, &e), -EPROTO);
	CHECK_MSG(&e, "CONFIG is 32 bytes, expected 64");
	ws_free(&s);
}

/* A whole state for n vCPUs (after a CONFIG v2 when config is set): SERIAL, VCPU
 * sections in the order given, VM, END. */
static void state_stream(struct wstream *s, bool config, uint32_t n, const uint32_t *ids, uint32_t nids)
{
	struct machine_config cfg = { .version = CONFIG_VERSION, .nr_vcpus = n, .ram_size = 4 << 20 };
	struct vcpu_state *vs = malloc(sizeof(*vs));
	struct serial_state ss;
	struct vm_state vms;
	struct err e;
	uint32_t i;

	good_serial(&ss);
	good_vm(&vms);
	ws_init(s);
	if (config)
		ws_write(s, SEC_CONFIG, CONFIG_VERSION, &cfg, sizeof(cfg));
	ws_write(s, SEC_SERIAL, 1, &ss, sizeof(ss));
	for (i = 0; i < nids; i++) {
		good_vcpu(vs);
		vs->id = ids[i];
		if (ids[i]) { /* an AP still waiting for SIPI, as a guest that never started it leaves it */
			vs->mp_state.mp_state = KVM_MP_STATE_UNINITIALIZED;
			vs->sregs.apic_base = 0xfee00800;
		}
		ws_write(s, SEC_VCPU, VCPU_STATE_VERSION, vs, sizeof(*vs));
	}
	ws_write(s, SEC_VM, 1, &vms, sizeof(vms));
	CHECK(sec_write_end(&s->w, 0, &e) == 0);
	free(vs);
}

static void test_multi_vcpu(void)
{
	static uint8_t ram[RAM_PAGES * PG];
	static const uint32_t two[] = { 1, 0 }, dup[] = { 0, 1, 1 }, beyond[] = { 0, 1, 2 };
	static const uint32_t one[] = { 0 }, only1[] = { 1 }, far[] = { 0, 63 };
	uint32_t all[VM_MAX_VCPUS], i;
	struct wstream s;
	struct rx x;
	struct err e;

	/* two vCPUs, in any order, each buffered by its id */
	state_stream(&s, true, 2, two, 2);
	rx_init(&x, ram, RAM_PAGES, true);
	CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
	CHECK_INT(x.ld.have_vcpus, 2);
	CHECK(x.ld.vcpu[0] && x.ld.vcpu[0]->id == 0 && x.ld.vcpu[1] && x.ld.vcpu[1]->id == 1);
	CHECK_INT(x.ld.vcpu[1]->mp_state.mp_state, KVM_MP_STATE_UNINITIALIZED);
	CHECK(machine_loader_complete(&x.ld, 2, &e) == 0);
	/* the same state is not complete for another vCPU count */
	CHECK_INT(machine_loader_complete(&x.ld, 3, &e), -EPROTO);
	CHECK_MSG(&e, "missing VCPU section for vCPU 2 of 3");
	CHECK_INT(machine_loader_complete(&x.ld, 1, &e), -EPROTO);
	CHECK_MSG(&e, "VCPU section for vCPU 1, but the VM has 1");
	rx_fini(&x);
	ws_free(&s);

	/* 64 vCPUs */
	for (i = 0; i < VM_MAX_VCPUS; i++)
		all[i] = VM_MAX_VCPUS - 1 - i;
	state_stream(&s, true, VM_MAX_VCPUS, all, VM_MAX_VCPUS);
	rx_init(&x, ram, RAM_PAGES, true);
	CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
	CHECK(machine_loader_complete(&x.ld, VM_MAX_VCPUS, &e) == 0);
	rx_fini(&x);
	ws_free(&s);

	/* a repeated id, an id beyond CONFIG's count: refused as they arrive */
	state_stream(&s, true, 2, dup, 3);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, true, &e), -EPROTO);
	CHECK_MSG(&e, "second VCPU section for vCPU 1");
	ws_free(&s);
	state_stream(&s, true, 2, beyond, 3);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, true, &e), -EINVAL);
	CHECK_MSG(&e, "VCPU section for vCPU 2, but the VM has 2");
	ws_free(&s);

	/* a missing vCPU is found when the state is checked as a whole */
	state_stream(&s, true, 2, one, 1);
	rx_init(&x, ram, RAM_PAGES, true);
	CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
	CHECK_INT(machine_loader_complete(&x.ld, 2, &e), -EPROTO);
	CHECK_MSG(&e, "missing VCPU section for vCPU 1 of 2");
	rx_fini(&x);
	ws_free(&s);
	state_stream(&s, true, 2, only1, 1);
	rx_init(&x, ram, RAM_PAGES, true);
	CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
	CHECK_INT(machine_loader_complete(&x.ld, 2, &e), -EPROTO);
	CHECK_MSG(&e, "missing VCPU section for vCPU 0 of 2");
	rx_fini(&x);
	ws_free(&s);

	/* without a CONFIG (a migration: the count came in HELLO) ids up to 63 are taken,
	 * and the whole-state check holds them to the machine's count */
	state_stream(&s, false, 0, far, 2);
	rx_init(&x, ram, RAM_PAGES, false);
	CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
	CHECK_INT(machine_loader_complete(&x.ld, 2, &e), -EPROTO);
	CHECK(machine_loader_complete(&x.ld, 64, &e) < 0);
	rx_fini(&x);
	ws_free(&s);
}

static void test_loader(void)
{
	struct vcpu_state *vs = malloc(sizeof(*vs));
	struct serial_state ss;
	struct vm_state vms;
	struct wstream s;
	struct err e;

	good_vcpu(vs);
	good_vm(&vms);
	good_serial(&ss);
	/* a complete set loads */
	{
		static uint8_t ram[RAM_PAGES * PG];
		struct rx x;

		ws_init(&s);
		ws_write(&s, SEC_SERIAL, 1, &ss, sizeof(ss));
		ws_write(&s, SEC_VCPU, 1, vs, sizeof(*vs));
		ws_write(&s, SEC_VM, 1, &vms, sizeof(vms));
		CHECK(sec_write_end(&s.w, 0, &e) == 0);
		rx_init(&x, ram, RAM_PAGES, false);
		CHECKF(rx_run(&x, s.m.buf, s.m.len, &e) == 0, "%s", e.msg);
		CHECK(x.ld.have_vcpus == 1 && x.ld.have_vm && x.ld.have_serial);
		CHECK(x.ld.vcpu[0] && memcmp(x.ld.vcpu[0], vs, sizeof(*vs)) == 0);
		CHECK(machine_loader_complete(&x.ld, 1, &e) == 0);
		CHECK(x.ld.vmst && memcmp(x.ld.vmst, &vms, sizeof(vms)) == 0);
		CHECK(memcmp(&x.ld.serial, &ss, sizeof(ss)) == 0);
		rx_fini(&x);
		ws_free(&s);
	}
	/* a second VCPU */
	ws_init(&s);
	ws_write(&s, SEC_VCPU, 1, vs, sizeof(*vs));
	ws_write(&s, SEC_VCPU, 1, vs, sizeof(*vs));
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
	CHECK_MSG(&e, "second VCPU section for vCPU 0");
	ws_free(&s);
	/* invalid contents are refused when loaded, not later */
	vs->nmsrs = VCPU_MAX_MSRS + 1;
	ws_init(&s);
	ws_write(&s, SEC_VCPU, 1, vs, sizeof(*vs));
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EINVAL);
	CHECK_MSG(&e, "257 MSRs");
	ws_free(&s);
	vms.chips[1].chip_id = 2;
	ws_init(&s);
	ws_write(&s, SEC_VM, 1, &vms, sizeof(vms));
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EINVAL);
	CHECK_MSG(&e, "irqchip 1 has id 2");
	ws_free(&s);
	/* wrong sizes and sections the loader does not take */
	ws_init(&s);
	ws_write(&s, SEC_VCPU, 1, vs, 1000);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
	CHECK_MSG(&e, "VCPU is 1000 bytes, expected");
	ws_free(&s);
	ws_init(&s);
	ws_write(&s, SEC_HELLO, 1, vs, 40);
	CHECK_INT(rx_expect_fail(s.m.buf, s.m.len, false, &e), -EPROTO);
	CHECK_MSG(&e, "unexpected HELLO section at 0");
	ws_free(&s);
	free(vs);
}

static void irq_count(void *opaque, int level)
{
	int *n = opaque;
	*n += level ? 1 : 0;
}

static void test_validators(void)
{
	struct vcpu_state *vs = malloc(sizeof(*vs));
	struct serial_state ss;
	struct vm_state vms;
	struct serial u;
	struct err e;
	int raised = 0;

	good_vcpu(vs);
	CHECK(vcpu_state_validate(vs, &e) == 0);
	vs->version = 2;
	CHECK(vcpu_state_validate(vs, &e) == -EPROTO);
	good_vcpu(vs);
	vs->id = VM_MAX_VCPUS - 1;
	CHECK(vcpu_state_validate(vs, &e) == 0);
	vs->id = VM_MAX_VCPUS;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	CHECK_MSG(&e, "id 64 out of range");
	/* only MSRs sealvm saves: IA32_FEATURE_CONTROL would turn VMX on */
	good_vcpu(vs);
	vs->msrs[1].index = 0x3a;
	CHECK(vcpu_state_validate(vs, &e) == -EPERM);
	CHECK_MSG(&e, "MSR 0x3a (IA32_FEATURE_CONTROL) is not one sealvm restores");
	vs->msrs[1].index = 0x480;
	CHECK(vcpu_state_validate(vs, &e) == -EPERM);
	CHECK_MSG(&e, "MSR 0x480 (a VMX capability MSR)");
	vs->msrs[1].index = 0x17b;
	CHECK(vcpu_state_validate(vs, &e) == -EPERM);
	CHECK_MSG(&e, "MSR 0x17b (MCG_CTL)");
	vs->msrs[1].index = 0xdeadbeef;
	CHECK(vcpu_state_validate(vs, &e) == -EPERM);
	CHECK_MSG(&e, "MSR 0xdeadbeef is not one sealvm restores");
	vs->msrs[1].index = 0x4b564d01; /* kvmclock: allowed */
	CHECK(vcpu_state_validate(vs, &e) == 0);
	good_vcpu(vs);
	vs->ncpuid = VCPU_MAX_CPUID + 1;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	good_vcpu(vs);
	vs->xsave_size = sizeof(struct kvm_xsave) - 1;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	CHECK_MSG(&e, "XSAVE size");
	vs->xsave_size = VCPU_XSAVE_MAX + 1;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	vs->xsave_size = VCPU_XSAVE_MAX;
	CHECK(vcpu_state_validate(vs, &e) == 0);
	vs->sregs.cr0 = 0x80000000u;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	CHECK_MSG(&e, "paging without protected mode");
	good_vcpu(vs);
	vs->sregs.efer = 1ULL << 20;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	CHECK_MSG(&e, "EFER");
	good_vcpu(vs);
	vs->mp_state.mp_state = 1000;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	good_vcpu(vs);
	vs->sregs.ss.dpl = 4;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	CHECK_MSG(&e, "SS segment");
	good_vcpu(vs);
	vs->sregs.efer = 0x400; /* long mode active, not enabled */
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	good_vcpu(vs);
	vs->sregs.apic_base = 0xfee00123;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	CHECK_MSG(&e, "APIC base");
	good_vcpu(vs);
	vs->events.exception.nr = 40;
	CHECK(vcpu_state_validate(vs, &e) == -EINVAL);
	free(vs);

	good_vm(&vms);
	CHECK(vm_state_validate(&vms, &e) == 0);
	vms.pit.channels[1].mode = 6;
	CHECK(vm_state_validate(&vms, &e) == -EINVAL);
	CHECK_MSG(&e, "PIT channel 1");
	good_vm(&vms);
	vms.chips[2].chip.ioapic.id = 0x100;
	CHECK(vm_state_validate(&vms, &e) == -EINVAL);
	CHECK_MSG(&e, "IOAPIC id");
	good_vm(&vms);
	vms.chips[2].chip.ioapic.base_address = 0xfee00000;
	CHECK(vm_state_validate(&vms, &e) == -EINVAL);
	good_vm(&vms);
	vms.chips[0].chip.pic.irq_base = 0x21; /* vectors come in blocks of 8 */
	CHECK(vm_state_validate(&vms, &e) == -EINVAL);
	CHECK_MSG(&e, "PIC 0");
	good_vm(&vms);
	vms.pit.channels[0].count = 0x10001;
	CHECK(vm_state_validate(&vms, &e) == -EINVAL);
	CHECK_MSG(&e, "PIT count");

	good_serial(&ss);
	serial_init(&u, -1, irq_count, &raised);
	ss.ier = 1; /* receive interrupt enabled with bytes queued: the line goes up */
	CHECK(serial_load(&u, &ss, &e) == 0);
	CHECK_INT(raised, 1);
	ss.rx_head = SERIAL_FIFO;
	CHECK(serial_load(&u, &ss, &e) == -EINVAL);
	CHECK_MSG(&e, "receive FIFO");
	good_serial(&ss);
	ss.rx_count = SERIAL_FIFO + 1;
	CHECK(serial_load(&u, &ss, &e) == -EINVAL);
	good_serial(&ss);
	ss.lsr &= (uint8_t)~1u; /* bytes queued without data-ready */
	CHECK(serial_load(&u, &ss, &e) == -EINVAL);
	CHECK_MSG(&e, "inconsistent line status");
	good_serial(&ss);
	ss.version = 9;
	CHECK(serial_load(&u, &ss, &e) == -EPROTO);
	serial_destroy(&u);
}

int main(void)
{
	test_size_classes();
	test_writer_misuse();
	test_reader_misuse();
	pages_round_trip(true);
	pages_round_trip(false);
	test_unknown_id();
	test_sequence();
	test_version();
	test_length_max();
	test_checksum();
	test_truncation();
	test_pages_bad();
	test_end();
	test_binding();
	test_config();
	test_loader();
	test_multi_vcpu();
	test_validators();
	return unit_done();
}
