/* Strict reading of trust files (JSON): every field is checked for type and range,
 * unknown fields are errors (a typo in a security setting must not be ignored), and
 * every message names the field ("hosts[2].expires: ..."). */
#ifndef SEALVM_TRUST_JSONX_H
#define SEALVM_TRUST_JSONX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Parses text as one JSON value: duplicate keys are refused, NUL bytes too. */
json_t *jx_parse(const char *text, size_t len, const char *what, struct err *e);
/* Fails if obj has a key not in the NULL-terminated list. */
int jx_only(json_t *obj, const char *where, const char *const *keys, struct err *e);
/* Required (req) or optional string of 1..max-1 bytes, copied into out (size max). */
int jx_str(json_t *obj, const char *where, const char *key, bool req, char *out, size_t max, struct err *e);
/* Integer in [lo, hi]; if absent and !req, *out = dflt. */
int jx_int(json_t *obj, const char *where, const char *key, bool req, int64_t lo, int64_t hi, int64_t dflt,
	   int64_t *out, struct err *e);
int jx_bool(json_t *obj, const char *where, const char *key, bool dflt, bool *out, struct err *e);
/* A list of 64-hex-digit SHA-256 digests (at most max): *out is malloc'd (NULL if empty). */
int jx_digests(json_t *obj, const char *where, const char *key, size_t max, uint8_t (**out)[32], size_t *n,
	       struct err *e);
/* Refuses real numbers anywhere in v (signatures are over a canonical dump, and
 * real numbers have no single canonical form). */
int jx_no_reals(json_t *v, struct err *e);

#endif
