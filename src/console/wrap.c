#include "console/wrap.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <string.h>

#include "console/proto.h" /* put_be32/get_be32 */

#define WRAP_LABEL "sealvm console key wrap v1"
#define FIXED_HEAD (8 + 4 + 32 + 2)
#define TAIL (12 + CONSOLE_KEY_LEN + 16)

int console_spki(EVP_PKEY *k, uint8_t *der, size_t cap, size_t *len, struct err *e)
{
	int n = i2d_PUBKEY(k, NULL);
	uint8_t *p = der;

	if (n <= 0 || (size_t)n > cap)
		return err_set(e, -EINVAL, "public key of %d bytes cannot be encoded here (at most %zu)", n, cap);
	if (i2d_PUBKEY(k, &p) != n)
		return err_set(e, -EINVAL, "cannot encode a public key");
	*len = (size_t)n;
	return 0;
}

static EVP_PKEY *ec_public(const uint8_t *der, size_t len, struct err *e)
{
	const uint8_t *p = der;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);

	if (!k || p != der + len) {
		EVP_PKEY_free(k);
		err_set(e, -EPROTO, "not a public key (DER SubjectPublicKeyInfo)");
		return NULL;
	}
	if (EVP_PKEY_base_id(k) != EVP_PKEY_EC) {
		err_set(e, -EOPNOTSUPP, "a console key can be wrapped only for an EC key (this owner key is %s)",
			OBJ_nid2sn(EVP_PKEY_base_id(k)));
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

/* ECDH(mine, peer) through HKDF-SHA256 into a 32-byte key-encryption key. */
static int kek(EVP_PKEY *mine, EVP_PKEY *peer, const uint8_t recipient[32], uint8_t out[32], struct err *e)
{
	EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	uint8_t secret[132];
	size_t slen = sizeof(secret);
	int ok;

	ok = dc && kc && EVP_PKEY_derive_init(dc) == 1 && EVP_PKEY_derive_set_peer(dc, peer) == 1 &&
	     EVP_PKEY_derive(dc, secret, &slen) == 1;
	if (ok) {
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, secret, slen),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)recipient, 32),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, WRAP_LABEL, strlen(WRAP_LABEL)),
			OSSL_PARAM_construct_end(),
		};
		ok = EVP_KDF_derive(kc, out, 32, params) == 1;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	EVP_KDF_CTX_free(kc);
	EVP_KDF_free(kdf);
	EVP_PKEY_CTX_free(dc);
	return ok ? 0 : err_set(e, -EIO, "key agreement failed (the keys are not on the same curve?)");
}

