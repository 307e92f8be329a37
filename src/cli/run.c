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

#include "cli/run_trust.h"
#include "control/commands.h"
#include "console/server.h"
#include "control/control.h"
#include "migrate/migrate.h"
#include "trust/decide.h"
#include "trust/host.h"
#include "util/secret_file.h"
#include "util/size.h"
#include "util/statedir.h"
#include "vm/reserve.h"
#include "vmm/machine.h"
#include "vmm/snapshot.h"

struct run_opts {
	const char *kernel, *cmdline, *serial, *control, *restore, *incoming, *tls_dir, *state_dir, *allow_from;
	const char *key_file;
	const char *public_ranges;
	const char *table, *policy, *tpm;
	struct labels labels;
	uint64_t mem, mem_limit, reserve;
	bool reserve_grow;
	bool insecure;
	struct console_opts console;
	bool serial_set;
	int cpus;
	bool cpus_given, mem_given;
	bool console_fresh;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealvm run --kernel FILE [--cmdline STR] [--mem SIZE] [options]\n"
		"       sealvm run --restore FILE [options]\n"
		"options:\n"
		"  --mem SIZE          guest RAM, e.g. 512M, 4G (default 256M; a bare number is MiB)\n"
		"  --cpus N            vCPUs, 1 to 64 (default 1); APs wait for INIT/SIPI\n"
		"  --public START-END,...  guest-physical ranges that hold nothing secret (page-aligned;\n"
		"                      END exclusive): a split migration keeps their pages unencrypted but\n"
		"                      authenticated; the guest may declare more, or take them back\n"
		"  --serial stdio|file:PATH|none   where the guest's COM1 goes (default stdio)\n"
		"  --control SOCKET    JSON-lines control socket (see `sealvm ctl`)\n"
		"  --incoming tls://ADDR:PORT  wait for one VM migrated here\n"
		"  --tls-dir DIR       ca.pem, cert.pem, key.pem (mode 0600) and optional crl.pem of this host\n"
		"  --state-dir DIR     this host's state: host id, keys, migration outcomes\n"
		"                      (default: $SEALVM_STATE_DIR, else " STATE_DIR_DEFAULT ")\n"
		"  --allow-from NAMES  with --incoming: admit only sources whose certificate names one of\n"
		"                      these comma-separated DNS names (default: any host of the cluster CA)\n"
		"  --mem-limit SIZE    refuse incoming VMs larger than SIZE\n"
		"  --reserve SIZE      with --incoming: reserve and pre-fault SIZE of memory now, in the\n"
		"                      background; a VM that fits lands in it, a larger one is refused\n"
		"  --reserve-grow      with --reserve: admit a larger VM anyway (its memory faults in as usual)\n"
		"  --insecure          allow --incoming tcp:// (no encryption, no authentication)\n"
		"  --key-file FILE     the key snapshots are sealed with (32 bytes, or 64 hex digits; mode 0600);\n"
		"                      default: STATE_DIR/snapshot.key, made on first use\n\n"
		"  --console tls://ADDR:PORT  the owner's console (serial, screen, keyboard, VNC); needs\n"
		"                      --tls-dir and --owner-ca; the serial port then belongs to it\n"
		"  --owner-ca FILE     the VM owner's CA: only its certificates may attach\n"
		"  --owner-crl FILE    the owner's revocation list: its certificates are refused\n"
		"  --console-others ro|refuse  sessions beyond the one read-write session (default ro)\n"
		"  --console-fresh     with --restore: drop the console state sealed in the snapshot for its\n"
		"                      owner (the VM then runs at once, with an empty console)\n\n"
		"trust (see sealvm host init; without --table and --policy: open mode, announced and logged):\n"
		"  --table FILE        the administrator's signed integrity validation table\n"
		"  --policy FILE       the administrator's signed migration policy\n"
		"  --tpm SPEC          this host's TPM (default: the one host init recorded in host.json)\n"
		"  --label KEY=VALUE   a label of the VM booted here (repeatable); labels travel with the VM\n"
		"                      through migrations and snapshots, and the policy judges them\n");
}

