/* The integrity validation table (DESIGN.md §1 property 3): which hosts are trusted,
 * with which attestation key, running which sealvm builds. Signed by the cluster
 * administrator (signed_file.h, type "sealvm-table"). Content:
 *
 *   {"type": "sealvm-table", "version": 1,
 *    "serial": 7,               increases with every edit; a peer running an older
 *                               table than ours is refused as stale
 *    "expires": 1790000000,     Unix time after which the whole table is refused (optional)
 *    "min_trust": 1,            hosts below this trust level are refused (default 1)
 *    "sealvm": ["<sha256>"...], sealvm executables allowed on every host (optional)
 *    "ca": ["<sha256>"...],     cluster CA certificates (SHA-256 of the PEM file) a host
 *                               may measure; empty or absent: any
 *    "libs": ["<sha256>"...],   shared libraries (SHA-256 of the file) a sealvm process may
 *                               map; the integrity guard refuses any other. Empty or
 *                               absent: the guard pins each library at first sight
 *    "hosts": [{"name": "hostb",          the host's certificate name (CN)
 *               "ak": "-----BEGIN PUBLIC KEY-----...",  its TPM attestation key
 *               "trust": 2,              trust level, 0..9
 *               "expires": 1790000000,   optional
 *               "revoked": false,        optional
 *               "sealvm": ["<sha256>"...]}]}  executables allowed on this host (in addition)
 */
#ifndef SEALVM_TRUST_TABLE_H
#define SEALVM_TRUST_TABLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trust/keys.h"
#include "util/err.h"

#define TABLE_TYPE      "sealvm-table"
#define TABLE_MAX_HOSTS 4096
#define TABLE_MAX_MEAS  256
#define TABLE_MAX_LIBS  1024
#define HOST_NAME_MAX_  64

struct table_host {
	char name[HOST_NAME_MAX_];
	EVP_PKEY *ak;
	char ak_fpr[FPR_HEX_LEN + 1];
	int trust;
	int64_t expires;          /* 0: never */
	bool revoked;
	size_t nmeas;
	uint8_t (*meas)[32];
};

struct trust_table {
	uint64_t serial;
	int64_t expires;          /* 0: never */
	int min_trust;
	size_t nmeas, nca, nlibs, nhosts;
	uint8_t (*meas)[32];
	uint8_t (*ca)[32];
	uint8_t (*libs)[32];
	struct table_host *hosts;
	char signer[FPR_HEX_LEN + 1];   /* administrator key fingerprint */
	uint8_t sha256[32];             /* of the canonical signed content */
};

/* Verifies the signature (admin) and parses. Errors name the file and the check. */
int table_load(const char *path, EVP_PKEY *admin, struct trust_table **out, struct err *e);
int table_parse(const char *text, size_t len, EVP_PKEY *admin, struct trust_table **out, struct err *e);
/* Parses already verified signed content (also what the fuzzer drives). */
int table_from_json(json_t *body, struct trust_table **out, struct err *e);
const struct table_host *table_find(const struct trust_table *t, const char *name);
/* Whether digest is an allowed sealvm executable for host h. */
bool table_allows_exe(const struct trust_table *t, const struct table_host *h, const uint8_t digest[32]);
bool table_allows_ca(const struct trust_table *t, const uint8_t digest[32]);
/* Whether a library with this digest may be mapped (true for any when none are listed). */
bool table_allows_lib(const struct trust_table *t, const uint8_t digest[32]);
void table_free(struct trust_table *t);

#endif
