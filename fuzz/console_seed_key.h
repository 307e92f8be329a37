/* The owner key of the console fuzzer's seeds (fuzz/corpus/fuzz_console/wrap*): a
 * throw-away EC P-256 key, public here on purpose, so that mutated wrapped keys get
 * past the recipient check into the ephemeral-key parsing and the key agreement. */
#ifndef SEALVM_FUZZ_CONSOLE_SEED_KEY_H
#define SEALVM_FUZZ_CONSOLE_SEED_KEY_H

#include <openssl/pem.h>
#include <string.h>

#define CONSOLE_SEED_OWNER_PEM                                                                          \
	"-----BEGIN PRIVATE KEY-----\n"                                                                 \
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbHWACJs4Oqe3aoIb\n"                             \
	"kVPjd3anZQU9vRPzrCPeI112poehRANCAASjhqoAWOPNFfWauJLSJEuWtaPN1Rp0\n"                             \
	"8nhv1edv5p0xxXEmEWrj8Q9mJYNxXDZwytK5OimPYT3jJ+HGbGVNTRTK\n"                                     \
	"-----END PRIVATE KEY-----\n"

/* the console key the seeds' sealed states are sealed with */
#define CONSOLE_SEED_KEY { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, \
			     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 } }

static inline EVP_PKEY *console_seed_owner(void)
{
	BIO *b = BIO_new_mem_buf(CONSOLE_SEED_OWNER_PEM, (int)strlen(CONSOLE_SEED_OWNER_PEM));
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	if (!k)
		__builtin_trap();
	return k;
}

#endif
