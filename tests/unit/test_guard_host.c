/* The integrity guard's host measurement and its untrusted mark, against a real swtpm:
 * the host attests to itself; a changed, forged, older or same-serial-different table,
 * a policy rollback, a changed administrator key or a CA the table does not allow are
 * failures, a newer signed table an update; a sealvm build the table does not allow in
 * the TPM's event log fails the self-attestation. The mark: a guard-alarm event in the
 * PCR makes every verifier refuse the host (check "guard") unless it accepts an
 * evacuating source; the mark file survives, is re-extended after a TPM restart, and
 * `clear` removes only the file. */
#include "unit.h"
#include "swtpm.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard/hostmeas.h"
#include "guard/mark.h"
#include "trust/attest.h"
#include "trust/eventlog.h"
#include "trust/host.h"
#include "trust/measure.h"
#include "trust/signed_file.h"
#include "util/file.h"
#include "util/hex.h"

static char dir[64], sd[128], tls[128];
static struct swtpm tpm;
static EVP_PKEY *admin;
static char ak_json[1024], exe_hex[65];

static const char *path_of(const char *name)
{
	static char bufs[4][200];
	static int k;
	char *b = bufs[k++ % 4];

	snprintf(b, 200, "%s/%s", dir, name);
	return b;
}

static void write_signed(const char *path, const char *body)
{
	struct err e = { 0 };
	json_t *b = json_loads(body, 0, NULL);
	char *t = NULL;

	CHECKF(b && signed_make(b, admin, &t, &e) == 0, "%s", b ? e.msg : body);
	CHECK_INT(file_write_atomic(path, t, strlen(t), 0644, &e), 0);
	free(t);
	json_decref(b);
}

static void write_table(const char *path, int serial, const char *exe, const char *extra)
{
	char body[4096];

	snprintf(body, sizeof(body),
		 "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":%d,\"sealvm\":[\"%s\"]%s,"
		 "\"hosts\":[{\"name\":\"hosta\",\"ak\":%s,\"trust\":2}]}",
		 serial, exe, extra ? extra : "", ak_json);
	write_signed(path, body);
}

static void write_policy(const char *path, int serial)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":%d,"
		 "\"roles\":[{\"name\":\"all\",\"principals\":[\"*\"],\"ops\":[\"*\"]}]}", serial);
	write_signed(path, body);
}

static void copy(const char *from, const char *to)
{
	char *t;
	size_t n;
	struct err e = { 0 };

	CHECK_INT(file_read_all(from, 1 << 20, &t, &n, &e), 0);
	CHECK_INT(file_write_atomic(to, t, n, 0644, &e), 0);
	free(t);
}

static void run(struct hostmeas *h, struct host_result *r)
{
	hostmeas_run(h, true, r);
}

static void expect_fail(const char *what, struct hostmeas *h, const char *check, const char *msg)
{
	struct host_result r;

	run(h, &r);
	CHECKF(!r.ok && !strcmp(r.check, check) && strstr(r.reason, msg), "%s: %s [%s] %s", what,
	       r.ok ? "PASSED" : "wrong failure", r.check, r.reason);
	fprintf(stderr, "  %s: [%s] %s\n", what, r.check, r.reason);
}

static void measure_start_now(const char *table, const char *policy)
{
	struct trust_opts o = { .state_dir = sd, .table = table, .policy = policy, .ca = path_of("tls/ca.pem"),
				.role = "test" };
	struct trust_ctx *c = NULL;
	struct err e = { 0 };

	CHECKF(trust_start(&o, &c, &e) == 0, "%s", e.msg);
	trust_stop(c);
}

