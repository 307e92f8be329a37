#include "cli/run.h"

#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/commands.h"
#include "console/server.h"
#include "control/control.h"
#include "migrate/migrate.h"
#include "util/secret_file.h"
#include "util/size.h"
#include "util/statedir.h"
#include "vmm/machine.h"
#include "vmm/snapshot.h"

struct run_opts {
	const char *kernel, *cmdline, *serial, *control, *restore, *incoming, *tls_dir, *state_dir, *allow_from;
	const char *key_file;
	uint64_t mem, mem_limit;
	bool insecure;
	struct console_opts console;
	bool serial_set;
	bool console_fresh;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealvm run --kernel FILE [--cmdline STR] [--mem SIZE] [options]\n"
		"       sealvm run --restore FILE [options]\n"
		"options:\n"
		"  --mem SIZE          guest RAM, e.g. 512M, 4G (default 256M; a bare number is MiB)\n"
		"  --serial stdio|file:PATH|none   where the guest's COM1 goes (default stdio)\n"
		"  --control SOCKET    JSON-lines control socket (see `sealvm ctl`)\n"
		"  --incoming tls://ADDR:PORT  wait for one VM migrated here\n"
		"  --tls-dir DIR       ca.pem, cert.pem, key.pem (mode 0600) and optional crl.pem of this host\n"
		"  --state-dir DIR     this host's state: host id, keys, migration outcomes\n"
		"                      (default: $SEALVM_STATE_DIR, else " STATE_DIR_DEFAULT ")\n"
		"  --allow-from NAMES  with --incoming: admit only sources whose certificate names one of\n"
		"                      these comma-separated DNS names (default: any host of the cluster CA)\n"
		"  --mem-limit SIZE    refuse incoming VMs larger than SIZE\n"
		"  --insecure          allow --incoming tcp:// (no encryption, no authentication)\n"
		"  --key-file FILE     the key snapshots are sealed with (32 bytes, or 64 hex digits; mode 0600);\n"
		"                      default: STATE_DIR/snapshot.key, made on first use\n\n"
		"  --console tls://ADDR:PORT  the owner's console (serial, screen, keyboard, VNC); needs\n"
		"                      --tls-dir and --owner-ca; the serial port then belongs to it\n"
		"  --owner-ca FILE     the VM owner's CA: only its certificates may attach\n"
		"  --console-others ro|refuse  sessions beyond the one read-write session (default ro)\n"
		"  --console-fresh     with --restore: drop the console state sealed in the snapshot for its\n"
		"                      owner (the VM then runs at once, with an empty console)\n");
}

/* The owner-only console owns the serial port: no operator-side sink may get its bytes. */
static int console_check_opts(struct run_opts *o, struct err *e)
{
	if (!o->console.uri)
		return o->console.owner_ca ? err_set(e, -EINVAL, "--owner-ca needs --console") : 0;
	if (!o->tls_dir || !o->console.owner_ca)
		return err_set(e, -EINVAL, "--console needs --tls-dir (this host's certificate) and --owner-ca FILE");
	if (o->serial_set && strcmp(o->serial, "none"))
		return err_set(e, -EINVAL, "--serial %s would hand the owner's console to the operator; with "
			       "--console the serial port belongs to the console", o->serial);
	o->serial = "none";
	o->console.host_dir = o->tls_dir;
	return 0;
}

