/* The audit log: appending (threads and processes at once, torn lines), and every kind
 * of tampering: edit, delete, insert, reorder, cut at the start, cut mid-record, a
 * rewritten chain, forged and foreign heads; with a real swtpm, the TPM counter
 * certification that catches heads cut off the end. Also states, by test, what is NOT
 * detected (a cut right after a signed head when the TPM is not asked). */
#include "unit.h"
#include "swtpm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust/audit.h"
#include "trust/host.h"
#include "trust/keys.h"
#include "util/file.h"
#include "util/hex.h"

static char dir[64];
static EVP_PKEY *pub, *other_pub;

static const char *path_of(const char *name)
{
	static char bufs[4][160];
	static int k;
	char *b = bufs[k++ % 4];

	snprintf(b, 160, "%s/%s", dir, name);
	return b;
}

static char *slurp(const char *path, size_t *len)
{
	char *t = NULL;
	struct err e;

	CHECKF(file_read_all(path, AUDIT_FILE_MAX, &t, len, &e) == 0, "%s", e.msg);
	return t;
}

/* ---- line surgery ---- */

struct lines {
	size_t n;
	char *l[512];
};

static void split(const char *text, struct lines *ls)
{
	const char *p = text;

	ls->n = 0;
	while (*p && ls->n < 512) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		ls->l[ls->n++] = strndup(p, n);
		p += n + (nl ? 1 : 0);
	}
}

static char *join(const struct lines *ls)
{
	size_t total = 1;
	char *out, *o;

	for (size_t i = 0; i < ls->n; i++)
		total += strlen(ls->l[i]) + 1;
	out = o = malloc(total);
	for (size_t i = 0; i < ls->n; i++)
		o += sprintf(o, "%s\n", ls->l[i]);
	*o = 0;
	return out;
}

static void free_lines(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->l[i]);
	ls->n = 0;
}

static const char *event_of(const char *line)
{
	static char ev[32];
	json_t *o = json_loads(line, 0, NULL);
	snprintf(ev, sizeof(ev), "%s", json_string_value(json_object_get(o, "event")) ?: "?");
	json_decref(o);
	return ev;
}

/* Recomputes seq and prev from line `from` on, as an attacker rewriting the chain would. */
static void rechain(struct lines *ls, size_t from)
{
	uint8_t prev[32] = { 0 };
	char hex[65];

	for (size_t i = 0; i < ls->n; i++) {
		if (i >= from) {
			json_t *o = json_loads(ls->l[i], JSON_PRESERVE_ORDER, NULL);
			hex_encode(prev, 32, hex);
			json_object_set_new(o, "seq", json_integer((json_int_t)i));
			json_object_set_new(o, "prev", json_string(hex));
			free(ls->l[i]);
			ls->l[i] = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
			json_decref(o);
		}
		sha256_buf(ls->l[i], strlen(ls->l[i]), prev);
	}
}

static void verify_text(const char *text, EVP_PKEY *key, EVP_PKEY *ak, const char *tpm, struct audit_report *r)
{
	struct audit_verify_opts vo = { .key = key, .ak = ak, .tpm_spec = tpm };

	audit_verify(text, strlen(text), &vo, r);
}

static void expect_bad(const char *what, const struct lines *ls, EVP_PKEY *key, EVP_PKEY *ak, const char *tpm,
		       long long rec, const char *msg)
{
	char *t = join(ls);
	struct audit_report r;

	verify_text(t, key, ak, tpm, &r);
	CHECKF(!r.ok && (rec < 0 || r.bad_record == rec) && strstr(r.reason, msg), "%s: %s (record %lld) [%s]", what,
	       r.ok ? "NOT DETECTED" : "wrong verdict", r.bad_record, r.reason);
	free(t);
}

static void expect_ok(const char *what, const struct lines *ls, EVP_PKEY *key, EVP_PKEY *ak, const char *tpm)
{
	char *t = join(ls);
	struct audit_report r;

	verify_text(t, key, ak, tpm, &r);
	CHECKF(r.ok, "%s: %s", what, r.reason);
	free(t);
}

/* ---- without a TPM ---- */

