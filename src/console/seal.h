/* Sealing console state under the console key: AES-256-GCM through OpenSSL EVP.
 *
 *   sealed = "SVCONSL1" | u32 version (BE) | u32 len (BE) | nonce[12] | ciphertext[len] | tag[16]
 *
 * The 28-byte header is the associated data, so a changed version or length fails
 * the tag like a changed byte does. The nonce is random (96 bits) for every seal:
 * a key seals only a handful of states (one per snapshot or migration), far below
 * the birthday bound. The key exists only in the VMM processes and the owner's
 * session; operator-side sinks see only the sealed bytes. */
#ifndef SEALVM_CONSOLE_SEAL_H
#define SEALVM_CONSOLE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define CONSOLE_KEY_LEN 32
#define SEAL_MAGIC "SVCONSL1"
#define SEAL_HDR 28
#define SEAL_TAG 16
#define SEAL_OVERHEAD (SEAL_HDR + SEAL_TAG)

struct console_key { uint8_t k[CONSOLE_KEY_LEN]; };

/* A fresh random key (OpenSSL's CSPRNG). */
int console_key_generate(struct console_key *key, struct err *e);
void console_key_wipe(struct console_key *key);

/* out must hold len + SEAL_OVERHEAD bytes; *outlen gets the sealed size. */
int console_seal(const struct console_key *key, uint32_t version, const void *plain, size_t len,
		 uint8_t *out, size_t *outlen, struct err *e);
/* Checks and opens sealed[sealed_len] into out[outmax]: -EBADMSG for a wrong key or
 * any alteration, -EPROTO for a malformed header; *version and *len are filled. */
int console_unseal(const struct console_key *key, const uint8_t *sealed, size_t sealed_len,
		   void *out, size_t outmax, uint32_t *version, size_t *len, struct err *e);

#endif
