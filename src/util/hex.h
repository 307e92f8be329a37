/* Lower-case hexadecimal and base64 for digests and signatures in JSON files. */
#ifndef SEALVM_UTIL_HEX_H
#define SEALVM_UTIL_HEX_H

#include <stddef.h>
#include <stdint.h>

/* out holds 2*n+1 bytes. */
void hex_encode(const void *in, size_t n, char *out);
/* Decodes exactly n bytes from a string of exactly 2*n hex digits: 0 or -EINVAL. */
int hex_decode(const char *s, void *out, size_t n);

/* Base64 (RFC 4648, with padding). b64_encode returns a malloc'd string or NULL.
 * b64_decode accepts only canonical input (no whitespace, correct padding) and
 * returns a malloc'd buffer with *n bytes, or NULL if it is not valid base64. */
char *b64_encode(const void *in, size_t n);
uint8_t *b64_decode(const char *s, size_t *n);

#endif
