/* RAM pages as PAGES sections, shared by snapshots and migration.
 *
 * Payload: {u32 count, u32 flags=0}, count u64 entries (RAM page index, bit 63 set
 * for a page that is all zeros), then 4 KiB of data for each entry without bit 63,
 * in entry order. The sender stages each batch in one copy (the guest may be
 * writing); the receiver reads straight into guest memory. */
#ifndef SEALVM_STATE_PAGES_H
#define SEALVM_STATE_PAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "state/section.h"

#define PAGES_VERSION 1
#define PAGES_MAX 1024           /* entries per section */
#define PAGES_BATCH 256          /* what a sender puts in one section: stays in L2 */
#define PAGE_ENT_ZERO (1ULL << 63)

struct pages_stats {
	uint64_t data_pages;     /* pages whose contents were carried */
	uint64_t zero_pages;     /* pages found zero (sent as markers or elided) */
	uint64_t markers;        /* zero pages sent (or received) as markers */
	uint64_t sections;
};

bool page_is_zero(const void *page);

/* Sends pages idx[0..n) of ram as PAGES sections. A zero page travels as a marker
 * when zero_markers is set (the receiver may hold stale data), else is elided.
 * stable: pages need no staging copy (the guest is paused, or nothing checksums
 * them and the dirty log resends a page written while it was read). */
int pages_send(struct sec_writer *w, const uint8_t *ram, const uint64_t *idx, uint64_t n,
	       bool zero_markers, bool stable, struct pages_stats *st, struct err *e);

/* Receives the PAGES section whose header was just read into ram (ram_pages pages).
 * Every page number is checked before any byte of the section lands. */
int pages_recv(struct sec_reader *r, const struct sec_hdr *h, uint8_t *ram, uint64_t ram_pages,
	       struct pages_stats *st, struct err *e);

#endif
