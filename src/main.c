/* sealvm: a minimal KVM VMM built for secure live migration. */
#include <stdio.h>
#include <string.h>

#include "cli/guard_cmd.h"
#include "cli/memserver_cmd.h"
#include "cli/run.h"
#include "cli/trust_cmds.h"
#include "console/client.h"
#include "control/control.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm run --kernel FILE [--cmdline STR] [--mem SIZE] [--serial stdio|file:PATH]\n"
		   "                  [--control SOCKET]\n"
		   "       sealvm run --restore FILE [--serial ...] [--control ...]\n"
		   "       sealvm console tls://HOST:PORT --tls-dir OWNERDIR [--screen|--vnc ADDR:PORT|--web ADDR:PORT]\n"
		   "       sealvm ctl SOCKET status|pause|resume|quit|stats|snapshot FILE\n"
		   "       sealvm memserver --listen tls://ADDR:PORT --tls-dir DIR --capacity SIZE   a sub-host\n"
		   "       sealvm host init|measure ...      this host's TPM keys and measurements\n"
		   "       sealvm admin keygen|sign|verify   the administrator's table and policy\n"
		   "       sealvm attest quote|verify ...    the Attest phase by hand\n"
		   "       sealvm policy check ...           what the migration policy decides\n"
		   "       sealvm audit verify|show|append   the tamper-evident audit log\n"
		   "       sealvm guard --vms DIR --table FILE --policy FILE ...   the integrity guard\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "console"))
		return console_client_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return ctl_client_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "memserver"))
		return cmd_memserver(argc - 1, argv + 1);
	if (!strcmp(argv[1], "host"))
		return cmd_host(argc - 1, argv + 1);
	if (!strcmp(argv[1], "admin"))
		return cmd_admin(argc - 1, argv + 1);
	if (!strcmp(argv[1], "attest"))
		return cmd_attest(argc - 1, argv + 1);
	if (!strcmp(argv[1], "policy"))
		return cmd_policy(argc - 1, argv + 1);
	if (!strcmp(argv[1], "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "guard"))
		return cmd_guard(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "sealvm: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
