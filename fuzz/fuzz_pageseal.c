/* libFuzzer target: opening a page a sub-host returned (paging/page_seal.h page_open)
 * with a fixed key. Input: u64 page, u64 version (what the version table expects), then
 * the blob. A blob that opens must be one sealed with this key for exactly that page and
 * version (the seeds are); anything else is refused with a verdict and leaves no bytes. */
#include <stdint.h>
#include <string.h>

#include "paging/page_seal.h"

#include "pageseal_seed_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct page_sealer *s;
	static uint8_t out[PAGE_SEAL_PAGE], again[PAGE_BLOB_SIZE];
	const struct page_key k = PAGESEAL_SEED_KEY;
	struct err e = { 0 };
	enum page_verdict why = PAGE_OK;
	enum page_mode mode = 0;
	uint64_t page, version;
	int r;

	if (!s && page_sealer_new(&k, &s, &e) < 0)
		__builtin_trap();
	if (size < 16)
		return 0;
	memcpy(&page, data, 8);
	memcpy(&version, data + 8, 8);
	memset(out, 0x5a, sizeof(out));
	r = page_open(s, page, version, data + 16, size - 16, out, &mode, &why, &e);
	if (r == 0) {
		/* it opened: sealing the same page again gives the same blob (same nonce, key, data) */
		if (why != PAGE_OK || page_seal(s, page, version, mode, out, again, &e) < 0 ||
		    size - 16 != PAGE_BLOB_SIZE || memcmp(again, data + 16, PAGE_BLOB_SIZE))
			__builtin_trap();
	} else {
		static const uint8_t zero[PAGE_SEAL_PAGE];
		if (r != -EBADMSG || why == PAGE_OK || !e.msg[0] || memcmp(out, zero, sizeof(out)))
			__builtin_trap();
	}
	return 0;
}
