#include "trust/policy.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trust/jsonx.h"
#include "trust/signed_file.h"

#define MAX_PATTERNS 256
#define MAX_GROUPS   256
#define MAX_MEMBERS  4096

enum pat_kind { PAT_ANY, PAT_UID, PAT_USER, PAT_HOST, PAT_GROUP };

struct pat {
	enum pat_kind kind;
	uid_t uid;
	char name[64];          /* user, host or group name */
};

struct pat_list {
	bool present;           /* absent list: matches anything, even no host */
	size_t n;
	struct pat *p;
};

struct rule {
	char name[POLICY_NAME_MAX];
	struct pat_list who, from, to;
	unsigned ops;
	struct labels sel;      /* values "*" mean any value */
};

struct group {
	char name[64];
	size_t n;
	char (*hosts)[64];
};

struct policy {
	uint64_t serial;
	int64_t expires;
	uint8_t sha256[32];
	size_t ngroups, nroles, ndeny, nsensitive;
	struct group *groups;
	struct rule *roles, *deny;
	struct labels *sensitive;
};

static const char *const op_names[] = { "migrate", "snapshot", "restore", "console" };

const char *policy_op_name(enum policy_op op)
{
	for (unsigned i = 0; i < 4; i++)
		if (op == 1u << i)
			return op_names[i];
	return "?";
}

int policy_op_parse(const char *s, enum policy_op *op)
{
	for (unsigned i = 0; i < 4; i++)
		if (!strcmp(s, op_names[i])) {
			*op = (enum policy_op)(1u << i);
			return 0;
		}
	return -EINVAL;
}

static int name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '@' || *s == ',')
			return 0;
	return 1;
}

static int copy_name(char *dst, size_t n, const char *src)
{
	if (strlen(src) >= n || !name_ok(src))
		return -EINVAL;
	strcpy(dst, src);
	return 0;
}

int principal_parse(const char *s, struct principal *p, struct err *e)
{
	memset(p, 0, sizeof(*p));
	if (!strncmp(s, "uid:", 4)) {
		char *end;
		unsigned long v = strtoul(s + 4, &end, 10);
		if (!s[4] || *end || v > 0xfffffffeUL || s[4] == '-' || s[4] == '+')
			return err_set(e, -EINVAL, "principal '%.64s': uid is not a number", s);
		p->uid = (uid_t)v;
		return 0;
	}
	if (!strncmp(s, "user:", 5)) {
		struct passwd pw, *res = NULL;
		char buf[1024];
		if (getpwnam_r(s + 5, &pw, buf, sizeof(buf), &res) || !res)
			return err_set(e, -ENOENT, "principal '%.64s': no such local user", s);
		p->uid = res->pw_uid;
		return 0;
	}
	if (!strncmp(s, "host:", 5)) {
		p->is_host = true;
		if (copy_name(p->host, sizeof(p->host), s + 5) < 0)
			return err_set(e, -EINVAL, "principal '%.64s': bad host name", s);
		return 0;
	}
	return err_set(e, -EINVAL, "principal '%.64s' is not uid:N, user:NAME or host:NAME", s);
}

void principal_format(const struct principal *p, char *out, size_t n)
{
	if (p->is_host)
		snprintf(out, n, "host:%s", p->host);
	else
		snprintf(out, n, "uid:%u", (unsigned)p->uid);
}

/* ---- parsing ---- */

static const struct group *find_group(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < p->ngroups; i++)
		if (!strcmp(p->groups[i].name, name))
			return &p->groups[i];
	return NULL;
}

