/* Which pages of an anonymous mapping were ever populated (present or swapped),
 * from /proc/self/pagemap. A page that is neither has never been written and
 * reads as zero, so scans can skip it without touching it. */
#ifndef SEALVM_UTIL_PAGEMAP_H
#define SEALVM_UTIL_PAGEMAP_H

#include <stdint.h>

#include "util/err.h"

/* Appends to idx (room for npages) the indices of populated pages of
 * [addr, addr + npages*4096); returns how many, or -errno. */
int64_t pagemap_populated(const void *addr, uint64_t npages, uint64_t *idx, struct err *e);

#endif
