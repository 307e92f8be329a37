#include "guard/hostmeas.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "trust/attest.h"
#include "trust/eventlog.h"
#include "trust/measure.h"
#include "trust/signed_file.h"
#include "util/file.h"
#include "util/hex.h"

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int hash_file(const char *path, uint8_t d[32], char **text, size_t *len, struct err *e)
{
	char *t;
	size_t n;
	int rc = file_read_all(path, SIGNED_FILE_MAX, &t, &n, e);

	if (rc < 0)
		return rc;
	sha256_buf(t, n, d);
	if (text) {
		*text = t;
		*len = n;
	} else {
		free(t);
	}
	return 0;
}

static int load_table(struct hostmeas *h, struct trust_table **t, uint8_t d[32], struct err *e)
{
	char *text;
	size_t len;
	int rc = hash_file(h->table_path, d, &text, &len, e);

	if (rc < 0)
		return rc;
	rc = table_parse(text, len, h->admin, t, e);
	free(text);
	if (rc < 0)
		return err_wrap(e, "integrity validation table %s", h->table_path);
	if ((*t)->expires && (int64_t)time(NULL) > (*t)->expires) {
		table_free(*t);
		*t = NULL;
		return err_set(e, -EKEYEXPIRED, "integrity validation table %s expired", h->table_path);
	}
	return 0;
}

static int load_policy(struct hostmeas *h, struct policy **p, uint8_t d[32], struct err *e)
{
	char *text;
	size_t len;
	int rc = hash_file(h->policy_path, d, &text, &len, e);

	if (rc < 0)
		return rc;
	rc = policy_parse(text, len, h->admin, p, e);
	free(text);
	if (rc < 0)
		return err_wrap(e, "migration policy %s", h->policy_path);
	if (policy_expires(*p) && (int64_t)time(NULL) > policy_expires(*p)) {
		policy_free(*p);
		*p = NULL;
		return err_set(e, -EKEYEXPIRED, "migration policy %s expired", h->policy_path);
	}
	return 0;
}

int hostmeas_open(const char *state_dir, const char *table, const char *policy, const char *tls_dir,
		  struct hostmeas **out, struct err *e)
{
	struct hostmeas *h = calloc(1, sizeof(*h));
	int rc;

	*out = NULL;
	if (!h)
		return err_set(e, -ENOMEM, "out of memory");
	snprintf(h->state_dir, sizeof(h->state_dir), "%s", state_dir);
	snprintf(h->table_path, sizeof(h->table_path), "%s", table);
	snprintf(h->policy_path, sizeof(h->policy_path), "%s", policy);
	snprintf(h->admin_path, sizeof(h->admin_path), "%s/admin.pem", state_dir);
	if (tls_dir)
		snprintf(h->ca_path, sizeof(h->ca_path), "%s/ca.pem", tls_dir);
	if ((rc = host_config_load(state_dir, &h->host, e)) < 0 ||
	    (rc = hash_file(h->admin_path, h->admin_file, NULL, NULL, e)) < 0 ||
	    (rc = key_public_from_file(h->admin_path, &h->admin, e)) < 0)
		goto fail;
	key_fingerprint(h->admin, h->admin_fpr);
	if ((rc = load_table(h, &h->table, h->table_file, e)) < 0 || (rc = load_policy(h, &h->policy, h->policy_file, e)) < 0)
		goto fail;
	if (tls_dir) {
		if ((rc = hash_file(h->ca_path, h->ca_file, NULL, NULL, e)) < 0)
			goto fail;
		h->have_ca = true;
		if (!table_allows_ca(h->table, h->ca_file)) {
			rc = err_set(e, -EPERM, "the cluster CA %s is not one the integrity validation table allows", h->ca_path);
			goto fail;
		}
	}
	*out = h;
	return 0;
fail:
	hostmeas_close(h);
	return rc;
}

void hostmeas_close(struct hostmeas *h)
{
	if (!h)
		return;
	table_free(h->table);
	policy_free(h->policy);
	key_free(h->admin);
	free(h);
}

