/* The migration policy (DESIGN.md §1 property 4): a role-based, default-deny policy
 * signed by the cluster administrator (signed_file.h, type "sealvm-policy"). Content:
 *
 *   {"type": "sealvm-policy", "version": 1, "serial": 3, "expires": 1790000000,
 *    "groups": {"cluster": ["hosta", "hostb"]},          host groups, used as "@cluster"
 *    "sensitive": [{"class": "secret"}],                  VMs matching any of these label
 *                                                         selectors must travel encrypted
 *    "roles": [RULE...],                                  what is allowed
 *    "deny":  [RULE...]}                                  what is refused, whatever a role says
 *
 *   RULE = {"name": "acme-operators",                    named in every decision
 *           "principals": ["uid:1000", "user:alice", "host:hosta", "host:@cluster", "*"],
 *           "ops": ["migrate", "snapshot", "restore", "console", "*"],
 *           "labels": {"tenant": "acme", "tier": "*"},   VM must carry each (value "*": any
 *                                                         value); absent or {}: any VM
 *           "from": ["hosta", "@cluster", "*"],          source host; absent: any
 *           "to":   ["@cluster"]}                        destination host; absent: any
 *
 * Principals: a local user of the control socket is "uid:N" (SO_PEERCRED) and matches
 * "uid:N" or "user:NAME" (NAME resolved to the uid when the policy is loaded); a remote
 * host is "host:NAME" (its certificate name). Evaluation: if any deny rule matches, the
 * request is denied naming that rule; otherwise the first role that matches allows it;
 * otherwise it is denied by default. A rule with "from"/"to" lists never matches a
 * request that has no such host (a snapshot has no destination) unless the list has "*". */
#ifndef SEALVM_TRUST_POLICY_H
#define SEALVM_TRUST_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "trust/keys.h"
#include "trust/labels.h"
#include "util/err.h"

#define POLICY_TYPE      "sealvm-policy"
#define POLICY_MAX_RULES 1024
#define POLICY_NAME_MAX  64

enum policy_op { OP_MIGRATE = 1 << 0, OP_SNAPSHOT = 1 << 1, OP_RESTORE = 1 << 2, OP_CONSOLE = 1 << 3 };

struct principal {
	bool is_host;           /* remote host (certificate name) or local user (uid) */
	uid_t uid;
	char host[64];
};

struct policy;

struct policy_decision {
	bool allow;
	char rule[POLICY_NAME_MAX];     /* the deny rule or role that decided; "default-deny" */
	char reason[400];               /* one sentence for the error message and the audit log */
};

int policy_load(const char *path, EVP_PKEY *admin, struct policy **out, struct err *e);
int policy_parse(const char *text, size_t len, EVP_PKEY *admin, struct policy **out, struct err *e);
/* Parses verified signed content (also what the fuzzer drives). */
int policy_from_json(json_t *body, struct policy **out, struct err *e);
void policy_free(struct policy *p);
uint64_t policy_serial(const struct policy *p);
int64_t policy_expires(const struct policy *p);
/* SHA-256 of the canonical signed content (zero when built by policy_from_json). */
const uint8_t *policy_sha256(const struct policy *p);

/* Decides whether principal may do op on a VM with labels, moving it from src_host to
 * dst_host (either may be NULL when the operation has none). Never fails: a request no
 * rule covers is denied ("default-deny"). */
void policy_check(const struct policy *p, const struct principal *who, enum policy_op op,
		  const struct labels *labels, const char *src_host, const char *dst_host,
		  struct policy_decision *out);
/* Whether labels match a "sensitive" selector (then encryption is mandatory); the
 * selector's index is written to *which. */
bool policy_is_sensitive(const struct policy *p, const struct labels *labels, int *which);

const char *policy_op_name(enum policy_op op);
int policy_op_parse(const char *s, enum policy_op *op);
/* "uid:N", "user:NAME" (resolved now) or "host:NAME". */
int principal_parse(const char *s, struct principal *p, struct err *e);
void principal_format(const struct principal *p, char *out, size_t n);

#endif
