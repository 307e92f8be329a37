#include "trust/tpm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tcti_swtpm.h>

#define TPM_TIMEOUT_MS 10000

struct tpm {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	char where[96];      /* "TPM at H:P" for messages */
};

_Static_assert(TPM_COUNTER_ATTRIBUTES == (TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD |
					   TPMA_NV_NO_DA | (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT)),
	       "TPM_COUNTER_ATTRIBUTES");

static int tpm_err(struct tpm *t, struct err *e, TSS2_RC rc, const char *what)
{
	return err_set(e, -EIO, "%s: %s failed: %s", t ? t->where : "TPM", what, Tss2_RC_Decode(rc));
}

static int parse_spec(const char *spec, char *host, size_t hn, char *port, size_t pn, struct err *e)
{
	const char *p;

	snprintf(host, hn, "127.0.0.1");
	snprintf(port, pn, "2321");
	if (!spec || strncmp(spec, "swtpm", 5) || (spec[5] && spec[5] != ':'))
		return err_set(e, -EINVAL, "TPM '%.64s': only swtpm:host=ADDR,port=PORT is supported", spec ? spec : "");
	p = spec[5] ? spec + 6 : spec + 5;
	while (*p) {
		const char *end = strchr(p, ','), *eq = strchr(p, '=');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char *dst;
		size_t dn, vn;

		if (!eq || eq > p + n)
			return err_set(e, -EINVAL, "TPM '%.64s': expected key=value", spec);
		if (eq - p == 4 && !strncmp(p, "host", 4)) {
			dst = host;
			dn = hn;
		} else if (eq - p == 4 && !strncmp(p, "port", 4)) {
			dst = port;
			dn = pn;
		} else {
			return err_set(e, -EINVAL, "TPM '%.64s': unknown option (host=, port=)", spec);
		}
		vn = (size_t)(p + n - eq - 1);
		if (vn == 0 || vn >= dn || memchr(eq + 1, ' ', vn))
			return err_set(e, -EINVAL, "TPM '%.64s': bad value", spec);
		memcpy(dst, eq + 1, vn);
		dst[vn] = 0;
		p += n + (end ? 1 : 0);
	}
	for (const char *q = port; *q; q++)
		if (*q < '0' || *q > '9' || strlen(port) > 5 || atoi(port) > 65534 || atoi(port) < 1)
			return err_set(e, -EINVAL, "TPM '%.64s': port must be 1..65534", spec);
	return 0;
}

int tpm_spec_check(const char *spec, struct err *e)
{
	char h[64], p[8];

	return parse_spec(spec, h, sizeof(h), p, sizeof(p), e);
}

/* libtss2 logs every TPM error answer on stderr, including the ones we expect (probing
 * for a key that is not there yet); our errors carry the decoded code instead. An
 * explicit TSS2_LOG from the user still wins. */
static void quiet_tss2_log(void)
{
	setenv("TSS2_LOG", "all+NONE", 0);
}

int tpm_connect(const char *spec, struct tpm **out, struct err *e)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	char host[64], port[8], conf[96];
	struct tpm *t;
	size_t size = 0;
	TSS2_RC rc;
	int r;

	*out = NULL;
	if ((r = parse_spec(spec, host, sizeof(host), port, sizeof(port), e)) < 0)
		return r;
	pthread_once(&once, quiet_tss2_log);
	t = calloc(1, sizeof(*t));
	if (!t)
		return err_set(e, -ENOMEM, "out of memory");
	snprintf(t->where, sizeof(t->where), "TPM at %s:%s", host, port);
	snprintf(conf, sizeof(conf), "host=%s,port=%s", host, port);
	rc = Tss2_Tcti_Swtpm_Init(NULL, &size, conf);
	if (rc == TSS2_RC_SUCCESS)
		t->tcti = calloc(1, size);
	if (!t->tcti || (rc = Tss2_Tcti_Swtpm_Init(t->tcti, &size, conf)) != TSS2_RC_SUCCESS) {
		r = err_set(e, -ECONNREFUSED, "%s: cannot connect (is swtpm running?): %s", t->where,
			    Tss2_RC_Decode(rc));
		free(t->tcti);
		free(t);
		return r;
	}
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_err(t, e, rc, "Esys_Initialize");
		Tss2_Tcti_Finalize(t->tcti);
		free(t->tcti);
		free(t);
		return r;
	}
	Esys_SetTimeout(t->esys, TPM_TIMEOUT_MS);
	/* a TPM that was already started answers TPM2_RC_INITIALIZE */
	rc = Esys_Startup(t->esys, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && (rc & 0xfff) != TPM2_RC_INITIALIZE) {
		r = tpm_err(t, e, rc, "TPM2_Startup");
		tpm_disconnect(t);
		return r;
	}
	*out = t;
	return 0;
}