static int parse_groups(struct policy *p, json_t *o, struct err *e)
{
	const char *k;
	json_t *members;

	if (!o)
		return 0;
	if (!json_is_object(o))
		return err_set(e, -EINVAL, "policy.groups is not an object");
	if (json_object_size(o) > MAX_GROUPS)
		return err_set(e, -E2BIG, "policy.groups: more than %d groups", MAX_GROUPS);
	p->groups = calloc(json_object_size(o) + 1, sizeof(*p->groups));
	if (!p->groups)
		return err_set(e, -ENOMEM, "out of memory");
	json_object_foreach(o, k, members) {
		struct group *g = &p->groups[p->ngroups];
		json_t *m;
		size_t i;

		if (copy_name(g->name, sizeof(g->name), k) < 0)
			return err_set(e, -EINVAL, "policy.groups: bad group name '%.64s'", k);
		p->ngroups++;
		if (!json_is_array(members) || json_array_size(members) > MAX_MEMBERS)
			return err_set(e, -EINVAL, "policy.groups.%s is not a list of at most %d host names", k,
				       MAX_MEMBERS);
		g->hosts = calloc(json_array_size(members) + 1, sizeof(*g->hosts));
		if (!g->hosts)
			return err_set(e, -ENOMEM, "out of memory");
		json_array_foreach(members, i, m) {
			if (!json_is_string(m) || copy_name(g->hosts[i], sizeof(g->hosts[i]), json_string_value(m)) < 0)
				return err_set(e, -EINVAL, "policy.groups.%s[%zu] is not a host name", k, i);
			g->n++;
		}
	}
	return 0;
}

/* kind: 'w' principals, 'h' hosts */
static int parse_pats(struct policy *p, json_t *r, const char *where, const char *key, int kind,
		      struct pat_list *l, struct err *e)
{
	json_t *a = json_object_get(r, key), *v;
	size_t i;

	memset(l, 0, sizeof(*l));
	if (!a)
		return kind == 'w' ? err_set(e, -EINVAL, "%s: missing \"principals\"", where) : 0;
	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MAX_PATTERNS)
		return err_set(e, -EINVAL, "%s.%s is not a list of 1 to %d entries", where, key, MAX_PATTERNS);
	l->present = true;
	l->p = calloc(json_array_size(a), sizeof(*l->p));
	if (!l->p)
		return err_set(e, -ENOMEM, "out of memory");
	json_array_foreach(a, i, v) {
		struct pat *t = &l->p[i];
		const char *s = json_string_value(v), *h = s;

		if (!s)
			return err_set(e, -EINVAL, "%s.%s[%zu] is not a string", where, key, i);
		l->n++;
		if (!strcmp(s, "*")) {
			t->kind = PAT_ANY;
			continue;
		}
		if (kind == 'w') {
			if (!strncmp(s, "uid:", 4)) {
				struct principal pr;
				if (principal_parse(s, &pr, e) < 0)
					return err_wrap(e, "%s.%s[%zu]", where, key, i);
				t->kind = PAT_UID;
				t->uid = pr.uid;
				continue;
			}
			if (!strncmp(s, "user:", 5)) {
				t->kind = PAT_USER;
				if (copy_name(t->name, sizeof(t->name), s + 5) < 0)
					return err_set(e, -EINVAL, "%s.%s[%zu]: bad user name", where, key, i);
				continue;
			}
			if (strncmp(s, "host:", 5))
				return err_set(e, -EINVAL,
					       "%s.%s[%zu] '%.64s' is not \"*\", uid:N, user:NAME, host:NAME or host:@GROUP",
					       where, key, i, s);
			h = s + 5;
		}
		if (h[0] == '@') {
			t->kind = PAT_GROUP;
			if (copy_name(t->name, sizeof(t->name), h + 1) < 0 || !find_group(p, h + 1))
				return err_set(e, -EINVAL, "%s.%s[%zu]: no host group '%.64s' in policy.groups", where,
					       key, i, h + 1);
		} else {
			t->kind = PAT_HOST;
			if (copy_name(t->name, sizeof(t->name), h) < 0)
				return err_set(e, -EINVAL, "%s.%s[%zu]: bad host name '%.64s'", where, key, i, h);
		}
	}
	return 0;
}

