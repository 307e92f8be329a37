#include "trust/decide.h"

#include <stdio.h>
#include <string.h>

bool trust_is_trusted(const struct trust_ctx *c)
{
	return c && !c->open_mode;
}

const char *trust_host_name(const struct trust_ctx *c)
{
	return c ? c->host.name : "";
}

int trust_audit(struct trust_ctx *c, const char *event, json_t *fields, struct err *e)
{
	int rc;

	if (!c || !c->audit) {
		json_decref(fields);
		return 0;
	}
	rc = audit_append(c->audit, event, fields, e);
	json_decref(fields);
	return rc < 0 ? err_wrap(e, "audit log") : 0;
}

void trust_audit_note(struct trust_ctx *c, const char *event, json_t *fields)
{
	struct err e = { 0 };

	if (trust_audit(c, event, fields, &e) < 0)
		fprintf(stderr, "sealvm: cannot record \"%s\": %s\n", event, e.msg);
}

/* The common fields of a "policy" record. */
static json_t *decision_record(const struct principal *who, enum policy_op op, const struct labels *labels,
			       const char *src, const char *dst, const struct policy_decision *d, json_t *extra)
{
	char w[96];
	json_t *o = extra ? extra : json_object();

	principal_format(who, w, sizeof(w));
	json_object_set_new(o, "op", json_string(policy_op_name(op)));
	json_object_set_new(o, "principal", json_string(w));
	json_object_set_new(o, "labels", labels_to_json(labels));
	if (src)
		json_object_set_new(o, "from", json_string(src));
	if (dst)
		json_object_set_new(o, "to", json_string(dst));
	json_object_set_new(o, "allow", json_boolean(d->allow));
	json_object_set_new(o, "rule", json_string(d->rule));
	json_object_set_new(o, "reason", json_string(d->reason));
	return o;
}

int trust_decide(struct trust_ctx *c, const struct principal *who, enum policy_op op, const struct labels *labels,
		 const char *src, const char *dst, json_t *extra, struct policy_decision *d, struct err *e)
{
	struct policy_decision local;
	struct err ae = { 0 };
	char w[96], l[512];

	if (!d)
		d = &local;
	memset(d, 0, sizeof(*d));
	if (trust_is_trusted(c)) {
		policy_check(c->policy, who, op, labels, src, dst, d);
	} else {
		principal_format(who, w, sizeof(w));
		labels_format(labels, l, sizeof(l));
		d->allow = true;
		snprintf(d->rule, sizeof(d->rule), "open-mode");
		snprintf(d->reason, sizeof(d->reason),
			 "open mode (no --table/--policy): %s may %s VM [%s] without a policy decision", w,
			 policy_op_name(op), l);
	}
	if (trust_audit(c, "policy", decision_record(who, op, labels, src, dst, d, extra), &ae) < 0 && d->allow) {
		d->allow = false;
		snprintf(d->rule, sizeof(d->rule), "audit-failed");
		return err_set(e, -EACCES, "%s refused: the decision cannot be recorded (%s)", policy_op_name(op), ae.msg);
	}
	if (!d->allow)
		return err_set(e, -EACCES, "%s", d->reason);
	return 0;
}

int trust_check_transport(struct trust_ctx *c, const struct labels *labels, bool encrypted, const char *what,
			  json_t *extra, struct err *e)
{
	struct policy_decision d = { 0 };
	char l[512];
	int which = 0;
	json_t *o;

	if (encrypted || !trust_is_trusted(c) || !policy_is_sensitive(c->policy, labels, &which)) {
		json_decref(extra);
		return 0;
	}
	labels_format(labels, l, sizeof(l));
	snprintf(d.rule, sizeof(d.rule), "sensitive[%d]", which);
	snprintf(d.reason, sizeof(d.reason),
		 "policy marks VM [%s] sensitive (sensitive selector %d): it travels only over tls://, never %s (--insecure)",
		 l, which, what);
	o = extra ? extra : json_object();
	json_object_set_new(o, "labels", labels_to_json(labels));
	json_object_set_new(o, "transport", json_string(what));
	json_object_set_new(o, "allow", json_false());
	json_object_set_new(o, "rule", json_string(d.rule));
	json_object_set_new(o, "reason", json_string(d.reason));
	trust_audit_note(c, "policy", o);
	return err_set(e, -EACCES, "%s", d.reason);
}
