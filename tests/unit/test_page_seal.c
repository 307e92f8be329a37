/* Sealed pages (paging/page_seal.h) and the version table: every way a sub-host can
 * hand back the wrong thing — a flipped bit, another page, an older version, another
 * VM's page, another key epoch, a header rewritten to look right — is refused with its
 * own verdict, in the sealed mode and in the plain (authenticated only) mode alike. */
#include <stdlib.h>

#include "paging/page_seal.h"
#include "paging/page_vtab.h"
#include "unit.h"

static void fill(uint8_t *p, uint64_t page, unsigned v)
{
	for (unsigned i = 0; i < PAGE_SEAL_PAGE; i++)
		p[i] = (uint8_t)(page * 31 + v * 7 + i);
	snprintf((char *)p, 64, "SECRET page %llu v%u", (unsigned long long)page, v);
}

/* Opens blob as `version` of `page`; returns the verdict. */
static enum page_verdict verdict(struct page_sealer *s, uint64_t page, uint64_t version, const uint8_t *blob,
				 size_t len)
{
	uint8_t out[PAGE_SEAL_PAGE];
	enum page_verdict why = PAGE_OK;
	struct err e = { 0 };
	int r;

	memset(out, 0xa5, sizeof(out));
	r = page_open(s, page, version, blob, len, out, NULL, &why, &e);
	if (r < 0) {
		uint8_t zero[PAGE_SEAL_PAGE] = { 0 };
		CHECKF(r == -EBADMSG && e.msg[0], "r=%d msg=%s", r, e.msg);
		CHECKF(!memcmp(out, zero, sizeof(out)), "a refused page left bytes in the output");
		CHECK(why != PAGE_OK);
	} else {
		CHECK(why == PAGE_OK);
	}
	return why;
}

static void rewrite_hdr(uint8_t *blob, uint64_t page, uint64_t version, uint32_t epoch, const uint8_t *vm_id)
{
	for (int i = 0; i < 8; i++) {
		blob[32 + i] = (uint8_t)(page >> (8 * i));
		blob[40 + i] = (uint8_t)(version >> (8 * i));
	}
	for (int i = 0; i < 4; i++)
		blob[8 + i] = (uint8_t)(epoch >> (8 * i));
	memcpy(blob + 16, vm_id, PAGE_VM_ID_LEN);
}

