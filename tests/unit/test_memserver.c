/* The memory server's rules without a network (memserver/store.h, ms_handle, the
 * client's answer checks): capacity is never promised twice, only the owner may use a
 * store, the hand-over by grant and adoption, ephemeral stores freed with their
 * creator's connection, grants that expire or are declined, freed blobs wiped, and
 * malformed records refused as protocol violations. */
#include <stdlib.h>

#include "memserver/client.h"
#include "memserver/server.h"
#include "memserver/store.h"
#include "unit.h"

#define SLOTS 100

static uint8_t *mem;
static const struct ms_who src = { .fp = { 0xaa }, .name = "hosta", .session = 1 };
static const struct ms_who src2 = { .fp = { 0xaa }, .name = "hosta", .session = 5 }; /* hosta, another connection */
static const struct ms_who dst = { .fp = { 0xbb }, .name = "hostb", .session = 2 };
static const struct ms_who evil = { .fp = { 0xcc }, .name = "hostc", .session = 3 };

static const uint8_t S1[MS_STORE_ID_LEN] = { 1 }, S2[MS_STORE_ID_LEN] = { 2 }, S3[MS_STORE_ID_LEN] = { 3 };

static int create(struct ms_stores *s, const struct ms_who *w, const uint8_t *id, uint64_t quota, uint32_t flags,
		  struct err *e)
{
	struct ms_create c = { .quota = quota, .flags = flags };
	struct ms_create_reply r;

	memcpy(c.store, id, MS_STORE_ID_LEN);
	return ms_store_create(s, w, &c, &r, e);
}

/* PUT n blobs with keys first.. of len bytes filled with fill. */
static int put(struct ms_stores *s, const struct ms_who *w, const uint8_t *id, uint64_t first, uint32_t n,
	       uint32_t len, uint8_t fill, struct err *e)
{
	static uint8_t buf[MS_PUT_LEN_MAX + 8] __attribute__((aligned(8)));
	static uint8_t blob[MS_BLOB_MAX];
	const uint8_t *bp[MS_PUT_MAX];
	uint64_t keys[MS_PUT_MAX];
	uint32_t lens[MS_PUT_MAX];
	struct ms_put_view v;
	struct ms_put_reply r;
	size_t l;

	memset(blob, fill, sizeof(blob));
	for (uint32_t i = 0; i < n; i++) {
		keys[i] = first + i;
		bp[i] = blob;
		lens[i] = len;
	}
	l = ms_encode_put(buf, id, n, keys, bp, lens);
	if (ms_parse_put(buf, (uint32_t)l, &v, e) < 0)
		return -EPROTO;
	return ms_store_put(s, w, &v, &r, e);
}

static int get(struct ms_stores *s, const struct ms_who *w, const uint8_t *id, uint64_t key, uint8_t *out,
	       uint32_t *len, struct err *e)
{
	struct ms_key_req q = { .key = key };

	memcpy(q.store, id, MS_STORE_ID_LEN);
	return ms_store_get(s, w, &q, out, len, e);
}

static bool mem_zero(void)
{
	for (size_t i = 0; i < (size_t)SLOTS * MS_BLOB_MAX; i++)
		if (mem[i])
			return false;
	return true;
}

