/* The migration's trust phase below the wire (the exchange itself runs end to end in
 * tests/sys/trust_migrate.sh and trust_policy.sh): its records as untrusted input,
 * labels as text, and recorded decisions (trust_decide, trust_check_transport):
 * allow, deny naming the rule, open mode, sensitive VMs on tcp://, and an allow that
 * cannot be recorded becoming a denial. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate/attest_phase.h"
#include "trust/decide.h"
#include "trust/jsonx.h"
#include "unit.h"
#include "util/file.h"

static const char nonce_hex[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static int req(const char *text, struct mig_attest_req *r, struct err *e)
{
	return mig_attest_req_parse(text, strlen(text), r, e);
}

static void expect_req_fail(const char *text, const char *msg)
{
	struct mig_attest_req r;
	struct err e = { 0 };

	CHECKF(req(text, &r, &e) < 0, "accepted: %s", text);
	CHECKF(strstr(e.msg, msg), "'%s': error \"%s\" does not say \"%s\"", text, e.msg, msg);
}

static void test_req(void)
{
	struct mig_attest_req r;
	struct err e = { 0 };
	char buf[16384];

	snprintf(buf, sizeof(buf), "{\"mode\":\"trusted\",\"nonce\":\"%s\",\"labels\":{\"tenant\":\"acme\",\"tier\":\"web\"}}",
		 nonce_hex);
	CHECKF(req(buf, &r, &e) == 0, "%s", e.msg);
	CHECK(r.trusted);
	CHECK_INT(r.nonce[0], 0x00);
	CHECK_INT(r.nonce[31], 0xff);
	CHECK_INT(r.labels.n, 2);
	CHECK_STR(labels_get(&r.labels, "tenant"), "acme");
	CHECKF(req("{\"mode\":\"open\",\"labels\":{}}", &r, &e) == 0, "%s", e.msg);
	CHECK(!r.trusted);
	CHECK_INT(r.labels.n, 0);

	expect_req_fail("{\"mode\":\"trusted\",\"labels\":{}}", "a nonce goes with mode \"trusted\"");
	snprintf(buf, sizeof(buf), "{\"mode\":\"open\",\"nonce\":\"%s\",\"labels\":{}}", nonce_hex);
	expect_req_fail(buf, "a nonce goes with mode \"trusted\", and only with it");
	expect_req_fail("{\"mode\":\"maybe\",\"labels\":{}}", "must be \"trusted\" or \"open\"");
	expect_req_fail("{\"mode\":\"trusted\",\"nonce\":\"0011\",\"labels\":{}}", "nonce must be 64 hex digits");
	snprintf(buf, sizeof(buf), "{\"mode\":\"trusted\",\"nonce\":\"%.62sxz\",\"labels\":{}}", nonce_hex);
	expect_req_fail(buf, "nonce must be 64 hex digits");
	expect_req_fail("{\"mode\":\"open\",\"labels\":{},\"admin\":true}", "unknown field \"admin\"");
	expect_req_fail("{\"mode\":\"open\",\"mode\":\"trusted\",\"labels\":{}}", "not valid JSON");
	expect_req_fail("{\"mode\":\"open\"}", "missing \"labels\"");
	expect_req_fail("{\"mode\":\"open\",\"labels\":[]}", "labels are not a JSON object");
	expect_req_fail("{\"mode\":\"open\",\"labels\":{\"tenant\":1}}", "label tenant is not a string");
	expect_req_fail("{\"mode\":\"open\",\"labels\":{\"ten ant\":\"x\"}}", "label key");
	expect_req_fail("{\"mode\":\"open\",\"labels\":{\"a\":\"x\",\"a\":\"y\"}}", "not valid JSON");
	expect_req_fail("{\"mode\":\"open\",\"labels\":{\"a\":\"x\\u0001\"}}", "no control characters");
	expect_req_fail("{\"mode\":\"open\",\"labels\":", "not valid JSON");
	expect_req_fail("[]", "not a JSON object");
	{
		/* 17 labels: one more than a VM may carry */
		size_t o = (size_t)snprintf(buf, sizeof(buf), "{\"mode\":\"open\",\"labels\":{");
		for (int i = 0; i < LABELS_MAX + 1; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s\"k%d\":\"v\"", i ? "," : "", i);
		snprintf(buf + o, sizeof(buf) - o, "}}");
		expect_req_fail(buf, "more than 16 labels");
	}
	{
		/* a value of the largest size the record may carry, and one byte too many */
		char *big = malloc(MIG_ATTEST_REQ_MAX + 2);
		memset(big, ' ', MIG_ATTEST_REQ_MAX + 1);
		memcpy(big, "{\"mode\":\"open\",\"labels\":{}}", 27);
		big[MIG_ATTEST_REQ_MAX + 1] = 0;
		CHECK(mig_attest_req_parse(big, MIG_ATTEST_REQ_MAX, &r, &e) == 0);
		CHECK(mig_attest_req_parse(big, MIG_ATTEST_REQ_MAX + 1, &r, &e) == -EMSGSIZE);
		free(big);
	}
}

