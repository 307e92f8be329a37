/* sealvm admin keygen | sign | verify: the cluster administrator's tools for the
 * integrity validation table and the migration policy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/trust_cmds.h"
#include "trust/jsonx.h"
#include "trust/policy.h"
#include "trust/signed_file.h"
#include "trust/table.h"
#include "util/file.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm admin keygen --out KEY.pem [--type ed25519|ecdsa-p256]\n"
		   "       sealvm admin sign --key KEY.pem --out SIGNED.json CONTENT.json\n"
		   "       sealvm admin verify --admin-key KEY.pub.pem SIGNED.json\n"
		   "  keygen  writes the private key (mode 0600) and KEY.pub.pem (install it on every host\n"
		   "          with sealvm host init --admin-key)\n"
		   "  sign    checks CONTENT.json (a table, \"type\": \"sealvm-table\", or a policy,\n"
		   "          \"type\": \"sealvm-policy\") and writes it signed\n"
		   "  verify  checks a signed file's signature and content\n");
}

static int opts(int argc, char **argv, const char **key, const char **out, const char **type, const char **admin)
{
	static const struct option lo[] = { { "key", required_argument, NULL, 'k' },
					    { "out", required_argument, NULL, 'o' },
					    { "type", required_argument, NULL, 't' },
					    { "admin-key", required_argument, NULL, 'a' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'k': *key = optarg; break;
		case 'o': *out = optarg; break;
		case 't': *type = optarg; break;
		case 'a': *admin = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealvm admin: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	return -1;
}

/* Parses the content as what its "type" says, so mistakes show before signing. */
static int check_content(json_t *b, struct err *e)
{
	const char *type = json_string_value(json_object_get(b, "type"));

	if (type && !strcmp(type, TABLE_TYPE)) {
		struct trust_table *t;
		int rc = table_from_json(b, &t, e);
		if (rc == 0)
			printf("table: serial %llu, %zu hosts\n", (unsigned long long)t->serial, t->nhosts);
		table_free(t);
		return rc;
	}
	if (type && !strcmp(type, POLICY_TYPE)) {
		struct policy *p;
		int rc = policy_from_json(b, &p, e);
		if (rc == 0)
			printf("policy: serial %llu\n", (unsigned long long)policy_serial(p));
		policy_free(p);
		return rc;
	}
	return err_set(e, -EINVAL, "\"type\" must be \"%s\" or \"%s\"", TABLE_TYPE, POLICY_TYPE);
}

static int keygen(const char *out, const char *type)
{
	char pub[4200];
	EVP_PKEY *k;
	struct err e = { 0 };

	if (!out) {
		usage(stderr);
		return 2;
	}
	snprintf(pub, sizeof(pub), "%.*s.pub.pem", (int)(strlen(out) > 4 && !strcmp(out + strlen(out) - 4, ".pem") ? strlen(out) - 4 : strlen(out)), out);
	if (key_generate(type ? type : "ed25519", &k, &e) < 0 || key_save(k, out, pub, &e) < 0) {
		fprintf(stderr, "sealvm: admin keygen: %s\n", e.msg);
		return 2;
	}
	key_free(k);
	printf("private key %s (0600), public key %s\n", out, pub);
	return 0;
}

static int sign(const char *keyp, const char *out, const char *in)
{
	struct err e = { 0 };
	EVP_PKEY *k = NULL;
	json_t *b = NULL;
	char *text = NULL, *signed_text = NULL;
	size_t len;
	int rc = 2;

	if (!keyp || !out || !in) {
		usage(stderr);
		return 2;
	}
	if (key_private_from_file(keyp, &k, &e) < 0 || file_read_all(in, SIGNED_FILE_MAX, &text, &len, &e) < 0 ||
	    !(b = jx_parse(text, len, in, &e)) || jx_no_reals(b, &e) < 0 || check_content(b, &e) < 0 ||
	    signed_make(b, k, &signed_text, &e) < 0 || file_write_atomic(out, signed_text, strlen(signed_text), 0644, &e) < 0) {
		fprintf(stderr, "sealvm: admin sign: %s\n", e.msg);
		goto out;
	}
	printf("signed %s -> %s\n", in, out);
	rc = 0;
out:
	key_free(k);
	json_decref(b);
	free(text);
	free(signed_text);
	return rc;
}

static int verify(const char *admin, const char *file)
{
	struct err e = { 0 };
	EVP_PKEY *k = NULL;
	char *text = NULL;
	size_t len;
	json_t *b = NULL;
	int rc = 1;

	if (!admin || !file) {
		usage(stderr);
		return 2;
	}
	if (key_public_from_file(admin, &k, &e) < 0 || file_read_all(file, SIGNED_FILE_MAX, &text, &len, &e) < 0) {
		fprintf(stderr, "sealvm: admin verify: %s\n", e.msg);
		rc = 2;
		goto out;
	}
	/* the type is whatever the file says; signed_parse checks it matches */
	{
		json_t *root = json_loadb(text, len, 0, NULL);
		const char *type = json_string_value(json_object_get(json_object_get(root, "signed"), "type"));
		char t[32];
		snprintf(t, sizeof(t), "%s", type ? type : "?");
		json_decref(root);
		if (signed_parse(text, len, k, t, &b, NULL, &e) < 0 || check_content(b, &e) < 0) {
			fprintf(stderr, "sealvm: %s: %s\n", file, e.msg);
			goto out;
		}
	}
	printf("%s: signature OK\n", file);
	rc = 0;
out:
	key_free(k);
	json_decref(b);
	free(text);
	return rc;
}

int cmd_admin(int argc, char **argv)
{
	const char *key = NULL, *out = NULL, *type = NULL, *admin = NULL, *sub = argc >= 2 ? argv[1] : "";
	int rc;

	if (!strcmp(sub, "--help") || !strcmp(sub, "help")) {
		usage(stdout);
		return 0;
	}
	if (strcmp(sub, "keygen") && strcmp(sub, "sign") && strcmp(sub, "verify")) {
		usage(stderr);
		return 2;
	}
	rc = opts(argc - 1, argv + 1, &key, &out, &type, &admin);
	if (rc >= 0)
		return rc;
	if (!strcmp(sub, "keygen"))
		return optind + 1 == argc ? keygen(out, type) : (usage(stderr), 2);
	if (!strcmp(sub, "sign"))
		return optind + 2 == argc ? sign(key, out, argv[optind + 1]) : (usage(stderr), 2);
	return optind + 2 == argc ? verify(admin, argv[optind + 1]) : (usage(stderr), 2);
}