static void test_capacity_and_owner(void)
{
	struct ms_stores *s;
	struct ms_totals t;
	struct ms_stat_reply st;
	struct ms_free_reply fr;
	struct err e = { 0 };
	uint8_t blob[MS_BLOB_MAX];
	uint32_t len;

	CHECK_INT(ms_stores_new(mem, SLOTS, &s, &e), 0);
	CHECK_INT(create(s, &src, S1, 60, 0, &e), 0);
	CHECKF(create(s, &dst, S2, 41, 0, &e) == -ENOSPC && strstr(e.msg, "not enough capacity"), "%s", e.msg);
	CHECK_INT(create(s, &dst, S2, 40, 0, &e), 0);
	CHECKF(create(s, &evil, S3, 1, 0, &e) == -ENOSPC, "%s", e.msg);   /* every slot promised */
	CHECK_INT(create(s, &src, S1, 1, 0, &e), -EEXIST);
	CHECK_INT(create(s, &src, S3, 0, 0, &e), -EINVAL);

	/* fill S1 up to its quota, all or nothing beyond */
	CHECK_INT(put(s, &src, S1, 0, 32, 4160, 0x11, &e), 0);
	CHECK_INT(put(s, &src, S1, 32, 28, 4160, 0x22, &e), 0);
	CHECKF(put(s, &src, S1, 59, 2, 4160, 0x33, &e) == -ENOSPC && strstr(e.msg, "store full"), "%s", e.msg);
	CHECK_INT(get(s, &src, S1, 59, blob, &len, &e), 0);
	CHECK(blob[0] == 0x22);                                 /* the refused batch changed nothing */
	CHECK_INT(get(s, &src, S1, 60, blob, &len, &e), -ENOENT);
	/* replacing a key needs no new slot; a shorter blob leaves no tail behind */
	CHECK_INT(put(s, &src, S1, 10, 1, 100, 0x44, &e), 0);
	CHECK_INT(get(s, &src, S1, 10, blob, &len, &e), 0);
	CHECK(len == 100 && blob[99] == 0x44);
	{
		/* slots are taken in order: key 10 sits in slot 10 */
		const uint8_t *sl = mem + (size_t)10 * MS_BLOB_MAX;
		bool tail_zero = true;
		for (int i = 100; i < 4160; i++)
			tail_zero &= sl[i] == 0;
		CHECK(sl[0] == 0x44 && sl[99] == 0x44 && tail_zero);
	}
	ms_stores_totals(s, &t);
	CHECK_INT(t.used, 60);
	CHECK_INT(t.promised, 100);

	/* nobody else may read, write, free, grant or look at S1 */
	CHECKF(get(s, &evil, S1, 1, blob, &len, &e) == -EACCES && strstr(e.msg, "belongs to another host"), "%s", e.msg);
	CHECK_INT(put(s, &evil, S1, 0, 1, 10, 0x55, &e), -EACCES);
	CHECK_INT(ms_store_drop(s, &evil, S1, &fr, &e), -EACCES);
	CHECK_INT(ms_store_stat(s, &evil, S1, 0, &st, &e), -EACCES);
	{
		struct ms_grant g = { .ttl_s = 10 };
		memcpy(g.store, S1, MS_STORE_ID_LEN);
		memcpy(g.grantee, evil.fp, MS_FP_LEN);
		CHECK_INT(ms_store_grant(s, &evil, &g, 0, &st, &e), -EACCES);
	}
	CHECK_INT(ms_store_adopt(s, &evil, S1, 0, &st, &e), -EACCES);
	CHECK_INT(get(s, &src, S1, 1, blob, &len, &e), 0);    /* the owner still can */
	CHECK(blob[0] == 0x11);
	CHECK_INT(ms_store_stat(s, &src, S1, 0, &st, &e), 0);
	CHECK(st.blobs == 60 && st.quota == 60 && st.state == MS_STATE_OWNED && st.role == MS_ROLE_OWNER);

	/* freeing gives the capacity back and wipes the blobs */
	CHECK_INT(ms_store_drop(s, &src, S1, &fr, &e), 0);
	CHECK_INT(fr.blobs, 60);
	CHECK(mem_zero());
	CHECK_INT(get(s, &src, S1, 1, blob, &len, &e), -ENOENT);
	CHECK_INT(create(s, &evil, S3, 60, 0, &e), 0);
	ms_stores_free(s);
}