static int parse_opts(int argc, char **argv, struct run_opts *o, struct err *e)
{
	static const struct option lo[] = {
		{ "kernel", required_argument, NULL, 'k' },  { "cmdline", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },     { "serial", required_argument, NULL, 's' },
		{ "control", required_argument, NULL, 'C' }, { "restore", required_argument, NULL, 'r' },
		{ "incoming", required_argument, NULL, 'i' }, { "tls-dir", required_argument, NULL, 't' },
		{ "mem-limit", required_argument, NULL, 'L' }, { "help", no_argument, NULL, 'h' },
		{ "state-dir", required_argument, NULL, 'S' }, { "allow-from", required_argument, NULL, 'A' },
		{ "insecure", no_argument, NULL, 'I' },       { "key-file", required_argument, NULL, 'K' },
		{ "console", required_argument, NULL, 'O' }, { "owner-ca", required_argument, NULL, 'W' },
		{ "console-others", required_argument, NULL, 'X' }, { "console-fresh", no_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->mem = 256ULL << 20;
	o->serial = "stdio";
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'k': o->kernel = optarg; break;
		case 'c': o->cmdline = optarg; break;
		case 's': o->serial = optarg; o->serial_set = true; break;
		case 'O': o->console.uri = optarg; break;
		case 'W': o->console.owner_ca = optarg; break;
		case 'X':
			if (strcmp(optarg, "ro") && strcmp(optarg, "refuse"))
				return err_set(e, -EINVAL, "--console-others must be ro or refuse");
			o->console.others = strcmp(optarg, "ro") ? CONSOLE_OTHERS_REFUSE : CONSOLE_OTHERS_RO;
			break;
		case 'C': o->control = optarg; break;
		case 'r': o->restore = optarg; break;
		case 'i': o->incoming = optarg; break;
		case 't': o->tls_dir = optarg; break;
		case 'S': o->state_dir = optarg; break;
		case 'A': o->allow_from = optarg; break;
		case 'I': o->insecure = true; break;
		case 'F': o->console_fresh = true; break;
		case 'K': o->key_file = optarg; break;
		case 'm':
			if (parse_size(optarg, 1, &o->mem, e) < 0)
				return err_wrap(e, "--mem");
			if (o->mem < VM_MIN_RAM || o->mem > VM_MAX_RAM)
				return err_set(e, -EINVAL, "--mem %s is out of range (2M to 64G)", optarg);
			if (o->mem % PAGE_SIZE)
				return err_set(e, -EINVAL, "--mem %s is not a whole number of 4 KiB pages", optarg);
			break;
		case 'L':
			if (parse_size(optarg, 1, &o->mem_limit, e) < 0)
				return err_wrap(e, "--mem-limit");
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return err_set(e, -EINVAL, "unknown or incomplete option '%s' (see sealvm run --help)",
				       argv[optind - 1]);
		}
	}
	if (optind < argc)
		return err_set(e, -EINVAL, "unexpected argument '%s'", argv[optind]);
	if (!!o->kernel + !!o->restore + !!o->incoming != 1)
		return err_set(e, -EINVAL, "give exactly one of --kernel, --restore or --incoming");
	if (o->incoming && !o->tls_dir && strncmp(o->incoming, "tcp://", 6))
		return err_set(e, -EINVAL, "--incoming tls:// needs --tls-dir DIR");
	if (o->allow_from && !o->incoming)
		return err_set(e, -EINVAL, "--allow-from only applies to --incoming");
	if (o->console_fresh && !o->restore)
		return err_set(e, -EINVAL, "--console-fresh only applies to --restore");
	if (o->allow_from && (!*o->allow_from || strlen(o->allow_from) > 400))
		return err_set(e, -EINVAL, "--allow-from needs one or more comma-separated names (at most 400 characters)");
	return console_check_opts(o, e);
}

static int open_serial(const char *spec, int *fd, struct err *e)
{
	if (!strcmp(spec, "stdio")) {
		*fd = STDOUT_FILENO;
		return 0;
	}
	if (!strcmp(spec, "none")) {
		*fd = -1;
		return 0;
	}
	if (!strncmp(spec, "file:", 5) && spec[5]) {
		*fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (*fd < 0)
			return err_sys(e, -errno, "cannot open serial output %s", spec + 5);
		return 0;
	}
	return err_set(e, -EINVAL, "--serial must be stdio, file:PATH or none (got '%s')", spec);
}

/* Feeds host stdin to the guest UART when the console is stdio. */
static void *stdin_thread(void *arg)
{
	struct machine *m = arg;
	uint8_t buf[64];

	for (;;) {
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		ssize_t n, done = 0;

		if (machine_state(m) == MACHINE_STOPPED)
			break;
		if (poll(&p, 1, 200) <= 0)
			continue;
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n <= 0)
			break;
		while (done < n && machine_state(m) != MACHINE_STOPPED) {
			done += (ssize_t)serial_input(&m->serial, buf + done, (size_t)(n - done));
			if (done < n)
				usleep(1000); /* FIFO full: the guest reads slower than we type */
		}
	}
	return NULL;
}

/* Destination, before READY: the incoming VM's console state goes to this host's
 * console server, or the VM is refused if it has one and this host does not. */
static int prepare_incoming(void *opaque, struct machine *m, char *addr, size_t len, struct err *e)
{
	struct console_server *cs = opaque;
	int r;

	if (!cs)
		return machine_ext_pending(m) ? err_set(e, -EPERM, "the VM has an owner's console: this destination must run with --console and --owner-ca")
					      : 0;
	r = console_server_bind(cs, m, CONSOLE_INCOMING, e);
	if (r == 0)
		snprintf(addr, len, "%s", console_server_uri(cs));
	return r;
}

static void discard_incoming(void *opaque, struct machine *m)
{
	(void)m;
	if (opaque)
		console_server_unbind(opaque);
}

/* A restored VM whose snapshot sealed its console for the owner. */
static int restored_console(struct run_opts *o, struct machine *m, struct err *e)
{
	struct machine_ext_sec s;

	if (o->console_fresh) {
		bool any = false;
		while (machine_take_ext(m, SEC_CONSOLE, &s) || machine_take_ext(m, SEC_CONSOLE_KEY, &s) ||
		       machine_take_ext(m, SEC_CONSOLE_WRAP, &s)) {
			machine_ext_sec_free(&s);
			any = true;
		}
		fprintf(stderr, "sealvm: --console-fresh: %s\n", any ? "the console state sealed for the VM's owner is dropped"
								     : "the snapshot held no console state");
		return 0;
	}
	if (machine_ext_pending(m) && !o->console.uri)
		return err_set(e, -EPERM, "the snapshot holds the VM owner's console: restore it with --console and --owner-ca (the VM waits for the owner to attach), or drop that state with --console-fresh");
	return 0;
}

