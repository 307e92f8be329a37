#include "migrate/bind.h"

#include <openssl/evp.h>
#include <string.h>

int mig_bind(struct chan *c, const uint8_t id[16], const uint8_t nonce[MIG_NONCE_LEN], uint32_t lane,
	     struct sec_bind *b, struct err *e)
{
	_Static_assert(16 + MIG_NONCE_LEN + 4 <= sizeof(b->ctx), "bind context fits");
	memset(b, 0, sizeof(*b));
	memcpy(b->ctx, id, 16);
	memcpy(b->ctx + 16, nonce, MIG_NONCE_LEN);
	memcpy(b->ctx + 16 + MIG_NONCE_LEN, &lane, 4);
	b->ctx_len = 16 + MIG_NONCE_LEN + 4;
	if (chan_kind(c) == CHAN_TLS)
		return chan_export_keying_material(c, MIG_EXPORTER_LABEL, b->ctx, b->ctx_len, b->key,
						   sizeof(b->key), e);
	/* tcp:// (--insecure): no secret to key with; END still names this nonce */
	return EVP_Digest(b->ctx, b->ctx_len, b->key, NULL, EVP_sha256(), NULL) == 1
		       ? 0 : err_set(e, -EIO, "cannot derive the stream binding");
}
