/* sealvm attest quote | verify: the Attest phase by hand (the migration handshake does
 * the same over its TLS session), for tests and for operators checking a host. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/trust_cmds.h"
#include "trust/attest.h"
#include "trust/host.h"
#include "trust/tpm.h"
#include "util/file.h"
#include "util/hex.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm attest quote --state-dir DIR --nonce HEX [--ekm HEX] [--out FILE]\n"
		   "       sealvm attest verify --table FILE --admin-key PUB --nonce HEX [--ekm HEX] --peer NAME\n"
		   "                            [--policy-serial N] EVIDENCE\n"
		   "  quote   answers a challenge: a TPM quote of PCR %d over SHA-256(\"sealvm-attest-v1\" ||\n"
		   "          nonce || ekm) with the event log (the nonce is 32 bytes; ekm stands for the TLS\n"
		   "          exporter secret a migration mixes in)\n"
		   "  verify  checks evidence against the integrity validation table for host NAME; prints\n"
		   "          the verdict, exit 0 if attested, 1 if refused\n",
		TPM_PCR);
}

struct opts {
	const char *dir, *nonce, *ekm, *out, *table, *admin, *peer;
	unsigned long long policy_serial;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = { { "state-dir", required_argument, NULL, 's' },
					    { "nonce", required_argument, NULL, 'n' },
					    { "ekm", required_argument, NULL, 'k' },
					    { "out", required_argument, NULL, 'o' },
					    { "table", required_argument, NULL, 'T' },
					    { "admin-key", required_argument, NULL, 'a' },
					    { "peer", required_argument, NULL, 'p' },
					    { "policy-serial", required_argument, NULL, 'S' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	int c;

	memset(o, 0, sizeof(*o));
	o->dir = STATE_DIR_DEFAULT;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->dir = optarg; break;
		case 'n': o->nonce = optarg; break;
		case 'k': o->ekm = optarg; break;
		case 'o': o->out = optarg; break;
		case 'T': o->table = optarg; break;
		case 'a': o->admin = optarg; break;
		case 'p': o->peer = optarg; break;
		case 'S': o->policy_serial = strtoull(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealvm attest: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	return -1;
}

static int bound_of(const struct opts *o, uint8_t bound[ATTEST_BOUND_LEN])
{
	uint8_t nonce[ATTEST_NONCE_LEN], ekm[64];
	size_t ekm_len = 0;

	if (!o->nonce || hex_decode(o->nonce, nonce, sizeof(nonce)) < 0) {
		fprintf(stderr, "sealvm attest: --nonce must be %d hex digits\n", 2 * ATTEST_NONCE_LEN);
		return -1;
	}
	if (o->ekm) {
		ekm_len = strlen(o->ekm) / 2;
		if (ekm_len == 0 || ekm_len > sizeof(ekm) || hex_decode(o->ekm, ekm, ekm_len) < 0) {
			fprintf(stderr, "sealvm attest: --ekm must be 2 to 128 hex digits\n");
			return -1;
		}
	}
	attest_bind(nonce, ekm, ekm_len, bound);
	return 0;
}

static int quote(const struct opts *o)
{
	uint8_t bound[ATTEST_BOUND_LEN];
	struct host_config hc;
	struct err e = { 0 };
	char *blob;
	size_t len;

	if (bound_of(o, bound) < 0)
		return 2;
	if (host_config_load(o->dir, &hc, &e) < 0 || attest_make_evidence(o->dir, hc.tpm, hc.name, bound, &blob, &len, &e) < 0) {
		fprintf(stderr, "sealvm: attest quote: %s\n", e.msg);
		return 2;
	}
	if (o->out) {
		if (file_write_atomic(o->out, blob, len, 0644, &e) < 0) {
			fprintf(stderr, "sealvm: attest quote: %s\n", e.msg);
			free(blob);
			return 2;
		}
	} else {
		printf("%s\n", blob);
	}
	free(blob);
	return 0;
}

static int verify(const struct opts *o, const char *file)
{
	uint8_t bound[ATTEST_BOUND_LEN];
	struct trust_table *t = NULL;
	struct attest_verdict v;
	struct attest_expect x = { .peer_name = o->peer, .policy_serial = o->policy_serial };
	struct err e = { 0 };
	EVP_PKEY *admin = NULL;
	char *blob = NULL;
	size_t len;
	int rc = 2;

	if (!o->table || !o->admin || !o->peer) {
		usage(stderr);
		return 2;
	}
	if (bound_of(o, bound) < 0)
		return 2;
	if (key_public_from_file(o->admin, &admin, &e) < 0 || table_load(o->table, admin, &t, &e) < 0 ||
	    file_read_all(file, ATTEST_EVIDENCE_MAX + 1, &blob, &len, &e) < 0) {
		fprintf(stderr, "sealvm: attest verify: %s\n", e.msg);
		goto out;
	}
	attest_verify(blob, len, bound, t, &x, &v);
	printf("%s: %s\n", v.ok ? "ATTESTED" : "REFUSED", v.reason);
	rc = v.ok ? 0 : 1;
out:
	free(blob);
	table_free(t);
	key_free(admin);
	return rc;
}

int cmd_attest(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";
	struct opts o;
	int rc;

	if (!strcmp(sub, "--help") || !strcmp(sub, "help")) {
		usage(stdout);
		return 0;
	}
	if (strcmp(sub, "quote") && strcmp(sub, "verify")) {
		usage(stderr);
		return 2;
	}
	rc = parse(argc - 1, argv + 1, &o);
	if (rc >= 0)
		return rc;
	if (!strcmp(sub, "quote"))
		return optind + 1 == argc ? quote(&o) : (usage(stderr), 2);
	return optind + 2 == argc ? verify(&o, argv[optind + 1]) : (usage(stderr), 2);
}
