/* sealvm: a minimal KVM VMM built for secure live migration. */
#include <stdio.h>
#include <string.h>

#include "cli/run.h"
#include "console/client.h"
#include "control/control.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm run --kernel FILE [--cmdline STR] [--mem SIZE] [--serial stdio|file:PATH]\n"
		   "                  [--control SOCKET]\n"
		   "       sealvm run --restore FILE [--serial ...] [--control ...]\n"
		   "       sealvm console tls://HOST:PORT --tls-dir OWNERDIR [--screen|--vnc ADDR:PORT|--web ADDR:PORT]\n"
		   "       sealvm ctl SOCKET status|pause|resume|quit|stats|snapshot FILE\n");
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
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "sealvm: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