static void fill(struct audit_log *l, int n, const char *tag)
{
	struct err e = { 0 };

	for (int i = 0; i < n; i++) {
		json_t *f = json_pack("{s:s, s:i, s:s}", "tag", tag, "i", i, "reason", "test record");
		CHECKF(audit_append(l, "policy", f, &e) == 0, "%s", e.msg);
		json_decref(f);
	}
}

static void test_tampering(void)
{
	struct audit_opts ao = { .path = path_of("a.jsonl"), .key_path = path_of("key.pem"), .head_every = 4 };
	struct audit_log *l;
	struct audit_report r;
	struct lines ls, orig;
	struct err e = { 0 };
	size_t len;
	char *text;

	CHECK_INT(audit_open(&ao, &l, &e), 0);
	fill(l, 10, "t");
	audit_close(l);
	text = slurp(ao.path, &len);
	verify_text(text, pub, NULL, NULL, &r);
	/* 10 records, a head after every 3 (seq 3, 7, 11), one at close */
	CHECKF(r.ok && r.records == 14 && r.heads == 4 && r.unsigned_tail == 0, "%s (records %zu heads %zu)", r.reason,
	       r.records, r.heads);
	split(text, &orig);
	CHECK_STR(event_of(orig.l[3]), "head");
	CHECK_STR(event_of(orig.l[13]), "head");

	/* edit a field: the next record's prev no longer matches */
	split(text, &ls);
	{
		char *p = strstr(ls.l[5], "test record");
		memcpy(p, "TEST", 4);
	}
	expect_bad("edit", &ls, pub, NULL, NULL, 6, "hash of record 5: that record was changed");
	free_lines(&ls);
	/* edit the last record before a head: the head's chain link catches it */
	split(text, &ls);
	strstr(ls.l[12], "test record")[0] = 'b';
	expect_bad("edit before head", &ls, pub, NULL, NULL, 13, "prev");
	free_lines(&ls);
	/* edit a signed head's own time */
	split(text, &ls);
	{
		char *p = strstr(ls.l[13], "\"time\":\"") + 8;
		p[3] = p[3] == '9' ? '8' : '9';
	}
	expect_bad("edit head time", &ls, pub, NULL, NULL, 13, "head signature does not match");
	free_lines(&ls);
	/* delete a record */
	split(text, &ls);
	free(ls.l[5]);
	memmove(&ls.l[5], &ls.l[6], (ls.n - 6) * sizeof(char *));
	ls.n--;
	expect_bad("delete", &ls, pub, NULL, NULL, 5, "records were removed");
	free_lines(&ls);
	/* reorder two records */
	split(text, &ls);
	{
		char *t = ls.l[5];
		ls.l[5] = ls.l[6];
		ls.l[6] = t;
	}
	expect_bad("reorder", &ls, pub, NULL, NULL, 5, "has seq 6");
	free_lines(&ls);
	/* insert a record and rewrite the chain after it (no key: the next head fails) */
	split(text, &ls);
	memmove(&ls.l[6], &ls.l[5], (ls.n - 5) * sizeof(char *));
	ls.n++;
	ls.l[5] = strdup("{\"seq\":5,\"time\":\"2026-01-01T00:00:00.000Z\",\"prev\":\"00\",\"event\":\"policy\",\"forged\":true}");
	rechain(&ls, 5);
	expect_bad("insert + rechain", &ls, pub, NULL, NULL, 8, "head signature does not match");
	free_lines(&ls);
	/* delete a record and rechain: same */
	split(text, &ls);
	free(ls.l[1]);
	memmove(&ls.l[1], &ls.l[2], (ls.n - 2) * sizeof(char *));
	ls.n--;
	rechain(&ls, 1);
	expect_bad("delete + rechain", &ls, pub, NULL, NULL, 2, "head signature does not match");
	free_lines(&ls);
	/* cut off the beginning */
	split(text, &ls);
	for (int i = 0; i < 2; i++)
		free(ls.l[i]);
	memmove(&ls.l[0], &ls.l[2], (ls.n - 2) * sizeof(char *));
	ls.n -= 2;
	expect_bad("cut start", &ls, pub, NULL, NULL, 0, "beginning was cut off");
	free_lines(&ls);
	/* cut mid-record (a torn or truncated last line) */
	{
		char *t = strdup(text);
		t[strlen(t) - 10] = 0;
		verify_text(t, pub, NULL, NULL, &r);
		CHECKF(!r.ok && r.bad_record == 13 && strstr(r.reason, "cut mid-record"), "%s", r.reason);
		free(t);
	}
	/* a head signed by another key; a head's signature copied from another head */
	split(text, &ls);
	verify_text(text, other_pub, NULL, NULL, &r);
	CHECKF(!r.ok && r.bad_record == 3 && strstr(r.reason, "not the host's audit key"), "%s", r.reason);
	{
		json_t *h3 = json_loads(ls.l[3], JSON_PRESERVE_ORDER, NULL), *h7 = json_loads(ls.l[7], JSON_PRESERVE_ORDER, NULL);
		json_object_set(h7, "sig", json_object_get(h3, "sig"));
		free(ls.l[7]);
		ls.l[7] = json_dumps(h7, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(h3);
		json_decref(h7);
		rechain(&ls, 8);
	}
	expect_bad("copied head signature", &ls, pub, NULL, NULL, 7, "head signature does not match");
	free_lines(&ls);
	/* a duplicated key is refused */
	split(text, &ls);
	{
		char *p = strstr(ls.l[2], "\"event\"");
		char *n = malloc(strlen(ls.l[2]) + 32);
		sprintf(n, "%.*s\"seq\":99,%s", (int)(p - ls.l[2]), ls.l[2], p);
		free(ls.l[2]);
		ls.l[2] = n;
	}
	expect_bad("duplicate key", &ls, pub, NULL, NULL, 2, "not a valid audit record");
	free_lines(&ls);

	/* NOT detected without a TPM: a cut right after a signed head (the file cannot say
	 * how long it was); and records after the last head are not signed yet */
	split(text, &ls);
	for (size_t i = 8; i < ls.n; i++)
		free(ls.l[i]);
	ls.n = 8;   /* ends with the head at seq 7 */
	expect_ok("cut after a head (undetectable without a TPM)", &ls, pub, NULL, NULL);
	free_lines(&ls);

	free_lines(&orig);
	free(text);
}

static void test_torn_and_reserved(void)
{
	struct audit_opts ao = { .path = path_of("torn.jsonl"), .key_path = path_of("key.pem") };
	struct audit_log *l;
	struct audit_report r;
	struct err e = { 0 };
	size_t len;
	char *text;
	FILE *f;

	CHECK_INT(audit_open(&ao, &l, &e), 0);
	fill(l, 3, "x");
	CHECK_INT(audit_append_json(l, "{\"event\":\"attest\",\"host\":\"hostb\",\"result\":\"pass\"}", &e), 0);
	CHECK_INT(audit_append_json(l, "{\"host\":\"hostb\"}", &e), -EINVAL);
	CHECK_INT(audit_append_json(l, "{\"event\":\"x\",\"seq\":1}", &e), -EINVAL);
	CHECKF(strstr(e.msg, "reserved"), "%s", e.msg);
	CHECK_INT(audit_append(l, "head", NULL, &e), -EINVAL);
	/* another process crashed mid-write */
	f = fopen(ao.path, "a");
	fputs("{\"seq\":5,\"time\":\"x\",\"pre", f);
	fclose(f);
	fill(l, 1, "after");
	audit_close(l);
	text = slurp(ao.path, &len);
	verify_text(text, pub, NULL, NULL, &r);
	CHECKF(r.ok, "%s", r.reason);
	CHECKF(strstr(text, "\"event\":\"audit-torn\",\"bytes\":24"), "torn line not recorded:\n%s", text);
	free(text);
	/* a key that others can read is refused */
	chmod(ao.key_path, 0644);
	CHECK_INT(audit_open(&ao, &l, &e), -EACCES);
	CHECKF(strstr(e.msg, "chmod 600"), "%s", e.msg);
	chmod(ao.key_path, 0600);
}

struct worker {
	struct audit_log *l;
	int n;
};

static void *thread_main(void *p)
{
	struct worker *w = p;

	fill(w->l, w->n, "thread");
	return NULL;
}

static void test_concurrency(void)
{
	struct audit_opts ao = { .path = path_of("c.jsonl"), .key_path = path_of("key.pem"), .head_every = 8 };
	struct audit_log *l;
	struct audit_report r;
	struct worker w[3];
	pthread_t th[3];
	pid_t kids[2];
	struct err e = { 0 };
	size_t len, records = 0;
	char *text;

	int failures_before = unit_failures_;

	CHECK_INT(audit_open(&ao, &l, &e), 0);
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			struct audit_log *mine;
			if (audit_open(&ao, &mine, &e) < 0)
				_exit(1);
			fill(mine, 40, "process");
			audit_close(mine);
			_exit(unit_failures_ != failures_before ? 1 : 0);
		}
	}
	for (int i = 0; i < 3; i++) {
		w[i] = (struct worker){ l, 40 };
		pthread_create(&th[i], NULL, thread_main, &w[i]);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++) {
		int st;
		waitpid(kids[i], &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	audit_close(l);
	text = slurp(ao.path, &len);
	verify_text(text, pub, NULL, NULL, &r);
	for (const char *p = text; (p = strstr(p, "\"event\":\"policy\"")); p++)
		records++;
	CHECKF(r.ok, "%s", r.reason);
	CHECK_INT(records, 5 * 40);
	CHECKF(r.heads >= 200 / 8, "%zu heads", r.heads);
	free(text);
}

/* ---- with a real TPM ---- */

static void test_tpm(void)
{
	struct swtpm tpm;
	struct host_config hc;
	struct audit_log *l;
	struct audit_report r;
	struct err e = { 0 };
	struct lines ls;
	EVP_PKEY *ak = NULL, *key = NULL;
	char sd[128], log[160], keyp[160], akp[160];
	size_t len, heads[16], nh = 0;
	char *text;

	if (swtpm_start(&tpm) < 0) {
		fprintf(stderr, "swtpm not available: TPM part skipped\n");
		return;
	}
	snprintf(sd, sizeof(sd), "%s/state", dir);
	CHECKF(host_init(sd, "hosta", tpm.spec, NULL, &hc, &e) == 0, "%s", e.msg);
	snprintf(log, sizeof(log), "%s/audit.jsonl", sd);
	snprintf(keyp, sizeof(keyp), "%s/audit-key.pem", sd);
	snprintf(akp, sizeof(akp), "%s/ak.pem", sd);
	{
		struct audit_opts ao = { .path = log, .key_path = keyp, .tpm_spec = tpm.spec, .head_every = 4 };
		CHECK_INT(audit_open(&ao, &l, &e), 0);
		fill(l, 10, "tpm");
		audit_close(l);
	}
	{
		char pubp[160];
		snprintf(pubp, sizeof(pubp), "%s/audit-key.pub.pem", sd);
		CHECK_INT(key_public_from_file(pubp, &key, &e), 0);
		CHECK_INT(key_public_from_file(akp, &ak, &e), 0);
	}
	text = slurp(log, &len);
	verify_text(text, key, ak, tpm.spec, &r);
	CHECKF(r.ok && r.tpm_checked, "%s", r.reason);
	split(text, &ls);
	for (size_t i = 0; i < ls.n; i++)
		if (!strcmp(event_of(ls.l[i]), "head"))
			heads[nh++] = i;
	CHECKF(nh >= 4, "%zu heads", nh);
	free_lines(&ls);

	/* the last signed head cut off: the TPM's counter has moved on */
	split(text, &ls);
	for (size_t i = heads[nh - 1]; i < ls.n; i++)
		free(ls.l[i]);
	ls.n = heads[nh - 1];
	expect_ok("cut last head, TPM not asked", &ls, key, ak, NULL);
	expect_bad("cut last head", &ls, key, ak, tpm.spec, -1, "1 signed head(s) were cut off the end");
	free_lines(&ls);
	/* cut after an earlier head */
	split(text, &ls);
	for (size_t i = heads[1] + 1; i < ls.n; i++)
		free(ls.l[i]);
	ls.n = heads[1] + 1;
	expect_bad("cut after head 2", &ls, key, ak, tpm.spec, -1, "were cut off the end");
	free_lines(&ls);
	/* a head's TPM part copied from another head */
	split(text, &ls);
	{
		size_t a = heads[1], b = heads[2];
		json_t *ha = json_loads(ls.l[a], JSON_PRESERVE_ORDER, NULL), *hb = json_loads(ls.l[b], JSON_PRESERVE_ORDER, NULL);
		json_object_set(hb, "tpm", json_object_get(ha, "tpm"));
		free(ls.l[b]);
		ls.l[b] = json_dumps(hb, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(ha);
		json_decref(hb);
		rechain(&ls, b + 1);
		expect_bad("copied TPM certification", &ls, key, ak, tpm.spec, (long long)b, "another chain position");
	}
	free_lines(&ls);
	/* a head whose claimed counter differs from the certified one */
	split(text, &ls);
	{
		size_t b = heads[2];
		json_t *hb = json_loads(ls.l[b], JSON_PRESERVE_ORDER, NULL);
		json_t *t = json_object_get(hb, "tpm");
		json_object_set_new(t, "counter", json_integer(json_integer_value(json_object_get(t, "counter")) + 5));
		free(ls.l[b]);
		ls.l[b] = json_dumps(hb, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(hb);
		rechain(&ls, b + 1);
		expect_bad("claimed counter", &ls, key, ak, tpm.spec, (long long)b, "but the TPM certified");
	}
	free_lines(&ls);
	/* root cuts the log after the second head and appends new records: the TPM
	 * certifies the new heads, but with counter values that skip the cut ones */
	{
		struct lines cut;
		char *t;
		struct audit_opts ao = { .path = log, .key_path = keyp, .tpm_spec = tpm.spec, .head_every = 4 };

		split(text, &cut);
		for (size_t i = heads[1] + 1; i < cut.n; i++)
			free(cut.l[i]);
		cut.n = heads[1] + 1;
		t = join(&cut);
		CHECK_INT(file_write_atomic(log, t, strlen(t), 0600, &e), 0);
		free(t);
		free_lines(&cut);
		CHECK_INT(audit_open(&ao, &l, &e), 0);
		fill(l, 5, "after the cut");
		audit_close(l);
		t = slurp(log, &len);
		verify_text(t, key, ak, tpm.spec, &r);
		CHECKF(!r.ok && strstr(r.reason, "signed heads between them were removed"), "cut and continued: %s",
		       r.ok ? "NOT DETECTED" : r.reason);
		free(t);
	}
	/* a head without its TPM part when the AK is known */
	split(text, &ls);
	{
		size_t b = heads[2];
		json_t *hb = json_loads(ls.l[b], JSON_PRESERVE_ORDER, NULL);
		json_object_del(hb, "tpm");
		free(ls.l[b]);
		ls.l[b] = json_dumps(hb, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(hb);
		rechain(&ls, b + 1);
		expect_bad("stripped TPM part", &ls, key, ak, NULL, (long long)b, "no TPM counter certification");
	}
	free_lines(&ls);
	free(text);
	key_free(ak);
	key_free(key);
	swtpm_stop(&tpm);
}

int main(void)
{
	struct err e = { 0 };
	EVP_PKEY *k, *o;

	snprintf(dir, sizeof(dir), "/tmp/trust-audit.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	CHECK_INT(key_generate("ed25519", &k, &e), 0);
	CHECK_INT(key_save(k, path_of("key.pem"), path_of("key.pub.pem"), &e), 0);
	CHECK_INT(key_public_from_file(path_of("key.pub.pem"), &pub, &e), 0);
	CHECK_INT(key_generate("ed25519", &o, &e), 0);
	{
		char *pem = key_public_pem(o);
		CHECK_INT(key_public_from_pem(pem, strlen(pem), &other_pub, &e), 0);
		free(pem);
	}
	test_tampering();
	test_torn_and_reserved();
	test_concurrency();
	test_tpm();
	key_free(k);
	key_free(o);
	key_free(pub);
	key_free(other_pub);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return unit_done();
}