static int exit_code(struct machine *m)
{
	switch (m->stop_reason) {
	case STOP_DEBUG_EXIT:
		return m->exit_status;
	case STOP_ERROR:
		fprintf(stderr, "sealvm: %s\n", m->stop_msg);
		return 1;
	case STOP_RESET:
		fprintf(stderr, "sealvm: %s; VM ended\n", m->stop_msg);
		return 0;
	default:
		return 0;
	}
}

int cmd_run(int argc, char **argv)
{
	struct ctl_server *ctl = NULL;
	struct incoming *in = NULL;
	struct state_dir sd;
	struct console_server *console = NULL;
	struct machine m;
	struct vmm_ctx ctx;
	struct run_opts o;
	struct err e = { 0 };
	pthread_t in_thr;
	bool in_started = false, built = false;
	int serial_fd = -1, r, code = 1;

	r = parse_opts(argc, argv, &o, &e);
	if (r > 0)
		return 0;
	if (r < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (state_dir_open(&sd, o.state_dir, &e) < 0 || open_serial(o.serial, &serial_fd, &e) < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		return 2;
	}
	/* The control socket comes first: a destination that could not be
	 * controlled must fail before it accepts anything, not after a VM arrived. */
	vmm_ctx_init(&ctx, &m, o.tls_dir, &sd);
	ctx.key_file = o.key_file;
	/* the console listens before there is a VM: an incoming one arrives with its console loaded */
	r = o.console.uri ? console_server_start(&o.console, &console, &e) : 0;
	if (r == 0 && console)
		fprintf(stderr, "sealvm: owner's console on port %d\n", console_server_port(console));
	if (r == 0 && o.incoming) {
		struct incoming_params ip = { .uri = o.incoming, .tls_dir = o.tls_dir, .serial_fd = serial_fd,
					      .max_ram = o.mem_limit, .timeout_ms = 30000, .hello_timeout_ms = 10000,
					      .commit_timeout_ms = 30000, .linger_ms = 5000,
					      .allow_from = o.allow_from, .insecure = o.insecure, .sd = &sd,
					      .prepare = prepare_incoming, .discard = discard_incoming,
					      .hook_opaque = console };
		r = incoming_start(&ip, &in, &e);
		ctx.incoming = in;
	}
	if (r == 0 && o.control)
		r = ctl_server_start(o.control, vmm_handle, &ctx, &ctl, &e);
	if (r == 0 && o.restore) {
		struct snapshot_stats st;
		uint8_t key[32];
		r = o.key_file ? key_file_load(o.key_file, key, &e) : host_key_load(sd.path, "snapshot.key", key, &e);
		if (r == 0)
			r = snapshot_restore(o.restore, key, serial_fd, &m, &st, &e);
		OPENSSL_cleanse(key, sizeof(key));
		if (r == 0)
			fprintf(stderr, "sealvm: restored %s: %llu pages in %.1f ms (%.2f GB/s read)\n",
				o.restore, (unsigned long long)st.pages.data_pages, (double)st.ns / 1e6,
				st.ns ? (double)st.bytes / (double)st.ns : 0.0);
		if (r == 0 && (r = restored_console(&o, &m, &e)) < 0)
			machine_destroy(&m);
	} else if (r == 0 && o.kernel) {
		r = machine_init(&m, o.mem, serial_fd, &e);
		if (r == 0 && (r = machine_boot(&m, o.kernel, o.cmdline, &e)) < 0)
			machine_destroy(&m);
	} else if (r == 0) {
		r = incoming_wait_vm(in, &m, &e);
	}
	built = r == 0;
	if (r == 0 && console && !o.incoming)
		r = console_server_bind(console, &m, o.restore ? CONSOLE_RESTORE : CONSOLE_BOOT, &e);
	if (r == 0 && !o.incoming)
		r = machine_start(&m, &e);
	if (r < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		goto out;
	}
	vmm_ctx_vm_ready(&ctx);
	if (serial_fd == STDOUT_FILENO && !pthread_create(&in_thr, NULL, stdin_thread, &m))
		in_started = true;
	machine_wait(&m);
	code = exit_code(&m);
out:
	ctl_server_stop(ctl);
	console_server_stop(console);
	if (in_started)
		pthread_join(in_thr, NULL);
	if (in && built)
		incoming_vm_ended(in, m.stop_reason == STOP_MIGRATED ? "was migrated on" : m.stop_msg);
	incoming_stop(in);
	if (built)
		machine_destroy(&m);
	vmm_ctx_fini(&ctx);
	return code;
}
