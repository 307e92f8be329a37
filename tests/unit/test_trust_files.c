/* Trust files without a TPM: secret-file checks, hex/base64, signed files (signature,
 * tampering, wrong key, wrong type, ambiguous JSON), the integrity validation table, the
 * migration policy (allow, deny, default deny, groups, labels, users, expiry, sensitive
 * labels) and VM labels. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trust/labels.h"
#include "trust/policy.h"
#include "trust/signed_file.h"
#include "trust/table.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/secret_file.h"

static char dir[64];

static const char *path_of(const char *name)
{
	static char bufs[4][128];
	static int k;
	char *b = bufs[k++ % 4];

	snprintf(b, 128, "%s/%s", dir, name);
	return b;
}

static void test_secret_file(void)
{
	struct err e = { 0 };
	char *buf;
	size_t len;

	CHECK_INT(secret_file_write(path_of("k"), "secret", 6, 0, &e), 0);
	CHECK_INT(secret_file_check(path_of("k"), &e), 0);
	CHECK_INT(secret_file_write(path_of("k"), "other", 5, 0, &e), -EEXIST);
	chmod(path_of("k"), 0640);
	CHECK_INT(secret_file_check(path_of("k"), &e), -EACCES);
	CHECKF(strstr(e.msg, "readable by group or others (mode 0640)") && strstr(e.msg, "chmod 600"), "%s", e.msg);
	CHECK_INT(secret_file_read(path_of("k"), 100, &buf, &len, &e), -EACCES);
	chmod(path_of("k"), 0604);
	CHECK_INT(secret_file_check(path_of("k"), &e), -EACCES);
	chmod(path_of("k"), 0601);   /* executable by others: still refused */
	CHECK_INT(secret_file_check(path_of("k"), &e), -EACCES);
	CHECKF(strstr(e.msg, "accessible"), "%s", e.msg);
	chmod(path_of("k"), 0600);
	CHECK_INT(secret_file_read(path_of("k"), 100, &buf, &len, &e), 0);
	CHECK(len == 6 && !memcmp(buf, "secret", 6));
	free(buf);
	CHECK_INT(secret_file_check(path_of("missing"), &e), -ENOENT);
	CHECK_INT(secret_file_check(dir, &e), -EINVAL);
}

static void test_codecs(void)
{
	uint8_t b[5] = { 0, 1, 0xab, 0xff, 0x10 }, out[5], *d;
	char hex[11], *s;
	size_t n;

	hex_encode(b, 5, hex);
	CHECK_STR(hex, "0001abff10");
	CHECK_INT(hex_decode("0001ABff10", out, 5), 0);
	CHECK(!memcmp(out, b, 5));
	CHECK_INT(hex_decode("0001abff1", out, 5), -EINVAL);
	CHECK_INT(hex_decode("0001abff1g", out, 5), -EINVAL);
	for (size_t len = 0; len <= 5; len++) {
		s = b64_encode(b, len);
		d = b64_decode(s, &n);
		CHECK(d && n == len && !memcmp(d, b, len));
		free(s);
		free(d);
	}
	CHECK(b64_decode("AAE", &n) == NULL);        /* not a multiple of 4 */
	CHECK(b64_decode("A=AA", &n) == NULL);       /* padding in the middle */
	CHECK(b64_decode("AAF=", &n) == NULL);       /* non-canonical: dropped bits set */
	CHECK(b64_decode("AA==AA==", &n) == NULL);
	CHECK(b64_decode("AA A", &n) == NULL);
	d = b64_decode("", &n);
	CHECK(d && n == 0);
	free(d);
}

static EVP_PKEY *admin, *other;
static char admin_ak_pem[1024];

static char *sign_text(const char *body, EVP_PKEY *k)
{
	struct err e = { 0 };
	json_t *b = json_loads(body, 0, NULL);
	char *out = NULL;

	CHECKF(b, "bad test JSON: %s", body);
	if (b)
		CHECKF(signed_make(b, k, &out, &e) == 0, "%s", e.msg);
	json_decref(b);
	return out;
}

