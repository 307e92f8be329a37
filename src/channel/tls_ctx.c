#include "channel/tls_ctx.h"
#include "util/secret_file.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static pthread_once_t vfy_once = PTHREAD_ONCE_INIT;
static int vfy_idx = -1;

static void vfy_index_init(void)
{
	vfy_idx = SSL_get_ex_new_index(0, "sealvm verify findings", NULL, NULL, NULL);
}

void tls_vfy_attach(SSL *ssl, struct tls_vfy *v)
{
	pthread_once(&vfy_once, vfy_index_init);
	if (vfy_idx >= 0)
		SSL_set_ex_data(ssl, vfy_idx, v);
}

int tls_reason(char *buf, size_t len)
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

static int check_readable(const char *path, struct err *e)
{
	if (access(path, R_OK) < 0)
		return err_sys(e, -errno, "cannot load %s", path);
	return 0;
}

static int load_fail(const char *path, struct err *e)
{
	char why[256];

	tls_reason(why, sizeof(why));
	ERR_clear_error();
	return err_set(e, -EINVAL, "cannot load %s: not a usable PEM file (%s)", path, why);
}

/* The peer's own certificate must be a host certificate for its role: not a CA
 * (an intermediate CA certificate is no host), with an explicit CA:FALSE, and an
 * extended key usage naming the role. OpenSSL's purpose check alone accepts a
 * certificate without any EKU and a CA certificate without key usage. */
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
		return peer_is_server ? "its extended key usage lacks serverAuth (a server's role)"
				      : "its extended key usage lacks clientAuth (a client's role)";
	return NULL;
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_vfy *v = ssl && vfy_idx >= 0 ? SSL_get_ex_data(ssl, vfy_idx) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(store);

	/* OpenSSL's purpose check may refuse the leaf first: say why in our words */
	if (ssl && (ok || X509_STORE_CTX_get_error(store) == X509_V_ERR_INVALID_PURPOSE) && cert &&
	    X509_STORE_CTX_get_error_depth(store) == 0) {
		const char *why = leaf_problem(cert, !SSL_is_server(ssl));
		if (why) {
			if (v)
				snprintf(v->reason, sizeof(v->reason), "%s", why);
			X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_PURPOSE);
			ok = 0;
		}
	}
	if (!ok && v && cert && !v->subject[0])
		X509_NAME_oneline(X509_get_subject_name(cert), v->subject, sizeof(v->subject));
	return ok;
}

static int load_crl(SSL_CTX *ctx, const char *path, struct err *e)
{
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	X509_CRL *crl;
	FILE *f;
	int n = 0;

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

SSL_CTX *tls_ctx_new(const struct tls_creds *cr, bool server, struct err *e)
{
	SSL_CTX *ctx;

	pthread_once(&vfy_once, vfy_index_init);
	if (check_readable(cr->ca, e) || check_readable(cr->cert, e) || check_readable(cr->key, e) ||
	    secret_file_check(cr->key, e))
		return NULL;
	ERR_clear_error();
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		err_set(e, -ENOMEM, "TLS: cannot create context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		err_set(e, -EINVAL, "TLS: cannot restrict to TLS 1.3");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* NO_AUTO_CHAIN: send cert.pem as it is (leaf + any intermediates it holds), not
	 * the leaf plus the CA root found in our trust store (the peer has the root). */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);

	if (SSL_CTX_use_certificate_chain_file(ctx, cr->cert) != 1) {
		load_fail(cr->cert, e);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cr->key, SSL_FILETYPE_PEM) != 1) {
		unsigned long ec = ERR_peek_last_error();
		if (ERR_GET_LIB(ec) == ERR_LIB_X509 && ERR_GET_REASON(ec) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			err_set(e, -EINVAL, "cannot load %s: the key does not match the certificate in %s",
				cr->key, cr->cert);
		} else {
			load_fail(cr->key, e);
		}
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		err_set(e, -EINVAL, "%s does not match the certificate in %s", cr->key, cr->cert);
		goto fail;
	}
	/* Only the given CA is trusted: no system default paths. */
	if (SSL_CTX_load_verify_locations(ctx, cr->ca, NULL) != 1) {
		load_fail(cr->ca, e);
		goto fail;
	}
	if (cr->crl && load_crl(ctx, cr->crl, e) < 0)
		goto fail;
	if (server) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cr->ca);
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

int tls_verify_err(long vr, const struct tls_vfy *v, const char *host, struct err *e)
{
	const char *vs = X509_verify_cert_error_string(vr);
	char subj[160] = "";

	if (v && v->subject[0])
		snprintf(subj, sizeof(subj), "; certificate %s", v->subject);
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
		return err_set(e, -EACCES, "TLS: peer certificate revoked (listed in the revocation list%s)", subj);
	case X509_V_ERR_INVALID_PURPOSE:
		return err_set(e, -EACCES, "TLS: peer certificate not acceptable for its role: %s%s",
			       v && v->reason[0] ? v->reason : vs, subj);
	default:
		return err_set(e, -EACCES, "TLS: peer certificate not trusted (%s%s)", vs, subj);
	}
}
