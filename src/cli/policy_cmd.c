/* sealvm policy check: asks a signed policy what it decides (for administrators writing
 * policies, and for tests). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/trust_cmds.h"
#include "trust/policy.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm policy check --policy FILE --admin-key PUB --principal uid:N|user:NAME|host:NAME\n"
		   "                           --op migrate|snapshot|restore|console [--label k=v]...\n"
		   "                           [--from HOST] [--to HOST]\n"
		   "  prints ALLOW or DENY with the deciding rule; exit 0 allow, 1 deny\n");
}

int cmd_policy(int argc, char **argv)
{
	static const struct option lo[] = { { "policy", required_argument, NULL, 'p' },
					    { "admin-key", required_argument, NULL, 'a' },
					    { "principal", required_argument, NULL, 'w' },
					    { "op", required_argument, NULL, 'o' },
					    { "label", required_argument, NULL, 'l' },
					    { "from", required_argument, NULL, 'f' },
					    { "to", required_argument, NULL, 't' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	const char *path = NULL, *admin = NULL, *who = NULL, *op = NULL, *from = NULL, *to = NULL;
	struct labels labels = { 0 };
	struct principal pr;
	struct policy_decision d;
	struct policy *p = NULL;
	enum policy_op opv;
	EVP_PKEY *k = NULL;
	struct err e = { 0 };
	int c, sens;

	if (argc < 2 || strcmp(argv[1], "check")) {
		usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
		return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	argc--;
	argv++;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': path = optarg; break;
		case 'a': admin = optarg; break;
		case 'w': who = optarg; break;
		case 'o': op = optarg; break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'l':
			if (labels_add(&labels, optarg, &e) < 0) {
				fprintf(stderr, "sealvm: --label: %s\n", e.msg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealvm policy: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (!path || !admin || !who || !op || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (policy_op_parse(op, &opv) < 0) {
		fprintf(stderr, "sealvm: --op must be migrate, snapshot, restore or console\n");
		return 2;
	}
	if (principal_parse(who, &pr, &e) < 0 || key_public_from_file(admin, &k, &e) < 0 || policy_load(path, k, &p, &e) < 0) {
		fprintf(stderr, "sealvm: policy check: %s\n", e.msg);
		key_free(k);
		return 2;
	}
	policy_check(p, &pr, opv, &labels, from, to, &d);
	printf("%s rule=%s: %s\n", d.allow ? "ALLOW" : "DENY", d.rule, d.reason);
	if (policy_is_sensitive(p, &labels, &sens))
		printf("sensitive: encryption is mandatory for this VM (policy.sensitive[%d])\n", sens);
	policy_free(p);
	key_free(k);
	return d.allow ? 0 : 1;
}
