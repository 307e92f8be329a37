/* Files that hold secrets (private keys): readable by their owner only.
 * A key file that group or others can read may already have leaked, so it is
 * refused with a message saying how to fix it, never silently used. */
#ifndef SEALVM_UTIL_SECRET_FILE_H
#define SEALVM_UTIL_SECRET_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* 0 when path is a regular file with no group/other permission bits (mode & 077 == 0).
 * -ENOENT "PATH: No such file ...", -EINVAL "PATH is not a regular file",
 * -EACCES "PATH is readable by group or others (mode 0644): run chmod 600 PATH". */
int secret_file_check(const char *path, struct err *e);

/* Reads a secret file after secret_file_check (at most max bytes, NUL-terminated). */
int secret_file_read(const char *path, size_t max, char **out, size_t *len, struct err *e);

/* Writes data to path with mode 0600 (created through path.tmp and rename, so a crash
 * never leaves a half-written key). An existing path is replaced only if replace. */
int secret_file_write(const char *path, const void *data, size_t len, int replace, struct err *e);

/* Creates path with mode 0600 holding len bytes, exclusively (never through a
 * symlink, never over an existing file), and makes it durable. -EEXIST if it exists. */
int secret_file_create(const char *path, const void *buf, size_t len, struct err *e);

/* A key's text: 32 raw bytes, or 64 hex digits and an optional newline (0 or -EINVAL). */
int key_parse(const char *buf, size_t len, uint8_t key[32]);
/* A 32-byte key from a file holding it raw or as 64 hex digits (then an
 * optional newline); the file must pass secret_file_check. */
int key_file_load(const char *path, uint8_t key[32], struct err *e);
/* dir/name: loaded, or created with 32 random bytes (mode 0600) on first use. */
int host_key_load(const char *dir, const char *name, uint8_t key[32], struct err *e);

#endif
