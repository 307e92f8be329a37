#include "trust/host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trust/jsonx.h"
#include "trust/measure.h"
#include "trust/tpm.h"
#include "util/file.h"
#include "util/hex.h"

const char *host_path(const char *state_dir, const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s", state_dir, name);
	return buf;
}

static int mkdir_p(const char *dir, struct err *e)
{
	char tmp[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return err_set(e, -EINVAL, "bad state directory '%s'", dir);
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return err_sys(e, -errno, "creating %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return err_sys(e, -errno, "creating %s", tmp);
	return 0;
}

/* The audit key, created on first use (a host in open mode has one too). */
static int ensure_audit_key(const char *dir, struct err *e)
{
	char priv[4200], pub[4200];
	EVP_PKEY *k;
	int rc;

	host_path(dir, "audit-key.pem", priv, sizeof(priv));
	host_path(dir, "audit-key.pub.pem", pub, sizeof(pub));
	if (access(priv, F_OK) == 0)
		return 0;
	if ((rc = key_generate("ed25519", &k, e)) < 0)
		return rc;
	rc = key_save(k, priv, pub, e);
	key_free(k);
	return rc;
}

int host_config_load(const char *state_dir, struct host_config *c, struct err *e)
{
	static const char *const keys[] = { "name", "tpm", "ak", NULL };
	char path[4200], *text;
	size_t len;
	json_t *o;
	int rc;

	memset(c, 0, sizeof(*c));
	host_path(state_dir, "host.json", path, sizeof(path));
	if ((rc = file_read_all(path, 65536, &text, &len, e)) < 0)
		return rc == -ENOENT ? err_set(e, -ENOENT, "%s has no host.json: run sealvm host init --state-dir %s",
					       state_dir, state_dir)
				     : rc;
	o = jx_parse(text, len, path, e);
	free(text);
	if (!o)
		return -EINVAL;
	if ((rc = jx_only(o, path, keys, e)) < 0 || (rc = jx_str(o, path, "name", true, c->name, sizeof(c->name), e)) < 0 ||
	    (rc = jx_str(o, path, "tpm", true, c->tpm, sizeof(c->tpm), e)) < 0 ||
	    (rc = jx_str(o, path, "ak", true, c->ak_fpr, sizeof(c->ak_fpr), e)) < 0) {
		json_decref(o);
		return rc;
	}
	json_decref(o);
	return tpm_spec_check(c->tpm, e);
}

static int open_audit(const char *dir, const char *tpm_spec, struct audit_log **out, struct err *e)
{
	char log[4200], key[4200];
	struct audit_opts ao = {
		.path = host_path(dir, "audit.jsonl", log, sizeof(log)),
		.key_path = host_path(dir, "audit-key.pem", key, sizeof(key)),
		.tpm_spec = tpm_spec,
	};

	return audit_open(&ao, out, e);
}

int host_init(const char *state_dir, const char *name, const char *tpm_spec, const char *admin_pub,
	      struct host_config *out, struct err *e)
{
	char path[4200], *pem = NULL, *text = NULL;
	EVP_PKEY *ak = NULL, *admin = NULL;
	struct audit_log *log = NULL;
	struct tpm *t = NULL;
	json_t *o;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!name || !*name || strlen(name) >= sizeof(out->name) || strpbrk(name, " \t\n/\"\\"))
		return err_set(e, -EINVAL, "host name '%s' must be 1-%zu characters without spaces, quotes or slashes",
			       name ? name : "", sizeof(out->name) - 1);
	if (strlen(tpm_spec) >= sizeof(out->tpm))
		return err_set(e, -EINVAL, "TPM spec too long");
	if ((rc = tpm_spec_check(tpm_spec, e)) < 0 || (rc = mkdir_p(state_dir, e)) < 0)
		return rc;
	if (admin_pub && (rc = key_public_from_file(admin_pub, &admin, e)) < 0)
		return err_wrap(e, "--admin-key");
	if ((rc = tpm_connect(tpm_spec, &t, e)) < 0 || (rc = tpm_create_ak(t, &ak, e)) < 0 ||
	    (rc = tpm_counter_define(t, e)) < 0)
		goto out;
	tpm_disconnect(t);
	t = NULL;
	pem = key_public_pem(ak);
	if (!pem) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = file_write_atomic(host_path(state_dir, "ak.pem", path, sizeof(path)), pem, strlen(pem), 0644, e)) < 0)
		goto out;
	free(pem);
	pem = NULL;
	if (admin) {
		pem = key_public_pem(admin);
		if (!pem || (rc = file_write_atomic(host_path(state_dir, "admin.pem", path, sizeof(path)), pem,
						    strlen(pem), 0644, e)) < 0) {
			if (!pem)
				rc = err_set(e, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if ((rc = ensure_audit_key(state_dir, e)) < 0)
		goto out;
	snprintf(out->name, sizeof(out->name), "%s", name);
	snprintf(out->tpm, sizeof(out->tpm), "%s", tpm_spec);
	key_fingerprint(ak, out->ak_fpr);
	o = json_pack("{s:s, s:s, s:s}", "name", out->name, "tpm", out->tpm, "ak", out->ak_fpr);
	text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!text) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = file_write_atomic(host_path(state_dir, "host.json", path, sizeof(path)), text, strlen(text), 0644, e)) < 0)
		goto out;
	if ((rc = open_audit(state_dir, tpm_spec, &log, e)) < 0)
		goto out;
	o = json_pack("{s:s, s:s, s:s}", "host", out->name, "tpm", out->tpm, "ak", out->ak_fpr);
	if (admin) {
		char fpr[FPR_HEX_LEN + 1];
		key_fingerprint(admin, fpr);
		json_object_set_new(o, "admin", json_string(fpr));
	}
	rc = audit_append(log, "host-init", o, e);
	json_decref(o);
	if (rc == 0)
		rc = audit_sign_head(log, e);
