#include "state/section.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <string.h>

struct sec_info {
	const char *name;
	uint32_t max_version;
	uint64_t max_len;
};

/* What this build reads: anything else in a stream is an error, never a guess. */
static const struct sec_info infos[SEC_ID_MAX] = {
	[SEC_CONFIG] = { "CONFIG", 2, 256 },
	[SEC_PAGES] = { "PAGES", 1, 8 + 1024 * (8 + 4096) },
	[SEC_VCPU] = { "VCPU", 1, 64 * 1024 },
	[SEC_VM] = { "VM", 1, 16 * 1024 },
	[SEC_SERIAL] = { "SERIAL", 1, 256 },
	[SEC_END] = { "END", END_VERSION, sizeof(struct sec_end_payload) },
	[SEC_CONSOLE] = { "CONSOLE", 1, 256 * 1024 },
	[SEC_CONSOLE_KEY] = { "CONSOLE_KEY", 1, 64 },
	[SEC_CONSOLE_WRAP] = { "CONSOLE_WRAP", 1, 4096 },
	[SEC_PUBMEM] = { "PUBMEM", 1, 2048 },    /* struct pubmem_state */
	[SEC_HELLO] = { "HELLO", 3, 4096 },      /* version = migration protocol version */
	[SEC_HELLO_ACK] = { "HELLO_ACK", 1, 4096 },
	[SEC_READY] = { "READY", 1, 256 },
	[SEC_COMMIT] = { "COMMIT", 1, 256 },
	[SEC_COMMIT_ACK] = { "COMMIT_ACK", 1, 256 },
	[SEC_ABORT] = { "ABORT", 1, 1024 },
	[SEC_LABELS] = { "LABELS", 1, 8192 },
	[SEC_ATTEST_REQ] = { "ATTEST_REQ", 1, 8192 },
	[SEC_ATTEST] = { "ATTEST", 1, (4u << 20) + 4096 }, /* evidence (ATTEST_EVIDENCE_MAX) and a nonce */
	[SEC_ROUND] = { "ROUND", 1, 64 },
	[SEC_SYNC] = { "SYNC", 1, 64 },
	[SEC_SYNC_ACK] = { "SYNC_ACK", 1, 64 },
	[SEC_OUTCOME] = { "OUTCOME", 1, 1024 },
	[SEC_CONSOLE_ADDR] = { "CONSOLE_ADDR", 1, 512 },
};

const char *sec_name(uint32_t id)
{
	return id < SEC_ID_MAX && infos[id].name ? infos[id].name : "unknown";
}

uint32_t sec_max_version(uint32_t id)
{
	return id < SEC_ID_MAX ? infos[id].max_version : 0;
}

uint64_t sec_max_len(uint32_t id)
{
	return id < SEC_ID_MAX ? infos[id].max_len : 0;
}

static int digest_init(EVP_MD_CTX **ctx, XXH3_state_t **xxh, struct err *e)
{
	*ctx = EVP_MD_CTX_new();
	*xxh = XXH3_createState();
	if (!*ctx || !*xxh || !EVP_DigestInit_ex(*ctx, EVP_sha256(), NULL))
		return err_set(e, -ENOMEM, "cannot set up section checksums");
	return 0;
}

static void digest_final_copy(EVP_MD_CTX *ctx, uint8_t out[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 32;

	memset(out, 0, 32);
	if (c && EVP_MD_CTX_copy_ex(c, ctx))
		EVP_DigestFinal_ex(c, out, &n);
	EVP_MD_CTX_free(c);
}

int sec_writer_init(struct sec_writer *w, struct bstream *bs, struct err *e)
{
	memset(w, 0, sizeof(*w));
	w->bs = bs;
	return digest_init(&w->transcript, &w->xxh, e);
}

void sec_writer_fini(struct sec_writer *w)
{
	EVP_MD_CTX_free(w->transcript);
	XXH3_freeState(w->xxh);
	w->transcript = NULL;
	w->xxh = NULL;
}

int sec_begin(struct sec_writer *w, uint32_t id, uint32_t version, uint64_t len, struct err *e)
{
	struct sec_hdr h = { .id = id, .version = version, .seq = w->seq, .len = len };

	if (w->open)
		return err_set(e, -EINVAL, "section %s still open", sec_name(w->cur.id));
	w->cur = h;
	w->cur_written = 0;
	w->open = true;
	if (!w->no_checksum) {
		XXH3_64bits_reset(w->xxh);
		XXH3_64bits_update(w->xxh, &h, sizeof(h));
	}
	EVP_DigestUpdate(w->transcript, &h, sizeof(h));
	w->bytes += sizeof(h);
	return bstream_write(w->bs, &h, sizeof(h), e);
}

int sec_add(struct sec_writer *w, const struct iovec *iov, int n, struct err *e)
{
	uint64_t total = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (!w->no_checksum)
			XXH3_64bits_update(w->xxh, iov[i].iov_base, iov[i].iov_len);
		total += iov[i].iov_len;
	}
	if (total > w->cur.len - w->cur_written)
		return err_set(e, -EOVERFLOW, "section %s: payload exceeds its announced %llu bytes",
			       sec_name(w->cur.id), (unsigned long long)w->cur.len);
	w->cur_written += total;
	w->bytes += total;
	return w->bs->writev_all(w->bs, iov, n, e);
}