static int parse_selector(json_t *o, const char *where, struct labels *sel, struct err *e)
{
	int rc;

	memset(sel, 0, sizeof(*sel));
	if (!o)
		return 0;
	rc = labels_from_json(o, sel, e);
	return rc < 0 ? err_wrap(e, "%s", where) : 0;
}

static int parse_rule(struct policy *p, json_t *r, const char *where, struct rule *out, struct err *e)
{
	static const char *const keys[] = { "name", "principals", "ops", "labels", "from", "to", "note", NULL };
	char w2[96];
	json_t *ops, *v;
	size_t i;
	int rc;

	if ((rc = jx_only(r, where, keys, e)) < 0 || (rc = jx_str(r, where, "name", true, out->name, sizeof(out->name), e)) < 0)
		return rc;
	snprintf(w2, sizeof(w2), "%s (%s)", where, out->name);
	if ((rc = parse_pats(p, r, w2, "principals", 'w', &out->who, e)) < 0 ||
	    (rc = parse_pats(p, r, w2, "from", 'h', &out->from, e)) < 0 ||
	    (rc = parse_pats(p, r, w2, "to", 'h', &out->to, e)) < 0)
		return rc;
	ops = json_object_get(r, "ops");
	if (!json_is_array(ops) || json_array_size(ops) == 0 || json_array_size(ops) > 8)
		return err_set(e, -EINVAL, "%s: \"ops\" must list migrate, snapshot, restore, console or \"*\"", w2);
	json_array_foreach(ops, i, v) {
		enum policy_op op;
		if (json_is_string(v) && !strcmp(json_string_value(v), "*"))
			out->ops = OP_MIGRATE | OP_SNAPSHOT | OP_RESTORE | OP_CONSOLE;
		else if (json_is_string(v) && policy_op_parse(json_string_value(v), &op) == 0)
			out->ops |= op;
		else
			return err_set(e, -EINVAL, "%s.ops[%zu] is not migrate, snapshot, restore, console or \"*\"", w2, i);
	}
	return parse_selector(json_object_get(r, "labels"), w2, &out->sel, e);
}

static int parse_rules(struct policy *p, json_t *b, const char *key, struct rule **out, size_t *n, struct err *e)
{
	json_t *a = json_object_get(b, key), *r;
	size_t i;
	int rc;

	*n = 0;
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > POLICY_MAX_RULES)
		return err_set(e, -EINVAL, "policy.%s is not a list of at most %d rules", key, POLICY_MAX_RULES);
	*out = calloc(json_array_size(a) + 1, sizeof(**out));
	if (!*out)
		return err_set(e, -ENOMEM, "out of memory");
	json_array_foreach(a, i, r) {
		char where[48];
		snprintf(where, sizeof(where), "policy.%s[%zu]", key, i);
		*n = i + 1;
		if ((rc = parse_rule(p, r, where, &(*out)[i], e)) < 0)
			return rc;
	}
	return 0;
}