static void test_msg(void)
{
	struct mig_attest_msg m;
	struct err e = { 0 };
	char buf[512];

	snprintf(buf, sizeof(buf), "{\"nonce\":\"%s\",\"evidence\":{\"version\":1,\"host\":\"hostb\"}}", nonce_hex);
	CHECKF(mig_attest_msg_parse(buf, strlen(buf), &m, &e) == 0, "%s", e.msg);
	CHECK(m.has_nonce);
	CHECK_INT(m.nonce[1], 0x11);
	CHECK_STR(m.evidence, "{\"version\":1,\"host\":\"hostb\"}");
	CHECK_INT(m.evidence_len, strlen(m.evidence));
	mig_attest_msg_free(&m);
	CHECK(m.evidence == NULL);
	strcpy(buf, "{\"evidence\":{}}");
	CHECK(mig_attest_msg_parse(buf, strlen(buf), &m, &e) == 0 && !m.has_nonce);
	mig_attest_msg_free(&m);
	strcpy(buf, "{\"evidence\":\"{}\"}");
	CHECK(mig_attest_msg_parse(buf, strlen(buf), &m, &e) < 0 && strstr(e.msg, "evidence is not a JSON object"));
	CHECK(m.evidence == NULL);
	strcpy(buf, "{\"evidence\":{},\"quote\":1}");
	CHECK(mig_attest_msg_parse(buf, strlen(buf), &m, &e) < 0 && strstr(e.msg, "unknown field \"quote\""));
	strcpy(buf, "{\"evidence\":{},\"nonce\":7}");
	CHECK(mig_attest_msg_parse(buf, strlen(buf), &m, &e) < 0 && strstr(e.msg, "nonce must be"));
	CHECK(mig_attest_msg_parse("", 0, &m, &e) < 0);
}

static void test_labels_text(void)
{
	struct labels l = { 0 }, back;
	struct err e = { 0 };
	char *t;

	CHECK(labels_add(&l, "tier=web", &e) == 0);
	CHECK(labels_add(&l, "class=sec\"ret", &e) == 0);
	t = labels_to_text(&l);
	CHECK_STR(t, "{\"class\":\"sec\\\"ret\",\"tier\":\"web\"}");   /* canonical: keys sorted */
	CHECK(labels_parse_text(t, strlen(t), &back, &e) == 0);
	CHECK_INT(back.n, 2);
	CHECK_STR(labels_get(&back, "class"), "sec\"ret");
	free(t);
	CHECK(labels_parse_text("{\"a\":\"b\\u0000c\"}", 15, &back, &e) < 0);
	CHECK(labels_parse_text("{}", 2, &back, &e) == 0 && back.n == 0);
	/* a value that JSON cannot carry is refused, never dropped on the way */
	CHECK(labels_add(&l, "name=caf\xe9", &e) < 0 && strstr(e.msg, "UTF-8"));
	CHECK(labels_add(&l, "name=caf\xc3\xa9", &e) == 0);
	t = labels_to_text(&l);
	CHECK(t && labels_parse_text(t, strlen(t), &back, &e) == 0 && back.n == 3);
	free(t);
}

/* ---- recorded decisions ---- */

static char dir[64];

static struct audit_log *open_log(const char *name, struct err *e)
{
	char key[128], pub[128], path[128];
	struct audit_opts o = { .path = path, .key_path = key };
	struct audit_log *l = NULL;
	EVP_PKEY *k;

	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	snprintf(pub, sizeof(pub), "%s/%s.pub", dir, name);
	snprintf(path, sizeof(path), "%s/%s.jsonl", dir, name);
	if (key_generate("ed25519", &k, e) < 0 || key_save(k, key, pub, e) < 0)
		return NULL;
	key_free(k);
	return audit_open(&o, &l, e) < 0 ? NULL : l;
}

static char *log_text(const char *name)
{
	char path[128], *text = NULL;
	size_t len;
	struct err e;

	snprintf(path, sizeof(path), "%s/%s.jsonl", dir, name);
	return file_read_all(path, 1 << 20, &text, &len, &e) < 0 ? NULL : text;
}