static void test_mode(enum page_mode mode)
{
	static uint8_t blob[PAGE_BLOB_SIZE], b2[PAGE_BLOB_SIZE], old[PAGE_BLOB_SIZE], other[PAGE_BLOB_SIZE],
		foreign[PAGE_BLOB_SIZE], ep2[PAGE_BLOB_SIZE], bad[PAGE_BLOB_SIZE + 1];
	uint8_t page[PAGE_SEAL_PAGE], out[PAGE_SEAL_PAGE];
	struct page_key k, kf, k2;
	struct page_sealer *s, *sf, *s2;
	struct err e = { 0 };
	enum page_verdict why, seen[8];
	enum page_mode m = 0;
	int n = 0;

	CHECK_INT(page_key_generate(&k, NULL, 3, &e), 0);
	CHECK_INT(page_key_generate(&kf, NULL, 3, &e), 0);                 /* another VM */
	CHECK_INT(page_key_generate(&k2, k.vm_id, 4, &e), 0);              /* this VM, next epoch */
	CHECK_INT(page_sealer_new(&k, &s, &e), 0);
	CHECK_INT(page_sealer_new(&kf, &sf, &e), 0);
	CHECK_INT(page_sealer_new(&k2, &s2, &e), 0);

	/* round trip; a sealed body is not the page, a plain one is */
	fill(page, 7, 2);
	CHECK_INT(page_seal(s, 7, 20, mode, page, blob, &e), 0);
	CHECK_INT(page_open(s, 7, 20, blob, PAGE_BLOB_SIZE, out, &m, &why, &e), 0);
	CHECK(!memcmp(out, page, sizeof(page)));
	CHECK_INT(m, mode);
	CHECK_INT(why, PAGE_OK);
	if (mode == PAGE_MODE_SEALED)
		CHECK(!memmem(blob, sizeof(blob), "SECRET page", 11));
	else
		CHECK(!memcmp(blob + PAGE_SEAL_HDR, page, sizeof(page)));

	/* a flipped bit anywhere in the body or the tag */
	for (size_t off = PAGE_SEAL_HDR; off < PAGE_BLOB_SIZE; off += 397) {
		memcpy(b2, blob, sizeof(blob));
		b2[off] ^= 0x10;
		CHECK_INT(verdict(s, 7, 20, b2, sizeof(b2)), PAGE_ALTERED);
	}
	memcpy(b2, blob, sizeof(blob));
	b2[PAGE_BLOB_SIZE - 1] ^= 1;
	seen[n++] = verdict(s, 7, 20, b2, sizeof(b2));
	CHECK_INT(seen[n - 1], PAGE_ALTERED);
	/* the mode byte flipped to the other mode: authenticated too */
	memcpy(b2, blob, sizeof(blob));
	b2[5] = mode == PAGE_MODE_SEALED ? PAGE_MODE_PLAIN : PAGE_MODE_SEALED;
	CHECK_INT(verdict(s, 7, 20, b2, sizeof(b2)), PAGE_ALTERED);

	/* another page's blob, as it is and with its header rewritten to claim page 7 */
	fill(page, 8, 2);
	CHECK_INT(page_seal(s, 8, 21, mode, page, other, &e), 0);
	seen[n++] = verdict(s, 7, 21, other, sizeof(other));
	CHECK_INT(seen[n - 1], PAGE_WRONG_PAGE);
	rewrite_hdr(other, 7, 21, 3, k.vm_id);
	CHECK_INT(verdict(s, 7, 21, other, sizeof(other)), PAGE_ALTERED);

	/* an older version of the same page (a rollback), and one rewritten to look new */
	fill(page, 7, 1);
	CHECK_INT(page_seal(s, 7, 5, mode, page, old, &e), 0);
	seen[n++] = verdict(s, 7, 20, old, sizeof(old));
	CHECK_INT(seen[n - 1], PAGE_STALE);
	rewrite_hdr(old, 7, 20, 3, k.vm_id);
	CHECK_INT(verdict(s, 7, 20, old, sizeof(old)), PAGE_ALTERED);
	/* a version newer than the table says was ever stored */
	seen[n++] = verdict(s, 7, 19, blob, sizeof(blob));
	CHECK_INT(seen[n - 1], PAGE_FUTURE);

	/* another VM's page 7 of the same version, as is and with this VM's id and epoch */
	fill(page, 7, 2);
	CHECK_INT(page_seal(sf, 7, 20, mode, page, foreign, &e), 0);
	seen[n++] = verdict(s, 7, 20, foreign, sizeof(foreign));
	CHECK_INT(seen[n - 1], PAGE_FOREIGN_VM);
	rewrite_hdr(foreign, 7, 20, 3, k.vm_id);
	CHECK_INT(verdict(s, 7, 20, foreign, sizeof(foreign)), PAGE_ALTERED);

	/* the same page and version sealed under another key epoch of this VM */
	CHECK_INT(page_seal(s2, 7, 20, mode, page, ep2, &e), 0);
	seen[n++] = verdict(s, 7, 20, ep2, sizeof(ep2));
	CHECK_INT(seen[n - 1], PAGE_WRONG_EPOCH);
	rewrite_hdr(ep2, 7, 20, 3, k.vm_id);
	CHECK_INT(verdict(s, 7, 20, ep2, sizeof(ep2)), PAGE_ALTERED);

	/* not a blob at all: short, long, wrong magic */
	seen[n++] = verdict(s, 7, 20, blob, PAGE_BLOB_SIZE - 1);
	CHECK_INT(seen[n - 1], PAGE_BAD_FORMAT);
	memcpy(bad, blob, sizeof(blob));
	CHECK_INT(verdict(s, 7, 20, bad, sizeof(bad)), PAGE_BAD_FORMAT);
	bad[0] = 'X';
	CHECK_INT(verdict(s, 7, 20, bad, PAGE_BLOB_SIZE), PAGE_BAD_FORMAT);
	CHECK_INT(verdict(s, 7, 0, blob, sizeof(blob)), PAGE_BAD_FORMAT);
	/* every header byte counts, the reserved ones too (found by fuzz_pageseal) */
	for (int off = 0; off < (int)PAGE_SEAL_HDR; off++) {
		memcpy(b2, blob, sizeof(blob));
		b2[off] ^= 0x04;
		CHECKF(verdict(s, 7, 20, b2, sizeof(b2)) != PAGE_OK, "header byte %d flipped went unnoticed", off);
	}

	/* every kind of refusal has its own verdict */
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			CHECKF(seen[i] != seen[j], "verdicts %d and %d are both %s", i, j, page_verdict_name(seen[i]));
	CHECK_INT(n, 7);
	/* the original still opens: nothing above changed it */
	CHECK_INT(verdict(s, 7, 20, blob, sizeof(blob)), PAGE_OK);

	/* versions out of range are never sealed */
	CHECK_INT(page_seal(s, 7, 0, mode, page, b2, &e), -ERANGE);
	CHECK_INT(page_seal(s, 7, PAGE_VERSION_MAX + 1, mode, page, b2, &e), -ERANGE);
	page_sealer_free(s);
	page_sealer_free(sf);
	page_sealer_free(s2);
	page_key_wipe(&k);
}