int sec_end(struct sec_writer *w, struct err *e)
{
	uint64_t sum;

	if (w->cur_written != w->cur.len)
		return err_set(e, -EINVAL, "section %s: %llu of %llu payload bytes written",
			       sec_name(w->cur.id), (unsigned long long)w->cur_written,
			       (unsigned long long)w->cur.len);
	sum = w->no_checksum ? 0 : XXH3_64bits_digest(w->xxh);
	EVP_DigestUpdate(w->transcript, &sum, sizeof(sum));
	w->open = false;
	w->seq++;
	w->bytes += sizeof(sum);
	return bstream_write(w->bs, &sum, sizeof(sum), e);
}

int sec_write(struct sec_writer *w, uint32_t id, uint32_t version, const struct iovec *iov, int n,
	      struct err *e)
{
	uint64_t len = 0;
	int i, r;

	for (i = 0; i < n; i++)
		len += iov[i].iov_len;
	r = sec_begin(w, id, version, len, e);
	if (r == 0 && n)
		r = sec_add(w, iov, n, e);
	return r ? r : sec_end(w, e);
}

void sec_writer_digest(struct sec_writer *w, uint8_t out[32])
{
	digest_final_copy(w->transcript, out);
}

int sec_reader_init(struct sec_reader *r, struct bstream *bs, struct err *e)
{
	memset(r, 0, sizeof(*r));
	r->bs = bs;
	return digest_init(&r->transcript, &r->xxh, e);
}

void sec_reader_fini(struct sec_reader *r)
{
	EVP_MD_CTX_free(r->transcript);
	XXH3_freeState(r->xxh);
	r->transcript = NULL;
	r->xxh = NULL;
}

int sec_read_hdr(struct sec_reader *r, struct sec_hdr *h, struct err *e)
{
	int rc;

	if (r->open)
		return err_set(e, -EINVAL, "section %s not finished", sec_name(r->cur.id));
	rc = r->bs->read_full(r->bs, h, sizeof(*h), e);
	if (rc < 0)
		return err_wrap(e, "section %llu header", (unsigned long long)r->seq);
	if (h->id >= SEC_ID_MAX || !infos[h->id].name)
		return err_set(e, -EPROTO, "stream corrupt at section %llu: unknown section type %u",
			       (unsigned long long)r->seq, h->id);
	if (h->seq != r->seq)
		return err_set(e, -EPROTO,
			       "stream corrupt at section %llu: sequence number %llu (%s section dropped, duplicated or reordered)",
			       (unsigned long long)r->seq, (unsigned long long)h->seq, sec_name(h->id));
	if (h->version == 0 || h->version > infos[h->id].max_version)
		return err_set(e, -EPROTO, "section %llu (%s) has version %u; this sealvm reads up to %u",
			       (unsigned long long)r->seq, sec_name(h->id), h->version,
			       infos[h->id].max_version);
	if (h->len > infos[h->id].max_len)
		return err_set(e, -EPROTO, "stream corrupt at section %llu: %s length %llu exceeds %llu",
			       (unsigned long long)r->seq, sec_name(h->id), (unsigned long long)h->len,
			       (unsigned long long)infos[h->id].max_len);
	if (h->id == SEC_END)
		digest_final_copy(r->transcript, r->pre_end);
	if (!r->no_checksum) {
		XXH3_64bits_reset(r->xxh);
		XXH3_64bits_update(r->xxh, h, sizeof(*h));
	}
	EVP_DigestUpdate(r->transcript, h, sizeof(*h));
	r->cur = *h;
	r->cur_read = 0;
	r->open = true;
	r->bytes += sizeof(*h);
	return 0;
}

int sec_read(struct sec_reader *r, void *buf, size_t len, struct err *e)
{
	int rc;

	if (!r->open || len > r->cur.len - r->cur_read)
		return err_set(e, -EPROTO, "stream corrupt at section %llu: %s payload shorter than its contents",
			       (unsigned long long)r->seq, sec_name(r->cur.id));
	rc = r->bs->read_full(r->bs, buf, len, e);
	if (rc < 0)
		return err_wrap(e, "section %llu (%s) payload", (unsigned long long)r->seq,
				sec_name(r->cur.id));
	if (!r->no_checksum)
		XXH3_64bits_update(r->xxh, buf, len);
	r->cur_read += len;
	r->bytes += len;
	return 0;
}