out:
	audit_close(log);
	tpm_disconnect(t);
	free(pem);
	free(text);
	key_free(ak);
	key_free(admin);
	return rc;
}

static void fill_start_record(json_t *o, const struct trust_ctx *c, const struct trust_opts *opt)
{
	char hex[65];

	json_object_set_new(o, "role", json_string(opt->role ? opt->role : "?"));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "mode", json_string(c->open_mode ? "open" : "trusted"));
	if (c->host.name[0])
		json_object_set_new(o, "host", json_string(c->host.name));
	if (!c->open_mode) {
		hex_encode(c->exe_sha256, 32, hex);
		json_object_set_new(o, "exe", json_string(hex));
		json_object_set_new(o, "table_serial", json_integer((json_int_t)c->table->serial));
		json_object_set_new(o, "policy_serial", json_integer((json_int_t)policy_serial(c->policy)));
		json_object_set_new(o, "measurements_added", json_integer(c->events_added));
	}
}

int trust_start(const struct trust_opts *o, struct trust_ctx **out, struct err *e)
{
	const char *dir = o->state_dir ? o->state_dir : STATE_DIR_DEFAULT;
	struct trust_ctx *c;
	char path[4200], fpr[FPR_HEX_LEN + 1];
	int64_t now = (int64_t)time(NULL);
	json_t *rec;
	int rc;

	*out = NULL;
	if (!!o->table != !!o->policy)
		return err_set(e, -EINVAL, "--table and --policy go together (trusted mode needs both; neither is open mode)");
	if (strlen(dir) >= sizeof(c->state_dir) - 64)
		return err_set(e, -ENAMETOOLONG, "state directory path too long");
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", dir);
	c->open_mode = !o->table;
	if (c->open_mode) {
		/* no host init needed; a host.json, if there, names the host in the records */
		struct err ignored;
		if ((rc = mkdir_p(dir, e)) < 0 || (rc = ensure_audit_key(dir, e)) < 0)
			goto fail;
		if (host_config_load(dir, &c->host, &ignored) < 0)
			memset(&c->host, 0, sizeof(c->host));
	} else {
		if ((rc = host_config_load(dir, &c->host, e)) < 0)
			goto fail;
		if (o->tpm) {
			if (strlen(o->tpm) >= sizeof(c->host.tpm)) {
				rc = err_set(e, -EINVAL, "--tpm: spec too long");
				goto fail;
			}
			if ((rc = tpm_spec_check(o->tpm, e)) < 0) {
				err_wrap(e, "--tpm");
				goto fail;
			}
			snprintf(c->host.tpm, sizeof(c->host.tpm), "%s", o->tpm);
		}
		if ((rc = key_public_from_file(host_path(dir, "admin.pem", path, sizeof(path)), &c->admin, e)) < 0) {
			err_wrap(e, "administrator key (set it with sealvm host init --admin-key)");
			goto fail;
		}
		if ((rc = table_load(o->table, c->admin, &c->table, e)) < 0 ||
		    (rc = policy_load(o->policy, c->admin, &c->policy, e)) < 0)
			goto fail;
		if (c->table->expires && now > c->table->expires) {
			rc = err_set(e, -EKEYEXPIRED, "integrity validation table %s expired at %lld", o->table,
				     (long long)c->table->expires);
			goto fail;
		}
		if (policy_expires(c->policy) && now > policy_expires(c->policy)) {
			rc = err_set(e, -EKEYEXPIRED, "migration policy %s expired at %lld", o->policy,
				     (long long)policy_expires(c->policy));
			goto fail;
		}
		if (!table_find(c->table, c->host.name))
			fprintf(stderr, "sealvm: warning: this host (%s) is not in the integrity validation table %s: "
					"peers will refuse it\n", c->host.name, o->table);
		key_fingerprint(c->admin, fpr);
		if ((rc = measure_start(dir, c->host.tpm, fpr, c->table, c->policy, o->ca, c->exe_sha256,
					&c->events_added, e)) < 0) {
			err_wrap(e, "measuring sealvm into the TPM");
			goto fail;
		}
	}
	/* an initialised host certifies its log's heads with its TPM in open mode too, so
	 * the log stays one verifiable sequence whichever mode each process ran in */
	if ((rc = open_audit(dir, c->host.tpm[0] ? c->host.tpm : NULL, &c->audit, e)) < 0)
		goto fail;
	rec = json_object();
	fill_start_record(rec, c, o);
	rc = audit_append(c->audit, "start", rec, e);
	json_decref(rec);
	if (rc < 0)
		goto fail;
	if (c->open_mode)
		fprintf(stderr, "sealvm: OPEN MODE: no --table/--policy: peers are not attested and no migration policy "
				"applies (any cluster host is accepted); recorded in %s/audit.jsonl\n", dir);
	*out = c;
	return 0;
fail:
	trust_stop(c);
	return rc;
}

void trust_stop(struct trust_ctx *c)
{
	if (!c)
		return;
	if (c->audit) {
		struct err e;
		json_t *o = json_pack("{s:i}", "pid", getpid());
		if (audit_append(c->audit, "stop", o, &e) < 0)
			fprintf(stderr, "sealvm: audit log: %s\n", e.msg);
		json_decref(o);
		audit_close(c->audit);
	}
	table_free(c->table);
	policy_free(c->policy);
	key_free(c->admin);
	free(c);
}