static void test_config(void)
{
	struct hostmeas *h = NULL;
	struct host_result r;
	struct err e = { 0 };

	CHECKF(hostmeas_open(sd, path_of("table.signed"), path_of("policy.signed"), tls, &h, &e) == 0, "%s", e.msg);
	if (!h)
		return;
	run(h, &r);
	CHECKF(r.ok && r.tpm_checked && !r.guard_alarm && r.trust_level == 2, "clean host: [%s] %s", r.check, r.reason);

	/* the table edited by hand: the signature no longer holds */
	copy(path_of("table.signed"), path_of("table.good"));
	{
		char *t;
		size_t n;
		CHECK_INT(file_read_all(path_of("table.signed"), 1 << 20, &t, &n, &e), 0);
		char *p = strstr(t, "\"trust\": 2");
		CHECK(p != NULL);
		if (p)
			p[9] = '9';
		CHECK_INT(file_write_atomic(path_of("table.signed"), t, n, 0644, &e), 0);
		free(t);
	}
	expect_fail("table edited", h, "config", "changed after it was signed");
	copy(path_of("table.good"), path_of("table.signed"));
	run(h, &r);
	CHECKF(r.ok, "table restored: %s", r.reason);

	/* a newer signed table is an update, then the older one is a rollback */
	write_table(path_of("table.signed"), 3, exe_hex, NULL);
	run(h, &r);
	CHECKF(r.ok && r.config_changed && strstr(r.note, "serial 2 -> 3"), "newer table: ok=%d changed=%d %s %s", r.ok,
	       r.config_changed, r.note, r.reason);
	CHECK_INT(h->table->serial, 3);
	run(h, &r);
	CHECKF(r.ok && !r.config_changed, "after the update: %s", r.reason);
	copy(path_of("table.good"), path_of("table.signed"));
	expect_fail("table rolled back", h, "config", "older");
	write_table(path_of("table.signed"), 3, exe_hex, ",\"min_trust\":2");
	expect_fail("another table with the same serial", h, "config", "same serial");
	write_table(path_of("table.signed"), 3, exe_hex, NULL);
	run(h, &r);
	CHECKF(r.ok, "table 3 back: %s", r.reason);

	/* the policy rolled back */
	copy(path_of("policy.signed"), path_of("policy.good"));
	write_policy(path_of("policy.signed"), 1);
	expect_fail("policy rolled back", h, "config", "older");
	copy(path_of("policy.good"), path_of("policy.signed"));

	/* the CA replaced by one the table does not allow (the table lists one CA) */
	write_table(path_of("table.signed"), 4, exe_hex, ",\"ca\":[\"00000000000000000000000000000000000000000000000000000000000000cc\"]");
	expect_fail("CA not in the table", h, "config", "does not allow");
	write_table(path_of("table.signed"), 5, exe_hex, NULL);
	run(h, &r);
	CHECKF(r.ok && r.config_changed, "table 5: %s", r.reason);

	/* the administrator key replaced */
	{
		EVP_PKEY *k;
		char *pem;
		CHECK_INT(key_generate("ed25519", &k, &e), 0);
		pem = key_public_pem(k);
		copy(path_of("state/admin.pem"), path_of("admin.good"));
		CHECK_INT(file_write_atomic(path_of("state/admin.pem"), pem, strlen(pem), 0644, &e), 0);
		free(pem);
		key_free(k);
		expect_fail("administrator key replaced", h, "config", "administrator key");
		copy(path_of("admin.good"), path_of("state/admin.pem"));
	}

	/* a sealvm build the table does not allow started on this host: in the event log */
	{
		uint8_t d[32] = { 0xde, 0xad };
		int ext;
		CHECKF(eventlog_measure(sd, tpm.spec, EVENT_TYPE_EXE, d, "/tmp/rogue-sealvm", &ext, &e) == 0, "%s", e.msg);
		expect_fail("a foreign build in the TPM's log", h, "tpm", "not allowed");
	}
	hostmeas_close(h);
}

