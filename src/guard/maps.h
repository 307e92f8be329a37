/* A process's memory map as /proc/PID/maps tells it, one line a mapping:
 *
 *   55d0c8e00000-55d0c8e34000 r-xp 00008000 fe:00 5341720    /usr/bin/sealvm
 *   start-end                 perms offset  dev   inode      path (may hold spaces;
 *                                                            " (deleted)" when unlinked)
 *
 * The text comes from the kernel, but a path is whatever name a file was given, so the
 * parser bounds everything and refuses a line it cannot read. Fuzzed by fuzz_maps. */
#ifndef SEALVM_GUARD_MAPS_H
#define SEALVM_GUARD_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define MAPS_MAX_ENTRIES 65536
#define MAPS_PATH_MAX    1024

struct map_ent {
	uint64_t start, end, offset;
	uint32_t dev_major, dev_minor;
	uint64_t ino;
	bool r, w, x, shared;
	bool deleted;                 /* path ended in " (deleted)" (removed from it) */
	bool path_truncated;          /* longer than MAPS_PATH_MAX - 1: cut */
	char path[MAPS_PATH_MAX];     /* "" for anonymous; "[vdso]", "[stack]"... */
};

struct maps {
	size_t n, cap;
	struct map_ent *ent;
};

/* Parses the whole text (need not be NUL-terminated). Entries must be in increasing,
 * non-overlapping address order, as the kernel writes them. */
int maps_parse(const char *text, size_t len, struct maps *out, struct err *e);
void maps_free(struct maps *m);
/* Whether the mapping is backed by a file (a path and an inode). */
bool map_is_file(const struct map_ent *m);

#endif
