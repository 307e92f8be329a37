#include "console/seal.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "console/proto.h" /* put_be32/get_be32 */

int console_key_generate(struct console_key *key, struct err *e)
{
	if (RAND_bytes(key->k, sizeof(key->k)) != 1)
		return err_set(e, -EIO, "cannot draw a console key from the random generator");
	return 0;
}

void console_key_wipe(struct console_key *key)
{
	explicit_bzero(key->k, sizeof(key->k));
}

/* One AES-256-GCM pass; enc=1 seals, 0 opens (tag checked). */
static int gcm(const struct console_key *key, int enc, const uint8_t *hdr, const uint8_t *in, size_t len,
	       uint8_t *out, uint8_t *tag, struct err *e)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok;

	if (!c)
		return err_set(e, -ENOMEM, "cipher context");
	ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
	     EVP_CipherInit_ex(c, NULL, NULL, key->k, hdr + 16, enc) == 1 &&
	     EVP_CipherUpdate(c, NULL, &n, hdr, SEAL_HDR) == 1;
	while (ok && len) {
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		ok = EVP_CipherUpdate(c, out, &n, in, chunk) == 1;
		in += chunk, out += chunk, len -= (size_t)chunk;
	}
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(c, out, &n) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, tag) == 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok)
		return enc ? err_set(e, -EIO, "AES-256-GCM seal failed")
			   : err_set(e, -EBADMSG, "sealed console state does not authenticate (wrong key or altered)");
	return 0;
}

int console_seal(const struct console_key *key, uint32_t version, const void *plain, size_t len,
		 uint8_t *out, size_t *outlen, struct err *e)
{
	int r;

	if (len > UINT32_MAX - SEAL_OVERHEAD)
		return err_set(e, -EINVAL, "console state too large to seal");
	memcpy(out, SEAL_MAGIC, 8);
	put_be32(out + 8, version);
	put_be32(out + 12, (uint32_t)len);
	if (RAND_bytes(out + 16, 12) != 1)
		return err_set(e, -EIO, "cannot draw a nonce");
	r = gcm(key, 1, out, plain, len, out + SEAL_HDR, out + SEAL_HDR + len, e);
	if (r == 0)
		*outlen = len + SEAL_OVERHEAD;
	return r;
}

int console_unseal(const struct console_key *key, const uint8_t *sealed, size_t sealed_len,
		   void *out, size_t outmax, uint32_t *version, size_t *len, struct err *e)
{
	uint8_t tag[SEAL_TAG];
	size_t n;
	int r;

	if (sealed_len < SEAL_OVERHEAD || memcmp(sealed, SEAL_MAGIC, 8))
		return err_set(e, -EPROTO, "not a sealed console state");
	n = get_be32(sealed + 12);
	if (n != sealed_len - SEAL_OVERHEAD)
		return err_set(e, -EPROTO, "sealed console state: length %zu does not match %zu bytes", n,
			       sealed_len);
	if (n > outmax)
		return err_set(e, -EPROTO, "sealed console state of %zu bytes (at most %zu)", n, outmax);
	memcpy(tag, sealed + SEAL_HDR + n, SEAL_TAG);
	r = gcm(key, 0, sealed, sealed + SEAL_HDR, n, out, tag, e);
	if (r < 0) {
		explicit_bzero(out, n);
		return r;
	}
	*version = get_be32(sealed + 8);
	*len = n;
	return 0;
}