static void test_handover(void)
{
	struct ms_stores *s;
	struct ms_stat_reply st;
	struct ms_free_reply fr;
	struct ms_grant g = { .ttl_s = 30 };
	struct err e = { 0 };
	uint8_t blob[MS_BLOB_MAX];
	uint32_t len;

	CHECK_INT(ms_stores_new(mem, SLOTS, &s, &e), 0);
	/* an ephemeral store dies with its creator's connection (another connection of the
	 * same host does not keep it) */
	CHECK_INT(create(s, &src, S1, 10, MS_CREATE_EPHEMERAL, &e), 0);
	CHECK_INT(put(s, &src2, S1, 0, 4, 4160, 0x66, &e), 0);
	CHECK_INT(ms_stores_session_end(s, src2.session), 0);
	CHECK_INT(ms_stores_session_end(s, src.session), 1);
	CHECK_INT(ms_store_stat(s, &src, S1, 0, &st, &e), -ENOENT);
	CHECK(mem_zero());

	/* the hand-over: create, fill, grant; the grantee looks but may not read */
	CHECK_INT(create(s, &src, S1, 10, MS_CREATE_EPHEMERAL, &e), 0);
	CHECK_INT(put(s, &src, S1, 0, 8, 4160, 0x77, &e), 0);
	CHECK_INT(ms_store_stat(s, &dst, S1, 0, &st, &e), -EACCES);    /* not yet granted */
	memcpy(g.store, S1, MS_STORE_ID_LEN);
	memcpy(g.grantee, dst.fp, MS_FP_LEN);
	CHECK_INT(ms_store_grant(s, &src, &g, 100, &st, &e), 0);
	CHECK(st.state == MS_STATE_GRANTED && st.grant_ttl == 30);
	CHECK_INT(ms_store_stat(s, &dst, S1, 110, &st, &e), 0);
	CHECK(st.blobs == 8 && st.role == MS_ROLE_GRANTEE && st.grant_ttl == 20);
	CHECK_INT(get(s, &dst, S1, 0, blob, &len, &e), -EACCES);
	CHECK_INT(ms_store_adopt(s, &evil, S1, 110, &st, &e), -EACCES);
	CHECKF(ms_store_adopt(s, &src, S1, 110, &st, &e) == -EPERM, "%s", e.msg); /* the owner is not the grantee */
	/* the source's connection ends (it exits after COMMIT): the granted store waits */
	CHECK_INT(ms_stores_session_end(s, src.session), 0);
	CHECK_INT(ms_stores_expire(s, 120), 0);
	CHECK_INT(ms_store_adopt(s, &dst, S1, 120, &st, &e), 0);
	CHECK(st.state == MS_STATE_OWNED && st.role == MS_ROLE_OWNER && st.adoptions == 1 && st.blobs == 8);
	/* the main host is the sole owner now, bound to no connection and no grant */
	CHECK_INT(get(s, &dst, S1, 7, blob, &len, &e), 0);
	CHECK(len == 4160 && blob[0] == 0x77);
	CHECK_INT(get(s, &src, S1, 7, blob, &len, &e), -EACCES);
	CHECK_INT(ms_store_drop(s, &src, S1, &fr, &e), -EACCES);
	CHECK_INT(ms_store_adopt(s, &dst, S1, 120, &st, &e), -EPERM);   /* the grant is used up */
	CHECK_INT(ms_stores_session_end(s, dst.session), 0);
	CHECK_INT(ms_stores_expire(s, 100000), 0);
	CHECK_INT(ms_store_stat(s, &dst, S1, 0, &st, &e), 0);
	/* and may hand it on in turn */
	memcpy(g.grantee, evil.fp, MS_FP_LEN);
	CHECK_INT(ms_store_grant(s, &dst, &g, 200, &st, &e), 0);
	CHECK_INT(ms_store_adopt(s, &evil, S1, 201, &st, &e), 0);
	CHECK_INT(st.adoptions, 2);
	CHECK_INT(ms_store_drop(s, &evil, S1, &fr, &e), 0);

	/* an aborted migration, the main host declining first: the store stays while its
	 * creator lives (the source frees it), and goes with it */
	CHECK_INT(create(s, &src, S2, 10, MS_CREATE_EPHEMERAL, &e), 0);
	memcpy(g.store, S2, MS_STORE_ID_LEN);
	memcpy(g.grantee, dst.fp, MS_FP_LEN);
	CHECK_INT(ms_store_grant(s, &src, &g, 0, &st, &e), 0);
	CHECK_INT(ms_store_decline(s, &dst, S2, &e), 0);
	CHECK_INT(ms_store_adopt(s, &dst, S2, 0, &st, &e), -EACCES);   /* declined: no grant left */
	CHECK_INT(ms_store_stat(s, &src, S2, 0, &st, &e), 0);
	CHECK(st.state == MS_STATE_FILLING);
	CHECK_INT(ms_stores_session_end(s, src.session), 1);

	/* the source gone first, then the decline frees it */
	CHECK_INT(create(s, &src, S2, 10, MS_CREATE_EPHEMERAL, &e), 0);
	CHECK_INT(ms_store_grant(s, &src, &g, 0, &st, &e), 0);
	CHECK_INT(ms_stores_session_end(s, src.session), 0);
	CHECK_INT(ms_store_decline(s, &dst, S2, &e), 0);
	CHECK_INT(ms_store_stat(s, &dst, S2, 0, &st, &e), -ENOENT);

	/* both gone: the grant's time frees it */
	CHECK_INT(create(s, &src, S2, 10, MS_CREATE_EPHEMERAL, &e), 0);
	CHECK_INT(ms_store_grant(s, &src, &g, 1000, &st, &e), 0);
	CHECK_INT(ms_stores_session_end(s, src.session), 0);
	CHECK_INT(ms_stores_expire(s, 1029), 0);
	CHECK_INT(ms_stores_expire(s, 1030), 1);
	CHECK_INT(ms_store_adopt(s, &dst, S2, 1030, &st, &e), -ENOENT);

	/* a persistent store whose grant expires stays with its owner */
	CHECK_INT(create(s, &src, S3, 10, 0, &e), 0);
	memcpy(g.store, S3, MS_STORE_ID_LEN);
	CHECK_INT(ms_store_grant(s, &src, &g, 0, &st, &e), 0);
	CHECK_INT(ms_stores_session_end(s, src.session), 0);
	CHECK_INT(ms_stores_expire(s, 31), 0);
	CHECK_INT(ms_store_stat(s, &src, S3, 31, &st, &e), 0);
	CHECK(st.state == MS_STATE_OWNED);
	CHECK_INT(ms_store_adopt(s, &dst, S3, 31, &st, &e), -EACCES);
	g.ttl_s = MS_GRANT_TTL_MAX + 1;
	CHECK_INT(ms_store_grant(s, &src, &g, 0, &st, &e), -EINVAL);
	ms_stores_free(s);
	CHECK(mem_zero());
}

