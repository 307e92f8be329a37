/* libFuzzer target: the records of a migration's trust phase (migrate/attest_phase.h),
 * untrusted input on both ends: the first byte picks ATTEST_REQ (the destination reads
 * it from the source), ATTEST (both read it) or a snapshot's LABELS section; the rest is
 * the payload. Accepted records must hold what the parsers promise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/attest_phase.h"

static void check_labels(const struct labels *l)
{
	char *text;
	struct labels back;
	struct err e;

	if (l->n > LABELS_MAX)
		__builtin_trap();
	for (size_t i = 0; i < l->n; i++)
		if (!l->kv[i].k[0] || strlen(l->kv[i].k) >= LABEL_KEY_MAX || strlen(l->kv[i].v) >= LABEL_VALUE_MAX)
			__builtin_trap();
	/* what is accepted goes back out and in unchanged (snapshots and the wire rely on it) */
	text = labels_to_text(l);
	if (!text || labels_parse_text(text, strlen(text), &back, &e) < 0 || back.n != l->n)
		__builtin_trap();
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = { 0 };

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: {
		struct mig_attest_req r;
		if (mig_attest_req_parse(data + 1, size - 1, &r, &e) == 0)
			check_labels(&r.labels);
		break;
	}
	case 1: {
		struct mig_attest_msg m;
		if (mig_attest_msg_parse(data + 1, size - 1, &m, &e) == 0) {
			if (!m.evidence || strlen(m.evidence) != m.evidence_len)
				__builtin_trap();
			mig_attest_msg_free(&m);
		}
		break;
	}
	default: {
		struct labels l;
		if (labels_parse_text((const char *)data + 1, size - 1, &l, &e) == 0)
			check_labels(&l);
	}
	}
	return 0;
}
