/* Snapshot files: a header, then the same state sections a migration sends. */
#ifndef SEALVM_VMM_SNAPSHOT_H
#define SEALVM_VMM_SNAPSHOT_H

#include <stdint.h>

#include "state/pages.h"
#include "util/err.h"
#include "vmm/machine.h"

#define SNAPSHOT_MAGIC "SEALVMSN"
#define SNAPSHOT_FORMAT 1

struct snapshot_file_header {
	char magic[8];
	uint32_t format;       /* SNAPSHOT_FORMAT; a higher one is from a newer sealvm */
	uint32_t header_size;
};

struct snapshot_stats {
	uint64_t bytes;
	uint64_t ns;
	struct pages_stats pages;
};

/* Sends every populated non-zero RAM page as PAGES sections. */
int machine_send_ram(struct machine *m, struct sec_writer *w, struct pages_stats *st, struct err *e);

/* Writes the whole machine (which must be paused) to path atomically (path.tmp, then rename). */
int snapshot_save(struct machine *m, const char *path, struct snapshot_stats *st, struct err *e);
/* Builds a paused machine from a snapshot; nothing runs unless it all loads. */
int snapshot_restore(const char *path, int serial_fd, struct machine *m, struct snapshot_stats *st,
		     struct err *e);

#endif
