/* libFuzzer target: attestation evidence from a peer (JSON, base64 TPMS_ATTEST quote and
 * signature, event log), verified against a table that trusts the seed host, with the
 * challenge the seed quote answers (nonce of zeros, no EKM); also the event log file
 * parser and the TPM attestation parsers on the raw bytes. A verdict must always name a
 * check; the seed itself must verify (or the target is not reaching the deep checks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trust/attest.h"
#include "trust/eventlog.h"
#include "trust/jsonx.h"
#include "trust/tpm_attest.h"
#include "trust_seed_keys.h"

static struct trust_table *table(void)
{
	static const char body[] = "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"sealvm\":[\"" SEED_EXE_SHA256
				   "\"],\"hosts\":[{\"name\":\"hosta\",\"trust\":2,\"ak\":\"%s\"}]}";
	char buf[2048], pem[512];
	struct trust_table *t = NULL;
	struct err e;
	json_t *b;
	EVP_PKEY *admin = seed_key(SEED_ADMIN_PEM);
	size_t o = 0;

	for (const char *p = SEED_AK_PEM; *p; p++) {   /* JSON-escape the newlines */
		if (*p == '\n') {
			pem[o++] = '\\';
			pem[o++] = 'n';
		} else {
			pem[o++] = *p;
		}
	}
	pem[o] = 0;
	snprintf(buf, sizeof(buf), body, pem);
	b = jx_parse(buf, strlen(buf), "table", &e);
	if (!b || table_from_json(b, &t, &e) < 0)
		__builtin_trap();
	json_decref(b);
	key_fingerprint(admin, t->signer);
	key_free(admin);
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct trust_table *t;
	static uint8_t bound[32];
	struct attest_expect x = { .peer_name = "hosta", .policy_serial = 1, .now = 1800000000 };
	struct attest_verdict v;
	struct tpm_attest_info info;
	struct eventlog l;
	struct err e;

	if (!t) {
		uint8_t nonce[32] = { 0 };
		t = table();
		attest_bind(nonce, NULL, 0, bound);
	}
	attest_verify(data, size, bound, t, &x, &v);
	if (!v.check[0] || !v.reason[0] || (v.ok && strcmp(v.check, "ok")))
		__builtin_trap();
	if (eventlog_parse((const char *)data, size, &l, &e) == 0)
		eventlog_free(&l);
	tpm_attest_parse_quote(data, size, &info, &e);
	tpm_attest_parse_nv(data, size, &info, &e);
	return 0;
}