int sec_read_end(struct sec_reader *r, struct err *e)
{
	uint64_t sum, want;
	int rc;

	if (!r->open || r->cur_read != r->cur.len)
		return err_set(e, -EPROTO, "stream corrupt at section %llu: %s has %llu unread payload bytes",
			       (unsigned long long)r->seq, sec_name(r->cur.id),
			       (unsigned long long)(r->cur.len - r->cur_read));
	rc = r->bs->read_full(r->bs, &sum, sizeof(sum), e);
	if (rc < 0)
		return err_wrap(e, "section %llu (%s) checksum", (unsigned long long)r->seq,
				sec_name(r->cur.id));
	want = r->no_checksum ? sum : XXH3_64bits_digest(r->xxh);
	if (sum != want)
		return err_set(e, -EBADMSG, "stream corrupt at section %llu: %s checksum mismatch",
			       (unsigned long long)r->seq, sec_name(r->cur.id));
	EVP_DigestUpdate(r->transcript, &sum, sizeof(sum));
	r->open = false;
	r->seq++;
	r->bytes += sizeof(sum);
	return 0;
}

int sec_read_exact(struct sec_reader *r, const struct sec_hdr *h, void *buf, size_t want, struct err *e)
{
	int rc;

	if (h->len != want)
		return err_set(e, -EPROTO, "stream corrupt at section %llu: %s is %llu bytes, expected %zu",
			       (unsigned long long)r->seq, sec_name(h->id), (unsigned long long)h->len, want);
	rc = sec_read(r, buf, want, e);
	return rc ? rc : sec_read_end(r, e);
}

void sec_reader_digest(struct sec_reader *r, uint8_t out[32])
{
	digest_final_copy(r->transcript, out);
}

static const struct sec_bind unbound;

void sec_end_mac(const struct sec_bind *b, uint64_t sections, uint64_t pages, const uint8_t transcript[32],
		 uint8_t mac[32])
{
	static const char label[] = "sealvm END v2";
	uint8_t msg[sizeof(label) + sizeof(b->ctx) + 16 + 32];
	unsigned int n = 32;
	size_t len = 0, cl;

	if (!b)
		b = &unbound;
	cl = b->ctx_len < sizeof(b->ctx) ? b->ctx_len : sizeof(b->ctx);
	memcpy(msg, label, sizeof(label));
	len += sizeof(label);
	memcpy(msg + len, b->ctx, cl);
	len += cl;
	memcpy(msg + len, &sections, 8);
	memcpy(msg + len + 8, &pages, 8);
	len += 16;
	memcpy(msg + len, transcript, 32);
	len += 32;
	if (!HMAC(EVP_sha256(), b->key, sizeof(b->key), msg, len, mac, &n))
		memset(mac, 0, 32);
}

int sec_write_end(struct sec_writer *w, uint64_t pages, struct err *e)
{
	struct sec_end_payload end;
	struct iovec iov = { &end, sizeof(end) };
	uint8_t t[32];

	memset(&end, 0, sizeof(end));
	end.sections = w->seq;
	end.pages = pages;
	sec_writer_digest(w, t);
	sec_end_mac(w->bind, end.sections, end.pages, t, end.mac);
	return sec_write(w, SEC_END, END_VERSION, &iov, 1, e);
}

int sec_check_end(struct sec_reader *r, const struct sec_hdr *h, uint64_t pages, struct err *e)
{
	struct sec_end_payload end;
	uint64_t sections = r->seq;
	uint8_t mac[32];
	int rc;

	if (h->version != END_VERSION)
		return err_set(e, -EPROTO, "END version %u: an unbound stream from an older sealvm is not accepted",
			       h->version);
	rc = sec_read_exact(r, h, &end, sizeof(end), e);
	if (rc < 0)
		return rc;
	if (end.sections != sections || end.pages != pages)
		return err_set(e, -EPROTO,
			       "stream incomplete: END announces %llu sections and %llu pages, received %llu and %llu",
			       (unsigned long long)end.sections, (unsigned long long)end.pages,
			       (unsigned long long)sections, (unsigned long long)pages);
	sec_end_mac(r->bind, sections, pages, r->pre_end, mac);
	if (CRYPTO_memcmp(end.mac, mac, 32))
		return err_set(e, -EBADMSG,
			       "stream not verified: its END does not authenticate the sections received for this session (altered, or prepared or recorded elsewhere)");
	return 0;
}
