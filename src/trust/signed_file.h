/* Trust files signed by the cluster administrator (the integrity validation table,
 * the migration policy). One self-contained JSON file:
 *
 *   {"signed": {"type": "sealvm-table", ...the content...},
 *    "signatures": [{"keyid": "<SHA-256 of the signer's SPKI, hex>", "sig": "<base64>"}]}
 *
 * The signature (Ed25519, or ECDSA P-256 with SHA-256) covers the domain string
 * "sealvm-signed-v1\n" followed by the canonical form of "signed": compact JSON, keys
 * sorted, ASCII only (jansson's JSON_COMPACT|JSON_SORT_KEYS|JSON_ENSURE_ASCII). The
 * "type" inside the signed content keeps a signed policy from passing as a table. Real
 * numbers and duplicate keys are refused, so every accepted file has one meaning. */
#ifndef SEALVM_TRUST_SIGNED_FILE_H
#define SEALVM_TRUST_SIGNED_FILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "trust/keys.h"
#include "util/err.h"

#define SIGNED_FILE_MAX (1u << 20)   /* bytes */

/* Parses text, checks that one of its signatures is a valid signature by admin and that
 * signed.type is type. On success *body is a new reference to the signed content and
 * sha256 (if non-NULL) receives the SHA-256 of the canonical signed content. Errors:
 * -EINVAL malformed ("not a signed sealvm file: ..."), -EKEYREJECTED "not signed by the
 * administrator key FPR (signed by: ...)", -EBADMSG "signature does not match: the file
 * was changed after it was signed". */
int signed_parse(const char *text, size_t len, EVP_PKEY *admin, const char *type, json_t **body,
		 uint8_t sha256[32], struct err *e);
int signed_load(const char *path, EVP_PKEY *admin, const char *type, json_t **body, uint8_t sha256[32],
		struct err *e);

/* Signs body (which must carry "type") with key: a new malloc'd envelope text. */
int signed_make(json_t *body, EVP_PKEY *key, char **out, struct err *e);

/* The canonical bytes of a JSON value (malloc'd, NUL-terminated). */
char *signed_canonical(json_t *v);

#endif