int policy_from_json(json_t *b, struct policy **out, struct err *e)
{
	static const char *const keys[] = { "type", "version", "serial", "expires", "groups", "sensitive",
					    "roles", "deny", "note", NULL };
	struct policy *p;
	json_t *s, *v;
	int64_t x;
	size_t i;
	int rc;

	*out = NULL;
	if ((rc = jx_only(b, "policy", keys, e)) < 0 || (rc = jx_int(b, "policy", "version", true, 1, 1, 1, &x, e)) < 0)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, -ENOMEM, "out of memory");
	if ((rc = jx_int(b, "policy", "serial", true, 1, INT64_MAX, 0, &x, e)) < 0)
		goto fail;
	p->serial = (uint64_t)x;
	if ((rc = jx_int(b, "policy", "expires", false, 0, INT64_MAX, 0, &p->expires, e)) < 0 ||
	    (rc = parse_groups(p, json_object_get(b, "groups"), e)) < 0 ||
	    (rc = parse_rules(p, b, "roles", &p->roles, &p->nroles, e)) < 0 ||
	    (rc = parse_rules(p, b, "deny", &p->deny, &p->ndeny, e)) < 0)
		goto fail;
	s = json_object_get(b, "sensitive");
	if (s) {
		if (!json_is_array(s) || json_array_size(s) > MAX_PATTERNS) {
			rc = err_set(e, -EINVAL, "policy.sensitive is not a list of label selectors");
			goto fail;
		}
		p->sensitive = calloc(json_array_size(s) + 1, sizeof(*p->sensitive));
		if (!p->sensitive) {
			rc = err_set(e, -ENOMEM, "out of memory");
			goto fail;
		}
		json_array_foreach(s, i, v) {
			char where[40];
			snprintf(where, sizeof(where), "policy.sensitive[%zu]", i);
			if ((rc = parse_selector(v, where, &p->sensitive[i], e)) < 0)
				goto fail;
			if (p->sensitive[i].n == 0) {
				rc = err_set(e, -EINVAL, "%s is empty (it would mark every VM sensitive: list labels)", where);
				goto fail;
			}
			p->nsensitive++;
		}
	}
	*out = p;
	return 0;
fail:
	policy_free(p);
	return rc;
}

int policy_parse(const char *text, size_t len, EVP_PKEY *admin, struct policy **out, struct err *e)
{
	uint8_t sha[32];
	json_t *b;
	int rc = signed_parse(text, len, admin, POLICY_TYPE, &b, sha, e);

	*out = NULL;
	if (rc < 0)
		return rc;
	rc = policy_from_json(b, out, e);
	json_decref(b);
	if (rc == 0)
		memcpy((*out)->sha256, sha, 32);
	return rc;
}

int policy_load(const char *path, EVP_PKEY *admin, struct policy **out, struct err *e)
{
	uint8_t sha[32];
	json_t *b;
	int rc = signed_load(path, admin, POLICY_TYPE, &b, sha, e);

	*out = NULL;
	if (rc < 0)
		return err_wrap(e, "migration policy");
	rc = policy_from_json(b, out, e);
	json_decref(b);
	if (rc < 0)
		return err_wrap(e, "migration policy %s", path);
	memcpy((*out)->sha256, sha, 32);
	return 0;
}

static void free_rules(struct rule *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++) {
		free(r[i].who.p);
		free(r[i].from.p);
		free(r[i].to.p);
	}
	free(r);
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->groups && i < p->ngroups; i++)
		free(p->groups[i].hosts);
	free(p->groups);
	free_rules(p->roles, p->nroles);
	free_rules(p->deny, p->ndeny);
	free(p->sensitive);
	free(p);
}

uint64_t policy_serial(const struct policy *p)
{
	return p->serial;
}

int64_t policy_expires(const struct policy *p)
{
	return p->expires;
}

const uint8_t *policy_sha256(const struct policy *p)
{
	return p->sha256;
}

/* ---- evaluation ---- */

static bool host_in_group(const struct policy *p, const char *group, const char *host)
{
	const struct group *g = find_group(p, group);

	for (size_t i = 0; g && i < g->n; i++)
		if (!strcmp(g->hosts[i], host))
			return true;
	return false;
}

static bool match_host(const struct policy *p, const struct pat_list *l, const char *host)
{
	if (!l->present)
		return true;
	for (size_t i = 0; i < l->n; i++) {
		const struct pat *t = &l->p[i];
		if (t->kind == PAT_ANY)
			return true;
		if (!host || !*host)
			continue;
		if (t->kind == PAT_HOST && !strcmp(t->name, host))
			return true;
		if (t->kind == PAT_GROUP && host_in_group(p, t->name, host))
			return true;
	}
	return false;
}