/* Records as a connection's thread sees them. */
static void test_handle(void)
{
	static uint8_t ans[MS_HDR_SIZE + MS_GET_REPLY_MAX] __attribute__((aligned(8)));
	static uint64_t p[MS_PUT_LEN_MAX / 8 + 1];
	struct ms_stores *s;
	struct ms_hdr h = { 0 };
	const struct ms_hdr *ah = (const struct ms_hdr *)ans;
	const struct ms_error *er = (const struct ms_error *)(ans + MS_HDR_SIZE);
	struct err e = { 0 };
	size_t n;

	CHECK_INT(ms_stores_new(mem, SLOTS, &s, &e), 0);
	memset(p, 0, sizeof(p));
	h = (struct ms_hdr){ .op = MS_PING, .len = sizeof(struct ms_ping), .tag = 9 };
	p[0] = 1234;
	CHECK_INT(ms_handle(s, &src, 0, &h, (uint8_t *)p, ans, &n), 0);
	CHECK(ah->op == (MS_PING | MS_REPLY) && ah->tag == 9 && n == MS_HDR_SIZE + 8);
	CHECK(!memcmp(ans + MS_HDR_SIZE, p, 8));
	/* violations: unknown op, wrong length, flags, a second HELLO, a bad PUT */
	h = (struct ms_hdr){ .op = 99, .len = 8, .tag = 1 };
	CHECK_INT(ms_handle(s, &src, 0, &h, (uint8_t *)p, ans, &n), 1);
	CHECK(ah->op == MS_ERROR && er->status == -EPROTO && strstr(er->msg, "unknown request 99"));
	h = (struct ms_hdr){ .op = MS_GET, .len = 23 };
	CHECK_INT(ms_handle(s, &src, 0, &h, (uint8_t *)p, ans, &n), 1);
	h = (struct ms_hdr){ .op = MS_PING, .flags = 1, .len = 8 };
	CHECK_INT(ms_handle(s, &src, 0, &h, (uint8_t *)p, ans, &n), 1);
	h = (struct ms_hdr){ .op = MS_HELLO, .len = sizeof(struct ms_hello) };
	CHECK_INT(ms_handle(s, &src, 0, &h, (uint8_t *)p, ans, &n), 1);
	h = (struct ms_hdr){ .op = MS_PUT, .len = 200 };
	((struct ms_put_head *)p)->count = 0;
	CHECK_INT(ms_handle(s, &src, 0, &h, (uint8_t *)p, ans, &n), 1);
	CHECK(strstr(er->msg, "PUT of 0 blobs") != NULL);
	h = (struct ms_hdr){ .op = MS_PUT, .len = MS_PUT_LEN_MAX + 1 };
	CHECK_INT(ms_handle(s, &src, 0, &h, (uint8_t *)p, ans, &n), 1);
	/* a refusal is not a violation */
	h = (struct ms_hdr){ .op = MS_FREE, .len = sizeof(struct ms_store_req), .tag = 3 };
	memset(p, 0, sizeof(p));
	CHECK_INT(ms_handle(s, &src, 0, &h, (uint8_t *)p, ans, &n), -ENOENT);
	CHECK(ah->op == MS_ERROR && ah->tag == 3 && er->status == -ENOENT);
	ms_stores_free(s);
}

