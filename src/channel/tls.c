/* TLS 1.3 for channels: contexts with this host's credentials (checks in tls_ctx.c),
 * and the handshake with its one-byte confirmation (see channel.h). */
#include "channel/chan_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static bool is_cert_alert(int alert)
{
	switch (alert) {
	case SSL_AD_BAD_CERTIFICATE:
	case SSL_AD_UNSUPPORTED_CERTIFICATE:
	case SSL_AD_CERTIFICATE_REVOKED:
	case SSL_AD_CERTIFICATE_EXPIRED:
	case SSL_AD_CERTIFICATE_UNKNOWN:
	case SSL_AD_UNKNOWN_CA:
	case SSL_AD_ACCESS_DENIED:
	case SSL_AD_CERTIFICATE_REQUIRED:
		return true;
	}
	return false;
}

/* ---------------------------------------------------------------- context */

SSL_CTX *ch_make_ctx(const char *tls_dir, bool server, struct err *e)
{
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], crl[PATH_MAX];
	struct tls_creds cr = { cert, key, ca, crl };
	SSL_CTX *ctx;

	if (!tls_dir || !*tls_dir) {
		err_set(e, -EINVAL, "tls:// needs a TLS directory (ca.pem, cert.pem, key.pem)");
		return NULL;
	}
	snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", tls_dir);
	snprintf(key, sizeof(key), "%s/key.pem", tls_dir);
	snprintf(crl, sizeof(crl), "%s/crl.pem", tls_dir);
	ctx = tls_ctx_new(&cr, server, e);
	if (!ctx)
		return NULL;
	if (!SSL_CTX_set_ciphersuites(ctx, CHAN_CIPHERS)) {
		SSL_CTX_free(ctx);
		err_set(e, -EINVAL, "TLS: cannot set the cipher suites");
		return NULL;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, CHAN_TLS_RBUF);
	return ctx;
}

/* Maps a failed handshake step (SSL_connect/SSL_accept/confirmation) to an error. */
static int tls_handshake_fail(struct chan *c, const char *host, struct err *e)
{
	long vr = SSL_get_verify_result(c->ssl);
	char why[256];
	int reason;

	if (atomic_load(&c->shut))
		return err_set(e, -ECANCELED, "TLS handshake: channel shut down");
	if (vr != X509_V_OK)
		return tls_verify_err(vr, &c->vfy, host, e);
	if (c->io_err == ETIMEDOUT)
		return err_set(e, -ETIMEDOUT, "TLS handshake timed out");
	reason = tls_reason(why, sizeof(why));
	if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		return err_set(e, -EACCES, "TLS: peer sent no certificate");
	if (reason >= SSL_AD_REASON_OFFSET) {
		if (is_cert_alert(reason - SSL_AD_REASON_OFFSET))
			return err_set(e, -EACCES, "TLS: peer rejected our certificate (%s)", why);
		return err_set(e, -EPROTO, "TLS handshake failed: peer sent alert: %s", why);
	}
	if (c->io_err)
		return err_sys(e, -c->io_err, "TLS handshake");
	if (c->io_eof || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return err_set(e, -ECONNRESET, "TLS handshake: connection closed by peer");
	return err_set(e, -EPROTO, "TLS handshake failed: %s", why);
}

static void note_peer(struct chan *c)
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);

	c->peer[0] = '\0';
	if (cert &&
	    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, c->peer,
				      sizeof(c->peer)) < 0)
		c->peer[0] = '\0';
}

/* Runs the TLS handshake (server or client) and the one-byte confirmation. */
int ch_tls_handshake(struct chan *c, bool server, const char *host, int64_t deadline,
			 struct err *e)
{
	unsigned char ack = CHAN_ACK;
	size_t n = 0;
	int r;

	c->deadline_ns = deadline;
	c->io_err = 0;
	c->io_eof = false;
	ERR_clear_error();
	if (!server) {
		X509_VERIFY_PARAM *vpm = SSL_get0_param(c->ssl);
		X509_VERIFY_PARAM_set_hostflags(vpm, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
						     X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
		if (ch_is_ip_literal(host)) {
			r = X509_VERIFY_PARAM_set1_ip_asc(vpm, host);
		} else {
			r = X509_VERIFY_PARAM_set1_host(vpm, host, 0);
			if (r == 1)
				r = SSL_set_tlsext_host_name(c->ssl, host);
		}
		if (r != 1) {
			ERR_clear_error();
			return err_set(e, -EINVAL, "TLS: cannot set expected peer name %s", host);
		}
		r = SSL_connect(c->ssl);
	} else {
		r = SSL_accept(c->ssl);
	}
	if (r != 1)
		goto fail;
	/* TLS 1.3 lets the client finish before the server has checked the client's
	 * certificate; the confirmation makes a rejection visible in chan_connect. */
	if (server) {
		if (SSL_write_ex(c->ssl, &ack, 1, &n) != 1 || ch_obuf_flush(c) < 0)
			goto fail;
	} else {
		if (SSL_read_ex(c->ssl, &ack, 1, &n) != 1)
			goto fail;
		if (ack != CHAN_ACK) {
			r = err_set(e, -EPROTO, "TLS handshake: peer is not a sealvm channel (bad confirmation byte)");
			goto out;
		}
	}
	note_peer(c);
	c->deadline_ns = 0;
	return 0;
fail:
	r = tls_handshake_fail(c, host, e);
out:
	ERR_clear_error();
	c->deadline_ns = 0;
	return r;
}


bool chan_peer_has_name(struct chan *c, const char *name)
{
	X509 *cert = chan_peer_cert(c);

	return cert && name && *name &&
	       X509_check_host(cert, name, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
					      X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
}

bool chan_peer_named_in(struct chan *c, const char *names)
{
	char buf[512], *tok, *save = NULL;

	if (!names || strlen(names) >= sizeof(buf))
		return false;
	snprintf(buf, sizeof(buf), "%s", names);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (chan_peer_has_name(c, tok))
			return true;
	return false;
}