/* The owner-only console owns the serial port: no operator-side sink may get its bytes. */
static int console_check_opts(struct run_opts *o, struct err *e)
{
	if (!o->console.uri)
		return o->console.owner_ca || o->console.owner_crl
			       ? err_set(e, -EINVAL, "--owner-ca and --owner-crl need --console") : 0;
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
		{ "console-others", required_argument, NULL, 'X' }, { "cpus", required_argument, NULL, 'p' },
		{ "reserve", required_argument, NULL, 'R' }, { "reserve-grow", no_argument, NULL, 'G' },
		{ "table", required_argument, NULL, 'T' },   { "policy", required_argument, NULL, 'P' },
		{ "tpm", required_argument, NULL, 'M' },     { "label", required_argument, NULL, 'l' },
		{ "console-fresh", no_argument, NULL, 'F' }, { "owner-crl", required_argument, NULL, 'Y' },
		{ "public", required_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->mem = 256ULL << 20;
	o->serial = "stdio";
	o->cpus = 1;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'k': o->kernel = optarg; break;
		case 'c': o->cmdline = optarg; break;
		case 's': o->serial = optarg; o->serial_set = true; break;
		case 'O': o->console.uri = optarg; break;
		case 'W': o->console.owner_ca = optarg; break;
		case 'Y': o->console.owner_crl = optarg; break;
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
		case 'U': o->public_ranges = optarg; break;
		case 'T': o->table = optarg; break;
		case 'P': o->policy = optarg; break;
		case 'M': o->tpm = optarg; break;
		case 'l':
			if (labels_add(&o->labels, optarg, e) < 0)
				return err_wrap(e, "--label");
			break;
		case 'm':
			if (parse_size(optarg, 1, &o->mem, e) < 0)
				return err_wrap(e, "--mem");
			if (o->mem < VM_MIN_RAM || o->mem > VM_MAX_RAM)
				return err_set(e, -EINVAL, "--mem %s is out of range (2M to 64G)", optarg);
			if (o->mem % PAGE_SIZE)
				return err_set(e, -EINVAL, "--mem %s is not a whole number of 4 KiB pages", optarg);
			o->mem_given = true;
			break;
		case 'p': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (end == optarg || *end || n < 1 || n > VM_MAX_VCPUS)
				return err_set(e, -EINVAL, "--cpus %s: give a number of vCPUs from 1 to %d", optarg,
					       VM_MAX_VCPUS);
			o->cpus = (int)n;
			o->cpus_given = true;
			break;
		}
		case 'R':
			if (parse_size(optarg, 1, &o->reserve, e) < 0)
				return err_wrap(e, "--reserve");
			if (o->reserve < VM_MIN_RAM || o->reserve > VM_MAX_RAM || o->reserve % PAGE_SIZE)
				return err_set(e, -EINVAL, "--reserve %s is out of range (2M to 64G, whole pages)", optarg);
			break;
		case 'G': o->reserve_grow = true; break;
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
	if ((o->reserve || o->reserve_grow) && !o->incoming)
		return err_set(e, -EINVAL, "--reserve goes with --incoming: it readies memory for a VM that is to arrive");
	if (o->reserve_grow && !o->reserve)
		return err_set(e, -EINVAL, "--reserve-grow needs --reserve SIZE");
	if (o->mem_given && o->incoming)
		return err_set(e, -EINVAL, "--mem does not go with --incoming: the VM arrives with its own RAM size (--mem-limit bounds it)");
	if (o->cpus_given && !o->kernel)
		return err_set(e, -EINVAL, "--cpus goes with --kernel: a snapshot or an incoming VM brings its own vCPUs");
	if (o->incoming && !o->tls_dir && strncmp(o->incoming, "tcp://", 6))
		return err_set(e, -EINVAL, "--incoming tls:// needs --tls-dir DIR");
	if (o->public_ranges && !o->kernel)
		return err_set(e, -EINVAL, "--public is for a VM booted here (--kernel): a migrated or restored VM brings its own declarations");
	if (o->labels.n && !o->kernel)
		return err_set(e, -EINVAL, "--label is for a VM booted here (--kernel): a migrated or restored VM brings its own labels");
	if (o->tpm && !o->table)
		return err_set(e, -EINVAL, "--tpm is for trusted mode (with --table and --policy)");
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
	struct ram_reserve reserve = { 0 };
	struct state_dir sd;
	struct console_server *console = NULL;
	struct trust_ctx *trust = NULL;
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
	/* trust before any thread: the TPM library reads its environment (setenv) */
	{
		char ca[4200];
		struct trust_opts to = { .state_dir = sd.path, .table = o.table, .policy = o.policy, .tpm = o.tpm,
					 .role = "run" };
		if (o.tls_dir && snprintf(ca, sizeof(ca), "%s/ca.pem", o.tls_dir) < (int)sizeof(ca))
			to.ca = ca;
		if (trust_start(&to, &trust, &e) < 0) {
			fprintf(stderr, "sealvm: %s\n", e.msg);
			return 2;
		}
	}
	/* The control socket comes first: a destination that could not be
	 * controlled must fail before it accepts anything, not after a VM arrived. */
	vmm_ctx_init(&ctx, &m, o.tls_dir, &sd);
	ctx.key_file = o.key_file;
	ctx.trust = trust;
	ctx.labels = o.labels;
	/* the console listens before there is a VM: an incoming one arrives with its console loaded */
	if (o.console.uri) {
		o.console.policy = run_console_audit;
		o.console.policy_ctx = trust;
		r = console_server_start(&o.console, &console, &e);
		if (r == 0)
			fprintf(stderr, "sealvm: owner's console on port %d\n", console_server_port(console));
	}
	if (r == 0 && o.control)
		r = ctl_server_start(o.control, vmm_handle, &ctx, &ctl, &e);
	if (r == 0 && o.incoming) {
		struct incoming_params ip = { .uri = o.incoming, .tls_dir = o.tls_dir, .serial_fd = serial_fd,
					      .max_ram = o.mem_limit, .timeout_ms = 30000, .hello_timeout_ms = 10000,
					      .commit_timeout_ms = 30000, .linger_ms = 5000,
					      .allow_from = o.allow_from, .insecure = o.insecure, .sd = &sd,
					      .trust = trust, .reserve_grow = o.reserve_grow, .keep_orphans = true,
					      .prepare = prepare_incoming, .discard = discard_incoming,
					      .hook_opaque = console };
		/* populating runs in the background: the listener is up at once */
		if (o.reserve && (r = ram_reserve_start(&reserve, o.reserve, &e)) == 0)
			ip.reserve = &reserve;
		if (r == 0)
			r = incoming_start(&ip, &in, &e);
		vmm_ctx_set_incoming(&ctx, in);
	}
	if (r == 0 && o.restore) {
		struct snapshot_stats st;
		struct run_restore rr = { .ctx = &ctx, .file = o.restore };
		struct snapshot_check chk = { run_restore_check, &rr };
		uint8_t key[32];
		r = o.key_file ? key_file_load(o.key_file, key, &e) : host_key_load(sd.path, "snapshot.key", key, &e);
		if (r == 0)
			r = snapshot_restore(o.restore, key, serial_fd, &chk, &m, &st, &e);
		OPENSSL_cleanse(key, sizeof(key));
		/* a snapshot brings its RAM size: a different --mem is a mistake, not a resize */
		if (r == 0 && o.mem_given && o.mem != m.vm.ram_size) {
			r = err_set(&e, -EINVAL, "--mem %lluM conflicts with the snapshot's RAM (%lluM): leave --mem out",
				    (unsigned long long)(o.mem >> 20), (unsigned long long)(m.vm.ram_size >> 20));
			machine_destroy(&m);
		}
		trust_audit_note(trust, "restore", json_pack("{s:s, s:b, s:s}", "file", o.restore, "ok", r == 0, "result",
							     r == 0 ? "restored" : e.msg));
		if (r == 0)
			fprintf(stderr, "sealvm: restored %s: %llu pages in %.1f ms (%.2f GB/s read)\n",
				o.restore, (unsigned long long)st.pages.data_pages, (double)st.ns / 1e6,
				st.ns ? (double)st.bytes / (double)st.ns : 0.0);
		if (r == 0 && (r = restored_console(&o, &m, &e)) < 0)
			machine_destroy(&m);
	} else if (r == 0 && o.kernel) {
		r = machine_init(&m, o.mem, o.cpus, serial_fd, &e);
		if (r == 0 && ((r = machine_boot(&m, o.kernel, o.cmdline, &e)) < 0 ||
			       (o.public_ranges && (r = pubmem_declare_list(&m.pubmem, o.public_ranges, &e)) < 0)))
			machine_destroy(&m);
	} else if (r == 0) {
		r = incoming_wait_vm(in, &m, &e);
		if (r == -EOWNERDEAD) {
			/* a complete copy whose source went silent: held paused for the operator */
			fprintf(stderr, "sealvm: %s\n", e.msg);
			r = 0;
		}
		if (r == 0)
			incoming_labels(in, &ctx.labels);
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
	ram_reserve_stop(&reserve);
	if (built)
		machine_destroy(&m);
	vmm_ctx_fini(&ctx);
	trust_stop(trust);
	return code;
}
