/* Snapshot files: a header in clear, then the same state sections a migration
 * sends, sealed (state/sealed.h: AES-256-GCM chunks under a per-file key derived
 * from a master key and the header's salt). Whoever can read the file learns
 * nothing of the guest; a file altered, truncated, extended or sealed with
 * another key is refused before any vCPU exists. The END section inside is an
 * HMAC keyed from the file key too. */
#ifndef SEALVM_VMM_SNAPSHOT_H
#define SEALVM_VMM_SNAPSHOT_H

#include <stdint.h>

#include "state/pages.h"
#include "trust/labels.h"
#include "util/err.h"
#include "vmm/machine.h"

#define SNAPSHOT_MAGIC "SEALVMSN"
#define SNAPSHOT_FORMAT 2          /* 1 was unsealed: refused */
#define SNAPSHOT_CIPHER_AES256GCM 1

struct snapshot_file_header {
	char magic[8];
	uint32_t format;       /* SNAPSHOT_FORMAT; a higher one is from a newer sealvm */
	uint32_t header_size;
	uint32_t cipher;       /* SNAPSHOT_CIPHER_AES256GCM */
	uint32_t flags;
	uint8_t salt[32];      /* per file: derives its keys from the master key */
	uint8_t nonce_prefix[4];
	uint8_t key_id[4];     /* names the master key (for a clear "wrong key" error) */
};

struct snapshot_stats {
	uint64_t bytes;
	uint64_t ns;
	struct pages_stats pages;
};

/* Sends every populated non-zero RAM page as PAGES sections. */
int machine_send_ram(struct machine *m, struct sec_writer *w, struct pages_stats *st, struct err *e);

/* Writes the whole machine (which must be paused) and its labels (NULL: none; a
 * LABELS section right after CONFIG) to path, sealed with key: into a new private
 * temporary file beside it (exclusive, never through a symlink), synced, renamed over
 * path, and the directory synced. */
int snapshot_save(struct machine *m, const char *path, const uint8_t key[32], const struct labels *labels,
		  struct snapshot_stats *st, struct err *e);

/* Called with the snapshot's labels (none for a file without a LABELS section) once
 * they are authenticated, before any VM is built: a non-zero return refuses the
 * restore with its error. */
struct snapshot_check {
	int (*fn)(void *opaque, const struct labels *labels, struct err *e);
	void *opaque;
};

/* Builds a paused machine from a snapshot sealed with key; nothing runs unless it
 * all authenticates and loads. chk may be NULL. */
int snapshot_restore(const char *path, const uint8_t key[32], int serial_fd, const struct snapshot_check *chk,
		     struct machine *m, struct snapshot_stats *st, struct err *e);

/* Pieces of restore, for tools and fuzzing: the header check (n bytes read), the
 * file's keys (and the master key's id), and the binding of its END section. */
int snapshot_check_header(const void *buf, size_t n, const char *path, struct snapshot_file_header *fh,
			  struct err *e);
struct sealed_keys;
int snapshot_file_keys(const struct snapshot_file_header *fh, const uint8_t key[32], struct sealed_keys *k,
		       uint8_t key_id[4], struct err *e);
void snapshot_end_bind(const struct sealed_keys *k, const struct snapshot_file_header *fh, struct sec_bind *b);

#endif
