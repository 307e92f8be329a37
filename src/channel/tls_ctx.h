/* TLS 1.3 contexts and certificate checks shared by the migration channels and the
 * owner's console: one place decides what a usable key file, a trusted peer and a
 * peer certificate fit for its role are. */
#ifndef SEALVM_CHANNEL_TLS_CTX_H
#define SEALVM_CHANNEL_TLS_CTX_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "util/err.h"

struct tls_creds {
	const char *cert;       /* our certificate (leaf, then any intermediates) */
	const char *key;        /* its private key: must be 0600 and ours */
	const char *ca;         /* the only trust root for peers */
	const char *crl;        /* optional revocation list; NULL or a missing file: none */
};

/* Why a peer certificate was refused, filled by the verify callback. */
struct tls_vfy {
	char subject[128];      /* the certificate that failed */
	char reason[128];       /* our own leaf check's words, if it refused */
};

/* A TLS 1.3-only context: no tickets, no renegotiation, no system CAs; peers must
 * present a certificate chaining to cr->ca whose leaf is a host certificate for its
 * role (CA:FALSE, EKU serverAuth for a server, clientAuth for a client). */
SSL_CTX *tls_ctx_new(const struct tls_creds *cr, bool server, struct err *e);
/* Makes the verify callback record its findings for this connection in v. */
void tls_vfy_attach(SSL *ssl, struct tls_vfy *v);
/* An error for a failed peer verification (vr: SSL_get_verify_result); host is the
 * name a client expected, or NULL. */
int tls_verify_err(long vr, const struct tls_vfy *v, const char *host, struct err *e);
/* First OpenSSL error in this thread's queue as text; returns its SSL reason code
 * (-1 for another library, 0 for none). Does not clear the queue. */
int tls_reason(char *buf, size_t len);

#endif
