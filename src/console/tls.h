/* TLS 1.3 for the owner's console, on OpenSSL directly. Its trust root differs from
 * the migration channels' (channel/): the console server accepts only clients whose
 * certificate chains to the VM owner's CA (--owner-ca), never the cluster CA that
 * hosts and operators hold; it presents the host's own certificate (tls_dir). */
#ifndef SEALVM_CONSOLE_TLS_H
#define SEALVM_CONSOLE_TLS_H

#include <openssl/ssl.h>

#include "util/err.h"

/* Server: cert.pem/key.pem from host_dir; clients verified against owner_ca only
 * (and owner_crl if given), with the checks of channel/tls_ctx.h. */
SSL_CTX *ctls_server_ctx(const char *host_dir, const char *owner_ca, const char *owner_crl,
			 struct err *e);
/* Client (the owner): cert.pem/key.pem from dir, the server verified against dir/ca.pem
 * and dir/crl.pem if present. */
SSL_CTX *ctls_client_ctx(const char *dir, struct err *e);
/* Connects to host:port and completes the handshake within timeout_ms, checking that the
 * server's certificate names host (DNS or IP SAN). The socket stays blocking. */
int ctls_connect(SSL_CTX *ctx, const char *host, const char *port, int timeout_ms, SSL **out,
		 struct err *e);
/* The last OpenSSL error as text, and clears the queue. */
const char *ctls_reason(char *buf, size_t len);
/* TCP_NODELAY: console frames are small and latency-bound. */
void ctls_nodelay(int fd);
/* Splits "tls://HOST:PORT" (HOST may be [IPv6]). */
int ctls_parse_uri(const char *uri, char *host, size_t hostlen, char *port, size_t portlen, struct err *e);

#endif