static void test_decide(void)
{
	static const char body[] =
		"{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"sensitive\":[{\"class\":\"secret\"}],"
		"\"roles\":[{\"name\":\"ops\",\"principals\":[\"uid:1000\"],\"ops\":[\"migrate\"],\"labels\":{\"tenant\":\"acme\"}}],"
		"\"deny\":[{\"name\":\"never-hostc\",\"principals\":[\"*\"],\"ops\":[\"*\"],\"to\":[\"hostc\"]}]}";
	struct trust_ctx c = { .open_mode = false };
	struct principal who = { .uid = 1000 };
	struct labels acme = { 0 }, secret = { 0 };
	struct policy_decision d;
	struct err e = { 0 };
	json_t *b;
	char *text;

	snprintf(c.host.name, sizeof(c.host.name), "hosta");
	b = jx_parse(body, strlen(body), "policy", &e);
	CHECKF(b && policy_from_json(b, &c.policy, &e) == 0, "%s", e.msg);
	json_decref(b);
	c.audit = open_log("trusted", &e);
	CHECKF(c.audit, "%s", e.msg);
	labels_add(&acme, "tenant=acme", &e);
	labels_add(&secret, "class=secret", &e);
	if (!c.policy || !c.audit)
		return;
	CHECK(trust_is_trusted(&c));

	CHECK(trust_decide(&c, &who, OP_MIGRATE, &acme, "hosta", "hostb", json_pack("{s:s}", "id", "m1"), &d, &e) == 0);
	CHECK(d.allow);
	CHECK_STR(d.rule, "ops");
	CHECK(trust_decide(&c, &who, OP_MIGRATE, &acme, "hosta", "hostc", NULL, &d, &e) == -EACCES);
	CHECK_STR(d.rule, "never-hostc");
	CHECKF(strstr(e.msg, "deny rule \"never-hostc\""), "%s", e.msg);
	CHECK(trust_decide(&c, &who, OP_SNAPSHOT, &acme, "hosta", NULL, NULL, &d, &e) == -EACCES);
	CHECKF(strstr(e.msg, "(rule default-deny)"), "%s", e.msg);
	/* an allow that cannot be recorded (here: a field the log refuses) is a denial */
	CHECK(trust_decide(&c, &who, OP_MIGRATE, &acme, "hosta", "hostb", json_pack("{s:i}", "seq", 1), &d, &e) ==
	      -EACCES);
	CHECK(!d.allow);
	CHECKF(strstr(e.msg, "cannot be recorded"), "%s", e.msg);

	CHECK(trust_check_transport(&c, &acme, false, "tcp://", NULL, &e) == 0);
	CHECK(trust_check_transport(&c, &secret, true, "tcp://", NULL, &e) == 0);
	CHECK(trust_check_transport(&c, &secret, false, "tcp://", json_pack("{s:s}", "role", "source"), &e) == -EACCES);
	CHECKF(strstr(e.msg, "sensitive selector 0") && strstr(e.msg, "never tcp://"), "%s", e.msg);

	audit_close(c.audit);
	c.audit = NULL;
	text = log_text("trusted");
	CHECK(text && strstr(text, "\"event\":\"policy\",\"id\":\"m1\""));
	CHECK(text && strstr(text, "\"allow\":true,\"rule\":\"ops\""));
	CHECK(text && strstr(text, "\"allow\":false,\"rule\":\"never-hostc\""));
	CHECK(text && strstr(text, "\"principal\":\"uid:1000\""));
	CHECK(text && strstr(text, "\"rule\":\"sensitive[0]\""));
	free(text);
	policy_free(c.policy);

	/* open mode: allowed, and said so in the log */
	struct trust_ctx o = { .open_mode = true };
	o.audit = open_log("open", &e);
	CHECK(!trust_is_trusted(&o));
	CHECK(trust_decide(&o, &who, OP_MIGRATE, &secret, NULL, "hostc", NULL, &d, &e) == 0);
	CHECK_STR(d.rule, "open-mode");
	CHECK(trust_check_transport(&o, &secret, false, "tcp://", NULL, &e) == 0);
	audit_close(o.audit);
	text = log_text("open");
	CHECK(text && strstr(text, "\"rule\":\"open-mode\""));
	free(text);
	/* no trust context at all: nothing to record, nothing refused */
	CHECK(trust_decide(NULL, &who, OP_MIGRATE, &acme, NULL, NULL, NULL, &d, &e) == 0);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sealvm-attest-phase-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_req();
	test_msg();
	test_labels_text();
	test_decide();
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	return unit_done();
}
