#ifndef SEALVM_UTIL_SIZE_H
#define SEALVM_UTIL_SIZE_H

#include <stdint.h>

#include "util/err.h"

/* Parses "512", "64K", "512M", "4G", "1T" (bytes, binary units) with overflow checks.
 * A plain number is taken as MiB when default_mib is set (like QEMU's -m). */
int parse_size(const char *s, int default_mib, uint64_t *out, struct err *e);
/* Parses a non-negative decimal integer no larger than max. */
int parse_uint(const char *s, uint64_t max, uint64_t *out, struct err *e);

#endif