static void test_answers(void)
{
	uint8_t body[MS_GET_REPLY_MAX] __attribute__((aligned(8))) = { 0 };
	struct ms_hdr h = { .op = MS_GET | MS_REPLY, .len = sizeof(struct ms_get_reply) + 100, .tag = 5 };
	struct ms_get_reply *g = (struct ms_get_reply *)body;
	struct ms_error *er = (struct ms_error *)body;
	struct err e = { 0 };

	g->key = 42;
	g->len = 100;
	CHECK_INT(ms_check_answer(MS_GET, 5, 42, &h, body, &e), 0);
	CHECK_INT(ms_check_answer(MS_GET, 6, 42, &h, body, &e), -EPROTO);        /* out of order */
	CHECK_INT(ms_check_answer(MS_GET, 5, 43, &h, body, &e), -EPROTO);        /* another key */
	g->len = 99;
	CHECK_INT(ms_check_answer(MS_GET, 5, 42, &h, body, &e), -EPROTO);        /* lengths disagree */
	h.op = MS_PUT | MS_REPLY;
	CHECK_INT(ms_check_answer(MS_GET, 5, 42, &h, body, &e), -EPROTO);        /* another op's answer */
	h = (struct ms_hdr){ .op = MS_ERROR, .len = sizeof(*er), .tag = 5 };
	er->status = -ENOENT;
	CHECK_INT(ms_check_answer(MS_GET, 5, 42, &h, body, &e), 0);
	er->status = 3;
	CHECK_INT(ms_check_answer(MS_GET, 5, 42, &h, body, &e), -EPROTO);        /* not an errno */
	h = (struct ms_hdr){ .op = MS_STAT | MS_REPLY, .len = sizeof(struct ms_stat_reply) + 1, .tag = 5 };
	CHECK_INT(ms_check_answer(MS_STAT, 5, 0, &h, body, &e), -EPROTO);
	CHECK(ms_req_len_ok(MS_PUT, MS_PUT_LEN_MAX) && !ms_req_len_ok(MS_PUT, MS_PUT_LEN_MAX + 1));
	CHECK(!ms_req_len_ok(0, 0) && !ms_req_len_ok(MS_ERROR, sizeof(struct ms_error)));
}

int main(void)
{
	mem = calloc(SLOTS, MS_BLOB_MAX);
	test_capacity_and_owner();
	test_handover();
	test_handle();
	test_answers();
	free(mem);
	return unit_done();
}
