#include "trust/signed_file.h"

#include <stdlib.h>
#include <string.h>

#include "trust/jsonx.h"
#include "util/file.h"
#include "util/hex.h"

static const char domain[] = "sealvm-signed-v1\n";

char *signed_canonical(json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
}

/* domain || canonical(body) */
static int message(json_t *body, char **msg, size_t *len)
{
	char *c = signed_canonical(body);
	size_t n;

	*msg = NULL;
	if (!c)
		return -ENOMEM;
	n = strlen(c);
	*msg = malloc(sizeof(domain) - 1 + n);
	if (!*msg) {
		free(c);
		return -ENOMEM;
	}
	memcpy(*msg, domain, sizeof(domain) - 1);
	memcpy(*msg + sizeof(domain) - 1, c, n);
	*len = sizeof(domain) - 1 + n;
	free(c);
	return 0;
}

int signed_parse(const char *text, size_t len, EVP_PKEY *admin, const char *type, json_t **body,
		 uint8_t sha256[32], struct err *e)
{
	static const char *const top[] = { "signed", "signatures", NULL };
	static const char *const sigkeys[] = { "keyid", "sig", NULL };
	char want[FPR_HEX_LEN + 1], seen[3 * (FPR_HEX_LEN + 2)] = "";
	json_t *root, *b, *sigs, *s, *t;
	char *msg = NULL;
	size_t mlen = 0, i;
	int rc, found = 0;

	*body = NULL;
	if (len > SIGNED_FILE_MAX)
		return err_set(e, -EFBIG, "not a signed sealvm file: larger than %u bytes", SIGNED_FILE_MAX);
	root = jx_parse(text, len, "signed file", e);
	if (!root)
		return -EINVAL;
	rc = jx_only(root, "signed file", top, e);
	if (rc < 0)
		goto out;
	b = json_object_get(root, "signed");
	sigs = json_object_get(root, "signatures");
	if (!json_is_object(b) || !json_is_array(sigs)) {
		rc = err_set(e, -EINVAL, "not a signed sealvm file: needs \"signed\" (object) and \"signatures\" (list)");
		goto out;
	}
	rc = jx_no_reals(b, e);
	if (rc < 0)
		goto out;
	t = json_object_get(b, "type");
	if (!json_is_string(t)) {
		rc = err_set(e, -EINVAL, "signed content has no \"type\"");
		goto out;
	}
	if (strcmp(json_string_value(t), type)) {
		rc = err_set(e, -EINVAL, "file is a %.40s, expected a %s", json_string_value(t), type);
		goto out;
	}
	if (json_array_size(sigs) == 0 || json_array_size(sigs) > 8) {
		rc = err_set(e, -EINVAL, "not a signed sealvm file: 1 to 8 signatures expected, found %zu",
			     json_array_size(sigs));
		goto out;
	}
	key_fingerprint(admin, want);
	rc = message(b, &msg, &mlen);
	if (rc < 0) {
		err_set(e, rc, "out of memory");
		goto out;
	}
	rc = -EKEYREJECTED;
	json_array_foreach(sigs, i, s) {
		json_t *kid = json_object_get(s, "keyid"), *sv = json_object_get(s, "sig");
		uint8_t *sig;
		size_t slen;

		if (jx_only(s, "signatures[]", sigkeys, e) < 0 || !json_is_string(kid) || !json_is_string(sv)) {
			rc = err_set(e, -EINVAL, "signatures[%zu] needs \"keyid\" and \"sig\" strings", i);
			goto out;
		}
		if (strcmp(json_string_value(kid), want)) {
			if (strlen(seen) + 20 < sizeof(seen))
				snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%s%.16s…", *seen ? ", " : "",
					 json_string_value(kid));
			continue;
		}
		found = 1;
		sig = b64_decode(json_string_value(sv), &slen);
		if (!sig) {
			rc = err_set(e, -EINVAL, "signatures[%zu].sig is not base64", i);
			goto out;
		}
		rc = key_verify(admin, msg, mlen, sig, slen);
		free(sig);
		if (rc == 0)
			break;
	}
	if (!found) {
		rc = err_set(e, -EKEYREJECTED, "not signed by the administrator key %.16s… (signed by: %s)", want,
			     seen);
		goto out;
	}
	if (rc < 0) {
		rc = err_set(e, -EBADMSG, "signature does not match: the file was changed after it was signed");
		goto out;
	}
	if (sha256)
		sha256_buf(msg + sizeof(domain) - 1, mlen - (sizeof(domain) - 1), sha256);
	*body = json_incref(b);
	rc = 0;
out:
	free(msg);
	json_decref(root);
	return rc;
}

int signed_load(const char *path, EVP_PKEY *admin, const char *type, json_t **body, uint8_t sha256[32],
		struct err *e)
{
	char *text;
	size_t len;
	int rc = file_read_all(path, SIGNED_FILE_MAX, &text, &len, e);

	*body = NULL;
	if (rc < 0)
		return rc;
	rc = signed_parse(text, len, admin, type, body, sha256, e);
	free(text);
	return rc < 0 ? err_wrap(e, "%s", path) : 0;
}

int signed_make(json_t *body, EVP_PKEY *key, char **out, struct err *e)
{
	char fpr[FPR_HEX_LEN + 1], *msg, *b64;
	uint8_t *sig;
	size_t mlen, slen;
	json_t *env;
	int rc;

	*out = NULL;
	if (!json_is_string(json_object_get(body, "type")))
		return err_set(e, -EINVAL, "the content to sign has no \"type\"");
	rc = jx_no_reals(body, e);
	if (rc < 0)
		return rc;
	if (message(body, &msg, &mlen) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	rc = key_sign(key, msg, mlen, &sig, &slen, e);
	free(msg);
	if (rc < 0)
		return rc;
	b64 = b64_encode(sig, slen);
	free(sig);
	key_fingerprint(key, fpr);
	env = json_pack("{s:O, s:[{s:s, s:s}]}", "signed", body, "signatures", "keyid", fpr, "sig", b64 ? b64 : "");
	free(b64);
	*out = env ? json_dumps(env, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(env);
	if (!*out)
		return err_set(e, -ENOMEM, "out of memory");
	return 0;
}