const struct table_host *hostmeas_self(const struct hostmeas *h)
{
	return table_find(h->table, h->host.name);
}

__attribute__((format(printf, 3, 4))) static void hfail(struct host_result *r, const char *check, const char *fmt, ...)
{
	va_list ap;

	if (!r->ok)
		return;
	r->ok = false;
	snprintf(r->check, sizeof(r->check), "%s", check);
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

/* A changed table: a newer one signed by the administrator is an update. */
static void recheck_table(struct hostmeas *h, struct host_result *r)
{
	struct trust_table *t;
	uint8_t d[32];
	struct err e;

	if (hash_file(h->table_path, d, NULL, NULL, &e) < 0) {
		hfail(r, "config", "%s", e.msg);
		return;
	}
	if (!memcmp(d, h->table_file, 32))
		return;
	if (load_table(h, &t, d, &e) < 0) {
		hfail(r, "config", "%s", e.msg);
		return;
	}
	if (t->serial < h->table->serial || (t->serial == h->table->serial && memcmp(t->sha256, h->table->sha256, 32))) {
		hfail(r, "config", "integrity validation table %s was replaced by %s (serial %llu, ours is %llu)",
		      h->table_path, t->serial < h->table->serial ? "an older one" : "a different table with the same serial",
		      (unsigned long long)t->serial, (unsigned long long)h->table->serial);
		table_free(t);
		return;
	}
	if (t->serial > h->table->serial) {
		snprintf(r->note, sizeof(r->note), "integrity validation table updated: serial %llu -> %llu",
			 (unsigned long long)h->table->serial, (unsigned long long)t->serial);
		r->config_changed = true;
	}
	table_free(h->table);
	h->table = t;
	memcpy(h->table_file, d, 32);
}

static void recheck_policy(struct hostmeas *h, struct host_result *r)
{
	struct policy *p;
	uint8_t d[32];
	struct err e;

	if (hash_file(h->policy_path, d, NULL, NULL, &e) < 0) {
		hfail(r, "config", "%s", e.msg);
		return;
	}
	if (!memcmp(d, h->policy_file, 32))
		return;
	if (load_policy(h, &p, d, &e) < 0) {
		hfail(r, "config", "%s", e.msg);
		return;
	}
	if (policy_serial(p) < policy_serial(h->policy) ||
	    (policy_serial(p) == policy_serial(h->policy) && memcmp(policy_sha256(p), policy_sha256(h->policy), 32))) {
		hfail(r, "config", "migration policy %s was replaced by %s (serial %llu, ours is %llu)", h->policy_path,
		      policy_serial(p) < policy_serial(h->policy) ? "an older one" : "a different policy with the same serial",
		      (unsigned long long)policy_serial(p), (unsigned long long)policy_serial(h->policy));
		policy_free(p);
		return;
	}
	if (policy_serial(p) > policy_serial(h->policy)) {
		snprintf(r->note, sizeof(r->note), "migration policy updated: serial %llu -> %llu",
			 (unsigned long long)policy_serial(h->policy), (unsigned long long)policy_serial(p));
		r->config_changed = true;
	}
	policy_free(h->policy);
	h->policy = p;
	memcpy(h->policy_file, d, 32);
}

static void check_config(struct hostmeas *h, struct host_result *r)
{
	uint8_t d[32];
	struct err e;

	if (hash_file(h->admin_path, d, NULL, NULL, &e) < 0) {
		hfail(r, "config", "%s", e.msg);
		return;
	}
	if (memcmp(d, h->admin_file, 32)) {
		hfail(r, "config", "the administrator key %s changed", h->admin_path);
		return;
	}
	recheck_table(h, r);
	if (r->ok)
		recheck_policy(h, r);
	if (r->ok && h->have_ca) {
		if (hash_file(h->ca_path, d, NULL, NULL, &e) < 0) {
			hfail(r, "config", "%s", e.msg);
		} else if (!table_allows_ca(h->table, d)) {
			hfail(r, "config", "the cluster CA %s was replaced by one the integrity validation table does not allow",
			      h->ca_path);
		} else if (memcmp(d, h->ca_file, 32)) {
			memcpy(h->ca_file, d, 32);
			r->config_changed = true;
			snprintf(r->note, sizeof(r->note), "the cluster CA %s was replaced by another allowed one", h->ca_path);
		}
	}
	if (r->ok && h->table->expires && (int64_t)time(NULL) > h->table->expires)
		hfail(r, "config", "integrity validation table %s expired", h->table_path);
	if (r->ok && policy_expires(h->policy) && (int64_t)time(NULL) > policy_expires(h->policy))
		hfail(r, "config", "migration policy %s expired", h->policy_path);
}

/* The host attests to itself: what a peer would conclude about it right now. */
static void check_tpm(struct hostmeas *h, struct host_result *r)
{
	uint8_t nonce[ATTEST_NONCE_LEN], bound[ATTEST_BOUND_LEN];
	struct attest_expect x = { .peer_name = h->host.name, .policy_serial = policy_serial(h->policy),
				   .accept_guard_alarm = true };
	struct attest_verdict v;
	uint64_t t0 = mono_ns();
	char *blob = NULL;
	size_t len = 0;
	struct err e;

	r->tpm_checked = true;
	if (attest_nonce(nonce, &e) < 0) {
		hfail(r, "tpm", "%s", e.msg);
		return;
	}
	attest_bind(nonce, (const uint8_t *)"sealvm-guard-self", 17, bound);
	if (attest_make_evidence(h->state_dir, h->host.tpm, h->host.name, bound, &blob, &len, &e) < 0) {
		hfail(r, "tpm", "this host cannot quote its measurements: %s", e.msg);
		return;
	}
	attest_verify(blob, len, bound, h->table, &x, &v);
	free(blob);
	h->quotes++;
	r->tpm_ns = mono_ns() - t0;
	r->trust_level = v.trust;
	r->guard_alarm = v.guard_alarm;
	if (!v.ok)
		hfail(r, "tpm", "this host would fail attestation (%s): %s", v.check, v.reason);
}

/* Whether the event log changed since the last quote (and remembers it now). */
static bool log_changed(struct hostmeas *h)
{
	char path[4200];
	struct stat st;
	bool changed;

	snprintf(path, sizeof(path), "%s/eventlog.jsonl", h->state_dir);
	if (stat(path, &st) < 0)
		return true;
	changed = !h->log_known || h->log_ino != st.st_ino || h->log_size != (uint64_t)st.st_size ||
		  h->log_mtime_ns != st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
	h->log_known = true;
	h->log_ino = st.st_ino;
	h->log_size = (uint64_t)st.st_size;
	h->log_mtime_ns = st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
	return changed;
}

void hostmeas_run(struct hostmeas *h, bool quote, struct host_result *r)
{
	uint64_t t0 = mono_ns();

	memset(r, 0, sizeof(*r));
	r->ok = true;
	check_config(h, r);
	/* the configuration the guard now holds is the host's: measured before it is
	 * quoted, or the host would look stale to itself */
	if (r->ok && r->config_changed) {
		struct err e;
		if (hostmeas_measure_config(h, &e) < 0)
			hfail(r, "tpm", "measuring the new trust configuration: %s", e.msg);
	}
	if (log_changed(h))
		quote = true;
	if (r->ok && quote)
		check_tpm(h, r);
	r->ns = mono_ns() - t0;
}

int hostmeas_measure_config(struct hostmeas *h, struct err *e)
{
	char *data = measure_config_data(h->admin_fpr, h->table, h->policy, h->have_ca ? h->ca_file : NULL);
	uint8_t d[32];
	int ext, rc;

	if (!data)
		return err_set(e, -ENOMEM, "out of memory");
	sha256_buf(data, strlen(data), d);
	rc = eventlog_measure(h->state_dir, h->host.tpm, EVENT_TYPE_CONFIG, d, data, &ext, e);
	free(data);
	return rc;
}
