/* `sealvm memserver`: options, the control socket, signals; the server is memserver/. */
#include "cli/memserver_cmd.h"

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "control/control.h"
#include "memserver/server.h"
#include "util/size.h"
#include "util/statedir.h"

static int quit_fd = -1;

static void on_signal(int sig)
{
	uint64_t one = 1;

	(void)sig;
	if (write(quit_fd, &one, sizeof(one)) < 0) {
		/* nothing to do in a signal handler */
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealvm memserver --listen tls://ADDR:PORT --tls-dir DIR --capacity SIZE [options]\n"
		"A sub-host for split migration: keeps sealed pages of VMs for the hosts that run them,\n"
		"in memory reserved up front; it never holds a key.\n"
		"options:\n"
		"  --listen URI        tls://ADDR:PORT (port 0: any free port); tcp:// only with --insecure\n"
		"  --tls-dir DIR       this host's ca.pem, cert.pem, key.pem (mode 0600), optional crl.pem\n"
		"  --capacity SIZE     memory for stored pages, reserved and populated at start (e.g. 1G;\n"
		"                      a bare number is MiB); stores beyond it are refused\n"
		"  --control SOCKET    JSON-lines control socket: `sealvm ctl SOCKET status|quit`\n"
		"  --allow-from NAMES  serve only clients whose certificate names one of these\n"
		"                      comma-separated DNS names (default: any host of the cluster CA)\n"
		"  --state-dir DIR     this host's state (its host id); default $SEALVM_STATE_DIR, else\n"
		"                      " STATE_DIR_DEFAULT "\n"
		"  --insecure          allow tcp:// (no encryption, no authentication: measurement only)\n");
}

struct ctl_ctx {
	struct ms_server *s;
};

static json_t *handle(void *opaque, const struct ctl_peer *peer, const char *cmd, json_t *req, struct err *e)
{
	struct ctl_ctx *c = opaque;

	(void)peer;
	(void)req;
	if (!strcmp(cmd, "status") || !strcmp(cmd, "stats")) {
		json_t *o = ms_server_status(c->s);
		if (!o)
			err_set(e, -ENOMEM, "status");
		return o;
	}
	if (!strcmp(cmd, "quit")) {
		on_signal(0);
		return json_pack("{s:s}", "state", "stopping");
	}
	err_set(e, -EINVAL, "unknown command '%s' (a memory server knows status, stats and quit)", cmd);
	return NULL;
}

int cmd_memserver(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },   { "tls-dir", required_argument, NULL, 't' },
		{ "capacity", required_argument, NULL, 'c' }, { "control", required_argument, NULL, 'C' },
		{ "allow-from", required_argument, NULL, 'A' }, { "state-dir", required_argument, NULL, 'S' },
		{ "insecure", no_argument, NULL, 'I' },       { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ms_server_params p = { 0 };
	const char *control = NULL, *state_dir = NULL;
	struct ctl_server *ctl = NULL;
	struct ms_server *s = NULL;
	struct ctl_ctx cc;
	struct state_dir sd;
	struct err e = { 0 };
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': p.uri = optarg; break;
		case 't': p.tls_dir = optarg; break;
		case 'C': control = optarg; break;
		case 'A': p.allow_from = optarg; break;
		case 'S': state_dir = optarg; break;
		case 'I': p.insecure = true; break;
		case 'c':
			if (parse_size(optarg, 1, &p.capacity, &e) < 0) {
				fprintf(stderr, "sealvm memserver: --capacity: %s\n", e.msg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "sealvm memserver: unknown or incomplete option '%s'\n", argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !p.uri || !p.capacity) {
		fprintf(stderr, "sealvm memserver: %s\n",
			optind < argc ? "unexpected argument" : "--listen and --capacity are needed");
		usage(stderr);
		return 2;
	}
	if (!p.tls_dir && strncmp(p.uri, "tcp://", 6)) {
		fprintf(stderr, "sealvm memserver: --listen tls:// needs --tls-dir DIR\n");
		return 2;
	}
	if (p.allow_from && (!*p.allow_from || strlen(p.allow_from) > 400)) {
		fprintf(stderr, "sealvm memserver: --allow-from needs one or more comma-separated names (at most 400 characters)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	quit_fd = eventfd(0, EFD_CLOEXEC);
	if (quit_fd < 0 || state_dir_open(&sd, state_dir, &e) < 0) {
		fprintf(stderr, "sealvm memserver: %s\n", quit_fd < 0 ? "eventfd failed" : e.msg);
		return 2;
	}
	p.sd = &sd;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	r = ms_server_start(&p, &s, &e);
	if (r == 0 && control) {
		cc.s = s;
		r = ctl_server_start(control, handle, &cc, &ctl, &e);
	}
	if (r < 0) {
		fprintf(stderr, "sealvm memserver: %s\n", e.msg);
		ms_server_stop(s);
		return 2;
	}
	fprintf(stderr, "sealvm memserver: serving on %s (port %d), capacity %llu MiB reserved\n", p.uri,
		ms_server_port(s), (unsigned long long)(p.capacity >> 20));
	for (;;) {
		struct pollfd pf = { .fd = quit_fd, .events = POLLIN };
		if (poll(&pf, 1, -1) > 0)
			break;
	}
	fprintf(stderr, "sealvm memserver: stopping; every store is freed\n");
	ctl_server_stop(ctl);
	ms_server_stop(s);
	return 0;
}