/* One page sealed twice (same contents, next version): different nonce, different blob. */
static void test_fresh_nonce(void)
{
	static uint8_t a[PAGE_BLOB_SIZE], b[PAGE_BLOB_SIZE], page[PAGE_SEAL_PAGE];
	struct page_key k;
	struct page_sealer *s;
	struct err e = { 0 };

	CHECK_INT(page_key_generate(&k, NULL, 0, &e), 0);
	CHECK_INT(page_sealer_new(&k, &s, &e), 0);
	fill(page, 1, 1);
	CHECK_INT(page_seal(s, 1, 1, PAGE_MODE_SEALED, page, a, &e), 0);
	CHECK_INT(page_seal(s, 1, 2, PAGE_MODE_SEALED, page, b, &e), 0);
	CHECK(memcmp(a + PAGE_SEAL_HDR, b + PAGE_SEAL_HDR, PAGE_SEAL_PAGE) != 0);
	page_sealer_free(s);
}

static void test_vtab(void)
{
	struct page_vtab t;
	struct err e = { 0 };
	uint64_t a, b;

	CHECK_INT(vtab_init(&t, 0, 1, &e), -EINVAL);
	CHECK_INT(vtab_init(&t, 1000, 0, &e), -EINVAL);
	CHECK_INT(vtab_init(&t, 1000, 1, &e), 0);
	a = vtab_next_version(&t);
	b = vtab_next_version(&t);
	CHECK_INT(a, 1);
	CHECK_INT(b, 2);
	CHECK_INT(vtab_version(&t, 5), 0);
	vtab_set(&t, 5, b, 3);
	CHECK_INT(vtab_version(&t, 5), 2);
	CHECK_INT(vtab_where(&t, 5), 3);
	vtab_set(&t, 5, VTAB_VERSION_MASK, 0xffff);
	CHECK(vtab_version(&t, 5) == VTAB_VERSION_MASK);
	CHECK_INT(vtab_where(&t, 5), 0xffff);
	vtab_clear(&t, 5);
	CHECK_INT(vtab_version(&t, 5), 0);
	CHECK_INT(vtab_version(&t, 1000), 0);   /* out of range reads as "none" */
	vtab_set(&t, 1000, 9, 9);                /* and is never written */
	/* the last versions of an epoch, then none */
	t.next = VTAB_VERSION_MASK;
	CHECK(vtab_next_version(&t) == VTAB_VERSION_MASK);
	CHECK_INT(vtab_next_version(&t), 0);
	CHECK_INT(vtab_next_version(&t), 0);
	vtab_fini(&t);
}

int main(void)
{
	test_mode(PAGE_MODE_SEALED);
	test_mode(PAGE_MODE_PLAIN);
	test_fresh_nonce();
	test_vtab();
	return unit_done();
}
