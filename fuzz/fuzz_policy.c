/* libFuzzer target: the migration policy, as a signed file and as signed content; an
 * accepted policy is then asked a few questions (evaluation must never fail or crash,
 * and every decision names a rule). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trust/jsonx.h"
#include "trust/policy.h"
#include "trust_seed_keys.h"

static void ask(struct policy *p)
{
	static const char *const who[] = { "uid:0", "uid:1000", "host:hosta", "host:hostc" };
	static const char *const hosts[] = { "hosta", "hostb", NULL };
	struct labels l = { 0 };
	struct policy_decision d;
	struct err e;

	labels_add(&l, "class=secret", &e);
	labels_add(&l, "tenant=acme", &e);
	for (size_t i = 0; i < 4; i++)
		for (int op = OP_MIGRATE; op <= OP_CONSOLE; op <<= 1)
			for (size_t h = 0; h < 3; h++) {
				struct principal pr;
				if (principal_parse(who[i], &pr, &e) < 0)
					__builtin_trap();
				policy_check(p, &pr, (enum policy_op)op, i % 2 ? &l : NULL, hosts[h], hosts[(h + 1) % 3], &d);
				if (!d.rule[0] || !d.reason[0] || !strstr(d.reason, d.rule))
					__builtin_trap();
			}
	policy_is_sensitive(p, &l, NULL);
	policy_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *admin;
	struct policy *p = NULL;
	struct err e = { 0 };
	json_t *b;

	if (!admin)
		admin = seed_key(SEED_ADMIN_PEM);
	if (policy_parse((const char *)data, size, admin, &p, &e) == 0)
		ask(p);
	else if (e.code >= 0 || !e.msg[0])
		__builtin_trap();
	b = jx_parse((const char *)data, size, "policy", NULL);
	if (b && policy_from_json(b, &p, &e) == 0)
		ask(p);
	json_decref(b);
	return 0;
}
