#include "state/sealed.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sealed_derive(const uint8_t master[32], const uint8_t salt[32], const char *label, struct sealed_keys *k,
		  struct err *e)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	uint8_t out[64];
	OSSL_PARAM p[5];
	int ok;

	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)master, 32);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, 32);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label));
	p[4] = OSSL_PARAM_construct_end();
	ok = kc && EVP_KDF_derive(kc, out, sizeof(out), p) == 1;
	EVP_KDF_CTX_free(kc);
	EVP_KDF_free(kdf);
	if (!ok)
		return err_set(e, -EIO, "HKDF failed");
	memcpy(k->data, out, 32);
	memcpy(k->end, out + 32, 32);
	OPENSSL_cleanse(out, sizeof(out));
	return 0;
}

static void nonce_of(const struct sealed_stream *s, uint8_t nonce[12])
{
	memcpy(nonce, s->nonce_prefix, 4);
	memcpy(nonce + 4, &s->index, 8);
}

static int aad(struct sealed_stream *s, uint32_t word)
{
	int n;

	return EVP_CipherUpdate(s->ctx, NULL, &n, s->hdr, (int)s->hdr_len) == 1 &&
	       EVP_CipherUpdate(s->ctx, NULL, &n, (uint8_t *)&s->index, 8) == 1 &&
	       EVP_CipherUpdate(s->ctx, NULL, &n, (uint8_t *)&word, 4) == 1;
}

static int write_all(int fd, const void *p, size_t len, struct err *e)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_sys(e, -errno, "write");
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0, or -ENODATA at a clean end of file before any byte. */
static int read_all(int fd, void *p, size_t len, struct err *e)
{
	uint8_t *b = p;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, b + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(e, -errno, "read");
		if (n == 0)
			return err_set(e, -ENODATA, got ? "truncated (a chunk ends early)" : "truncated (the final chunk is missing)");
		got += (size_t)n;
	}
	return 0;
}

static int seal_chunk(struct sealed_stream *s, bool final, struct err *e)
{
	uint32_t word = (uint32_t)s->len | (final ? SEALED_FINAL : 0);
	uint8_t nonce[12];
	int n = 0, m = 0, r;

	nonce_of(s, nonce);
	if (EVP_EncryptInit_ex(s->ctx, NULL, NULL, s->key, nonce) != 1 || !aad(s, word) ||
	    EVP_EncryptUpdate(s->ctx, s->io, &n, s->buf, (int)s->len) != 1 ||
	    EVP_EncryptFinal_ex(s->ctx, s->io + n, &m) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_GET_TAG, SEALED_TAG, s->io + s->len) != 1)
		return err_set(e, -EIO, "AES-GCM sealing failed");
	r = write_all(s->fd, &word, 4, e);
	if (r == 0)
		r = write_all(s->fd, s->io, s->len + SEALED_TAG, e);
	s->file_bytes += 4 + s->len + SEALED_TAG;
	s->index++;
	s->len = 0;
	return r;
}

static int sw_writev(struct bstream *bs, const struct iovec *iov, int n, struct err *e)
{
	struct sealed_stream *s = bs->ctx;
	int i, r;

	for (i = 0; i < n; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left) {
			size_t k = SEALED_CHUNK - s->len < left ? SEALED_CHUNK - s->len : left;
			memcpy(s->buf + s->len, p, k);
			s->len += k;
			p += k;
			left -= k;
			if (s->len == SEALED_CHUNK && (r = seal_chunk(s, false, e)) < 0)
				return r;
		}
	}
	return 0;
}

