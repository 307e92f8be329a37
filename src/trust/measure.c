#include "trust/measure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trust/eventlog.h"
#include "trust/jsonx.h"
#include "trust/signed_file.h"
#include "util/hex.h"

char *measure_config_data(const char *admin_fpr, const struct trust_table *table, const struct policy *policy,
			  const uint8_t *ca_sha256)
{
	char hex[65];
	json_t *o = json_object();
	char *s;

	if (!o)
		return NULL;
	json_object_set_new(o, "admin", json_string(admin_fpr ? admin_fpr : ""));
	if (table) {
		hex_encode(table->sha256, 32, hex);
		json_object_set_new(o, "table", json_pack("{s:I, s:s}", "serial", (json_int_t)table->serial, "sha256", hex));
	} else {
		json_object_set_new(o, "table", json_null());
	}
	if (policy) {
		hex_encode(policy_sha256(policy), 32, hex);
		json_object_set_new(o, "policy",
				    json_pack("{s:I, s:s}", "serial", (json_int_t)policy_serial(policy), "sha256", hex));
	} else {
		json_object_set_new(o, "policy", json_null());
	}
	if (ca_sha256) {
		hex_encode(ca_sha256, 32, hex);
		json_object_set_new(o, "ca", json_string(hex));
	} else {
		json_object_set_new(o, "ca", json_null());
	}
	s = signed_canonical(o);
	json_decref(o);
	return s;
}

int measure_start(const char *state_dir, const char *tpm_spec, const char *admin_fpr,
		  const struct trust_table *table, const struct policy *policy, const char *ca_path,
		  uint8_t exe_sha256[32], int *events_added, struct err *e)
{
	char exe[4096];
	uint8_t d[32], ca[32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *data;
	int rc, ext = 0;

	*events_added = 0;
	if (n < 0)
		return err_sys(e, -errno, "reading /proc/self/exe");
	exe[n] = 0;
	/* hash the file the kernel runs, not a path someone may have replaced since */
	if ((rc = sha256_file("/proc/self/exe", d, e)) < 0)
		return rc;
	if (exe_sha256)
		memcpy(exe_sha256, d, 32);
	if ((rc = eventlog_measure(state_dir, tpm_spec, EVENT_TYPE_EXE, d, exe, &ext, e)) < 0)
		return rc;
	*events_added += ext;
	if (ca_path && (rc = sha256_file(ca_path, ca, e)) < 0)
		return rc;
	data = measure_config_data(admin_fpr, table, policy, ca_path ? ca : NULL);
	if (!data)
		return err_set(e, -ENOMEM, "out of memory");
	sha256_buf(data, strlen(data), d);
	rc = eventlog_measure(state_dir, tpm_spec, EVENT_TYPE_CONFIG, d, data, &ext, e);
	free(data);
	*events_added += ext;
	return rc;
}

static int part(json_t *o, const char *key, uint64_t *serial, char *why, size_t n)
{
	static const char *const keys[] = { "serial", "sha256", NULL };
	json_t *p = json_object_get(o, key), *s, *h;
	uint8_t d[32];

	*serial = 0;
	if (json_is_null(p))
		return 0;
	s = json_object_get(p, "serial");
	h = json_object_get(p, "sha256");
	if (jx_only(p, key, keys, NULL) < 0 || !json_is_integer(s) || json_integer_value(s) < 1 || !json_is_string(h) ||
	    hex_decode(json_string_value(h), d, 32) < 0) {
		snprintf(why, n, "its trust configuration has a malformed \"%s\"", key);
		return -EPERM;
	}
	*serial = (uint64_t)json_integer_value(s);
	return 1;
}

int measure_config_check(const char *data, const struct trust_table *ours, uint64_t policy_serial, int last,
			 char *why, size_t n)
{
	static const char *const keys[] = { "admin", "table", "policy", "ca", NULL };
	json_t *o = jx_parse(data, strlen(data), "trust configuration", NULL), *a, *ca;
	uint64_t tser, pser;
	uint8_t d[32];
	int rc = -EPERM, have_t, have_p;

	if (!o || jx_only(o, "trust configuration", keys, NULL) < 0) {
		snprintf(why, n, "its trust configuration event is not valid");
		goto out;
	}
	a = json_object_get(o, "admin");
	if (!json_is_string(a) || strcmp(json_string_value(a), ours->signer)) {
		snprintf(why, n, "it trusts another administrator key (%.16s…, ours is %.16s…)",
			 json_is_string(a) ? json_string_value(a) : "?", ours->signer);
		goto out;
	}
	if ((have_t = part(o, "table", &tser, why, n)) < 0 || (have_p = part(o, "policy", &pser, why, n)) < 0)
		goto out;
	if (!have_t) {
		snprintf(why, n, "it runs without an integrity validation table (open mode)");
		goto out;
	}
	ca = json_object_get(o, "ca");
	if (!json_is_null(ca) && (!json_is_string(ca) || hex_decode(json_string_value(ca), d, 32) < 0)) {
		snprintf(why, n, "its trust configuration has a malformed \"ca\"");
		goto out;
	}
	if (json_is_string(ca) && !table_allows_ca(ours, d)) {
		snprintf(why, n, "it uses a cluster CA that is not in the table (%.16s…)", json_string_value(ca));
		goto out;
	}
	if (last && tser < ours->serial) {
		snprintf(why, n, "its integrity validation table is stale (serial %llu, ours is %llu)",
			 (unsigned long long)tser, (unsigned long long)ours->serial);
		goto out;
	}
	if (last && policy_serial && (!have_p || pser < policy_serial)) {
		if (have_p)
			snprintf(why, n, "its migration policy is stale (serial %llu, ours is %llu)", (unsigned long long)pser,
				 (unsigned long long)policy_serial);
		else
			snprintf(why, n, "it runs without a migration policy");
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}