void tpm_disconnect(struct tpm *t)
{
	if (!t)
		return;
	if (t->esys)
		Esys_Finalize(&t->esys);
	if (t->tcti) {
		Tss2_Tcti_Finalize(t->tcti);
		free(t->tcti);
	}
	free(t);
}

void tpm_signed_free(struct tpm_signed *s)
{
	if (!s)
		return;
	free(s->attest);
	free(s->sig);
	memset(s, 0, sizeof(*s));
}

/* ---- the attestation key ---- */

static const TPM2B_PUBLIC ak_template = {
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_FIXEDTPM |
				    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
				    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA,
		.parameters.eccDetail = {
			.symmetric = { .algorithm = TPM2_ALG_NULL },
			.scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
			.curveID = TPM2_ECC_NIST_P256,
			.kdf = { .scheme = TPM2_ALG_NULL },
		},
	},
};

static int public_to_pkey(struct tpm *t, const TPM2B_PUBLIC *pub, EVP_PKEY **ak, struct err *e)
{
	const TPMT_PUBLIC *a = &pub->publicArea;

	if (a->type != TPM2_ALG_ECC || a->parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
	    !(a->objectAttributes & TPMA_OBJECT_RESTRICTED) || !(a->objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT) ||
	    !(a->objectAttributes & TPMA_OBJECT_FIXEDTPM))
		return err_set(e, -EINVAL, "%s: the object at 0x%08x is not a restricted P-256 signing key",
			       t->where, TPM_AK_HANDLE);
	return key_ec_p256_from_xy(a->unique.ecc.x.buffer, a->unique.ecc.x.size, a->unique.ecc.y.buffer,
				   a->unique.ecc.y.size, ak, e);
}

static int evict_persistent(struct tpm *t, struct err *e)
{
	ESYS_TR obj = ESYS_TR_NONE, none = ESYS_TR_NONE;
	TSS2_RC rc = Esys_TR_FromTPMPublic(t->esys, TPM_AK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &obj);

	if (rc != TSS2_RC_SUCCESS)
		return 0;   /* nothing there */
	rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			       TPM_AK_HANDLE, &none);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "removing the old attestation key");
	return 0;
}

int tpm_create_ak(struct tpm *t, EVP_PKEY **ak, struct err *e)
{
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION creation_pcr = { 0 };
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_CREATION_DATA *cdata = NULL;
	TPM2B_DIGEST *chash = NULL;
	TPMT_TK_CREATION *ticket = NULL;
	ESYS_TR obj = ESYS_TR_NONE, persistent = ESYS_TR_NONE;
	TSS2_RC rc;
	int r;

	*ak = NULL;
	if ((r = evict_persistent(t, e)) < 0)
		return r;
	rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
				&ak_template, &outside, &creation_pcr, &obj, &pub, &cdata, &chash, &ticket);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "creating the attestation key");
	rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			       TPM_AK_HANDLE, &persistent);
	if (rc != TSS2_RC_SUCCESS)
		r = tpm_err(t, e, rc, "making the attestation key persistent");
	else
		r = public_to_pkey(t, pub, ak, e);
	Esys_FlushContext(t->esys, obj);
	Esys_Free(pub);
	Esys_Free(cdata);
	Esys_Free(chash);
	Esys_Free(ticket);
	return r;
}

static int ak_handle(struct tpm *t, ESYS_TR *obj, struct err *e)
{
	TSS2_RC rc = Esys_TR_FromTPMPublic(t->esys, TPM_AK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, obj);

	if (rc != TSS2_RC_SUCCESS)
		return err_set(e, -ENOENT, "%s has no attestation key at 0x%08x (run sealvm host init): %s",
			       t->where, TPM_AK_HANDLE, Tss2_RC_Decode(rc));
	return 0;
}

