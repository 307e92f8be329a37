/* sealvm host init | measure */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/trust_cmds.h"
#include "trust/eventlog.h"
#include "trust/host.h"
#include "trust/tpm.h"
#include "util/hex.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm host init --state-dir DIR --tpm swtpm:host=ADDR,port=PORT --name NAME\n"
		   "                        [--admin-key ADMIN.pub.pem]\n"
		   "       sealvm host measure --state-dir DIR [--table FILE --policy FILE] [--ca FILE]\n"
		   "  init     creates the TPM attestation key (DIR/ak.pem: give it to the administrator\n"
		   "           for the integrity validation table), the TPM audit counter, the audit key\n"
		   "           and DIR/host.json; --admin-key installs the administrator's public key\n"
		   "  measure  does what every sealvm start does: verifies table and policy, measures the\n"
		   "           executable and configuration into PCR %d, records the start; prints the log\n",
		TPM_PCR);
}

static int init(int argc, char **argv)
{
	static const struct option lo[] = { { "state-dir", required_argument, NULL, 's' },
					    { "tpm", required_argument, NULL, 't' },
					    { "name", required_argument, NULL, 'n' },
					    { "admin-key", required_argument, NULL, 'a' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	const char *dir = STATE_DIR_DEFAULT, *tpm = NULL, *name = NULL, *admin = NULL;
	struct host_config hc;
	struct err e = { 0 };
	char path[4200];
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 't': tpm = optarg; break;
		case 'n': name = optarg; break;
		case 'a': admin = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealvm host init: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (!tpm || !name || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (host_init(dir, name, tpm, admin, &hc, &e) < 0) {
		fprintf(stderr, "sealvm: host init: %s\n", e.msg);
		return 2;
	}
	printf("host %s initialised in %s\n", hc.name, dir);
	printf("attestation key: %s (fingerprint %s)\n", host_path(dir, "ak.pem", path, sizeof(path)), hc.ak_fpr);
	printf("add it to the integrity validation table as {\"name\": \"%s\", \"ak\": <contents of ak.pem>, ...}\n",
	       hc.name);
	return 0;
}

static int measure(int argc, char **argv)
{
	static const struct option lo[] = { { "state-dir", required_argument, NULL, 's' },
					    { "table", required_argument, NULL, 'T' },
					    { "policy", required_argument, NULL, 'P' },
					    { "ca", required_argument, NULL, 'c' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	struct trust_opts o = { .state_dir = STATE_DIR_DEFAULT, .role = "measure" };
	struct trust_ctx *ctx;
	struct err e = { 0 };
	char hex[65];
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.state_dir = optarg; break;
		case 'T': o.table = optarg; break;
		case 'P': o.policy = optarg; break;
		case 'c': o.ca = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealvm host measure: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (trust_start(&o, &ctx, &e) < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		return 2;
	}
	if (!ctx->open_mode) {
		hex_encode(ctx->exe_sha256, 32, hex);
		printf("sealvm executable sha256 %s\n", hex);
		printf("measured into PCR %d: %d new event(s)\n", TPM_PCR, ctx->events_added);
	}
	trust_stop(ctx);
	return 0;
}

int cmd_host(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "init"))
		return init(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "measure"))
		return measure(argc - 1, argv + 1);
	usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
	return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
}
