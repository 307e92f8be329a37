/* Whole-file helpers for small files (keys, trust files, logs read at once). */
#ifndef SEALVM_UTIL_FILE_H
#define SEALVM_UTIL_FILE_H

#include <stddef.h>

#include "util/err.h"

/* Reads the whole file into a new NUL-terminated buffer (free() it). A file larger
 * than max bytes is refused (-EFBIG "PATH is larger than N bytes"). */
int file_read_all(const char *path, size_t max, char **out, size_t *len, struct err *e);

/* Writes data to path with mode through path.tmp + fsync + rename. */
int file_write_atomic(const char *path, const void *data, size_t len, int mode, struct err *e);

#endif
