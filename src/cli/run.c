#include "cli/run.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/control.h"
#include "migrate/migrate.h"
#include "util/size.h"
#include "vmm/commands.h"
#include "vmm/machine.h"
#include "vmm/snapshot.h"

struct run_opts {
	const char *kernel, *cmdline, *serial, *control, *restore, *incoming, *tls_dir;
	uint64_t mem, mem_limit;
	int cpus;
	bool cpus_given;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealvm run --kernel FILE [--cmdline STR] [--mem SIZE] [options]\n"
		"       sealvm run --restore FILE [options]\n"
		"options:\n"
		"  --mem SIZE          guest RAM, e.g. 512M, 4G (default 256M; a bare number is MiB)\n"
		"  --cpus N            vCPUs, 1 to 64 (default 1); APs wait for INIT/SIPI\n"
		"  --serial stdio|file:PATH|none   where the guest's COM1 goes (default stdio)\n"
		"  --control SOCKET    JSON-lines control socket (see `sealvm ctl`)\n"
		"  --incoming tls://ADDR:PORT  wait for one VM migrated here (tcp:// is INSECURE)\n"
		"  --tls-dir DIR       ca.pem, cert.pem, key.pem of this host\n"
		"  --mem-limit SIZE    refuse incoming VMs larger than SIZE\n");
}

static int parse_opts(int argc, char **argv, struct run_opts *o, struct err *e)
{
	static const struct option lo[] = {
		{ "kernel", required_argument, NULL, 'k' },  { "cmdline", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },     { "serial", required_argument, NULL, 's' },
		{ "control", required_argument, NULL, 'C' }, { "restore", required_argument, NULL, 'r' },
		{ "incoming", required_argument, NULL, 'i' }, { "tls-dir", required_argument, NULL, 't' },
		{ "mem-limit", required_argument, NULL, 'L' }, { "cpus", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
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
		case 's': o->serial = optarg; break;
		case 'C': o->control = optarg; break;
		case 'r': o->restore = optarg; break;
		case 'i': o->incoming = optarg; break;
		case 't': o->tls_dir = optarg; break;
		case 'm':
			if (parse_size(optarg, 1, &o->mem, e) < 0)
				return err_wrap(e, "--mem");
			if (o->mem < VM_MIN_RAM || o->mem > VM_MAX_RAM)
				return err_set(e, -EINVAL, "--mem %s is out of range (2M to 64G)", optarg);
			if (o->mem % PAGE_SIZE)
				return err_set(e, -EINVAL, "--mem %s is not a whole number of 4 KiB pages", optarg);
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
	if (o->cpus_given && !o->kernel)
		return err_set(e, -EINVAL, "--cpus goes with --kernel: a snapshot or an incoming VM brings its own vCPUs");
	if (o->incoming && !o->tls_dir && strncmp(o->incoming, "tcp://", 6))
		return err_set(e, -EINVAL, "--incoming tls:// needs --tls-dir DIR");
	return 0;
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
	struct machine m;
	struct vmm_ctx ctx;
	struct run_opts o;
	struct err e = { 0 };
	pthread_t in_thr;
	struct incoming in;
	bool in_started = false, incoming = false;
	int serial_fd = -1, r, code;

	r = parse_opts(argc, argv, &o, &e);
	if (r > 0)
		return 0;
	if (r < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (open_serial(o.serial, &serial_fd, &e) < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		return 2;
	}
	if (o.restore) {
		struct snapshot_stats st;
		r = snapshot_restore(o.restore, serial_fd, &m, &st, &e);
		if (r == 0)
			fprintf(stderr, "sealvm: restored %s: %llu pages in %.1f ms (%.2f GB/s of RAM)\n",
				o.restore, (unsigned long long)st.pages.data_pages, (double)st.ns / 1e6,
				st.ns ? (double)m.vm.ram_size / (double)st.ns : 0.0);
	} else if (o.kernel) {
		r = machine_init(&m, o.mem, o.cpus, serial_fd, &e);
		if (r == 0 && (r = machine_boot(&m, o.kernel, o.cmdline, &e)) < 0)
			machine_destroy(&m);
	} else {
		struct incoming_params ip = { .uri = o.incoming, .tls_dir = o.tls_dir, .serial_fd = serial_fd,
					      .max_ram = o.mem_limit, .timeout_ms = 30000 };
		r = migrate_incoming(&ip, &m, &in, &e);
		if (r == 0)
			fprintf(stderr, "sealvm: incoming VM committed and running\n");
		incoming = r == 0;
	}
	if (r < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		return 1;
	}
	vmm_ctx_init(&ctx, &m, o.tls_dir);
	if (o.control && ctl_server_start(o.control, vmm_handle, &ctx, &ctl, &e) < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		machine_destroy(&m);
		vmm_ctx_fini(&ctx);
		return 1;
	}
	if (!incoming && machine_start(&m, &e) < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		ctl_server_stop(ctl);
		machine_destroy(&m);
		vmm_ctx_fini(&ctx);
		return 1;
	}
	if (serial_fd == STDOUT_FILENO && !pthread_create(&in_thr, NULL, stdin_thread, &m))
		in_started = true;
	machine_wait(&m);
	ctl_server_stop(ctl);
	if (in_started)
		pthread_join(in_thr, NULL);
	code = exit_code(&m);
	machine_destroy(&m);
	if (incoming)
		incoming_fini(&in);
	vmm_ctx_fini(&ctx);
	return code;
}
