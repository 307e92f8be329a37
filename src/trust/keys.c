#include "trust/keys.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "util/file.h"
#include "util/hex.h"
#include "util/secret_file.h"

#define KEY_FILE_MAX (64 * 1024)

int sha256_buf(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
	unsigned int n = 0;

	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == SHA256_LEN ? 0 : -EIO;
}

int sha256_file(const char *path, uint8_t out[SHA256_LEN], struct err *e)
{
	static __thread uint8_t buf[1 << 16];
	EVP_MD_CTX *c;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, -errno, "%s", path);
	c = EVP_MD_CTX_new();
	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		rc = err_set(e, -EIO, "SHA-256 unavailable");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_sys(e, -errno, "reading %s", path);
			goto out;
		}
		if (r == 0)
			break;
		EVP_DigestUpdate(c, buf, (size_t)r);
	}
	if (EVP_DigestFinal_ex(c, out, NULL) != 1)
		rc = err_set(e, -EIO, "SHA-256 failed");
out:
	EVP_MD_CTX_free(c);
	close(fd);
	return rc;
}

const char *key_type(EVP_PKEY *k)
{
	char group[32];
	size_t n = 0;

	if (!k)
		return NULL;
	if (EVP_PKEY_get_id(k) == EVP_PKEY_ED25519)
		return "ed25519";
	if (EVP_PKEY_get_id(k) == EVP_PKEY_EC &&
	    EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &n) == 1 &&
	    (!strcmp(group, "prime256v1") || !strcmp(group, "P-256")))
		return "ecdsa-p256";
	return NULL;
}

static int accept_type(EVP_PKEY *k, const char *what, struct err *e)
{
	if (!key_type(k)) {
		EVP_PKEY_free(k);
		return err_set(e, -EINVAL, "%s is not an Ed25519 or ECDSA P-256 key", what);
	}
	return 0;
}

int key_public_from_pem(const char *pem, size_t len, EVP_PKEY **out, struct err *e)
{
	BIO *b;
	EVP_PKEY *k;
	int rc;

	*out = NULL;
	if (len > KEY_FILE_MAX || len > INT32_MAX)
		return err_set(e, -EINVAL, "public key too large");
	b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return err_set(e, -ENOMEM, "out of memory");
	k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!k)
		return err_set(e, -EINVAL, "not a PEM public key");
	rc = accept_type(k, "public key", e);
	if (rc < 0)
		return rc;
	*out = k;
	return 0;
}

int key_public_from_file(const char *path, EVP_PKEY **out, struct err *e)
{
	char *buf;
	size_t len;
	int rc = file_read_all(path, KEY_FILE_MAX, &buf, &len, e);

	*out = NULL;
	if (rc < 0)
		return rc;
	rc = key_public_from_pem(buf, len, out, e);
	free(buf);
	return rc < 0 ? err_wrap(e, "%s", path) : 0;
}

int key_private_from_file(const char *path, EVP_PKEY **out, struct err *e)
{
	char *buf;
	size_t len;
	BIO *b;
	EVP_PKEY *k;
	int rc = secret_file_read(path, KEY_FILE_MAX, &buf, &len, e);

	*out = NULL;
	if (rc < 0)
		return rc;
	b = BIO_new_mem_buf(buf, (int)len);
	k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (!k)
		return err_set(e, -EINVAL, "%s is not a PEM private key (or it is encrypted)", path);
	rc = accept_type(k, path, e);
	if (rc < 0)
		return rc;
	*out = k;
	return 0;
}

int key_generate(const char *type, EVP_PKEY **out, struct err *e)
{
	*out = NULL;
	if (!strcmp(type, "ed25519"))
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (!strcmp(type, "ecdsa-p256"))
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		return err_set(e, -EINVAL, "unknown key type '%s' (ed25519 or ecdsa-p256)", type);
	return *out ? 0 : err_set(e, -EIO, "generating a %s key failed", type);
}

char *key_public_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (!b)
		return NULL;
	if (PEM_write_bio_PUBKEY(b, k) == 1 && (n = BIO_get_mem_data(b, &data)) > 0) {
		out = malloc((size_t)n + 1);
		if (out) {
			memcpy(out, data, (size_t)n);
			out[n] = 0;
		}
	}
	BIO_free(b);
	return out;
}

int key_save(EVP_PKEY *k, const char *priv_path, const char *pub_path, struct err *e)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int rc;

	if (!b)
		return err_set(e, -ENOMEM, "out of memory");
	if (PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (n = BIO_get_mem_data(b, &data)) <= 0) {
		BIO_free(b);
		return err_set(e, -EIO, "encoding the private key failed");
	}
	rc = secret_file_write(priv_path, data, (size_t)n, 0, e);
	BIO_free(b);
	if (rc < 0 || !pub_path)
		return rc;
	data = key_public_pem(k);
	if (!data)
		return err_set(e, -EIO, "encoding the public key failed");
	rc = file_write_atomic(pub_path, data, strlen(data), 0644, e);
	free(data);
	return rc;
}

