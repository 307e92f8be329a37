#include "trust/labels.h"

#include <stdio.h>
#include <string.h>

#include "trust/jsonx.h"

static int key_ok(const char *k, size_t n)
{
	if (n == 0 || n >= LABEL_KEY_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

static int value_ok(const char *v, size_t n)
{
	json_t *utf8;

	if (n >= LABEL_VALUE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == ',')
			return 0;
	/* labels travel as JSON: a value that is not UTF-8 would silently vanish there */
	utf8 = json_stringn(v, n);
	json_decref(utf8);
	return utf8 != NULL;
}

static int add(struct labels *l, const char *k, size_t kn, const char *v, size_t vn, struct err *e)
{
	if (!key_ok(k, kn))
		return err_set(e, -EINVAL, "label key '%.*s' must be 1-%d of A-Z a-z 0-9 _ . -", (int)(kn > 64 ? 64 : kn),
			       k, LABEL_KEY_MAX - 1);
	if (!value_ok(v, vn))
		return err_set(e, -EINVAL, "label %.*s: value must be UTF-8 under %d bytes, no control characters or commas",
			       (int)kn, k, LABEL_VALUE_MAX);
	for (size_t i = 0; i < l->n; i++)
		if (strlen(l->kv[i].k) == kn && !memcmp(l->kv[i].k, k, kn))
			return err_set(e, -EINVAL, "label %.*s is given twice", (int)kn, k);
	if (l->n >= LABELS_MAX)
		return err_set(e, -E2BIG, "more than %d labels", LABELS_MAX);
	memcpy(l->kv[l->n].k, k, kn);
	l->kv[l->n].k[kn] = 0;
	memcpy(l->kv[l->n].v, v, vn);
	l->kv[l->n].v[vn] = 0;
	l->n++;
	return 0;
}

int labels_add(struct labels *l, const char *kv, struct err *e)
{
	const char *eq = strchr(kv, '=');

	if (!eq)
		return err_set(e, -EINVAL, "label '%.64s' is not key=value", kv);
	return add(l, kv, (size_t)(eq - kv), eq + 1, strlen(eq + 1), e);
}

const char *labels_get(const struct labels *l, const char *key)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (!strcmp(l->kv[i].k, key))
			return l->kv[i].v;
	return NULL;
}

json_t *labels_to_json(const struct labels *l)
{
	json_t *o = json_object();

	for (size_t i = 0; o && l && i < l->n; i++)
		json_object_set_new(o, l->kv[i].k, json_string(l->kv[i].v));
	return o;
}

int labels_from_json(json_t *o, struct labels *l, struct err *e)
{
	const char *k;
	json_t *v;
	int rc;

	memset(l, 0, sizeof(*l));
	if (!json_is_object(o))
		return err_set(e, -EINVAL, "labels are not a JSON object");
	json_object_foreach(o, k, v) {
		if (!json_is_string(v))
			return err_set(e, -EINVAL, "label %.64s is not a string", k);
		rc = add(l, k, strlen(k), json_string_value(v), json_string_length(v), e);
		if (rc < 0)
			return rc;
		if (strlen(l->kv[l->n - 1].v) != json_string_length(v))
			return err_set(e, -EINVAL, "label %.64s contains a NUL byte", k);
	}
	return 0;
}

char *labels_to_text(const struct labels *l)
{
	json_t *o = labels_to_json(l);
	char *t = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;

	json_decref(o);
	return t;
}

int labels_parse_text(const char *text, size_t len, struct labels *l, struct err *e)
{
	json_t *o = jx_parse(text, len, "labels", e);
	int rc;

	memset(l, 0, sizeof(*l));
	if (!o)
		return -EINVAL;
	rc = labels_from_json(o, l, e);
	json_decref(o);
	return rc;
}

void labels_format(const struct labels *l, char *out, size_t n)
{
	size_t o = 0;

	if (n)
		out[0] = 0;
	for (size_t i = 0; l && i < l->n && o < n; i++) {
		int w = snprintf(out + o, n - o, "%s%s=%s", i ? "," : "", l->kv[i].k, l->kv[i].v);
		if (w < 0)
			break;
		o += (size_t)w;
	}
	if (n && !out[0])
		snprintf(out, n, "(no labels)");
}
