/* libFuzzer target: the audit log reader (audit verify) on arbitrary file contents, with
 * the seed host's audit key and attestation key so that the real seed log's signed heads
 * and TPM counter certifications are checked. The verdict is always complete: ok, or a
 * broken record and a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trust/audit.h"
#include "trust_seed_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct audit_verify_opts vo;
	struct audit_report r;

	if (!vo.key) {
		vo.key = seed_key(SEED_AUDIT_PEM);
		vo.ak = seed_key(SEED_AK_PEM);
	}
	audit_verify((const char *)data, size, &vo, &r);
	if (!r.reason[0] || (!r.ok && r.bad_record < 0) || (r.ok && r.bad_record != -1))
		__builtin_trap();
	return 0;
}
