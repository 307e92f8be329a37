/* Keys, digests and signatures of the trust layer, all through OpenSSL EVP.
 * Signing keys are Ed25519 or ECDSA P-256 (SHA-256, DER signatures); other key
 * types are refused. A key is named by its fingerprint: the SHA-256 of its DER
 * SubjectPublicKeyInfo, in hex. */
#ifndef SEALVM_TRUST_KEYS_H
#define SEALVM_TRUST_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct evp_pkey_st EVP_PKEY;

#define SHA256_LEN 32
#define FPR_HEX_LEN 64

int sha256_buf(const void *data, size_t len, uint8_t out[SHA256_LEN]);
/* SHA-256 of a file's contents (streamed). */
int sha256_file(const char *path, uint8_t out[SHA256_LEN], struct err *e);

/* Public key from PEM text ("PUBLIC KEY") or a file holding one. */
int key_public_from_pem(const char *pem, size_t len, EVP_PKEY **out, struct err *e);
int key_public_from_file(const char *path, EVP_PKEY **out, struct err *e);
/* Private key from a PEM file that must be 0600 (secret_file_check). */
int key_private_from_file(const char *path, EVP_PKEY **out, struct err *e);
/* type: "ed25519" or "ecdsa-p256". */
int key_generate(const char *type, EVP_PKEY **out, struct err *e);
/* Writes the private key (mode 0600, refuses to replace) and, if pub_path, the public key. */
int key_save(EVP_PKEY *k, const char *priv_path, const char *pub_path, struct err *e);
/* New malloc'd PEM text of the public key. */
char *key_public_pem(EVP_PKEY *k);
/* "ed25519", "ecdsa-p256", or NULL for a type sealvm does not accept. */
const char *key_type(EVP_PKEY *k);
/* Fingerprint as 64 hex digits (+ NUL). */
int key_fingerprint(EVP_PKEY *k, char out[FPR_HEX_LEN + 1]);

/* Signs msg: Ed25519 (pure) or ECDSA over SHA-256 (DER). *sig is malloc'd. */
int key_sign(EVP_PKEY *k, const void *msg, size_t len, uint8_t **sig, size_t *siglen, struct err *e);
/* 0 if sig is a valid signature of msg by k, -EBADMSG if not. */
int key_verify(EVP_PKEY *k, const void *msg, size_t len, const uint8_t *sig, size_t siglen);
/* ECDSA P-256 over a precomputed SHA-256 digest (TPM signatures): 0 or -EBADMSG. */
int key_verify_digest(EVP_PKEY *k, const uint8_t digest[SHA256_LEN], const uint8_t *sig, size_t siglen);

/* An EC P-256 public key from its affine coordinates (32 bytes each, big-endian). */
int key_ec_p256_from_xy(const uint8_t *x, size_t xlen, const uint8_t *y, size_t ylen, EVP_PKEY **out,
			struct err *e);
/* DER ECDSA-Sig-Value from raw r and s (big-endian). *der is malloc'd. */
int ecdsa_der_from_rs(const uint8_t *r, size_t rlen, const uint8_t *s, size_t slen, uint8_t **der,
		      size_t *derlen);

void key_free(EVP_PKEY *k);

#endif
