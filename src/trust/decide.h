/* What a sealvm process does with its trust at each security decision: ask the
 * policy (in open mode: allow, and say so) and put the decision in the audit log
 * before it takes effect. Used by the migration (both ends), snapshots, restores and
 * the console; the callers' own records (commit, abort, operator overrides) go
 * through trust_audit. */
#ifndef SEALVM_TRUST_DECIDE_H
#define SEALVM_TRUST_DECIDE_H

#include <jansson.h>
#include <stdbool.h>

#include "trust/host.h"
#include "trust/labels.h"
#include "trust/policy.h"
#include "util/err.h"

/* True when c runs with a table and a policy. */
bool trust_is_trusted(const struct trust_ctx *c);
/* This host's name ("" when it has none: open mode without host init). */
const char *trust_host_name(const struct trust_ctx *c);

/* Appends {"event": event, ...fields} to c's audit log; fields is stolen (may be NULL).
 * c NULL (no trust context at all): nothing is recorded and 0 is returned. */
int trust_audit(struct trust_ctx *c, const char *event, json_t *fields, struct err *e);
/* The same, best effort: a failure is reported on stderr. */
void trust_audit_note(struct trust_ctx *c, const char *event, json_t *fields);

/* May who do op on a VM with labels, from src to dst (either NULL when the operation
 * has none)? Trusted mode asks the policy; open mode allows (rule "open-mode"). The
 * decision is recorded as event "policy" with extra's fields (stolen, may be NULL);
 * an allow that cannot be recorded is a denial. Returns 0, or -EACCES with e saying
 * which rule denied it. d (may be NULL) receives the decision. */
int trust_decide(struct trust_ctx *c, const struct principal *who, enum policy_op op, const struct labels *labels,
		 const char *src, const char *dst, json_t *extra, struct policy_decision *d, struct err *e);

/* A VM whose labels the policy marks sensitive travels only encrypted and
 * authenticated: -EACCES (recorded as a "policy" denial, rule "sensitive[N]") when
 * encrypted is false. what names the transport for the message ("tcp://"). */
int trust_check_transport(struct trust_ctx *c, const struct labels *labels, bool encrypted, const char *what,
			  json_t *extra, struct err *e);

#endif
