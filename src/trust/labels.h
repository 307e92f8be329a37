/* VM labels (`run --label k=v`): what the policy matches a VM by. */
#ifndef SEALVM_TRUST_LABELS_H
#define SEALVM_TRUST_LABELS_H

#include <jansson.h>
#include <stddef.h>

#include "util/err.h"

#define LABELS_MAX      16
#define LABEL_KEY_MAX   64
#define LABEL_VALUE_MAX 128

struct labels {
	size_t n;
	struct {
		char k[LABEL_KEY_MAX], v[LABEL_VALUE_MAX];
	} kv[LABELS_MAX];
};

/* Adds "key=value": key [A-Za-z0-9_.-]+, value printable ASCII without '=' issues
 * (any byte but control characters); a key given twice is an error. */
int labels_add(struct labels *l, const char *kv, struct err *e);
/* The value of key, or NULL. */
const char *labels_get(const struct labels *l, const char *key);
/* {"k": "v", ...} (new reference) and back. */
json_t *labels_to_json(const struct labels *l);
int labels_from_json(json_t *o, struct labels *l, struct err *e);
/* The same as JSON text: canonical (compact, keys sorted; malloc'd), and back from
 * untrusted text (a peer's message, a snapshot), duplicate keys refused. */
char *labels_to_text(const struct labels *l);
int labels_parse_text(const char *text, size_t len, struct labels *l, struct err *e);
/* "k=v,k2=v2" for messages. */
void labels_format(const struct labels *l, char *out, size_t n);

#endif