static bool user_is(uid_t uid, const char *name)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	return getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res && !strcmp(res->pw_name, name);
}

static bool match_who(const struct policy *p, const struct pat_list *l, const struct principal *w)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct pat *t = &l->p[i];
		switch (t->kind) {
		case PAT_ANY:
			return true;
		case PAT_UID:
			if (!w->is_host && w->uid == t->uid)
				return true;
			break;
		case PAT_USER:
			if (!w->is_host && user_is(w->uid, t->name))
				return true;
			break;
		case PAT_HOST:
			if (w->is_host && !strcmp(w->host, t->name))
				return true;
			break;
		case PAT_GROUP:
			if (w->is_host && host_in_group(p, t->name, w->host))
				return true;
			break;
		}
	}
	return false;
}

static bool match_labels(const struct labels *sel, const struct labels *l)
{
	for (size_t i = 0; i < sel->n; i++) {
		const char *v = labels_get(l, sel->kv[i].k);
		if (!v || (strcmp(sel->kv[i].v, "*") && strcmp(sel->kv[i].v, v)))
			return false;
	}
	return true;
}

static bool match_rule(const struct policy *p, const struct rule *r, const struct principal *who,
		       enum policy_op op, const struct labels *labels, const char *src, const char *dst)
{
	return (r->ops & op) && match_who(p, &r->who, who) && match_labels(&r->sel, labels) &&
	       match_host(p, &r->from, src) && match_host(p, &r->to, dst);
}

void policy_check(const struct policy *p, const struct principal *who, enum policy_op op,
		  const struct labels *labels, const char *src_host, const char *dst_host,
		  struct policy_decision *out)
{
	char w[80], l[256], route[160] = "";
	static const struct labels none;

	if (!labels)
		labels = &none;
	principal_format(who, w, sizeof(w));
	labels_format(labels, l, sizeof(l));
	if (src_host || dst_host)
		snprintf(route, sizeof(route), " from %s to %s", src_host ? src_host : "-", dst_host ? dst_host : "-");
	memset(out, 0, sizeof(*out));
	if (p->expires && (int64_t)time(NULL) > p->expires) {
		snprintf(out->rule, sizeof(out->rule), "policy-expired");
		snprintf(out->reason, sizeof(out->reason), "policy denies %s to %s VM [%s]%s: the policy expired at %lld (rule policy-expired)",
			 w, policy_op_name(op), l, route, (long long)p->expires);
		return;
	}
	for (size_t i = 0; i < p->ndeny; i++)
		if (match_rule(p, &p->deny[i], who, op, labels, src_host, dst_host)) {
			snprintf(out->rule, sizeof(out->rule), "%s", p->deny[i].name);
			snprintf(out->reason, sizeof(out->reason), "policy denies %s to %s VM [%s]%s: deny rule \"%s\"",
				 w, policy_op_name(op), l, route, p->deny[i].name);
			return;
		}
	for (size_t i = 0; i < p->nroles; i++)
		if (match_rule(p, &p->roles[i], who, op, labels, src_host, dst_host)) {
			out->allow = true;
			snprintf(out->rule, sizeof(out->rule), "%s", p->roles[i].name);
			snprintf(out->reason, sizeof(out->reason), "policy allows %s to %s VM [%s]%s: role \"%s\"", w,
				 policy_op_name(op), l, route, p->roles[i].name);
			return;
		}
	snprintf(out->rule, sizeof(out->rule), "default-deny");
	snprintf(out->reason, sizeof(out->reason),
		 "policy denies %s to %s VM [%s]%s: no role allows it (rule default-deny)", w, policy_op_name(op), l, route);
}

bool policy_is_sensitive(const struct policy *p, const struct labels *labels, int *which)
{
	for (size_t i = 0; i < p->nsensitive; i++)
		if (match_labels(&p->sensitive[i], labels)) {
			if (which)
				*which = (int)i;
			return true;
		}
	return false;
}
