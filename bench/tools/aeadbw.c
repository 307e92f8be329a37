/* aeadbw: AEAD throughput of one core through OpenSSL's EVP interface, the
 * ceiling for an encrypted migration channel. Each 16 KiB buffer is handled
 * like one TLS 1.3 record: new nonce, EVP_{En,De}cryptUpdate, Final, tag.
 * Usage: aeadbw [seconds per cipher and direction (0.7)]
 * Prints one JSON object per line: {"cipher", "op", "gb_s"}. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REC   16384
#define TAG   16

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One record; returns 0 on success (decryption: the tag verified). */
static int record(EVP_CIPHER_CTX *c, int enc, unsigned long long seq, const unsigned char *in,
		  unsigned char *out, unsigned char *tag)
{
	unsigned char iv[12] = { 0 };
	int n, f;

	memcpy(iv + 4, &seq, sizeof(seq));
	if (!EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, enc))
		return -1;
	if (!enc && !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG, tag))
		return -1;
	if (!EVP_CipherUpdate(c, out, &n, in, REC) || !EVP_CipherFinal_ex(c, out + n, &f))
		return -1;
	if (enc && !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG, tag))
		return -1;
	return 0;
}

static int run(const char *name, const EVP_CIPHER *ciph, int enc, double secs)
{
	static unsigned char key[32], plain[REC], sealed[REC], out[REC], tag[TAG];
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	unsigned long long n = 0;
	double t0, t;

	memset(plain, 0xa5, sizeof(plain));
	if (!c || !EVP_CipherInit_ex(c, ciph, NULL, key, NULL, 1) || record(c, 1, 0, plain, sealed, tag))
		goto fail;
	/* decryption re-opens the same sealed record (nonce 0) so every tag verifies */
	if (!enc && !EVP_CipherInit_ex(c, ciph, NULL, key, NULL, 0))
		goto fail;
	t0 = now_s();
	do {
		for (int i = 0; i < 64; i++, n++)
			if (enc ? record(c, 1, n, plain, out, tag) : record(c, 0, 0, sealed, out, tag))
				goto fail;
		t = now_s() - t0;
	} while (t < secs);
	printf("{\"cipher\": \"%s\", \"op\": \"%s\", \"record\": %d, \"gb_s\": %.3f}\n", name,
	       enc ? "encrypt" : "decrypt", REC, n * (double)REC / t / 1e9);
	EVP_CIPHER_CTX_free(c);
	return 0;
fail:
	fprintf(stderr, "aeadbw: %s %s failed\n", name, enc ? "encrypt" : "decrypt");
	EVP_CIPHER_CTX_free(c);
	return 1;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.7;
	const struct {
		const char *name;
		const EVP_CIPHER *(*fn)(void);
	} list[] = {
		{ "AES-128-GCM", EVP_aes_128_gcm },
		{ "AES-256-GCM", EVP_aes_256_gcm },
		{ "ChaCha20-Poly1305", EVP_chacha20_poly1305 },
	};
	int rc = 0;

	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
		for (int enc = 1; enc >= 0; enc--)
			rc |= run(list[i].name, list[i].fn(), enc, secs);
	return rc;
}