static void test_mark(void)
{
	struct guard_mark m = { 0 }, back;
	uint8_t nonce[32], bound[32];
	struct attest_verdict v;
	struct trust_table *t = NULL;
	struct hostmeas *h = NULL;
	struct host_result r;
	struct err e = { 0 };
	bool ext = false, in_log = true;
	char *blob = NULL;
	size_t len;

	/* a fresh TPM power cycle: the rogue build above is gone from the PCR */
	swtpm_kill(&tpm);
	CHECK(swtpm_run(&tpm) == 0);
	measure_start_now(path_of("table.signed"), path_of("policy.signed"));
	CHECK(mark_in_log(sd, &in_log, &e) == 0 && !in_log);
	CHECK(mark_load(sd, &back, &e) == -ENOENT);

	mark_now(m.time, sizeof(m.time));
	snprintf(m.check, sizeof(m.check), "code");
	snprintf(m.target, sizeof(m.target), "/run/sealvm/vm1.sock (pid 42)");
	/* a long reason with a multi-byte character where it gets cut */
	memset(m.reason, 'x', sizeof(m.reason) - 1);
	memcpy(m.reason + 398, "\xe2\x80\xa6", 3);
	CHECKF(mark_set(sd, tpm.spec, &m, &ext, &e) == 0 && ext, "%s", e.msg);
	CHECK(mark_in_log(sd, &in_log, &e) == 0 && in_log);
	CHECKF(mark_load(sd, &back, &e) == 0 && !strcmp(back.check, "code") && !strcmp(back.target, m.target),
	       "%s", e.msg);

	/* every verifier refuses this host now */
	CHECK_INT(table_load(path_of("table.signed"), admin, &t, &e), 0);
	CHECK_INT(attest_nonce(nonce, &e), 0);
	attest_bind(nonce, NULL, 0, bound);
	CHECKF(attest_make_evidence(sd, tpm.spec, "hosta", bound, &blob, &len, &e) == 0, "%s", e.msg);
	{
		struct attest_expect x = { .peer_name = "hosta", .policy_serial = 2 };
		attest_verify(blob, len, bound, t, &x, &v);
		CHECKF(!v.ok && !strcmp(v.check, "guard") && v.guard_alarm && strstr(v.reason, "code"), "[%s] %s", v.check,
		       v.reason);
		fprintf(stderr, "  attesting a marked host: %s\n", v.reason);
		x.accept_guard_alarm = true;
		attest_verify(blob, len, bound, t, &x, &v);
		CHECKF(v.ok && v.guard_alarm && strstr(v.reason, "marked it untrusted"), "evacuating source: [%s] %s",
		       v.check, v.reason);
	}
	free(blob);
	table_free(t);

	/* the guard's own check of the host still passes: it knows */
	CHECKF(hostmeas_open(sd, path_of("table.signed"), path_of("policy.signed"), tls, &h, &e) == 0, "%s", e.msg);
	if (h) {
		run(h, &r);
		CHECKF(r.ok && r.guard_alarm, "marked host, guard's view: [%s] %s", r.check, r.reason);
		hostmeas_close(h);
	}

	/* after a TPM restart the PCR is clean; the file remains for the guard to re-extend */
	swtpm_kill(&tpm);
	CHECK(swtpm_run(&tpm) == 0);
	measure_start_now(path_of("table.signed"), path_of("policy.signed"));
	CHECK(mark_in_log(sd, &in_log, &e) == 0 && !in_log);
	CHECK(mark_load(sd, &back, &e) == 0);
	CHECKF(mark_set(sd, tpm.spec, &back, &ext, &e) == 0 && ext, "%s", e.msg);
	CHECK(mark_in_log(sd, &in_log, &e) == 0 && in_log);
	/* the same alarm twice is one event */
	CHECKF(mark_set(sd, tpm.spec, &back, &ext, &e) == 0 && !ext, "%s", e.msg);

	CHECK_INT(mark_clear(sd, &e), 0);
	CHECK(mark_load(sd, &back, &e) == -ENOENT);
	CHECK(mark_clear(sd, &e) == -ENOENT);
	CHECK(mark_in_log(sd, &in_log, &e) == 0 && in_log);
}

int main(void)
{
	struct err e = { 0 };
	struct host_config hc;
	char *pem, *q, cmd[256];
	uint8_t d[32];
	json_t *s;
	size_t len;

	snprintf(dir, sizeof(dir), "/tmp/guard-host.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	if (swtpm_start(&tpm) < 0) {
		printf("swtpm is not installed (apt-get install swtpm swtpm-tools)\n");
		return 77;
	}
	CHECK_INT(key_generate("ed25519", &admin, &e), 0);
	CHECK_INT(key_save(admin, path_of("admin.pem"), path_of("admin.pub.pem"), &e), 0);
	snprintf(sd, sizeof(sd), "%s/state", dir);
	snprintf(tls, sizeof(tls), "%s/tls", dir);
	CHECKF(host_init(sd, "hosta", tpm.spec, path_of("admin.pub.pem"), &hc, &e) == 0, "%s", e.msg);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && echo 'a CA' > %s/ca.pem", tls, tls);
	CHECK(system(cmd) == 0);
	CHECK_INT(file_read_all(path_of("state/ak.pem"), 4096, &pem, &len, &e), 0);
	s = json_string(pem);
	q = json_dumps(s, JSON_ENCODE_ANY);
	snprintf(ak_json, sizeof(ak_json), "%s", q);
	free(q);
	free(pem);
	json_decref(s);
	sha256_file("/proc/self/exe", d, &e);
	hex_encode(d, 32, exe_hex);
	write_table(path_of("table.signed"), 2, exe_hex, NULL);
	write_policy(path_of("policy.signed"), 2);
	measure_start_now(path_of("table.signed"), path_of("policy.signed"));
	test_config();
	test_mark();
	swtpm_stop(&tpm);
	key_free(admin);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return unit_done();
}