int key_fingerprint(EVP_PKEY *k, char out[FPR_HEX_LEN + 1])
{
	unsigned char *der = NULL;
	uint8_t d[SHA256_LEN];
	int n = i2d_PUBKEY(k, &der);

	out[0] = 0;
	if (n <= 0)
		return -EINVAL;
	sha256_buf(der, (size_t)n, d);
	OPENSSL_free(der);
	hex_encode(d, sizeof(d), out);
	return 0;
}

int key_sign(EVP_PKEY *k, const void *msg, size_t len, uint8_t **sig, size_t *siglen, struct err *e)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	const EVP_MD *md = EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
	size_t n = 0;
	uint8_t *s = NULL;

	*sig = NULL;
	*siglen = 0;
	if (!c || EVP_DigestSignInit(c, NULL, md, NULL, k) != 1 || EVP_DigestSign(c, NULL, &n, msg, len) != 1 ||
	    !(s = malloc(n)) || EVP_DigestSign(c, s, &n, msg, len) != 1) {
		EVP_MD_CTX_free(c);
		free(s);
		return err_set(e, -EIO, "signing failed");
	}
	EVP_MD_CTX_free(c);
	*sig = s;
	*siglen = n;
	return 0;
}

int key_verify(EVP_PKEY *k, const void *msg, size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	const EVP_MD *md = EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
	int ok = c && EVP_DigestVerifyInit(c, NULL, md, NULL, k) == 1 &&
		 EVP_DigestVerify(c, sig, siglen, msg, len) == 1;

	EVP_MD_CTX_free(c);
	return ok ? 0 : -EBADMSG;
}

int key_verify_digest(EVP_PKEY *k, const uint8_t digest[SHA256_LEN], const uint8_t *sig, size_t siglen)
{
	EVP_PKEY_CTX *c;
	int ok;

	if (EVP_PKEY_get_id(k) != EVP_PKEY_EC)
		return -EBADMSG;
	c = EVP_PKEY_CTX_new(k, NULL);
	ok = c && EVP_PKEY_verify_init(c) == 1 && EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 &&
	     EVP_PKEY_verify(c, sig, siglen, digest, SHA256_LEN) == 1;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -EBADMSG;
}

int key_ec_p256_from_xy(const uint8_t *x, size_t xlen, const uint8_t *y, size_t ylen, EVP_PKEY **out,
			struct err *e)
{
	uint8_t pt[65];
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *c = NULL;
	EVP_PKEY *k = NULL;

	*out = NULL;
	if (xlen == 0 || xlen > 32 || ylen == 0 || ylen > 32)
		return err_set(e, -EINVAL, "EC point coordinates of %zu and %zu bytes (P-256 needs 32)", xlen, ylen);
	/* TPM2B coordinates may be shorter than 32 bytes: left-pad with zeros */
	memset(pt, 0, sizeof(pt));
	pt[0] = 4;
	memcpy(pt + 1 + 32 - xlen, x, xlen);
	memcpy(pt + 33 + 32 - ylen, y, ylen);
	bld = OSSL_PARAM_BLD_new();
	if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) == 1)
		params = OSSL_PARAM_BLD_to_param(bld);
	if (params && (c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) && EVP_PKEY_fromdata_init(c) == 1)
		EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(c);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	if (!k)
		return err_set(e, -EINVAL, "not a valid P-256 public key point");
	*out = k;
	return 0;
}

int ecdsa_der_from_rs(const uint8_t *r, size_t rlen, const uint8_t *s, size_t slen, uint8_t **der,
		      size_t *derlen)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *br = BN_bin2bn(r, (int)rlen, NULL), *bs = BN_bin2bn(s, (int)slen, NULL);
	unsigned char *p = NULL;
	int n;

	*der = NULL;
	*derlen = 0;
	if (!sig || !br || !bs || ECDSA_SIG_set0(sig, br, bs) != 1) {
		ECDSA_SIG_free(sig);
		BN_free(br);
		BN_free(bs);
		return -ENOMEM;
	}
	n = i2d_ECDSA_SIG(sig, &p);
	ECDSA_SIG_free(sig);
	if (n <= 0)
		return -EINVAL;
	*der = malloc((size_t)n);
	if (*der)
		memcpy(*der, p, (size_t)n);
	OPENSSL_free(p);
	if (!*der)
		return -ENOMEM;
	*derlen = (size_t)n;
	return 0;
}

void key_free(EVP_PKEY *k)
{
	EVP_PKEY_free(k);
}
