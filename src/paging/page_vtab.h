/* The main host's version table for a split VM (DESIGN.md §3, split migration): 8 bytes
 * a guest page, in the main host's own memory, never on a sub-host.
 *
 *   entry = where (16 bits) | version (48 bits)
 *
 * version: the version of the page's copy that sub-hosts hold (page_seal.h), the one a
 *          page-in must get back exactly; 0 = no stored copy (the page is resident here,
 *          or all zero: zero pages are never stored).
 * where:   which sub-host (or replica pair) holds that copy; the paging code decides the
 *          encoding, the table only keeps it with the version so both change at once.
 *
 * Versions are drawn from one counter per key epoch (vtab_next_version), not per page,
 * so a version never repeats under a key whatever happens to any page: it is the GCM
 * nonce. Entries are read and written atomically (page-in and page-out threads). */
#ifndef SEALVM_PAGING_PAGE_VTAB_H
#define SEALVM_PAGING_PAGE_VTAB_H

#include <stdint.h>

#include "util/err.h"

#define VTAB_VERSION_MASK ((1ull << 48) - 1)

struct page_vtab {
	uint64_t *e;             /* npages entries */
	uint64_t npages;
	uint64_t next;           /* next version to issue (atomic) */
};

/* A table of npages entries, all 0; versions are issued from first (>= 1). */
int vtab_init(struct page_vtab *t, uint64_t npages, uint64_t first, struct err *e);
void vtab_fini(struct page_vtab *t);

/* A version never issued before under this epoch; 0 once the epoch is exhausted
 * (2^48 - 1 versions: a new key epoch is due). */
uint64_t vtab_next_version(struct page_vtab *t);
/* The next version that would be issued (to hand the counter on with the key). */
uint64_t vtab_peek_next(struct page_vtab *t);

uint64_t vtab_version(const struct page_vtab *t, uint64_t page);
uint16_t vtab_where(const struct page_vtab *t, uint64_t page);
/* Records that sub-host `where` now holds `version` of page (page < npages). */
void vtab_set(struct page_vtab *t, uint64_t page, uint64_t version, uint16_t where);
/* The page has no stored copy any more (resident, or zero). */
void vtab_clear(struct page_vtab *t, uint64_t page);

#endif
