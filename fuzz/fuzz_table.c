/* libFuzzer target: the integrity validation table, as a signed file (envelope parse and
 * signature check against the seed administrator key) and as signed content (every field
 * check). An accepted table must be usable: every host findable, every key present. */
#include <stdint.h>
#include <stdlib.h>

#include "trust/jsonx.h"
#include "trust/table.h"
#include "trust_seed_keys.h"

static void use(struct trust_table *t)
{
	uint8_t d[32] = { 0 };

	for (size_t i = 0; i < t->nhosts; i++) {
		if (table_find(t, t->hosts[i].name) != &t->hosts[i] || !t->hosts[i].ak)
			__builtin_trap();
		table_allows_exe(t, &t->hosts[i], d);
	}
	table_allows_ca(t, d);
	table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *admin;
	struct trust_table *t = NULL;
	struct err e = { 0 };
	json_t *b;

	if (!admin)
		admin = seed_key(SEED_ADMIN_PEM);
	if (table_parse((const char *)data, size, admin, &t, &e) == 0)
		use(t);
	else if (e.code >= 0 || !e.msg[0])
		__builtin_trap();
	b = jx_parse((const char *)data, size, "table", NULL);
	if (b && table_from_json(b, &t, &e) == 0)
		use(t);
	json_decref(b);
	return 0;
}
