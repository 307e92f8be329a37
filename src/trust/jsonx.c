#include "trust/jsonx.h"

#include <stdlib.h>
#include <string.h>

#include "util/hex.h"

json_t *jx_parse(const char *text, size_t len, const char *what, struct err *e)
{
	json_error_t je;
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

	if (!v)
		err_set(e, -EINVAL, "%s is not valid JSON (line %d column %d: %s)", what, je.line, je.column,
			je.text);
	return v;
}

int jx_only(json_t *obj, const char *where, const char *const *keys, struct err *e)
{
	const char *k;
	json_t *v;

	if (!json_is_object(obj))
		return err_set(e, -EINVAL, "%s is not a JSON object", where);
	json_object_foreach(obj, k, v) {
		size_t i;
		for (i = 0; keys[i]; i++)
			if (!strcmp(k, keys[i]))
				break;
		if (!keys[i])
			return err_set(e, -EINVAL, "%s: unknown field \"%.64s\"", where, k);
	}
	return 0;
}

int jx_str(json_t *obj, const char *where, const char *key, bool req, char *out, size_t max, struct err *e)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	out[0] = 0;
	if (!v) {
		if (req)
			return err_set(e, -EINVAL, "%s: missing \"%s\"", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return err_set(e, -EINVAL, "%s.%s is not a string", where, key);
	n = json_string_length(v);
	if (n == 0 || n >= max || memchr(json_string_value(v), 0, n))
		return err_set(e, -EINVAL, "%s.%s must be 1 to %zu bytes (without NUL)", where, key, max - 1);
	memcpy(out, json_string_value(v), n + 1);
	return 0;
}

int jx_int(json_t *obj, const char *where, const char *key, bool req, int64_t lo, int64_t hi, int64_t dflt,
	   int64_t *out, struct err *e)
{
	json_t *v = json_object_get(obj, key);

	*out = dflt;
	if (!v) {
		if (req)
			return err_set(e, -EINVAL, "%s: missing \"%s\"", where, key);
		return 0;
	}
	if (!json_is_integer(v))
		return err_set(e, -EINVAL, "%s.%s is not an integer", where, key);
	if (json_integer_value(v) < lo || json_integer_value(v) > hi)
		return err_set(e, -ERANGE, "%s.%s = %lld is out of range (%lld to %lld)", where, key,
			       (long long)json_integer_value(v), (long long)lo, (long long)hi);
	*out = json_integer_value(v);
	return 0;
}

int jx_bool(json_t *obj, const char *where, const char *key, bool dflt, bool *out, struct err *e)
{
	json_t *v = json_object_get(obj, key);

	*out = dflt;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return err_set(e, -EINVAL, "%s.%s is not true or false", where, key);
	*out = json_is_true(v);
	return 0;
}

int jx_digests(json_t *obj, const char *where, const char *key, size_t max, uint8_t (**out)[32], size_t *n,
	       struct err *e)
{
	json_t *a = json_object_get(obj, key), *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!a)
		return 0;
	if (!json_is_array(a))
		return err_set(e, -EINVAL, "%s.%s is not a list", where, key);
	if (json_array_size(a) > max)
		return err_set(e, -E2BIG, "%s.%s has more than %zu entries", where, key, max);
	if (json_array_size(a) == 0)
		return 0;
	*out = calloc(json_array_size(a), 32);
	if (!*out)
		return err_set(e, -ENOMEM, "out of memory");
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || hex_decode(json_string_value(v), (*out)[i], 32) < 0) {
			free(*out);
			*out = NULL;
			return err_set(e, -EINVAL, "%s.%s[%zu] is not a SHA-256 digest (64 hex digits)", where, key,
				       i);
		}
	}
	*n = json_array_size(a);
	return 0;
}

int jx_no_reals(json_t *v, struct err *e)
{
	const char *k;
	json_t *c;
	size_t i;

	if (json_is_real(v))
		return err_set(e, -EINVAL, "real numbers are not allowed in trust files");
	if (json_is_object(v)) {
		json_object_foreach(v, k, c)
			if (jx_no_reals(c, e) < 0)
				return -EINVAL;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c)
			if (jx_no_reals(c, e) < 0)
				return -EINVAL;
	}
	return 0;
}
