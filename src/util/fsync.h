/* Durability helpers: a file is durable once its data and the directory entry
 * naming it have reached the disk. */
#ifndef SEALVM_UTIL_FSYNC_H
#define SEALVM_UTIL_FSYNC_H

#include "util/err.h"

/* fsync()s the directory holding path. */
int fsync_parent(const char *path, struct err *e);
/* fsync()s a directory. */
int fsync_dir(const char *dir, struct err *e);

#endif