static void test_signed_file(void)
{
	struct err e = { 0 };
	json_t *b;
	char *t = sign_text("{\"type\":\"sealvm-table\",\"x\":\"é\",\"n\":[1,2,{\"a\":true}]}", admin), *p;
	uint8_t sha[32];

	CHECK_INT(signed_parse(t, strlen(t), admin, "sealvm-table", &b, sha, &e), 0);
	CHECK(json_is_object(b));
	json_decref(b);
	/* wrong type: a signed policy is not a table */
	CHECK_INT(signed_parse(t, strlen(t), admin, "sealvm-policy", &b, NULL, &e), -EINVAL);
	CHECKF(strstr(e.msg, "expected a sealvm-policy"), "%s", e.msg);
	/* another administrator */
	CHECK_INT(signed_parse(t, strlen(t), other, "sealvm-table", &b, NULL, &e), -EKEYREJECTED);
	CHECKF(strstr(e.msg, "not signed by the administrator key"), "%s", e.msg);
	/* a changed value */
	p = strstr(t, "\"n\"");
	CHECK(p != NULL);
	if (p) {
		char *q = strchr(p, '1');
		*q = '3';
		CHECK_INT(signed_parse(t, strlen(t), admin, "sealvm-table", &b, NULL, &e), -EBADMSG);
		CHECKF(strstr(e.msg, "changed after it was signed"), "%s", e.msg);
		*q = '1';
	}
	/* whitespace and key order do not matter (canonical form) */
	{
		json_t *root = json_loads(t, 0, NULL);
		char *re = json_dumps(root, JSON_SORT_KEYS);   /* different layout */
		CHECK_INT(signed_parse(re, strlen(re), admin, "sealvm-table", &b, NULL, &e), 0);
		json_decref(b);
		free(re);
		json_decref(root);
	}
	free(t);
	/* reals and duplicate keys are refused */
	t = sign_text("{\"type\":\"sealvm-table\",\"x\":1}", admin);
	p = strstr(t, "\"x\": 1");
	CHECK(p != NULL);
	if (p) {
		char *re = malloc(strlen(t) + 32);
		sprintf(re, "%.*s\"x\": 1.0%s", (int)(p - t), t, p + 6);
		CHECK_INT(signed_parse(re, strlen(re), admin, "sealvm-table", &b, NULL, &e), -EINVAL);
		CHECKF(strstr(e.msg, "real numbers"), "%s", e.msg);
		sprintf(re, "%.*s\"x\": 1, \"x\": 2%s", (int)(p - t), t, p + 6);
		CHECK_INT(signed_parse(re, strlen(re), admin, "sealvm-table", &b, NULL, &e), -EINVAL);
		CHECKF(strstr(e.msg, "duplicate"), "%s", e.msg);
		free(re);
	}
	free(t);
	{
		static const char *bad[] = {
			"", "[]", "{\"signed\":{}}", "{\"signed\":{\"type\":\"sealvm-table\"},\"signatures\":[]}",
			"{\"signed\":{\"type\":\"sealvm-table\"},\"signatures\":[{\"keyid\":1,\"sig\":\"\"}]}",
			"{\"signed\":{\"type\":\"sealvm-table\"},\"signatures\":[],\"extra\":1}",
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			CHECKF(signed_parse(bad[i], strlen(bad[i]), admin, "sealvm-table", &b, NULL, &e) < 0, "accepted %s", bad[i]);
	}
}

static struct trust_table *table_of(const char *body, struct err *e)
{
	char *t = sign_text(body, admin);
	struct trust_table *tab = NULL;

	if (t && table_parse(t, strlen(t), admin, &tab, e) < 0)
		tab = NULL;
	free(t);
	return tab;
}

static void test_table(void)
{
	char body[4096];
	struct err e = { 0 };
	struct trust_table *t;
	uint8_t d1[32], d2[32];
	const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";

	hex_decode(h1, d1, 32);
	hex_decode(h2, d2, 32);
	snprintf(body, sizeof(body),
		 "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":4,\"expires\":4000000000,\"sealvm\":[\"%s\"],"
		 "\"hosts\":[{\"name\":\"hosta\",\"ak\":%s,\"trust\":2},"
		 "{\"name\":\"hostb\",\"ak\":%s,\"trust\":1,\"revoked\":true,\"sealvm\":[\"%s\"]}]}",
		 h1, admin_ak_pem, admin_ak_pem, h2);
	t = table_of(body, &e);
	CHECKF(t != NULL, "%s", e.msg);
	if (t) {
		CHECK_INT(t->serial, 4);
		CHECK_INT(t->nhosts, 2);
		CHECK_INT(t->min_trust, 1);
		CHECK(table_find(t, "hosta") && table_find(t, "hostb")->revoked && !table_find(t, "hostc"));
		CHECK(table_allows_exe(t, table_find(t, "hosta"), d1));
		CHECK(!table_allows_exe(t, table_find(t, "hosta"), d2));   /* only hostb may run build 2 */
		CHECK(table_allows_exe(t, table_find(t, "hostb"), d2));
		CHECK(table_allows_ca(t, d1));                              /* no CA list: any */
		table_free(t);
	}
	static const struct {
		const char *body, *msg;
	} bad[] = {
		{ "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1}", "missing \"hosts\"" },
		{ "{\"type\":\"sealvm-table\",\"version\":2,\"serial\":1,\"hosts\":[]}", "version" },
		{ "{\"type\":\"sealvm-table\",\"version\":1,\"hosts\":[]}", "missing \"serial\"" },
		{ "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":0,\"hosts\":[]}", "out of range" },
		{ "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"hosts\":[],\"expire\":5}", "unknown field \"expire\"" },
		{ "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"hosts\":[],\"sealvm\":[\"12\"]}", "not a SHA-256" },
		{ "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"hosts\":[{\"name\":\"a\",\"trust\":1}]}", "missing \"ak\"" },
		{ "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"hosts\":[{\"name\":\"a\",\"trust\":1,\"ak\":\"x\"}]}", "not a PEM" },
		{ "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"hosts\":[{\"name\":\"a\",\"trust\":10,\"ak\":\"x\"}]}", "out of range" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = table_of(bad[i].body, &e);
		CHECKF(!t && strstr(e.msg, bad[i].msg), "case %zu: %s", i, t ? "accepted" : e.msg);
		table_free(t);
	}
	/* a host twice; an Ed25519 key is not a TPM attestation key */
	{
		char pem[512], *ed = key_public_pem(other);
		json_t *s = json_string(ed);
		char *q = json_dumps(s, JSON_ENCODE_ANY);
		snprintf(pem, sizeof(pem), "%s", q);
		free(q);
		json_decref(s);
		free(ed);
		snprintf(body, sizeof(body),
			 "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"hosts\":[{\"name\":\"a\",\"ak\":%s,\"trust\":1},"
			 "{\"name\":\"a\",\"ak\":%s,\"trust\":1}]}", admin_ak_pem, admin_ak_pem);
		t = table_of(body, &e);
		CHECKF(!t && strstr(e.msg, "listed twice"), "%s", e.msg);
		snprintf(body, sizeof(body),
			 "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"hosts\":[{\"name\":\"a\",\"ak\":%s,\"trust\":1}]}",
			 pem);
		t = table_of(body, &e);
		CHECKF(!t && strstr(e.msg, "not an ECDSA P-256"), "%s", e.msg);
	}
}

static struct policy *policy_of(const char *body, struct err *e)
{
	char *t = sign_text(body, admin);
	struct policy *p = NULL;

	if (t && policy_parse(t, strlen(t), admin, &p, e) < 0)
		p = NULL;
	free(t);
	return p;
}

static void expect(const struct policy *p, const char *who, const char *op, const char *labels, const char *src,
		   const char *dst, int allow, const char *rule)
{
	struct principal pr;
	struct labels l = { 0 };
	struct policy_decision d;
	enum policy_op o;
	struct err e = { 0 };
	char buf[256], *save = NULL;

	CHECK_INT(principal_parse(who, &pr, &e), 0);
	CHECK_INT(policy_op_parse(op, &o), 0);
	snprintf(buf, sizeof(buf), "%s", labels);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		CHECK_INT(labels_add(&l, tok, &e), 0);
	policy_check(p, &pr, o, &l, src, dst, &d);
	CHECKF(d.allow == allow && !strcmp(d.rule, rule), "%s %s [%s] %s->%s: got %s by %s (%s)", who, op, labels,
	       src ? src : "-", dst ? dst : "-", d.allow ? "allow" : "deny", d.rule, d.reason);
	CHECKF(strstr(d.reason, rule), "reason does not name the rule: %s", d.reason);
}

static void test_policy(void)
{
	struct err e = { 0 };
	struct policy *p = policy_of(
		"{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":3,"
		" \"groups\":{\"cluster\":[\"hosta\",\"hostb\",\"hostc\"],\"secure\":[\"hostb\"]},"
		" \"sensitive\":[{\"class\":\"secret\"},{\"tenant\":\"bank\",\"tier\":\"*\"}],"
		" \"roles\":["
		"  {\"name\":\"acme-ops\",\"principals\":[\"uid:1000\"],\"ops\":[\"migrate\",\"snapshot\"],"
		"   \"labels\":{\"tenant\":\"acme\"},\"from\":[\"@cluster\"],\"to\":[\"@cluster\"]},"
		"  {\"name\":\"root-all\",\"principals\":[\"user:root\"],\"ops\":[\"*\"]},"
		"  {\"name\":\"cluster-receive\",\"principals\":[\"host:@cluster\"],\"ops\":[\"migrate\"],"
		"   \"from\":[\"@cluster\"],\"to\":[\"@cluster\"]},"
		"  {\"name\":\"owner-console\",\"principals\":[\"uid:2000\"],\"ops\":[\"console\"],\"labels\":{\"owner\":\"*\"}}],"
		" \"deny\":["
		"  {\"name\":\"secret-stays-secure\",\"principals\":[\"*\"],\"ops\":[\"migrate\"],\"labels\":{\"class\":\"secret\"},"
		"   \"to\":[\"hosta\",\"hostc\"]},"
		"  {\"name\":\"no-hostc-source\",\"principals\":[\"host:hostc\"],\"ops\":[\"*\"]}]}",
		&e);
	int which = -1;
	struct labels l = { 0 };

	CHECKF(p != NULL, "%s", e.msg);
	if (!p)
		return;
	/* roles */
	expect(p, "uid:1000", "migrate", "tenant=acme", "hosta", "hostb", 1, "acme-ops");
	expect(p, "uid:1000", "snapshot", "tenant=acme", "hosta", NULL, 0, "default-deny"); /* "to" needs a host */
	/* a principal migrating a VM it may not touch */
	expect(p, "uid:1000", "migrate", "tenant=globex", "hosta", "hostb", 0, "default-deny");
	expect(p, "uid:1000", "migrate", "", "hosta", "hostb", 0, "default-deny");
	expect(p, "uid:1000", "migrate", "tenant=acme", "hosta", "hostz", 0, "default-deny");   /* not in the group */
	expect(p, "uid:1000", "restore", "tenant=acme", "hosta", "hostb", 0, "default-deny");
	expect(p, "uid:1001", "migrate", "tenant=acme", "hosta", "hostb", 0, "default-deny");
	expect(p, "uid:0", "snapshot", "", NULL, NULL, 1, "root-all");                         /* user:root */
	expect(p, "uid:2000", "console", "owner=ann", NULL, NULL, 1, "owner-console");
	expect(p, "uid:2000", "console", "tenant=acme", NULL, NULL, 0, "default-deny");
	/* the destination's question: which source may send which labels */
	expect(p, "host:hosta", "migrate", "tenant=acme", "hosta", "hostb", 1, "cluster-receive");
	expect(p, "host:hostz", "migrate", "tenant=acme", "hostz", "hostb", 0, "default-deny");
	expect(p, "host:hosta", "snapshot", "", "hosta", "hostb", 0, "default-deny");
	/* deny rules win over any role, and are named */
	expect(p, "uid:0", "migrate", "class=secret", "hostb", "hosta", 0, "secret-stays-secure");
	expect(p, "uid:0", "migrate", "class=secret", "hosta", "hostb", 1, "root-all");
	expect(p, "host:hostc", "migrate", "tenant=acme", "hostc", "hostb", 0, "no-hostc-source");
	/* sensitive labels */
	labels_add(&l, "tier=gold", &e);
	CHECK(!policy_is_sensitive(p, &l, &which));
	labels_add(&l, "tenant=bank", &e);
	CHECK(policy_is_sensitive(p, &l, &which) && which == 1);
	CHECK_INT(policy_serial(p), 3);
	policy_free(p);

	/* expired policy: every request denied, naming the expiry */
	p = policy_of("{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"expires\":1000,"
		      "\"roles\":[{\"name\":\"all\",\"principals\":[\"*\"],\"ops\":[\"*\"]}]}", &e);
	CHECKF(p != NULL, "%s", e.msg);
	if (p) {
		expect(p, "uid:0", "migrate", "", "a", "b", 0, "policy-expired");
		policy_free(p);
	}
	/* an empty policy denies everything */
	p = policy_of("{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1}", &e);
	CHECKF(p != NULL, "%s", e.msg);
	if (p) {
		expect(p, "uid:0", "migrate", "", "a", "b", 0, "default-deny");
		policy_free(p);
	}
	static const struct {
		const char *body, *msg;
	} bad[] = {
		{ "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"roles\":[{\"name\":\"r\",\"ops\":[\"migrate\"]}]}",
		  "missing \"principals\"" },
		{ "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"roles\":[{\"name\":\"r\",\"principals\":[\"*\"],"
		  "\"ops\":[\"fly\"]}]}", "ops[0]" },
		{ "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"roles\":[{\"name\":\"r\",\"principals\":[\"bob\"],"
		  "\"ops\":[\"*\"]}]}", "is not \"*\", uid:N" },
		{ "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"roles\":[{\"name\":\"r\",\"principals\":[\"*\"],"
		  "\"ops\":[\"*\"],\"to\":[\"@nogroup\"]}]}", "no host group 'nogroup'" },
		{ "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"roles\":[{\"name\":\"r\",\"principals\":[\"*\"],"
		  "\"ops\":[\"*\"],\"lables\":{}}]}", "unknown field \"lables\"" },
		{ "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"sensitive\":[{}]}", "is empty" },
		{ "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,\"roles\":[{\"name\":\"r\",\"principals\":[\"uid:x\"],"
		  "\"ops\":[\"*\"]}]}", "uid is not a number" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = policy_of(bad[i].body, &e);
		CHECKF(!p && strstr(e.msg, bad[i].msg), "case %zu: %s", i, p ? "accepted" : e.msg);
		policy_free(p);
	}
}

static void test_labels(void)
{
	struct labels l = { 0 };
	struct err e = { 0 };
	char buf[128];
	json_t *j;
	struct labels back;

	CHECK_INT(labels_add(&l, "tenant=acme", &e), 0);
	CHECK_INT(labels_add(&l, "class=", &e), 0);       /* empty value is a value */
	CHECK_INT(labels_add(&l, "tenant=x", &e), -EINVAL);
	CHECK_INT(labels_add(&l, "noequals", &e), -EINVAL);
	CHECK_INT(labels_add(&l, "=v", &e), -EINVAL);
	CHECK_INT(labels_add(&l, "bad key=v", &e), -EINVAL);
	CHECK_INT(labels_add(&l, "k=a,b", &e), -EINVAL);
	CHECK_STR(labels_get(&l, "tenant"), "acme");
	CHECK(labels_get(&l, "nope") == NULL);
	labels_format(&l, buf, sizeof(buf));
	CHECK_STR(buf, "tenant=acme,class=");
	j = labels_to_json(&l);
	CHECK_INT(labels_from_json(j, &back, &e), 0);
	CHECK_INT(back.n, 2);
	json_decref(j);
	for (int i = 0; i < LABELS_MAX; i++) {
		snprintf(buf, sizeof(buf), "k%d=v", i);
		labels_add(&back, buf, &e);
	}
	CHECK_INT(labels_add(&back, "one=more", &e), -E2BIG);
}

int main(void)
{
	struct err e = { 0 };
	EVP_PKEY *ec;

	snprintf(dir, sizeof(dir), "/tmp/trust-unit.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	CHECK_INT(key_generate("ed25519", &admin, &e), 0);
	CHECK_INT(key_generate("ed25519", &other, &e), 0);
	CHECK_INT(key_generate("ecdsa-p256", &ec, &e), 0);
	{
		char *pem = key_public_pem(ec);
		json_t *s = json_string(pem);
		char *q = json_dumps(s, JSON_ENCODE_ANY);
		snprintf(admin_ak_pem, sizeof(admin_ak_pem), "%s", q);
		free(q);
		free(pem);
		json_decref(s);
	}
	test_secret_file();
	test_codecs();
	test_signed_file();
	test_table();
	test_policy();
	test_labels();
	key_free(admin);
	key_free(other);
	key_free(ec);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd)) {
		}
	}
	return unit_done();
}
