#include "trust/table.h"

#include <stdlib.h>
#include <string.h>

#include "trust/jsonx.h"
#include "trust/signed_file.h"

static int host_from_json(json_t *o, size_t i, struct table_host *h, struct err *e)
{
	static const char *const keys[] = { "name", "ak", "trust", "expires", "revoked", "sealvm", "note", NULL };
	char where[32];
	json_t *ak;
	int64_t v;
	int rc;

	snprintf(where, sizeof(where), "hosts[%zu]", i);
	if ((rc = jx_only(o, where, keys, e)) < 0 || (rc = jx_str(o, where, "name", true, h->name, sizeof(h->name), e)) < 0)
		return rc;
	if ((rc = jx_int(o, where, "trust", true, 0, 9, 0, &v, e)) < 0)
		return rc;
	h->trust = (int)v;
	if ((rc = jx_int(o, where, "expires", false, 0, INT64_MAX, 0, &h->expires, e)) < 0 ||
	    (rc = jx_bool(o, where, "revoked", false, &h->revoked, e)) < 0 ||
	    (rc = jx_digests(o, where, "sealvm", TABLE_MAX_MEAS, &h->meas, &h->nmeas, e)) < 0)
		return rc;
	if (json_object_get(o, "note") && !json_is_string(json_object_get(o, "note")))
		return err_set(e, -EINVAL, "%s.note is not a string", where);
	ak = json_object_get(o, "ak");
	if (!json_is_string(ak))
		return err_set(e, -EINVAL, "%s (%s): missing \"ak\" (PEM public key)", where, h->name);
	rc = key_public_from_pem(json_string_value(ak), json_string_length(ak), &h->ak, e);
	if (rc < 0)
		return err_wrap(e, "%s (%s).ak", where, h->name);
	if (strcmp(key_type(h->ak), "ecdsa-p256"))
		return err_set(e, -EINVAL, "%s (%s).ak is not an ECDSA P-256 key (TPM attestation keys are)", where,
			       h->name);
	key_fingerprint(h->ak, h->ak_fpr);
	return 0;
}

int table_from_json(json_t *b, struct trust_table **out, struct err *e)
{
	static const char *const keys[] = { "type", "version", "serial", "expires", "min_trust", "sealvm", "ca",
					    "libs", "hosts", "note", NULL };
	struct trust_table *t;
	json_t *hosts, *h;
	int64_t v;
	size_t i;
	int rc;

	*out = NULL;
	if ((rc = jx_only(b, "table", keys, e)) < 0)
		return rc;
	if ((rc = jx_int(b, "table", "version", true, 1, 1, 1, &v, e)) < 0)
		return rc;
	t = calloc(1, sizeof(*t));
	if (!t)
		return err_set(e, -ENOMEM, "out of memory");
	if ((rc = jx_int(b, "table", "serial", true, 1, INT64_MAX, 0, &v, e)) < 0)
		goto fail;
	t->serial = (uint64_t)v;
	if ((rc = jx_int(b, "table", "expires", false, 0, INT64_MAX, 0, &t->expires, e)) < 0)
		goto fail;
	if ((rc = jx_int(b, "table", "min_trust", false, 0, 9, 1, &v, e)) < 0)
		goto fail;
	t->min_trust = (int)v;
	if ((rc = jx_digests(b, "table", "sealvm", TABLE_MAX_MEAS, &t->meas, &t->nmeas, e)) < 0 ||
	    (rc = jx_digests(b, "table", "ca", TABLE_MAX_MEAS, &t->ca, &t->nca, e)) < 0 ||
	    (rc = jx_digests(b, "table", "libs", TABLE_MAX_LIBS, &t->libs, &t->nlibs, e)) < 0)
		goto fail;
	hosts = json_object_get(b, "hosts");
	if (!json_is_array(hosts)) {
		rc = err_set(e, -EINVAL, "table: missing \"hosts\" list");
		goto fail;
	}
	if (json_array_size(hosts) > TABLE_MAX_HOSTS) {
		rc = err_set(e, -E2BIG, "table: more than %d hosts", TABLE_MAX_HOSTS);
		goto fail;
	}
	t->hosts = calloc(json_array_size(hosts) + 1, sizeof(*t->hosts));
	if (!t->hosts) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	json_array_foreach(hosts, i, h) {
		t->nhosts = i + 1;
		if ((rc = host_from_json(h, i, &t->hosts[i], e)) < 0)
			goto fail;
		if (table_find(t, t->hosts[i].name) != &t->hosts[i]) {
			rc = err_set(e, -EINVAL, "hosts[%zu]: host %s is listed twice", i, t->hosts[i].name);
			goto fail;
		}
	}
	*out = t;
	return 0;
fail:
	table_free(t);
	return rc;
}

int table_parse(const char *text, size_t len, EVP_PKEY *admin, struct trust_table **out, struct err *e)
{
	uint8_t sha[32];
	json_t *b;
	int rc = signed_parse(text, len, admin, TABLE_TYPE, &b, sha, e);

	*out = NULL;
	if (rc < 0)
		return rc;
	rc = table_from_json(b, out, e);
	json_decref(b);
	if (rc < 0)
		return rc;
	memcpy((*out)->sha256, sha, 32);
	key_fingerprint(admin, (*out)->signer);
	return 0;
}

int table_load(const char *path, EVP_PKEY *admin, struct trust_table **out, struct err *e)
{
	uint8_t sha[32];
	json_t *b;
	int rc = signed_load(path, admin, TABLE_TYPE, &b, sha, e);

	*out = NULL;
	if (rc < 0)
		return err_wrap(e, "integrity validation table");
	rc = table_from_json(b, out, e);
	json_decref(b);
	if (rc < 0)
		return err_wrap(e, "integrity validation table %s", path);
	memcpy((*out)->sha256, sha, 32);
	key_fingerprint(admin, (*out)->signer);
	return 0;
}

const struct table_host *table_find(const struct trust_table *t, const char *name)
{
	for (size_t i = 0; i < t->nhosts; i++)
		if (!strcmp(t->hosts[i].name, name))
			return &t->hosts[i];
	return NULL;
}

static bool in_list(uint8_t (*l)[32], size_t n, const uint8_t d[32])
{
	for (size_t i = 0; i < n; i++)
		if (!memcmp(l[i], d, 32))
			return true;
	return false;
}

bool table_allows_exe(const struct trust_table *t, const struct table_host *h, const uint8_t digest[32])
{
	return in_list(t->meas, t->nmeas, digest) || (h && in_list(h->meas, h->nmeas, digest));
}

bool table_allows_ca(const struct trust_table *t, const uint8_t digest[32])
{
	return t->nca == 0 || in_list(t->ca, t->nca, digest);
}

bool table_allows_lib(const struct trust_table *t, const uint8_t digest[32])
{
	return t->nlibs == 0 || in_list(t->libs, t->nlibs, digest);
}

void table_free(struct trust_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nhosts; i++) {
		key_free(t->hosts[i].ak);
		free(t->hosts[i].meas);
	}
	free(t->hosts);
	free(t->meas);
	free(t->ca);
	free(t->libs);
	free(t);
}
