#include "state/pages.h"

#include <stdlib.h>
#include <string.h>

#define PAGE 4096u

struct pages_head {
	uint32_t count;
	uint32_t flags;
};

bool page_is_zero(const void *page)
{
	const uint64_t *p = page;
	unsigned i;

	/* 64 bytes per step: the compiler vectorizes the OR, the branch exits early */
	for (i = 0; i < PAGE / 8; i += 8)
		if (p[i] | p[i + 1] | p[i + 2] | p[i + 3] | p[i + 4] | p[i + 5] | p[i + 6] | p[i + 7])
			return false;
	return true;
}

/* Pages are copied once into stage before anything reads them: the guest may
 * write a page while it is being sent, and the checksum, the zero test and the
 * bytes on the wire must all describe the same contents. */
/* With stage == NULL the memory is stable (the guest is paused): pages go out
 * straight from guest RAM, adjacent ones in one iovec. */
static int send_batch(struct sec_writer *w, const uint8_t *ram, const uint64_t *idx, uint32_t n,
		      bool zero_markers, uint8_t *stage, struct pages_stats *st, struct err *e)
{
	struct pages_head head = { 0, 0 };
	uint64_t ent[PAGES_BATCH];
	struct iovec iov[PAGES_BATCH + 2];
	uint32_t i, ndata = 0, niov = 2;
	uint64_t len;

	for (i = 0; i < n; i++) {
		uint8_t *p;
		if (stage) {
			p = stage + (size_t)ndata * PAGE;
			memcpy(p, ram + idx[i] * PAGE, PAGE);
		} else {
			p = (uint8_t *)ram + idx[i] * PAGE;
		}
		if (page_is_zero(p)) {
			st->zero_pages++;
			if (zero_markers) {
				ent[head.count++] = idx[i] | PAGE_ENT_ZERO;
				st->markers++;
			}
			continue;
		}
		ent[head.count++] = idx[i];
		if (stage)
			;
		else if (ndata && (uint8_t *)iov[niov - 1].iov_base + iov[niov - 1].iov_len == p)
			iov[niov - 1].iov_len += PAGE;
		else
			iov[niov++] = (struct iovec){ p, PAGE };
		ndata++;
	}
	if (!head.count)
		return 0;
	iov[0] = (struct iovec){ &head, sizeof(head) };
	iov[1] = (struct iovec){ ent, head.count * sizeof(ent[0]) };
	if (stage && ndata)
		iov[niov++] = (struct iovec){ stage, (size_t)ndata * PAGE };
	len = sizeof(head) + head.count * sizeof(ent[0]) + (uint64_t)ndata * PAGE;
	st->data_pages += ndata;
	st->sections++;
	{
		int r = sec_begin(w, SEC_PAGES, PAGES_VERSION, len, e);
		if (r == 0)
			r = sec_add(w, iov, (int)niov, e);
		return r ? r : sec_end(w, e);
	}
}

int pages_send(struct sec_writer *w, const uint8_t *ram, const uint64_t *idx, uint64_t n,
	       bool zero_markers, bool stable, struct pages_stats *st, struct err *e)
{
	uint8_t *stage = stable ? NULL : malloc((size_t)PAGES_BATCH * PAGE);
	uint64_t off;
	int r = 0;

	if (!stable && !stage)
		return err_set(e, -ENOMEM, "page staging buffer");
	for (off = 0; off < n && r == 0; off += PAGES_BATCH) {
		uint32_t k = (uint32_t)(n - off < PAGES_BATCH ? n - off : PAGES_BATCH);
		r = send_batch(w, ram, idx + off, k, zero_markers, stage, st, e);
	}
	free(stage);
	return r;
}

int pages_recv(struct sec_reader *r, const struct sec_hdr *h, uint8_t *ram, uint64_t ram_pages,
	       struct pages_stats *st, struct err *e)
{
	static __thread uint64_t ent[PAGES_MAX];
	struct pages_head head;
	uint64_t ndata = 0, i;
	int rc;

	if (h->len < sizeof(head))
		return err_set(e, -EPROTO, "stream corrupt at section %llu: PAGES too short",
			       (unsigned long long)h->seq);
	rc = sec_read(r, &head, sizeof(head), e);
	if (rc < 0)
		return rc;
	if (head.count == 0 || head.count > PAGES_MAX || head.flags != 0)
		return err_set(e, -EPROTO, "stream corrupt at section %llu: PAGES count %u flags %u",
			       (unsigned long long)h->seq, head.count, head.flags);
	if (h->len < sizeof(head) + head.count * sizeof(ent[0]))
		return err_set(e, -EPROTO, "stream corrupt at section %llu: PAGES shorter than its %u entries",
			       (unsigned long long)h->seq, head.count);
	rc = sec_read(r, ent, head.count * sizeof(ent[0]), e);
	if (rc < 0)
		return rc;
	for (i = 0; i < head.count; i++) {
		uint64_t p = ent[i] & ~PAGE_ENT_ZERO;
		if (p >= ram_pages)
			return err_set(e, -ERANGE,
				       "stream corrupt at section %llu: page %llu is outside guest RAM (%llu pages)",
				       (unsigned long long)h->seq, (unsigned long long)p,
				       (unsigned long long)ram_pages);
		if (!(ent[i] & PAGE_ENT_ZERO))
			ndata++;
	}
	if (h->len != sizeof(head) + head.count * sizeof(ent[0]) + ndata * PAGE)
		return err_set(e, -EPROTO, "stream corrupt at section %llu: PAGES length %llu does not match %llu data pages",
			       (unsigned long long)h->seq, (unsigned long long)h->len,
			       (unsigned long long)ndata);
	for (i = 0; i < head.count;) {
		uint64_t p = ent[i] & ~PAGE_ENT_ZERO, run = 1;
		uint8_t *dst = ram + p * PAGE;

		if (ent[i] & PAGE_ENT_ZERO) {
			if (!page_is_zero(dst))
				memset(dst, 0, PAGE);
			st->zero_pages++;
			st->markers++;
			i++;
			continue;
		}
		/* consecutive data pages arrive in one read */
		while (i + run < head.count && ent[i + run] == p + run)
			run++;
		rc = sec_read(r, dst, run * PAGE, e);
		if (rc < 0)
			return rc;
		st->data_pages += run;
		i += run;
	}
	st->sections++;
	return sec_read_end(r, e);
}
