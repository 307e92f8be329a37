/* Measures what each trust step costs on this machine, against a real swtpm:
 *   trust_bench --tpm SPEC --dir DIR [--rounds N] [--sealvm PATH]
 * DIR is a fresh working directory (state dir, keys). Prints one JSON object with the
 * medians (ms) of: hashing the sealvm executable, a trusted start (verify table and
 * policy, measure, open the audit log), a TPM quote, making evidence, verifying it (and
 * its parts: signature, replay, table lookup), a policy decision (small and 1000-rule
 * policies), audit appends (plain, with an Ed25519-signed head, with a TPM-certified
 * head); plus the sizes of the event log and the evidence. Used by `make bench
 * BENCH=trust` (bench/trust.sh). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "trust/attest.h"
#include "trust/audit.h"
#include "trust/eventlog.h"
#include "trust/host.h"
#include "trust/signed_file.h"
#include "trust/tpm.h"
#include "trust/tpm_attest.h"
#include "util/file.h"
#include "util/hex.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, struct err *e)
{
	fprintf(stderr, "trust_bench: %s: %s\n", what, e->msg);
	exit(1);
}

static char dir[4096];

static const char *p(const char *name)
{
	static char bufs[4][4200];
	static int k;
	char *b = bufs[k++ % 4];

	snprintf(b, 4200, "%s/%s", dir, name);
	return b;
}

static void sign_to(const char *path, const char *body, EVP_PKEY *k)
{
	struct err e = { 0 };
	json_t *b = json_loads(body, 0, NULL);
	char *t;

	if (!b || signed_make(b, k, &t, &e) < 0 || file_write_atomic(path, t, strlen(t), 0644, &e) < 0)
		die("signing", &e);
	free(t);
	json_decref(b);
}

#define R_MAX 1000

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "tpm", required_argument, NULL, 't' },
					    { "dir", required_argument, NULL, 'd' },
					    { "rounds", required_argument, NULL, 'r' },
					    { "sealvm", required_argument, NULL, 's' },
					    { NULL, 0, NULL, 0 } };
	const char *spec = NULL, *sealvm = "build/sealvm";
	int rounds = 30, c;
	struct err e = { 0 };
	EVP_PKEY *admin;
	struct host_config hc;
	char sd[4200], body[8192], exe[65], *akpem, *blob = NULL;
	double t[R_MAX], t0, exe_ms, start_ms, start_again_ms, quote_ms, make_ms, verify_ms, sig_ms, replay_ms,
		find_ms, pol_small_us, pol_big_us, audit_plain_ms, audit_sig_ms, audit_tpm_ms;
	size_t len, evlen = 0, nevents = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't': spec = optarg; break;
		case 'd': snprintf(dir, sizeof(dir), "%s", optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 's': sealvm = optarg; break;
		default: return 2;
		}
	}
	if (!spec || !dir[0] || rounds < 1 || rounds > R_MAX) {
		fprintf(stderr, "usage: trust_bench --tpm SPEC --dir DIR [--rounds 1..%d] [--sealvm PATH]\n", R_MAX);
		return 2;
	}
	/* hashing the executable, as every start does */
	for (int i = 0; i < rounds; i++) {
		uint8_t d[32];
		t0 = now_ms();
		if (sha256_file(sealvm, d, &e) < 0)
			die("hashing sealvm", &e);
		t[i] = now_ms() - t0;
	}
	exe_ms = median(t, rounds);

	if (key_generate("ed25519", &admin, &e) < 0 || key_save(admin, p("admin.pem"), p("admin.pub.pem"), &e) < 0)
		die("admin key", &e);
	snprintf(sd, sizeof(sd), "%s/state", dir);
	if (host_init(sd, "hostb", spec, p("admin.pub.pem"), &hc, &e) < 0)
		die("host init", &e);
	if (file_read_all(p("state/ak.pem"), 4096, &akpem, &len, &e) < 0)
		die("ak.pem", &e);
	{
		uint8_t d[32];
		json_t *s = json_string(akpem);
		char *q = json_dumps(s, JSON_ENCODE_ANY);
		sha256_file("/proc/self/exe", d, &e);
		hex_encode(d, 32, exe);
		snprintf(body, sizeof(body),
			 "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"sealvm\":[\"%s\"],"
			 "\"hosts\":[{\"name\":\"hostb\",\"ak\":%s,\"trust\":2}]}", exe, q);
		free(q);
		json_decref(s);
	}
	sign_to(p("table.signed"), body, admin);
	sign_to(p("policy.signed"), "{\"type\":\"sealvm-policy\",\"version\":1,\"serial\":1,"
				    "\"groups\":{\"cluster\":[\"hosta\",\"hostb\"]},"
				    "\"roles\":[{\"name\":\"ops\",\"principals\":[\"uid:1000\"],\"ops\":[\"migrate\"],"
				    "\"labels\":{\"tenant\":\"acme\"},\"from\":[\"@cluster\"],\"to\":[\"@cluster\"]},"
				    "{\"name\":\"peers\",\"principals\":[\"host:@cluster\"],\"ops\":[\"migrate\"]}],"
				    "\"deny\":[{\"name\":\"no-secret\",\"principals\":[\"*\"],\"ops\":[\"migrate\"],"
				    "\"labels\":{\"class\":\"secret\"},\"to\":[\"hosta\"]}]}",
		admin);

	/* a trusted start: verify table and policy, measure, open the audit log */
	{
		struct trust_opts o = { .state_dir = sd, .table = p("table.signed"), .policy = p("policy.signed"),
					.role = "bench" };
		struct trust_ctx *ctx;
		t0 = now_ms();
		if (trust_start(&o, &ctx, &e) < 0)
			die("trusted start", &e);
		start_ms = now_ms() - t0;
		trust_stop(ctx);
		for (int i = 0; i < rounds; i++) {
			t0 = now_ms();
			if (trust_start(&o, &ctx, &e) < 0)
				die("trusted start", &e);
			t[i] = now_ms() - t0;
			trust_stop(ctx);
		}
		start_again_ms = median(t, rounds);
	}

	/* a quote alone (connect, TPM2_Quote, disconnect) */
	for (int i = 0; i < rounds; i++) {
		struct tpm *tp;
		struct tpm_signed q;
		uint8_t qual[32] = { (uint8_t)i };
		t0 = now_ms();
		if (tpm_connect(spec, &tp, &e) < 0 || tpm_quote(tp, TPM_PCR, qual, 32, &q, &e) < 0)
			die("quote", &e);
		tpm_disconnect(tp);
		t[i] = now_ms() - t0;
		tpm_signed_free(&q);
	}
	quote_ms = median(t, rounds);

	/* evidence: make and verify */
	{
		struct trust_table *tab;
		EVP_PKEY *pub;
		uint8_t nonce[32], bound[32];
		double tv[R_MAX];
		struct attest_expect x = { .peer_name = "hostb", .policy_serial = 1 };
		struct attest_verdict v;

		if (key_public_from_file(p("admin.pub.pem"), &pub, &e) < 0 || table_load(p("table.signed"), pub, &tab, &e) < 0)
			die("table", &e);
		for (int i = 0; i < rounds; i++) {
			attest_nonce(nonce, &e);
			attest_bind(nonce, (const uint8_t *)"ekm-ekm-ekm-ekm-ekm-ekm-ekm-ekm-", 32, bound);
			free(blob);
			t0 = now_ms();
			if (attest_make_evidence(sd, spec, "hostb", bound, &blob, &evlen, &e) < 0)
				die("evidence", &e);
			t[i] = now_ms() - t0;
			t0 = now_ms();
			attest_verify(blob, evlen, bound, tab, &x, &v);
			tv[i] = now_ms() - t0;
			if (!v.ok) {
				fprintf(stderr, "trust_bench: refused: %s\n", v.reason);
				return 1;
			}
			nevents = v.events;
		}
		make_ms = median(t, rounds);
		verify_ms = median(tv, rounds);
		/* the parts: signature over the quote, replay of the log, table lookup */
		{
			json_t *o = json_loads(blob, 0, NULL);
			size_t qn, sn;
			uint8_t *q = b64_decode(json_string_value(json_object_get(o, "quote")), &qn);
			uint8_t *s = b64_decode(json_string_value(json_object_get(o, "sig")), &sn), pcr[32];
			struct eventlog l;
			struct tpm_attest_info info;
			const int reps = 200;

			if (eventlog_from_json(json_object_get(o, "events"), &l, &e) < 0)
				die("events", &e);
			t0 = now_ms();
			for (int i = 0; i < reps; i++)
				if (tpm_attest_parse_quote(q, qn, &info, &e) < 0 ||
				    tpm_attest_verify(table_find(tab, "hostb")->ak, q, qn, s, sn) < 0)
					die("signature", &e);
			sig_ms = (now_ms() - t0) / reps;
			t0 = now_ms();
			for (int i = 0; i < reps; i++)
				eventlog_replay(&l, TPM_PCR, pcr);
			replay_ms = (now_ms() - t0) / reps;
			t0 = now_ms();
			for (int i = 0; i < reps * 100; i++)
				if (!table_find(tab, "hostb"))
					return 1;
			find_ms = (now_ms() - t0) / (reps * 100);
			eventlog_free(&l);
			free(q);
			free(s);
			json_decref(o);
		}
		table_free(tab);
		key_free(pub);
	}

	/* policy decisions: the small policy, and one with 1000 roles that do not match */
	{
		struct policy *pol;
		EVP_PKEY *pub;
		struct principal pr = { .uid = 1000 };
		struct labels l = { 0 };
		struct policy_decision d;
		const int reps = 100000;
		json_t *big = json_pack("{s:s, s:i, s:i, s:[]}", "type", "sealvm-policy", "version", 1, "serial", 1, "roles");
		char *bt;

		labels_add(&l, "tenant=acme", &e);
		if (key_public_from_file(p("admin.pub.pem"), &pub, &e) < 0 || policy_load(p("policy.signed"), pub, &pol, &e) < 0)
			die("policy", &e);
		t0 = now_ms();
		for (int i = 0; i < reps; i++)
			policy_check(pol, &pr, OP_MIGRATE, &l, "hosta", "hostb", &d);
		pol_small_us = (now_ms() - t0) * 1000 / reps;
		if (!d.allow)
			return 1;
		policy_free(pol);
		for (int i = 0; i < 1000; i++) {
			char name[32], tenant[32];
			snprintf(name, sizeof(name), "role-%d", i);
			snprintf(tenant, sizeof(tenant), "t%d", i);
			json_array_append_new(json_object_get(big, "roles"),
					      json_pack("{s:s, s:[s], s:[s], s:{s:s}, s:[s], s:[s]}", "name", name, "principals",
							"uid:1000", "ops", "migrate", "labels", "tenant", tenant, "from",
							"hosta", "to", "hostb"));
		}
		if (signed_make(big, admin, &bt, &e) < 0 || policy_parse(bt, strlen(bt), admin, &pol, &e) < 0)
			die("big policy", &e);
		t0 = now_ms();
		for (int i = 0; i < reps / 100; i++)
			policy_check(pol, &pr, OP_MIGRATE, &l, "hosta", "hostb", &d);
		pol_big_us = (now_ms() - t0) * 1000 / (reps / 100);
		policy_free(pol);
		free(bt);
		json_decref(big);
		key_free(pub);
	}

	/* audit appends */
	{
		struct audit_opts ao = { .path = p("bench-audit.jsonl"), .key_path = p("state/audit-key.pem"),
					 .head_every = 1000000 };
		struct audit_log *al;
		json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "result", "allow", "rule", "ops", "principal", "uid:1000",
				      "reason", "policy allows uid:1000 to migrate VM [tenant=acme] from hosta to hostb");

		if (audit_open(&ao, &al, &e) < 0)
			die("audit", &e);
		for (int i = 0; i < rounds; i++) {
			t0 = now_ms();
			audit_append(al, "policy", f, &e);
			t[i] = now_ms() - t0;
		}
		audit_plain_ms = median(t, rounds);
		for (int i = 0; i < rounds; i++) {
			t0 = now_ms();
			audit_sign_head(al, &e);   /* appends one head */
			t[i] = now_ms() - t0;
			audit_append(al, "policy", f, &e);
		}
		audit_sig_ms = median(t, rounds);
		audit_close(al);
		ao.tpm_spec = spec;
		if (audit_open(&ao, &al, &e) < 0)
			die("audit", &e);
		for (int i = 0; i < rounds; i++) {
			audit_append(al, "policy", f, &e);
			t0 = now_ms();
			if (audit_sign_head(al, &e) < 0)
				die("TPM head", &e);
			t[i] = now_ms() - t0;
		}
		audit_tpm_ms = median(t, rounds);
		audit_close(al);
		json_decref(f);
	}

	printf("{\"rounds\": %d, \"sealvm_bytes\": %lld, \"exe_sha256_ms\": %.3f, \"first_trusted_start_ms\": %.3f, "
	       "\"trusted_start_ms\": %.3f, \"quote_ms\": %.3f, \"make_evidence_ms\": %.3f, \"verify_ms\": %.3f, "
	       "\"verify_signature_ms\": %.3f, \"verify_replay_ms\": %.4f, \"verify_table_lookup_ms\": %.5f, "
	       "\"policy_check_us\": %.3f, \"policy_check_1000_roles_us\": %.3f, \"audit_append_ms\": %.3f, "
	       "\"audit_signed_head_ms\": %.3f, \"audit_tpm_head_ms\": %.3f, \"event_log_lines\": %zu, "
	       "\"evidence_bytes\": %zu}\n",
	       rounds, (long long)({ struct stat st; stat(sealvm, &st) == 0 ? (long long)st.st_size : -1LL; }), exe_ms,
	       start_ms, start_again_ms, quote_ms, make_ms, verify_ms, sig_ms, replay_ms, find_ms, pol_small_us,
	       pol_big_us, audit_plain_ms, audit_sig_ms, audit_tpm_ms, nevents, evlen);
	free(blob);
	free(akpem);
	key_free(admin);
	return 0;
}
