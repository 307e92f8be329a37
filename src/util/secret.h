/* Secret files (private keys, host keys): they must be regular files that no one
 * but their owner can read or write, as ssh demands of its keys. */
#ifndef SEALVM_UTIL_SECRET_H
#define SEALVM_UTIL_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* 0 if path is a regular file with no group or other permission bits; else an
 * error that says how to fix it ("chmod 600 PATH"). */
int secret_file_check(const char *path, struct err *e);

/* Reads a whole secret file (checked as above) of at most max bytes into buf. */
int secret_file_read(const char *path, void *buf, size_t max, size_t *len, struct err *e);

/* Creates path with mode 0600 holding len bytes, exclusively (never through a
 * symlink, never over an existing file), and makes it durable. -EEXIST if it exists. */
int secret_file_create(const char *path, const void *buf, size_t len, struct err *e);

/* A 32-byte key from a file holding it raw or as 64 hex digits (then an
 * optional newline); the file must pass secret_file_check. */
int key_file_load(const char *path, uint8_t key[32], struct err *e);
/* dir/name: loaded, or created with 32 random bytes (mode 0600) on first use. */
int host_key_load(const char *dir, const char *name, uint8_t key[32], struct err *e);

#endif
