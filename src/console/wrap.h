/* A console key wrapped for the VM's owner, so a snapshot file can carry the console
 * without anyone but that owner being able to open it (not the operator who holds
 * the host's snapshot key, not sealvm on any host).
 *
 *   wrapped = "SVCWRAP1" | u32 kind (BE, 1) | recipient[32] | u16 eph_len (BE) |
 *             eph[eph_len] | nonce[12] | key ciphertext[32] | tag[16]
 *
 * kind 1: ECDH between a fresh ephemeral key (eph, DER SubjectPublicKeyInfo, same
 * curve) and the owner's EC public key; HKDF-SHA256 (salt: recipient, info: a label)
 * gives an AES-256-GCM key that seals the console key, with everything before the
 * nonce as associated data. recipient is the SHA-256 of the owner's public key (DER
 * SubjectPublicKeyInfo), so an owner's client knows the wrap is meant for it.
 * Only EC owner keys (P-256, P-384, P-521) can receive a wrapped key. */
#ifndef SEALVM_CONSOLE_WRAP_H
#define SEALVM_CONSOLE_WRAP_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "console/seal.h"
#include "util/err.h"

#define WRAP_MAGIC "SVCWRAP1"
#define WRAP_KIND_ECDH 1
#define WRAP_MAX 512
#define CONSOLE_SPKI_BUF 800     /* room for an owner's DER public key */

/* The DER SubjectPublicKeyInfo of a (public or private) key. */
int console_spki(EVP_PKEY *k, uint8_t *der, size_t cap, size_t *len, struct err *e);
/* Wraps key for the owner whose public key is spki; out holds WRAP_MAX bytes. */
int console_wrap(const struct console_key *key, const uint8_t *spki, size_t spki_len, uint8_t *out,
		 size_t *outlen, struct err *e);
/* Checks a wrapped key's layout (untrusted: it comes from a file) and gives its recipient. */
int console_wrap_parse(const uint8_t *w, size_t len, uint8_t recipient[32], struct err *e);
/* Opens it with the owner's private key: -EACCES if it is meant for another key,
 * -EBADMSG if it does not authenticate. */
int console_unwrap(const uint8_t *w, size_t len, EVP_PKEY *priv, struct console_key *key, struct err *e);

#endif
