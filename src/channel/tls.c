/* TLS 1.3 for channels: contexts with this host's credentials, certificate checks,
 * and the handshake with its one-byte confirmation (see channel.h). */
#include "channel/chan_impl.h"
#include "util/secret_file.h"

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

/* ---------------------------------------------------------------- OpenSSL errors */

/* First OpenSSL error in this thread's queue as text; returns its reason code. */
int ch_tls_reason(char *buf, size_t len)
{
	unsigned long ec = ERR_peek_error();
	const char *r;

	if (!ec) {
		snprintf(buf, len, "unknown error");
		return 0;
	}
	r = ERR_reason_error_string(ec);
	if (r)
		snprintf(buf, len, "%s", r);
	else
		ERR_error_string_n(ec, buf, len);
	return ERR_GET_LIB(ec) == ERR_LIB_SSL ? ERR_GET_REASON(ec) : -1;
}

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

static int check_readable(const char *path, struct err *e)
{
	if (access(path, R_OK) < 0)
		return err_sys(e, -errno, "cannot load %s", path);
	return 0;
}

static int load_fail(const char *path, struct err *e)
{
	char why[256];

	ch_tls_reason(why, sizeof(why));
	ERR_clear_error();
	return err_set(e, -EINVAL, "cannot load %s: not a usable PEM file (%s)", path, why);
}

/* The peer's own certificate must be a host certificate for its role: not a CA
 * (an intermediate CA certificate is no host), with an explicit CA:FALSE, and an
 * extended key usage naming the role (serverAuth for a destination, clientAuth
 * for a source). OpenSSL's purpose check alone accepts a certificate without
 * any EKU and a CA certificate without key usage. */
static const char *leaf_problem(X509 *cert, bool peer_is_server)
{
	uint32_t fl = X509_get_extension_flags(cert);
	uint32_t want = peer_is_server ? XKU_SSL_SERVER : XKU_SSL_CLIENT;

	if (fl & EXFLAG_CA)
		return "it is a CA certificate, not a host certificate";
	if (!(fl & EXFLAG_BCONS))
		return "it has no basicConstraints CA:FALSE extension";
	if (!(fl & EXFLAG_XKUSAGE))
		return "it has no extended key usage";
	if (!(X509_get_extended_key_usage(cert) & want))
		return peer_is_server ? "its extended key usage lacks serverAuth (a destination's role)"
				      : "its extended key usage lacks clientAuth (a source's role)";
	return NULL;
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl;
	struct chan *c;
	X509 *cert;

	ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	c = ssl ? SSL_get_app_data(ssl) : NULL;
	cert = X509_STORE_CTX_get_current_cert(store);
	/* OpenSSL's purpose check may refuse the leaf first: say why in our words */
	if ((ok || X509_STORE_CTX_get_error(store) == X509_V_ERR_INVALID_PURPOSE) && cert &&
	    X509_STORE_CTX_get_error_depth(store) == 0) {
		const char *why = leaf_problem(cert, !SSL_is_server(ssl));
		if (why) {
			if (c)
				snprintf(c->vfy_reason, sizeof(c->vfy_reason), "%s", why);
			X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_PURPOSE);
			ok = 0;
		}
	}
	if (!ok && c && cert && !c->vfy_subject[0]) {
		X509_NAME_oneline(X509_get_subject_name(cert), c->vfy_subject,
				  sizeof(c->vfy_subject));
	}
	return ok;
}

/* Optional revocation list: tls_dir/crl.pem, checked for every peer. */
static int load_crl(SSL_CTX *ctx, const char *tls_dir, struct err *e)
{
	char path[PATH_MAX];
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	X509_CRL *crl;
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/crl.pem", tls_dir);
	f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : err_sys(e, -errno, "cannot open %s", path);
	while ((crl = PEM_read_X509_CRL(f, NULL, NULL, NULL))) {
		int ok = X509_STORE_add_crl(st, crl);
		X509_CRL_free(crl);
		if (!ok)
			break;
		n++;
	}
	fclose(f);
	ERR_clear_error();
	if (n == 0)
		return err_set(e, -EINVAL, "cannot load %s: no usable PEM revocation list in it", path);
	X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	return 0;
}

SSL_CTX *ch_make_ctx(const char *tls_dir, bool server, struct err *e)
{
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	SSL_CTX *ctx;
	int r;

	if (!tls_dir || !*tls_dir) {
		err_set(e, -EINVAL, "tls:// needs a TLS directory (ca.pem, cert.pem, key.pem)");
		return NULL;
	}
	snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", tls_dir);
	snprintf(key, sizeof(key), "%s/key.pem", tls_dir);
	if ((r = check_readable(ca, e)) || (r = check_readable(cert, e)) ||
	    (r = check_readable(key, e)) || (r = secret_file_check(key, e)))
		return NULL;

	ERR_clear_error();
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		err_set(e, -ENOMEM, "TLS: cannot create context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, CHAN_CIPHERS)) {
		err_set(e, -EINVAL, "TLS: cannot restrict to TLS 1.3");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* NO_AUTO_CHAIN: send cert.pem as it is (leaf + any intermediates it holds), not
	 * the leaf plus the CA root found in our trust store (the peer has the root). */
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY | SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, CHAN_TLS_RBUF);

	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		load_fail(cert, e);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		unsigned long ec = ERR_peek_last_error();
		if (ERR_GET_LIB(ec) == ERR_LIB_X509 && ERR_GET_REASON(ec) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			err_set(e, -EINVAL, "cannot load %s: the key does not match the certificate in %s",
				key, cert);
		} else {
			load_fail(key, e);
		}
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		err_set(e, -EINVAL, "%s does not match the certificate in %s", key, cert);
		goto fail;
	}
	/* Only the cluster CA is trusted: no system default paths. */
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		load_fail(ca, e);
		goto fail;
	}
	if (load_crl(ctx, tls_dir, e) < 0)
		goto fail;
	if (server) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		ERR_clear_error();
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	}
	SSL_CTX_set_verify_depth(ctx, 4);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int verify_error(struct chan *c, long vr, const char *host, struct err *e)
{
	const char *vs = X509_verify_cert_error_string(vr);
	char subj[160] = "";

	if (c->vfy_subject[0])
		snprintf(subj, sizeof(subj), "; certificate %s", c->vfy_subject);
	switch (vr) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return err_set(e, -EACCES, "TLS: certificate name mismatch: expected %s (%s%s)",
			       host ? host : "?", vs, subj);
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return err_set(e, -EACCES, "TLS: certificate expired (%s%s)", vs, subj);
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return err_set(e, -EACCES, "TLS: certificate not yet valid (%s%s)", vs, subj);
	case X509_V_ERR_CERT_REVOKED:
		return err_set(e, -EACCES, "TLS: peer certificate revoked (listed in crl.pem%s)", subj);
	case X509_V_ERR_INVALID_PURPOSE:
		return err_set(e, -EACCES, "TLS: peer certificate not acceptable for its role: %s%s",
			       c->vfy_reason[0] ? c->vfy_reason : vs, subj);
	default:
		return err_set(e, -EACCES, "TLS: peer certificate not trusted (%s%s)", vs, subj);
	}
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
		return verify_error(c, vr, host, e);
	if (c->io_err == ETIMEDOUT)
		return err_set(e, -ETIMEDOUT, "TLS handshake timed out");
	reason = ch_tls_reason(why, sizeof(why));
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
