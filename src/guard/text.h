/* Reading /proc files whole, and text the guard reports (JSON answers, audit records) is built from file names and
 * messages cut to fixed buffers: made printable, valid UTF-8 before it is used. */
#ifndef SEALVM_GUARD_TEXT_H
#define SEALVM_GUARD_TEXT_H

#include <stddef.h>

#include "util/err.h"

/* Reads a /proc file to its end (their size says 0): a new NUL-terminated buffer. */
int proc_read(const char *path, size_t max, char **out, size_t *len, struct err *e);

/* Replaces control characters and bytes that do not form valid UTF-8 with '?', and
 * drops a character cut off at the end. In place. */
void text_sanitize(char *s);

#endif