/* AES-256-GCM over the 32-byte console key; aad is the header. */
static int gcm(int enc, const uint8_t k[32], const uint8_t *aad, size_t aad_len, const uint8_t nonce[12],
	       const uint8_t *in, uint8_t *out, uint8_t tag[16])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok;

	ok = c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
	     EVP_CipherInit_ex(c, NULL, NULL, k, nonce, enc) == 1 &&
	     EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) == 1 &&
	     EVP_CipherUpdate(c, out, &n, in, CONSOLE_KEY_LEN) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(c, out + n, &n) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int console_wrap(const struct console_key *key, const uint8_t *spki, size_t spki_len, uint8_t *out,
		 size_t *outlen, struct err *e)
{
	EVP_PKEY *peer = ec_public(spki, spki_len, e), *eph = NULL;
	EVP_PKEY_CTX *gc = NULL;
	uint8_t k[32], *p = out;
	size_t eph_len = 0;
	unsigned int hl = 32;
	int r;

	if (!peer)
		return e->code;
	gc = EVP_PKEY_CTX_new_from_pkey(NULL, peer, NULL); /* a fresh key on the owner's curve */
	if (!gc || EVP_PKEY_keygen_init(gc) != 1 || EVP_PKEY_keygen(gc, &eph) != 1) {
		r = err_set(e, -EIO, "cannot make an ephemeral key on the owner's curve");
		goto out;
	}
	memcpy(p, WRAP_MAGIC, 8);
	put_be32(p + 8, WRAP_KIND_ECDH);
	EVP_Digest(spki, spki_len, p + 12, &hl, EVP_sha256(), NULL);
	r = console_spki(eph, p + FIXED_HEAD, WRAP_MAX - FIXED_HEAD - TAIL, &eph_len, e);
	if (r < 0)
		goto out;
	p[FIXED_HEAD - 2] = (uint8_t)(eph_len >> 8);
	p[FIXED_HEAD - 1] = (uint8_t)eph_len;
	p += FIXED_HEAD + eph_len;
	r = kek(eph, peer, out + 12, k, e);
	if (r == 0 && RAND_bytes(p, 12) != 1)
		r = err_set(e, -EIO, "no randomness for the wrap nonce");
	if (r == 0 && gcm(1, k, out, (size_t)(p - out), p, key->k, p + 12, p + 12 + CONSOLE_KEY_LEN) < 0)
		r = err_set(e, -EIO, "AES-256-GCM failed");
	if (r == 0)
		*outlen = (size_t)(p - out) + TAIL;
out:
	OPENSSL_cleanse(k, sizeof(k));
	EVP_PKEY_CTX_free(gc);
	EVP_PKEY_free(eph);
	EVP_PKEY_free(peer);
	return r;
}

int console_wrap_parse(const uint8_t *w, size_t len, uint8_t recipient[32], struct err *e)
{
	size_t eph_len;

	if (len < FIXED_HEAD + TAIL || len > WRAP_MAX || memcmp(w, WRAP_MAGIC, 8))
		return err_set(e, -EPROTO, "not a wrapped console key (%zu bytes)", len);
	if (get_be32(w + 8) != WRAP_KIND_ECDH)
		return err_set(e, -EPROTO, "wrapped console key of unknown kind %u", get_be32(w + 8));
	eph_len = (size_t)w[FIXED_HEAD - 2] << 8 | w[FIXED_HEAD - 1];
	if (FIXED_HEAD + eph_len + TAIL != len)
		return err_set(e, -EPROTO, "wrapped console key: %zu-byte ephemeral key in %zu bytes", eph_len, len);
	memcpy(recipient, w + 12, 32);
	return 0;
}

int console_unwrap(const uint8_t *w, size_t len, EVP_PKEY *priv, struct console_key *key, struct err *e)
{
	uint8_t recipient[32], mine[32], spki[CONSOLE_SPKI_BUF], k[32], tag[16];
	const uint8_t *nonce;
	size_t spki_len, eph_len;
	unsigned int hl = 32;
	EVP_PKEY *eph;
	int r = console_wrap_parse(w, len, recipient, e);

	if (r < 0)
		return r;
	r = console_spki(priv, spki, sizeof(spki), &spki_len, e);
	if (r < 0)
		return r;
	EVP_Digest(spki, spki_len, mine, &hl, EVP_sha256(), NULL);
	if (CRYPTO_memcmp(mine, recipient, 32))
		return err_set(e, -EACCES, "the console is sealed for another owner key");
	eph_len = len - FIXED_HEAD - TAIL;
	eph = ec_public(w + FIXED_HEAD, eph_len, e);
	if (!eph)
		return e->code;
	r = kek(priv, eph, recipient, k, e);
	nonce = w + FIXED_HEAD + eph_len;
	memcpy(tag, nonce + 12 + CONSOLE_KEY_LEN, 16);
	if (r == 0 && gcm(0, k, w, FIXED_HEAD + eph_len, nonce, nonce + 12, key->k, tag) < 0)
		r = err_set(e, -EBADMSG, "the wrapped console key does not authenticate (altered, or not for this key)");
	if (r < 0)
		explicit_bzero(key->k, sizeof(key->k));
	OPENSSL_cleanse(k, sizeof(k));
	EVP_PKEY_free(eph);
	return r;
}