int tpm_ak_public(struct tpm *t, EVP_PKEY **ak, struct err *e)
{
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_NAME *name = NULL, *qname = NULL;
	ESYS_TR obj;
	TSS2_RC rc;
	int r;

	*ak = NULL;
	if ((r = ak_handle(t, &obj, e)) < 0)
		return r;
	rc = Esys_ReadPublic(t->esys, obj, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name, &qname);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "reading the attestation key");
	r = public_to_pkey(t, pub, ak, e);
	Esys_Free(pub);
	Esys_Free(name);
	Esys_Free(qname);
	return r;
}

/* ---- the NV counter ---- */

int tpm_counter_define(struct tpm *t, struct err *e)
{
	TPM2B_AUTH auth = { 0 };
	TPM2B_NV_PUBLIC pub = {
		.nvPublic = {
			.nvIndex = TPM_COUNTER_INDEX,
			.nameAlg = TPM2_ALG_SHA256,
			.attributes = TPM_COUNTER_ATTRIBUTES,
			.dataSize = 8,
		},
	};
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc;

	/* an existing counter is kept: the audit log's heads continue its sequence */
	if (Esys_TR_FromTPMPublic(t->esys, TPM_COUNTER_INDEX, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv) ==
	    TSS2_RC_SUCCESS)
		return 0;
	rc = Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &auth, &pub,
				 &nv);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "defining the audit counter");
	return tpm_counter_increment(t, NULL, e);
}

static int counter_handle(struct tpm *t, ESYS_TR *nv, struct err *e)
{
	TSS2_RC rc = Esys_TR_FromTPMPublic(t->esys, TPM_COUNTER_INDEX, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nv);

	if (rc != TSS2_RC_SUCCESS)
		return err_set(e, -ENOENT, "%s has no audit counter at 0x%08x (run sealvm host init): %s", t->where,
			       TPM_COUNTER_INDEX, Tss2_RC_Decode(rc));
	return 0;
}

int tpm_counter_read(struct tpm *t, uint64_t *value, struct err *e)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	ESYS_TR nv;
	TSS2_RC rc;
	int r;

	if ((r = counter_handle(t, &nv, e)) < 0)
		return r;
	rc = Esys_NV_Read(t->esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &data);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "reading the audit counter");
	if (data->size != 8) {
		Esys_Free(data);
		return err_set(e, -EIO, "%s: audit counter has %u bytes", t->where, data->size);
	}
	*value = 0;
	for (int i = 0; i < 8; i++)
		*value = *value << 8 | data->buffer[i];
	Esys_Free(data);
	return 0;
}

int tpm_counter_increment(struct tpm *t, uint64_t *value, struct err *e)
{
	ESYS_TR nv;
	TSS2_RC rc;
	int r;

	if ((r = counter_handle(t, &nv, e)) < 0)
		return r;
	rc = Esys_NV_Increment(t->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "incrementing the audit counter");
	return value ? tpm_counter_read(t, value, e) : 0;
}

/* ---- PCRs ---- */

static void select_pcr(TPML_PCR_SELECTION *s, int pcr)
{
	memset(s, 0, sizeof(*s));
	s->count = 1;
	s->pcrSelections[0].hash = TPM2_ALG_SHA256;
	s->pcrSelections[0].sizeofSelect = 3;
	s->pcrSelections[0].pcrSelect[pcr / 8] = (uint8_t)(1u << (pcr % 8));
}

int tpm_pcr_extend(struct tpm *t, int pcr, const uint8_t digest[32], struct err *e)
{
	TPML_DIGEST_VALUES d = { .count = 1 };
	TSS2_RC rc;

	if (pcr < 0 || pcr > 23)
		return err_set(e, -EINVAL, "PCR %d does not exist", pcr);
	d.digests[0].hashAlg = TPM2_ALG_SHA256;
	memcpy(d.digests[0].digest.sha256, digest, 32);
	rc = Esys_PCR_Extend(t->esys, ESYS_TR_PCR0 + (ESYS_TR)pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d);
	return rc == TSS2_RC_SUCCESS ? 0 : tpm_err(t, e, rc, "extending the PCR");
}

