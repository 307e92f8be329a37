/* A host's state directory (--state-dir, default /var/lib/sealvm): where sealvm
 * keeps what must outlive a process on this host — its host id, snapshot key,
 * migration outcome records, and (with trust) keys and the audit log.
 * It is created mode 0700; a directory others may write to is refused. */
#ifndef SEALVM_UTIL_STATEDIR_H
#define SEALVM_UTIL_STATEDIR_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/hex.h"

#define STATE_DIR_DEFAULT "/var/lib/sealvm"

struct state_dir {
	char path[PATH_MAX];
	/* Random, made on first use: names this state directory, so a peer can tell
	 * whether an answer comes from the same host state it dealt with before. */
	uint8_t host_id[16];
};

/* Opens (creating it and its host id if needed) the state directory at path
 * (NULL: $SEALVM_STATE_DIR if set, else the default). */
int state_dir_open(struct state_dir *sd, const char *path, struct err *e);
/* path/name, a subdirectory created mode 0700 if missing. */
int state_dir_sub(const struct state_dir *sd, const char *name, char *out, size_t len, struct err *e);

#endif
