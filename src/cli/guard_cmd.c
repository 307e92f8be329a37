/* sealvm guard: the integrity guard daemon (src/guard/guard.h); sealvm guard clear. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/guard_cmd.h"
#include "guard/guard.h"
#include "guard/mark.h"
#include "trust/audit.h"
#include "trust/host.h"
#include "util/size.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealvm guard --vms DIR --table FILE --policy FILE [--tls-dir DIR] [options]\n"
		"       sealvm guard clear [--state-dir DIR]\n"
		"  Measures every sealvm process whose control socket is in --vms, the host's trust\n"
		"  configuration and its TPM measurement, every interval; on a failed measurement marks\n"
		"  this host untrusted (in the TPM and STATE_DIR/" MARK_FILE ") and raises the alarm.\n"
		"options:\n"
		"  --state-dir DIR     the host's state (default: $SEALVM_STATE_DIR, else " STATE_DIR_DEFAULT ")\n"
		"  --tls-dir DIR       the host's TLS directory: its ca.pem is measured\n"
		"  --interval MS       time between measurements (default 100; 0: back to back, for tests)\n"
		"  --control SOCKET    the guard's control socket (default STATE_DIR/guard.sock):\n"
		"                      sealvm ctl SOCKET status|measurements|evacuations|quit\n"
		"  --alarm-cmd PROG    run PROG CHECK TARGET REASON when the host becomes untrusted\n"
		"  --audit-every MS    summary of passing rounds in the audit log (default 60000)\n"
		"  --sweep SIZE        resident code and RELRO compared in turn, a round per process (default 64K)\n"
		"  --rehash SIZE       code files re-hashed a round (default 256K)\n"
		"  --tpm-every N       quote the TPM every N rounds (default 10), and whenever its event log\n"
		"                      changes\n"
		"  --rounds N          stop after N rounds (tests, benchmarks)\n"
		"  --no-self           do not measure the guard's own process\n"
		"  clear               removes the untrusted mark after the host was repaired; the TPM keeps\n"
		"                      the alarm in its PCR until it restarts (reboot the host)\n");
}

static int clear(int argc, char **argv)
{
	static const struct option lo[] = { { "state-dir", required_argument, NULL, 's' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	const char *dir = getenv("SEALVM_STATE_DIR");
	struct guard_mark m;
	struct err e = { 0 };
	int c;

	if (!dir || !*dir)
		dir = STATE_DIR_DEFAULT;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealvm guard clear: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (mark_load(dir, &m, &e) < 0 && e.code != -ENOENT)
		fprintf(stderr, "sealvm guard clear: %s\n", e.msg);
	if (mark_clear(dir, &e) < 0) {
		fprintf(stderr, "sealvm guard clear: %s\n", e.msg);
		return e.code == -ENOENT ? 1 : 2;
	}
	/* recorded as the operator's decision, like every other override */
	{
		char log[4200], key[4200];
		struct host_config hc;
		struct err ignored;
		struct audit_opts ao = { .path = host_path(dir, "audit.jsonl", log, sizeof(log)),
					 .key_path = host_path(dir, "audit-key.pem", key, sizeof(key)) };
		struct audit_log *l;

		/* the log's heads are certified by the host's TPM, this one too */
		if (host_config_load(dir, &hc, &ignored) == 0)
			ao.tpm_spec = hc.tpm;
		if (audit_open(&ao, &l, &e) == 0) {
			json_t *o = json_pack("{s:s, s:s, s:I}", "cleared_time", m.time, "cleared_check", m.check, "uid",
					      (json_int_t)getuid());
			if (audit_append(l, "guard-clear", o, &e) < 0)
				fprintf(stderr, "sealvm guard clear: audit log: %s\n", e.msg);
			json_decref(o);
			audit_close(l);
		} else {
			fprintf(stderr, "sealvm guard clear: audit log: %s\n", e.msg);
		}
	}
	printf("cleared the untrusted mark of %s (set %s: %s); the TPM keeps the alarm until it restarts\n", dir,
	       m.time[0] ? m.time : "?", m.check[0] ? m.check : "?");
	return 0;
}

static int number(const char *opt, const char *s, uint64_t max, uint64_t *out)
{
	struct err e;

	if (parse_uint(s, max, out, &e) < 0) {
		fprintf(stderr, "sealvm guard: %s %s: %s\n", opt, s, e.msg);
		return -1;
	}
	return 0;
}

int cmd_guard(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "state-dir", required_argument, NULL, 's' }, { "vms", required_argument, NULL, 'v' },
		{ "table", required_argument, NULL, 'T' },     { "policy", required_argument, NULL, 'P' },
		{ "tls-dir", required_argument, NULL, 't' },   { "interval", required_argument, NULL, 'i' },
		{ "control", required_argument, NULL, 'C' },   { "alarm-cmd", required_argument, NULL, 'A' },
		{ "audit-every", required_argument, NULL, 'a' }, { "sweep", required_argument, NULL, 'w' },
		{ "rehash", required_argument, NULL, 'r' },    { "tpm-every", required_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'n' },    { "no-self", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },           { NULL, 0, NULL, 0 },
	};
	struct guard_opts o = { 0 };
	struct err e = { 0 };
	uint64_t v;
	int c;

	if (argc > 1 && !strcmp(argv[1], "clear"))
		return clear(argc - 1, argv + 1);
	o.state_dir = getenv("SEALVM_STATE_DIR");
	if (!o.state_dir || !*o.state_dir)
		o.state_dir = STATE_DIR_DEFAULT;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.state_dir = optarg; break;
		case 'v': o.vms_dir = optarg; break;
		case 'T': o.table = optarg; break;
		case 'P': o.policy = optarg; break;
		case 't': o.tls_dir = optarg; break;
		case 'C': o.control = optarg; break;
		case 'A': o.alarm_cmd = optarg; break;
		case 'S': o.no_self = true; break;
		case 'i':
			if (number("--interval", optarg, 3600000, &v) < 0) {
				fprintf(stderr, "sealvm guard: --interval needs 0 to 3600000 ms\n");
				return 2;
			}
			o.interval_ms = (unsigned)v;
			o.back_to_back = v == 0;
			break;
		case 'a':
			if (number("--audit-every", optarg, 86400000, &v) < 0 || v < 1)
				return 2;
			o.audit_every_ms = (unsigned)v;
			break;
		case 'q':
			if (number("--tpm-every", optarg, 1000000, &v) < 0 || v < 1)
				return 2;
			o.tpm_every = (unsigned)v;
			break;
		case 'n':
			if (number("--rounds", optarg, UINT64_MAX, &v) < 0 || v < 1)
				return 2;
			o.rounds = v;
			break;
		case 'w':
		case 'r':
			if (parse_size(optarg, 0, &v, &e) < 0 || v < 4096 || v > (1ull << 34)) {
				fprintf(stderr, "sealvm guard: %s %s: give a size from 4K to 16G\n", c == 'w' ? "--sweep" : "--rehash",
					optarg);
				return 2;
			}
			if (c == 'w')
				o.sweep_bytes = v;
			else
				o.rehash_bytes = v;
			break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealvm guard: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc || !o.vms_dir || !o.table || !o.policy) {
		fprintf(stderr, "sealvm guard: --vms, --table and --policy are required (a guard without a table has "
				"nothing to measure against)\n");
		usage(stderr);
		return 2;
	}
	if (guard_run(&o, &e) < 0) {
		fprintf(stderr, "sealvm guard: %s\n", e.msg);
		return 2;
	}
	return 0;
}
