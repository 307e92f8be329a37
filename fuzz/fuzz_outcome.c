/* libFuzzer target: the small text formats sealvm reads from its state directory
 * and key files — a migration outcome record (JSON) and a key file's contents.
 * The first byte picks the parser. */
#include <stdint.h>
#include <string.h>

#include "migrate/outcome.h"
#include "util/secret_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome_rec r;
	struct err e = { 0 };
	uint8_t key[32];

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		if (outcome_parse((const char *)data + 1, size - 1, &r, &e) == 0) {
			/* an accepted record is one sealvm could have written */
			if ((r.kind != OUTCOME_COMMITTED && r.kind != OUTCOME_ABORTED) ||
			    !memchr(r.peer, 0, sizeof(r.peer)) || !memchr(r.ended, 0, sizeof(r.ended)))
				__builtin_trap();
		} else if (e.code >= 0 || !e.msg[0]) {
			__builtin_trap();
		}
	} else {
		(void)key_parse((const char *)data + 1, size - 1, key);
	}
	return 0;
}
