/* Attestation against a real swtpm: host init, measuring at start (deduplicated, with a
 * log that must match the PCR, and a new log after a TPM restart), quotes, and every
 * refusal with the check it names: unknown, revoked, expired or low-trust host, wrong
 * TLS peer, forged or altered quote, replayed or relayed nonce, event log that does not
 * replay, unknown sealvm build, stale table or policy, another administrator, unknown
 * CA, open mode. Also binds nonces to real TLS 1.3 sessions (exporter). Prints the
 * time a quote and a verification take. */
#include "unit.h"
#include "swtpm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channel/channel.h"
#include "trust/attest.h"
#include "trust/eventlog.h"
#include "trust/host.h"
#include "trust/measure.h"
#include "trust/signed_file.h"
#include "util/file.h"
#include "util/hex.h"

static char dir[64], sd[128];
static struct swtpm tpm;
static EVP_PKEY *admin, *admin_pub, *other_admin;
static char ak_json[1024], exe_hex[65];

static const char *path_of(const char *name)
{
	static char bufs[4][200];
	static int k;
	char *b = bufs[k++ % 4];

	snprintf(b, 200, "%s/%s", dir, name);
	return b;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void write_signed(const char *path, const char *body, EVP_PKEY *k)
{
	struct err e = { 0 };
	json_t *b = json_loads(body, 0, NULL);
	char *t = NULL;

	CHECKF(b && signed_make(b, k, &t, &e) == 0, "%s", b ? e.msg : body);
	CHECK_INT(file_write_atomic(path, t, strlen(t), 0644, &e), 0);
	free(t);
	json_decref(b);
}

/* A table for hostb; extra is spliced into hostb's entry, top into the table. */
static struct trust_table *table(const char *top, const char *extra, const char *exe, EVP_PKEY *signer)
{
	char body[4096];
	struct trust_table *t = NULL;
	struct err e = { 0 };
	char *text;
	size_t len;

	snprintf(body, sizeof(body),
		 "{\"type\":\"sealvm-table\",\"version\":1,%s\"sealvm\":[\"%s\"],"
		 "\"hosts\":[{\"name\":\"hostb\",\"ak\":%s,\"trust\":2%s}]}",
		 top ? top : "\"serial\":2,", exe ? exe : exe_hex, ak_json, extra ? extra : "");
	write_signed(path_of("t.json"), body, signer ? signer : admin);
	CHECK_INT(file_read_all(path_of("t.json"), 1 << 20, &text, &len, &e), 0);
	CHECKF(table_parse(text, len, signer ? signer : admin, &t, &e) == 0, "%s", e.msg);
	free(text);
	return t;
}

static char *evidence(const uint8_t bound[32])
{
	struct err e = { 0 };
	char *blob = NULL;
	size_t len;

	CHECKF(attest_make_evidence(sd, tpm.spec, "hostb", bound, &blob, &len, &e) == 0, "%s", e.msg);
	return blob;
}

static void expect(const char *what, const char *blob, const uint8_t bound[32], const struct trust_table *t,
		   const char *peer, uint64_t pser, int64_t now, const char *check, const char *msg)
{
	struct attest_expect x = { .peer_name = peer, .policy_serial = pser, .now = now };
	struct attest_verdict v;

	attest_verify(blob, blob ? strlen(blob) : 0, bound, t, &x, &v);
	if (!check) {
		CHECKF(v.ok && !strcmp(v.check, "ok"), "%s: refused: %s", what, v.reason);
		return;
	}
	CHECKF(!v.ok && !strcmp(v.check, check) && strstr(v.reason, msg), "%s: %s [%s] %s", what,
	       v.ok ? "ACCEPTED" : "wrong check", v.check, v.reason);
}

/* evidence with one JSON field changed by fn */
static char *mutate(const char *blob, void (*fn)(json_t *o))
{
	json_t *o = json_loads(blob, JSON_PRESERVE_ORDER, NULL);
	char *out;

	fn(o);
	out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return out;
}

static void flip_quote(json_t *o)
{
	size_t n;
	uint8_t *q = b64_decode(json_string_value(json_object_get(o, "quote")), &n);
	char *s;

	q[80] ^= 1;   /* magic 4, type 2, signer 36, extra 34: then the clock */
	s = b64_encode(q, n);
	json_object_set_new(o, "quote", json_string(s));
	free(s);
	free(q);
}

static char *saved_sig;
static void swap_sig(json_t *o)
{
	json_object_set_new(o, "sig", json_string(saved_sig));
}

static void drop_event(json_t *o)
{
	json_t *ev = json_object_get(o, "events");
	json_array_remove(ev, json_array_size(ev) - 1);
}

static void change_digest(json_t *o)
{
	json_t *ev = json_array_get(json_object_get(o, "events"), 0);
	json_object_set_new(ev, "digest", json_string("1111111111111111111111111111111111111111111111111111111111111111"));
}

static void change_config(json_t *o)
{
	json_t *ev = json_object_get(o, "events");
	for (size_t i = 0; i < json_array_size(ev); i++) {
		json_t *x = json_array_get(ev, i);
		if (!strcmp(json_string_value(json_object_get(x, "type")), "trust-config"))
			json_object_set_new(x, "data", json_string("{\"admin\":\"x\",\"table\":null,\"policy\":null,\"ca\":null}"));
	}
}

static void other_host(json_t *o)
{
	json_object_set_new(o, "host", json_string("hostc"));
}

static void test_measure_and_verify(void)
{
	struct trust_opts o = { .state_dir = sd, .table = path_of("table.signed"), .policy = path_of("policy.signed"),
				.role = "test" };
	struct trust_ctx *ctx;
	struct err e = { 0 };
	uint8_t nonce[32], bound[32], bound2[32], ekm[32] = { 1, 2, 3 };
	struct trust_table *t;
	char *blob, *m;
	double t0, tq = 0, tv = 0;
	int rounds = 5;

	CHECKF(trust_start(&o, &ctx, &e) == 0, "%s", e.msg);
	if (!ctx)
		return;
	CHECK(!ctx->open_mode);
	CHECK_INT(ctx->events_added, 2);
	hex_encode(ctx->exe_sha256, 32, exe_hex);
	trust_stop(ctx);
	/* the same configuration again: nothing new to measure */
	CHECKF(trust_start(&o, &ctx, &e) == 0, "%s", e.msg);
	if (ctx)
		CHECK_INT(ctx->events_added, 0);
	trust_stop(ctx);

	t = table(NULL, NULL, NULL, NULL);
	attest_nonce(nonce, &e);
	attest_bind(nonce, ekm, sizeof(ekm), bound);
	for (int i = 0; i < rounds; i++) {
		struct attest_expect x = { .peer_name = "hostb", .policy_serial = 2 };
		struct attest_verdict v;
		t0 = now_ms();
		blob = evidence(bound);
		tq += now_ms() - t0;
		t0 = now_ms();
		attest_verify(blob, strlen(blob), bound, t, &x, &v);
		tv += now_ms() - t0;
		CHECKF(v.ok, "%s", v.reason);
		if (i < rounds - 1)
			free(blob);
	}
	fprintf(stderr, "quote + evidence: %.2f ms, verification: %.2f ms (mean of %d, ASan build)\n", tq / rounds,
		tv / rounds, rounds);

	expect("good", blob, bound, t, "hostb", 2, 0, NULL, NULL);
	/* nonce: another challenge, or the same nonce on another TLS session */
	attest_nonce(nonce, &e);
	attest_bind(nonce, ekm, sizeof(ekm), bound2);
	expect("replayed quote", blob, bound2, t, "hostb", 2, 0, "nonce", "different challenge");
	ekm[0] ^= 1;
	attest_bind(nonce, ekm, sizeof(ekm), bound2);
	expect("relayed from another session", blob, bound2, t, "hostb", 2, 0, "nonce", "another TLS session");
	/* host */
	expect("wrong TLS peer", blob, bound, t, "hosta", 2, 0, "host", "but the TLS peer is hosta");
	m = mutate(blob, other_host);
	expect("claims another host", m, bound, t, "hostc", 2, 0, "host", "not in the integrity validation table");
	free(m);
	table_free(t);
	t = table(NULL, ",\"revoked\":true", NULL, NULL);
	expect("revoked", blob, bound, t, "hostb", 2, 0, "host", "revoked");
	table_free(t);
	t = table(NULL, ",\"expires\":1000", NULL, NULL);
	expect("expired entry", blob, bound, t, "hostb", 2, 0, "host", "expired");
	table_free(t);
	t = table("\"serial\":2,\"expires\":2000000000,", NULL, NULL, NULL);
	expect("expired table", blob, bound, t, "hostb", 2, 2000000001, "host", "our integrity validation table expired");
	table_free(t);
	t = table("\"serial\":2,\"min_trust\":3,", NULL, NULL, NULL);
	expect("low trust", blob, bound, t, "hostb", 2, 0, "host", "trust level 2, below the required 3");
	table_free(t);
	/* signature */
	{
		EVP_PKEY *k;
		char *pem, *q;
		json_t *s;
		char saved[1024];

		key_generate("ecdsa-p256", &k, &e);
		pem = key_public_pem(k);
		s = json_string(pem);
		q = json_dumps(s, JSON_ENCODE_ANY);
		snprintf(saved, sizeof(saved), "%s", ak_json);
		snprintf(ak_json, sizeof(ak_json), "%s", q);
		t = table(NULL, NULL, NULL, NULL);
		expect("another attestation key", blob, bound, t, "hostb", 2, 0, "signature", "not signed by hostb's");
		table_free(t);
		snprintf(ak_json, sizeof(ak_json), "%s", saved);
		free(pem);
		free(q);
		json_decref(s);
		key_free(k);
	}
	t = table(NULL, NULL, NULL, NULL);
	m = mutate(blob, flip_quote);
	expect("altered quote", m, bound, t, "hostb", 2, 0, "signature", "not signed");
	free(m);
	{
		char *other = evidence(bound2);
		json_t *oo = json_loads(other, 0, NULL);
		saved_sig = strdup(json_string_value(json_object_get(oo, "sig")));
		json_decref(oo);
		m = mutate(blob, swap_sig);
		expect("signature of another quote", m, bound, t, "hostb", 2, 0, "signature", "not signed");
		free(m);
		free(saved_sig);
		free(other);
	}
	/* pcr: the log must replay to the quoted value */
	m = mutate(blob, drop_event);
	expect("event removed", m, bound, t, "hostb", 2, 0, "pcr", "does not replay");
	free(m);
	m = mutate(blob, change_digest);
	expect("event digest changed", m, bound, t, "hostb", 2, 0, "pcr", "does not replay");
	free(m);
	/* measurement */
	m = mutate(blob, change_config);
	expect("configuration text changed", m, bound, t, "hostb", 2, 0, "measurement", "does not match the trust configuration");
	free(m);
	table_free(t);
	t = table(NULL, NULL, "2222222222222222222222222222222222222222222222222222222222222222", NULL);
	expect("sealvm build not in the table", blob, bound, t, "hostb", 2, 0, "measurement", "is not allowed for hostb");
	table_free(t);
	t = table("\"serial\":3,", NULL, NULL, NULL);
	expect("stale table", blob, bound, t, "hostb", 2, 0, "measurement", "table is stale (serial 2, ours is 3)");
	table_free(t);
	t = table(NULL, NULL, NULL, NULL);
	expect("stale policy", blob, bound, t, "hostb", 5, 0, "measurement", "policy is stale (serial 2, ours is 5)");
	table_free(t);
	t = table(NULL, NULL, NULL, other_admin);
	expect("another administrator", blob, bound, t, "hostb", 2, 0, "measurement", "another administrator key");
	table_free(t);
	/* format */
	t = table(NULL, NULL, NULL, NULL);
	expect("empty", "", bound, t, "hostb", 2, 0, "format", "");
	expect("not evidence", "{\"version\":1}", bound, t, "hostb", 2, 0, "format", "");
	{
		char *cut = strndup(blob, strlen(blob) / 2);
		expect("truncated", cut, bound, t, "hostb", 2, 0, "format", "not valid JSON");
		free(cut);
	}
	table_free(t);
	free(blob);
}

static void test_config_checks(void)
{
	struct trust_table *t = table(NULL, NULL, NULL, NULL);
	char why[256], *d;
	uint8_t ca[32] = { 9 };

	d = measure_config_data(t->signer, NULL, NULL, NULL);
	CHECK(measure_config_check(d, t, 0, 1, why, sizeof(why)) < 0 && strstr(why, "open mode"));
	free(d);
	d = measure_config_data(t->signer, t, NULL, ca);
	CHECKF(measure_config_check(d, t, 0, 1, why, sizeof(why)) == 0, "%s", why);
	CHECK(measure_config_check(d, t, 1, 1, why, sizeof(why)) < 0 && strstr(why, "without a migration policy"));
	table_free(t);
	t = table("\"serial\":2,\"ca\":[\"1111111111111111111111111111111111111111111111111111111111111111\"],", NULL,
		  NULL, NULL);
	CHECK(measure_config_check(d, t, 0, 1, why, sizeof(why)) < 0 && strstr(why, "cluster CA that is not in the table"));
	free(d);
	table_free(t);
}

static void test_log_and_restart(void)
{
	struct trust_opts o = { .state_dir = sd, .table = path_of("table.signed"), .policy = path_of("policy.signed"),
				.role = "test" };
	struct trust_ctx *ctx = NULL;
	struct err e = { 0 };
	char *text, *p, log[200], old[220];
	size_t len;

	snprintf(log, sizeof(log), "%s/eventlog.jsonl", sd);
	snprintf(old, sizeof(old), "%s.old", log);
	/* an edited event log no longer matches the PCR: sealvm refuses to start */
	CHECK_INT(file_read_all(log, 1 << 20, &text, &len, &e), 0);
	p = strstr(text, "\"digest\":\"") + 10;
	char was = *p;
	*p = was == 'a' ? 'b' : 'a';
	CHECK_INT(file_write_atomic(log, text, len, 0644, &e), 0);
	CHECK(trust_start(&o, &ctx, &e) < 0);
	CHECKF(strstr(e.msg, "does not match PCR 15"), "%s", e.msg);
	*p = was;
	CHECK_INT(file_write_atomic(log, text, len, 0644, &e), 0);
	free(text);
	/* a crash between logging and extending: the next start completes the extend */
	{
		uint8_t d[32] = { 7 };
		char hex[65], line[256];
		FILE *f = fopen(log, "a");
		hex_encode(d, 32, hex);
		snprintf(line, sizeof(line), "{\"pcr\":15,\"type\":\"sealvm-exe\",\"digest\":\"%s\",\"data\":\"crash\"}\n", hex);
		fputs(line, f);
		fclose(f);
		CHECKF(trust_start(&o, &ctx, &e) == 0, "after a crash: %s", e.msg);
		trust_stop(ctx);
		ctx = NULL;
	}
	/* the TPM restarts (PCRs back to zero): a new log begins, the old one is kept */
	swtpm_kill(&tpm);
	CHECK_INT(swtpm_run(&tpm), 0);
	CHECKF(trust_start(&o, &ctx, &e) == 0, "after a TPM restart: %s", e.msg);
	if (ctx)
		CHECK_INT(ctx->events_added, 2);
	trust_stop(ctx);
	CHECK(access(old, F_OK) == 0);
	CHECK_INT(file_read_all(log, 1 << 20, &text, &len, &e), 0);
	{
		struct eventlog l;
		CHECK_INT(eventlog_parse(text, len, &l, &e), 0);
		CHECK_INT(l.n, 2);
		eventlog_free(&l);
	}
	free(text);
	/* going back to an older table is measured again and shows as stale */
	{
		char body[4096];
		struct trust_table *t3;
		uint8_t nonce[32] = { 5 }, bound[32];
		char *blob;

		snprintf(body, sizeof(body),
			 "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":3,\"sealvm\":[\"%s\"],"
			 "\"hosts\":[{\"name\":\"hostb\",\"ak\":%s,\"trust\":2}]}", exe_hex, ak_json);
		write_signed(path_of("table3.signed"), body, admin);
		o.table = path_of("table3.signed");
		CHECKF(trust_start(&o, &ctx, &e) == 0, "%s", e.msg);
		if (ctx)
			CHECK_INT(ctx->events_added, 1);
		trust_stop(ctx);
		o.table = path_of("table.signed");
		CHECKF(trust_start(&o, &ctx, &e) == 0, "%s", e.msg);
		if (ctx)
			CHECK_INT(ctx->events_added, 1);
		trust_stop(ctx);
		ctx = NULL;
		t3 = table("\"serial\":3,", NULL, NULL, NULL);
		attest_bind(nonce, NULL, 0, bound);
		blob = evidence(bound);
		expect("rolled back to an older table", blob, bound, t3, "hostb", 2, 0, "measurement",
		       "table is stale (serial 2, ours is 3)");
		free(blob);
		table_free(t3);
	}
	/* a bad trust file stops the start, naming the file and the check */
	{
		char *t2;
		CHECK_INT(file_read_all(path_of("table.signed"), 1 << 20, &t2, &len, &e), 0);
		p = strstr(t2, "\"trust\": 2");
		if (p) {
			p[9] = '9';
			CHECK_INT(file_write_atomic(path_of("forged.signed"), t2, len, 0644, &e), 0);
			o.table = path_of("forged.signed");
			CHECK(trust_start(&o, &ctx, &e) < 0);
			CHECKF(strstr(e.msg, "forged.signed") && strstr(e.msg, "changed after it was signed"), "%s", e.msg);
		} else {
			CHECKF(0, "no trust field in %s", t2);
		}
		free(t2);
		o.table = path_of("policy.signed");
		o.policy = path_of("policy.signed");
		CHECK(trust_start(&o, &ctx, &e) < 0);
		CHECKF(strstr(e.msg, "expected a sealvm-table"), "%s", e.msg);
		o.table = path_of("table.signed");
		o.policy = NULL;
		CHECK(trust_start(&o, &ctx, &e) < 0);
		CHECKF(strstr(e.msg, "go together"), "%s", e.msg);
	}
}

/* ---- binding to a real TLS session ---- */

struct side {
	struct chan_listener *l;
	uint8_t nonce[32], bound[32];
	int r;
	struct err e;
};

static void *accept_main(void *p)
{
	struct side *s = p;
	struct chan *c = NULL;

	s->r = chan_accept(s->l, 5000, &c, &s->e);
	if (s->r == 0) {
		s->r = chan_read_full(c, s->nonce, 32, &s->e);
		if (s->r == 0)
			s->r = attest_bind_chan(c, s->nonce, s->bound, &s->e);
		chan_close(c);
	}
	return NULL;
}

static void session_bound(const char *certs, uint8_t client_bound[32], uint8_t server_bound[32],
			  const uint8_t nonce[32])
{
	struct side s = { 0 };
	struct chan *c = NULL;
	struct err e = { 0 };
	char a[300], b[300], uri[64];
	pthread_t th;

	snprintf(a, sizeof(a), "%s/hostb", certs);
	snprintf(b, sizeof(b), "%s/hosta", certs);
	CHECKF(chan_listen("tls://127.0.0.1:0", a, &s.l, &e) == 0, "%s", e.msg);
	if (!s.l)
		return;
	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%d", chan_listener_port(s.l));
	pthread_create(&th, NULL, accept_main, &s);
	CHECKF(chan_connect(uri, b, 5000, &c, &e) == 0, "%s", e.msg);
	if (c) {
		CHECK_INT(chan_write(c, nonce, 32, &e), 0);
		CHECK_INT(chan_flush(c, &e), 0);
		CHECKF(attest_bind_chan(c, nonce, client_bound, &e) == 0, "%s", e.msg);
		CHECKF(!strcmp(chan_peer_name(c), "hostb"), "peer %s", chan_peer_name(c));
		{
			char name[64];
			CHECK(attest_cert_name(chan_peer_cert(c), name, sizeof(name)) == 0 && !strcmp(name, "hostb"));
		}
	}
	pthread_join(th, NULL);
	CHECKF(s.r == 0, "%s", s.e.msg);
	memcpy(server_bound, s.bound, 32);
	chan_close(c);
	chan_listener_close(s.l);
}

static void test_tls_binding(void)
{
	char certs[200], cmd[300];
	uint8_t nonce[32] = { 42 }, c1[32], s1[32], c2[32], s2[32];

	snprintf(certs, sizeof(certs), "%s/certs", dir);
	snprintf(cmd, sizeof(cmd), "scripts/mkcerts.sh %s >/dev/null 2>&1", certs);
	if (system(cmd) != 0) {
		CHECKF(0, "scripts/mkcerts.sh failed (run from the repository root)");
		return;
	}
	session_bound(certs, c1, s1, nonce);
	session_bound(certs, c2, s2, nonce);
	CHECK(!memcmp(c1, s1, 32));        /* both ends of a session agree */
	CHECK(!memcmp(c2, s2, 32));
	CHECK(memcmp(c1, c2, 32) != 0);    /* the same nonce on another session differs */
}

int main(void)
{
	struct err e = { 0 };
	struct host_config hc;
	char *pem, *q;
	json_t *s;

	snprintf(dir, sizeof(dir), "/tmp/trust-attest.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	if (swtpm_start(&tpm) < 0) {
		printf("swtpm is not installed (apt-get install swtpm swtpm-tools)\n");
		return 77;
	}
	CHECK_INT(key_generate("ed25519", &admin, &e), 0);
	CHECK_INT(key_save(admin, path_of("admin.pem"), path_of("admin.pub.pem"), &e), 0);
	CHECK_INT(key_public_from_file(path_of("admin.pub.pem"), &admin_pub, &e), 0);
	CHECK_INT(key_generate("ed25519", &other_admin, &e), 0);
	snprintf(sd, sizeof(sd), "%s/state", dir);
	CHECKF(host_init(sd, "hostb", tpm.spec, path_of("admin.pub.pem"), &hc, &e) == 0, "%s", e.msg);
	{
		char akp[200];
		size_t len;
		snprintf(akp, sizeof(akp), "%s/ak.pem", sd);
		CHECK_INT(file_read_all(akp, 4096, &pem, &len, &e), 0);
	}
	s = json_string(pem);
	q = json_dumps(s, JSON_ENCODE_ANY);
	snprintf(ak_json, sizeof(ak_json), "%s", q);
	free(q);
	free(pem);
	json_decref(s);
	/* the table lists the executable that measures itself: this test program */
	{
		uint8_t d[32];
		sha256_file("/proc/self/exe", d, &e);
		hex_encode(d, 32, exe_hex);
	}
	{
		char body[4096];
		snprintf(body, sizeof(body),
			 "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":2,\"sealvm\":[\"%s\"],"
			 "\"hosts\":[{\"name\":\"hostb\",\"ak\":%s,\"trust\":2}]}", exe_hex, ak_json);
		write_signed(path_of("table.signed"), body, admin);
		write_signed(path_of("policy.signed"),
			     "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":2,"
			     "\"roles\":[{\"name\":\"all\",\"principals\":[\"*\"],\"ops\":[\"*\"]}]}", admin);
	}
	test_measure_and_verify();
	test_config_checks();
	test_log_and_restart();
	test_tls_binding();
	swtpm_stop(&tpm);
	key_free(admin);
	key_free(admin_pub);
	key_free(other_admin);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return unit_done();
}