static int open_chunk(struct sealed_stream *s, struct err *e)
{
	uint32_t word;
	uint8_t nonce[12];
	int n = 0, m = 0, r;
	size_t len;

	if (s->final_seen)
		return err_set(e, -ENODATA, "truncated: the stream ends inside its final chunk");
	r = read_all(s->fd, &word, 4, e);
	if (r < 0)
		return r;
	len = word & ~SEALED_FINAL;
	if (len > SEALED_CHUNK)
		return err_set(e, -EBADMSG, "failed authentication: chunk %llu claims %zu bytes",
			       (unsigned long long)s->index, len);
	r = read_all(s->fd, s->io, len + SEALED_TAG, e);
	if (r < 0)
		return r;
	s->file_bytes += 4 + len + SEALED_TAG;
	nonce_of(s, nonce);
	if (EVP_DecryptInit_ex(s->ctx, NULL, NULL, s->key, nonce) != 1 || !aad(s, word) ||
	    EVP_DecryptUpdate(s->ctx, s->buf, &n, s->io, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_SET_TAG, SEALED_TAG, s->io + len) != 1 ||
	    EVP_DecryptFinal_ex(s->ctx, s->buf + n, &m) != 1)
		return err_set(e, -EBADMSG, "failed authentication at chunk %llu (the wrong key, or the file was altered)",
			       (unsigned long long)s->index);
	s->index++;
	s->len = len;
	s->pos = 0;
	s->final_seen = (word & SEALED_FINAL) != 0;
	return 0;
}

static int sr_read_full(struct bstream *bs, void *buf, size_t len, struct err *e)
{
	struct sealed_stream *s = bs->ctx;
	uint8_t *p = buf;
	int r;

	while (len) {
		size_t k;
		if (s->pos == s->len && (r = open_chunk(s, e)) < 0)
			return r;
		k = s->len - s->pos < len ? s->len - s->pos : len;
		memcpy(p, s->buf + s->pos, k);
		s->pos += k;
		p += k;
		len -= k;
	}
	return 0;
}

static int init(struct sealed_stream *s, int fd, const uint8_t key[32], const void *hdr, size_t hdr_len,
		const uint8_t nonce_prefix[4], bool enc, struct err *e)
{
	memset(s, 0, sizeof(*s));
	if (hdr_len > SEALED_HDR_MAX)
		return err_set(e, -EINVAL, "sealed header too large");
	s->fd = fd;
	memcpy(s->key, key, 32);
	memcpy(s->hdr, hdr, hdr_len);
	s->hdr_len = hdr_len;
	memcpy(s->nonce_prefix, nonce_prefix, 4);
	s->ctx = EVP_CIPHER_CTX_new();
	s->buf = malloc(SEALED_CHUNK);
	s->io = malloc(SEALED_CHUNK + SEALED_TAG);
	if (!s->ctx || !s->buf || !s->io ||
	    EVP_CipherInit_ex(s->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1) {
		sealed_fini(s);
		return err_set(e, -ENOMEM, "cannot set up AES-256-GCM");
	}
	s->bs.ctx = s;
	if (enc)
		s->bs.writev_all = sw_writev;
	else
		s->bs.read_full = sr_read_full;
	return 0;
}

int sealed_writer_init(struct sealed_stream *s, int fd, const uint8_t key[32], const void *hdr, size_t hdr_len,
		       const uint8_t nonce_prefix[4], struct err *e)
{
	return init(s, fd, key, hdr, hdr_len, nonce_prefix, true, e);
}

int sealed_writer_finish(struct sealed_stream *s, struct err *e)
{
	return seal_chunk(s, true, e);
}

int sealed_reader_init(struct sealed_stream *s, int fd, const uint8_t key[32], const void *hdr, size_t hdr_len,
		       const uint8_t nonce_prefix[4], struct err *e)
{
	return init(s, fd, key, hdr, hdr_len, nonce_prefix, false, e);
}

int sealed_reader_check_end(struct sealed_stream *s, struct err *e)
{
	uint8_t x;
	int r;

	/* END may end a full chunk; then an empty final chunk follows */
	if (!s->final_seen && s->pos == s->len && (r = open_chunk(s, e)) < 0)
		return r;
	if (!s->final_seen || s->pos != s->len)
		return err_set(e, -EPROTO, "the sealed stream has data after its END section");
	if (read(s->fd, &x, 1) != 0)
		return err_set(e, -EPROTO, "the file has data after its final chunk");
	return 0;
}

void sealed_fini(struct sealed_stream *s)
{
	EVP_CIPHER_CTX_free(s->ctx);
	if (s->buf)
		OPENSSL_cleanse(s->buf, SEALED_CHUNK);
	free(s->buf);
	free(s->io);
	OPENSSL_cleanse(s->key, sizeof(s->key));
	s->ctx = NULL;
	s->buf = s->io = NULL;
}
