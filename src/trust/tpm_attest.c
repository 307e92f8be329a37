#include "trust/tpm_attest.h"

#include <string.h>

#include <tss2/tss2_mu.h>

#include "trust/tpm.h"

/* The name of TPM_COUNTER_INDEX as tpm_counter_define() creates it, once written. */
static const uint8_t *counter_name(void)
{
	static uint8_t name[34];
	static int done;

	if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		TPMS_NV_PUBLIC pub = {
			.nvIndex = TPM_COUNTER_INDEX,
			.nameAlg = TPM2_ALG_SHA256,
			.attributes = TPM_COUNTER_ATTRIBUTES | TPMA_NV_WRITTEN,
			.dataSize = 8,
		};
		uint8_t buf[sizeof(TPMS_NV_PUBLIC)], n[34];
		size_t off = 0;

		Tss2_MU_TPMS_NV_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off);
		n[0] = TPM2_ALG_SHA256 >> 8;
		n[1] = TPM2_ALG_SHA256 & 0xff;
		sha256_buf(buf, off, n + 2);
		memcpy(name, n, sizeof(n));
		__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	}
	return name;
}

static int parse_common(const uint8_t *buf, size_t len, TPMS_ATTEST *a, struct tpm_attest_info *out,
			struct err *e)
{
	size_t off = 0;
	TSS2_RC rc;

	memset(out, 0, sizeof(*out));
	memset(a, 0, sizeof(*a));
	if (len == 0 || len > TPM_ATTEST_MAX)
		return err_set(e, -EINVAL, "TPM attestation of %zu bytes (1 to %d expected)", len, TPM_ATTEST_MAX);
	rc = Tss2_MU_TPMS_ATTEST_Unmarshal(buf, len, &off, a);
	if (rc != TSS2_RC_SUCCESS)
		return err_set(e, -EINVAL, "TPM attestation does not parse (TPMS_ATTEST)");
	if (off != len)
		return err_set(e, -EINVAL, "TPM attestation has %zu trailing bytes", len - off);
	if (a->magic != TPM2_GENERATED_VALUE)
		return err_set(e, -EINVAL, "TPM attestation magic is 0x%08x, not TPM_GENERATED", a->magic);
	if (a->extraData.size > sizeof(out->extra))
		return err_set(e, -EINVAL, "TPM attestation qualifying data too long");
	memcpy(out->extra, a->extraData.buffer, a->extraData.size);
	out->extra_len = a->extraData.size;
	out->clock = a->clockInfo.clock;
	out->reset_count = a->clockInfo.resetCount;
	out->restart_count = a->clockInfo.restartCount;
	out->firmware = a->firmwareVersion;
	return 0;
}

int tpm_attest_parse_quote(const uint8_t *buf, size_t len, struct tpm_attest_info *out, struct err *e)
{
	TPMS_ATTEST a;
	const TPMS_QUOTE_INFO *q;
	int rc = parse_common(buf, len, &a, out, e);

	if (rc < 0)
		return rc;
	if (a.type != TPM2_ST_ATTEST_QUOTE)
		return err_set(e, -EINVAL, "TPM attestation is of type 0x%04x, not a quote", a.type);
	q = &a.attested.quote;
	if (q->pcrSelect.count != 1 || q->pcrSelect.pcrSelections[0].hash != TPM2_ALG_SHA256)
		return err_set(e, -EINVAL, "quote must cover exactly the SHA-256 PCR bank");
	if (q->pcrSelect.pcrSelections[0].sizeofSelect > 4)
		return err_set(e, -EINVAL, "quote selects PCRs beyond 31");
	for (int i = 0; i < q->pcrSelect.pcrSelections[0].sizeofSelect; i++)
		out->pcr_mask |= (uint32_t)q->pcrSelect.pcrSelections[0].pcrSelect[i] << (8 * i);
	if (q->pcrDigest.size != 32)
		return err_set(e, -EINVAL, "quote PCR digest has %u bytes, not 32", q->pcrDigest.size);
	memcpy(out->pcr_digest, q->pcrDigest.buffer, 32);
	return 0;
}

int tpm_attest_parse_nv(const uint8_t *buf, size_t len, struct tpm_attest_info *out, struct err *e)
{
	TPMS_ATTEST a;
	const TPMS_NV_CERTIFY_INFO *n;
	int rc = parse_common(buf, len, &a, out, e);

	if (rc < 0)
		return rc;
	if (a.type != TPM2_ST_ATTEST_NV)
		return err_set(e, -EINVAL, "TPM attestation is of type 0x%04x, not an NV certification", a.type);
	n = &a.attested.nv;
	if (n->offset != 0 || n->nvContents.size != 8)
		return err_set(e, -EINVAL, "NV certification is not of an 8-byte counter");
	/* the index name is nameAlg || SHA-256 of the NV public area (handle, type, attributes,
	 * size): it proves the certified index is sealvm's counter, which only ever goes up,
	 * and not some other index whose contents anyone with owner auth could write */
	if (n->indexName.size != 34 || memcmp(n->indexName.name, counter_name(), 34))
		return err_set(e, -EINVAL, "NV certification is not of sealvm's audit counter (index 0x%08x)",
			       TPM_COUNTER_INDEX);
	for (int i = 0; i < 8; i++)
		out->nv_value = out->nv_value << 8 | n->nvContents.buffer[i];
	return 0;
}

int tpm_attest_verify(EVP_PKEY *ak, const uint8_t *buf, size_t len, const uint8_t *sig, size_t sig_len)
{
	uint8_t d[32];

	if (sha256_buf(buf, len, d) < 0)
		return -EBADMSG;
	return key_verify_digest(ak, d, sig, sig_len);
}
