#include "paging/page_seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

struct page_sealer {
	EVP_CIPHER_CTX *enc, *dec;   /* keyed once; each page sets only its nonce */
	uint8_t vm_id[PAGE_VM_ID_LEN];
	uint32_t epoch;
};

static const uint8_t magic[4] = { 'S', 'V', 'P', 'G' };

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The header for these values: what is authenticated, whatever a blob claims. */
static void make_hdr(uint8_t h[PAGE_SEAL_HDR], const struct page_sealer *s, enum page_mode mode, uint64_t page,
		     uint64_t version)
{
	memset(h, 0, PAGE_SEAL_HDR);
	memcpy(h, magic, 4);
	h[4] = PAGE_SEAL_FORMAT;
	h[5] = (uint8_t)mode;
	put_le32(h + 8, s->epoch);
	memcpy(h + 16, s->vm_id, PAGE_VM_ID_LEN);
	put_le64(h + 32, page);
	put_le64(h + 40, version);
}

static void make_nonce(uint8_t n[12], uint32_t epoch, uint64_t version)
{
	for (int i = 0; i < 4; i++)
		n[i] = (uint8_t)(epoch >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		n[4 + i] = (uint8_t)(version >> (56 - 8 * i));
}

int page_key_generate(struct page_key *k, const uint8_t *vm_id, uint32_t epoch, struct err *e)
{
	if (RAND_bytes(k->key, sizeof(k->key)) != 1 || (!vm_id && RAND_bytes(k->vm_id, sizeof(k->vm_id)) != 1))
		return err_set(e, -EIO, "cannot draw a page key from the random generator");
	if (vm_id)
		memcpy(k->vm_id, vm_id, sizeof(k->vm_id));
	k->epoch = epoch;
	return 0;
}

void page_key_wipe(struct page_key *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

int page_sealer_new(const struct page_key *k, struct page_sealer **out, struct err *e)
{
	struct page_sealer *s = calloc(1, sizeof(*s));

	if (!s)
		return err_set(e, -ENOMEM, "page sealer");
	s->enc = EVP_CIPHER_CTX_new();
	s->dec = EVP_CIPHER_CTX_new();
	if (!s->enc || !s->dec || EVP_EncryptInit_ex(s->enc, EVP_aes_256_gcm(), NULL, k->key, NULL) != 1 ||
	    EVP_DecryptInit_ex(s->dec, EVP_aes_256_gcm(), NULL, k->key, NULL) != 1) {
		page_sealer_free(s);
		return err_set(e, -ENOMEM, "cannot set up AES-256-GCM for sealing pages");
	}
	memcpy(s->vm_id, k->vm_id, sizeof(s->vm_id));
	s->epoch = k->epoch;
	*out = s;
	return 0;
}

void page_sealer_free(struct page_sealer *s)
{
	if (!s)
		return;
	EVP_CIPHER_CTX_free(s->enc); /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(s->dec);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

int page_seal(struct page_sealer *s, uint64_t page, uint64_t version, enum page_mode mode, const void *data,
	      uint8_t *blob, struct err *e)
{
	uint8_t nonce[12], fin[16];
	int n, ok;

	if (version == 0 || version > PAGE_VERSION_MAX)
		return err_set(e, -ERANGE, "page version %llu out of range (1 to 2^48-1: a new key epoch is due)",
			       (unsigned long long)version);
	if (mode != PAGE_MODE_SEALED && mode != PAGE_MODE_PLAIN)
		return err_set(e, -EINVAL, "unknown page mode %d", (int)mode);
	make_hdr(blob, s, mode, page, version);
	make_nonce(nonce, s->epoch, version);
	ok = EVP_EncryptInit_ex(s->enc, NULL, NULL, NULL, nonce) == 1 &&
	     EVP_EncryptUpdate(s->enc, NULL, &n, blob, PAGE_SEAL_HDR) == 1;
	if (ok && mode == PAGE_MODE_SEALED) {
		ok = EVP_EncryptUpdate(s->enc, blob + PAGE_SEAL_HDR, &n, data, PAGE_SEAL_PAGE) == 1;
	} else if (ok) {
		ok = EVP_EncryptUpdate(s->enc, NULL, &n, data, PAGE_SEAL_PAGE) == 1;
		memcpy(blob + PAGE_SEAL_HDR, data, PAGE_SEAL_PAGE);
	}
	ok = ok && EVP_EncryptFinal_ex(s->enc, fin, &n) == 1 &&
	     EVP_CIPHER_CTX_ctrl(s->enc, EVP_CTRL_GCM_GET_TAG, PAGE_SEAL_TAG, blob + PAGE_SEAL_HDR + PAGE_SEAL_PAGE) == 1;
	if (!ok) {
		OPENSSL_cleanse(blob, PAGE_BLOB_SIZE);
		return err_set(e, -EIO, "AES-256-GCM failed sealing page %llu", (unsigned long long)page);
	}
	return 0;
}

static int refuse(enum page_verdict v, enum page_verdict *why, void *out, uint64_t page, const char *what,
		  struct err *e)
{
	*why = v;
	memset(out, 0, PAGE_SEAL_PAGE);
	return err_set(e, -EBADMSG, "page %llu refused (%s): %s", (unsigned long long)page, page_verdict_name(v),
		       what);
}

int page_open(struct page_sealer *s, uint64_t page, uint64_t version, const uint8_t *blob, size_t len,
	      void *out, enum page_mode *mode_out, enum page_verdict *why, struct err *e)
{
	const uint8_t *body = blob + PAGE_SEAL_HDR;
	uint8_t hdr[PAGE_SEAL_HDR], nonce[12], tag[PAGE_SEAL_TAG], fin[16];
	enum page_mode mode;
	char what[160];
	uint64_t v, pg;
	uint32_t ep;
	int n, ok;

	if (len != PAGE_BLOB_SIZE || memcmp(blob, magic, 4) || blob[4] != PAGE_SEAL_FORMAT) {
		snprintf(what, sizeof(what), "not a sealed page of format %u (%zu bytes)", PAGE_SEAL_FORMAT, len);
		return refuse(PAGE_BAD_FORMAT, why, out, page, what, e);
	}
	if (blob[6] | blob[7] | blob[12] | blob[13] | blob[14] | blob[15]) {
		/* the tag covers the header as it should be: no byte of a blob may go unchecked */
		snprintf(what, sizeof(what), "reserved header bytes are not zero");
		return refuse(PAGE_BAD_FORMAT, why, out, page, what, e);
	}
	if (blob[5] != PAGE_MODE_SEALED && blob[5] != PAGE_MODE_PLAIN) {
		snprintf(what, sizeof(what), "unknown mode %u", blob[5]);
		return refuse(PAGE_BAD_FORMAT, why, out, page, what, e);
	}
	if (version == 0 || version > PAGE_VERSION_MAX) {
		snprintf(what, sizeof(what), "version %llu is never stored", (unsigned long long)version);
		return refuse(PAGE_BAD_FORMAT, why, out, page, what, e);
	}
	mode = (enum page_mode)blob[5];
	/* what came instead, for the verdict; the tag below is checked with the expected values */
	if (memcmp(blob + 16, s->vm_id, PAGE_VM_ID_LEN))
		return refuse(PAGE_FOREIGN_VM, why, out, page, "the blob belongs to another VM", e);
	ep = get_le32(blob + 8);
	if (ep != s->epoch) {
		snprintf(what, sizeof(what), "sealed under key epoch %u, expected %u", ep, s->epoch);
		return refuse(PAGE_WRONG_EPOCH, why, out, page, what, e);
	}
	pg = get_le64(blob + 32);
	if (pg != page) {
		snprintf(what, sizeof(what), "the blob is page %llu's", (unsigned long long)pg);
		return refuse(PAGE_WRONG_PAGE, why, out, page, what, e);
	}
	v = get_le64(blob + 40);
	if (v != version) {
		snprintf(what, sizeof(what), "version %llu returned, %llu expected (%s)", (unsigned long long)v,
			 (unsigned long long)version, v < version ? "rolled back" : "never issued for this page");
		return refuse(v < version ? PAGE_STALE : PAGE_FUTURE, why, out, page, what, e);
	}
	make_hdr(hdr, s, mode, page, version);
	make_nonce(nonce, s->epoch, version);
	memcpy(tag, body + PAGE_SEAL_PAGE, PAGE_SEAL_TAG);
	ok = EVP_DecryptInit_ex(s->dec, NULL, NULL, NULL, nonce) == 1 &&
	     EVP_DecryptUpdate(s->dec, NULL, &n, hdr, PAGE_SEAL_HDR) == 1;
	if (ok && mode == PAGE_MODE_SEALED)
		ok = EVP_DecryptUpdate(s->dec, out, &n, body, PAGE_SEAL_PAGE) == 1;
	else if (ok)
		ok = EVP_DecryptUpdate(s->dec, NULL, &n, body, PAGE_SEAL_PAGE) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(s->dec, EVP_CTRL_GCM_SET_TAG, PAGE_SEAL_TAG, tag) == 1 &&
	     EVP_DecryptFinal_ex(s->dec, fin, &n) == 1;
	if (!ok)
		return refuse(PAGE_ALTERED, why, out, page,
			      "it does not authenticate (altered, or not sealed with this VM's key)", e);
	if (mode == PAGE_MODE_PLAIN)
		memcpy(out, body, PAGE_SEAL_PAGE);
	if (mode_out)
		*mode_out = mode;
	*why = PAGE_OK;
	return 0;
}

const char *page_verdict_name(enum page_verdict v)
{
	static const char *const names[] = {
		[PAGE_OK] = "ok",
		[PAGE_BAD_FORMAT] = "malformed",
		[PAGE_FOREIGN_VM] = "another VM's page",
		[PAGE_WRONG_EPOCH] = "another key epoch",
		[PAGE_WRONG_PAGE] = "another page",
		[PAGE_STALE] = "stale version",
		[PAGE_FUTURE] = "unissued version",
		[PAGE_ALTERED] = "altered",
	};

	return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "unknown";
}