int tpm_pcr_read(struct tpm *t, int pcr, uint8_t value[32], struct err *e)
{
	TPML_PCR_SELECTION sel, *out_sel = NULL;
	TPML_DIGEST *vals = NULL;
	UINT32 counter;
	TSS2_RC rc;
	int r = 0;

	if (pcr < 0 || pcr > 23)
		return err_set(e, -EINVAL, "PCR %d does not exist", pcr);
	select_pcr(&sel, pcr);
	rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter, &out_sel, &vals);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "reading the PCR");
	if (vals->count != 1 || vals->digests[0].size != 32)
		r = err_set(e, -EIO, "%s: the SHA-256 bank of PCR %d is not active", t->where, pcr);
	else
		memcpy(value, vals->digests[0].buffer, 32);
	Esys_Free(out_sel);
	Esys_Free(vals);
	return r;
}

/* ---- signatures ---- */

static int take_signed(struct tpm *t, TPM2B_ATTEST *att, TPMT_SIGNATURE *sig, struct tpm_signed *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (sig->sigAlg != TPM2_ALG_ECDSA)
		return err_set(e, -EIO, "%s signed with algorithm 0x%x, expected ECDSA", t->where, sig->sigAlg);
	out->attest = malloc(att->size ? att->size : 1);
	if (!out->attest)
		return err_set(e, -ENOMEM, "out of memory");
	memcpy(out->attest, att->attestationData, att->size);
	out->attest_len = att->size;
	if (ecdsa_der_from_rs(sig->signature.ecdsa.signatureR.buffer, sig->signature.ecdsa.signatureR.size,
			      sig->signature.ecdsa.signatureS.buffer, sig->signature.ecdsa.signatureS.size, &out->sig,
			      &out->sig_len) < 0) {
		tpm_signed_free(out);
		return err_set(e, -EIO, "%s: malformed ECDSA signature", t->where);
	}
	return 0;
}

int tpm_quote(struct tpm *t, int pcr, const uint8_t *qual, size_t qual_len, struct tpm_signed *out,
	      struct err *e)
{
	TPM2B_DATA q = { 0 };
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
	TPML_PCR_SELECTION sel;
	TPM2B_ATTEST *att = NULL;
	TPMT_SIGNATURE *sig = NULL;
	ESYS_TR ak;
	TSS2_RC rc;
	int r;

	memset(out, 0, sizeof(*out));
	if (qual_len > sizeof(q.buffer) || pcr < 0 || pcr > 23)
		return err_set(e, -EINVAL, "quote: bad PCR or qualifying data");
	if ((r = ak_handle(t, &ak, e)) < 0)
		return r;
	q.size = (UINT16)qual_len;
	memcpy(q.buffer, qual, qual_len);
	select_pcr(&sel, pcr);
	rc = Esys_Quote(t->esys, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &q, &scheme, &sel, &att, &sig);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "TPM2_Quote");
	r = take_signed(t, att, sig, out, e);
	Esys_Free(att);
	Esys_Free(sig);
	return r;
}

int tpm_counter_certify(struct tpm *t, const uint8_t *qual, size_t qual_len, struct tpm_signed *out,
			struct err *e)
{
	TPM2B_DATA q = { 0 };
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
	TPM2B_ATTEST *att = NULL;
	TPMT_SIGNATURE *sig = NULL;
	ESYS_TR ak, nv;
	TSS2_RC rc;
	int r;

	memset(out, 0, sizeof(*out));
	if (qual_len > sizeof(q.buffer))
		return err_set(e, -EINVAL, "certify: qualifying data too long");
	if ((r = ak_handle(t, &ak, e)) < 0 || (r = counter_handle(t, &nv, e)) < 0)
		return r;
	q.size = (UINT16)qual_len;
	memcpy(q.buffer, qual, qual_len);
	rc = Esys_NV_Certify(t->esys, ak, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_PASSWORD, ESYS_TR_NONE, &q, &scheme, 8, 0,
			     &att, &sig);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err(t, e, rc, "TPM2_NV_Certify of the audit counter");
	r = take_signed(t, att, sig, out, e);
	Esys_Free(att);
	Esys_Free(sig);
	return r;
}
