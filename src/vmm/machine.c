#include "vmm/machine.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "vm/mptable.h"
#include "vm/multiboot.h"
#include "vm/vm_state.h"

/* Kicks a vCPU thread out of KVM_RUN; the handler does nothing, the EINTR is the point. */
#define SIG_KICK SIGUSR1

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void kick_handler(int sig)
{
	(void)sig;
}

static void serial_irq(void *opaque, int level)
{
	struct machine *m = opaque;
	vm_irq_line(&m->vm, SERIAL_IRQ, level);
}

static void kbd_irq(void *opaque, int level)
{
	struct machine *m = opaque;
	vm_irq_line(&m->vm, I8042_IRQ, level);
}

static void on_reset(void *opaque)
{
	machine_stop(opaque, STOP_RESET, 0, "guest reset the machine (i8042)");
}

static void on_debug_exit(void *opaque, uint8_t status)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "guest exited with status %u", status);
	machine_stop(opaque, STOP_DEBUG_EXIT, status, msg);
}

int machine_init(struct machine *m, uint64_t ram_size, int nr_vcpus, int serial_fd, struct err *e)
{
	return machine_init_in(m, ram_size, nr_vcpus, serial_fd, NULL, e);
}

int machine_init_in(struct machine *m, uint64_t ram_size, int nr_vcpus, int serial_fd, uint8_t *ram,
		    struct err *e)
{
	struct sigaction sa;
	int r, max, i;

	memset(m, 0, sizeof(*m));
	if (nr_vcpus < 1 || nr_vcpus > VM_MAX_VCPUS) {
		if (ram)
			munmap(ram, ram_size);
		return err_set(e, -EINVAL, "%d vCPUs: sealvm runs 1 to %d", nr_vcpus, VM_MAX_VCPUS);
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->ext_lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigaction(SIG_KICK, &sa, NULL);

	r = vm_create_in(&m->vm, ram_size, ram, e);
	if (r < 0)
		goto fail_sync;
	max = ioctl(m->vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(m->vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max > 0 && nr_vcpus > max) {
		r = err_set(e, -EINVAL, "%d vCPUs: this host's KVM runs at most %d", nr_vcpus, max);
		vm_destroy(&m->vm);
		goto fail_sync;
	}
	m->nr_vcpus = nr_vcpus;
	for (i = 0; i < VM_MAX_VCPUS; i++)
		m->cpus[i].m = m;
	serial_init(&m->serial, serial_fd, serial_irq, m);
	i8042_init(&m->kbd, kbd_irq, on_reset, m);
	r = vga_init(&m->vga, e);
	if (r == 0)
		r = vga_attach(&m->vga, &m->bus, &m->vm, e);
	if (r < 0) {
		vga_destroy(&m->vga);
		serial_destroy(&m->serial);
		vm_destroy(&m->vm);
		goto fail_sync;
	}
	pubmem_init(&m->pubmem, ram_size);
	if (serial_attach(&m->serial, &m->bus) || i8042_attach(&m->kbd, &m->bus) ||
	    debug_exit_attach(&m->dbg, &m->bus, on_debug_exit, m) || pubmem_attach(&m->pubmem, &m->bus)) {
		pubmem_destroy(&m->pubmem);
		vga_destroy(&m->vga);
		serial_destroy(&m->serial);
		vm_destroy(&m->vm);
		r = err_set(e, -ENOSPC, "port bus full");
		goto fail_sync;
	}
	m->state = MACHINE_CREATED;
	m->started_ns = now_ns();
	return 0;
fail_sync:
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->ext_lock);
	return r;
}

void machine_destroy(struct machine *m)
{
	int i;

	for (i = 0; i < MACHINE_EXT_SECTIONS; i++)
		machine_ext_sec_free(&m->ext_in[i]);
	machine_stop(m, STOP_QUIT, 0, NULL);
	for (i = 0; i < m->nr_vcpus; i++) {
		struct vcpu_runner *c = &m->cpus[i];
		if (c->started)
			pthread_join(c->thread, NULL);
		c->started = false;
	}
	for (i = 0; i < m->nr_vcpus; i++) {
		vcpu_destroy(m->cpus[i].v);
		m->cpus[i].v = NULL;
		m->vm.vcpus[i] = NULL;
	}
	m->vm.nr_vcpus = 0;
	serial_destroy(&m->serial);
	i8042_destroy(&m->kbd);
	pubmem_destroy(&m->pubmem);
	vm_destroy(&m->vm);
	vga_destroy(&m->vga);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->ext_lock);
}

/* Creates vCPUs 0..nr_vcpus-1, fresh (never run: KVM takes CPUID only before the first run). */
static int create_vcpus(struct machine *m, struct err *e)
{
	int i, r;

	for (i = 0; i < m->nr_vcpus; i++) {
		r = vcpu_create(&m->vm, i, &m->cpus[i].v, e);
		if (r < 0)
			return r;
		m->vm.vcpus[i] = m->cpus[i].v;
		m->vm.nr_vcpus = i + 1;
	}
	return 0;
}

int machine_boot(struct machine *m, const char *kernel, const char *cmdline, struct err *e)
{
	struct mb_boot boot;
	uint8_t *img;
	size_t len;
	int r, i;

	r = mb_read_file(kernel, &img, &len, e);
	if (r < 0)
		return r;
	r = mb_load(&m->vm, img, len, cmdline, &boot, e);
	free(img);
	if (r < 0)
		return err_wrap(e, "%s", kernel);
	r = mptable_write(&m->vm, m->nr_vcpus, e);
	if (r == 0)
		r = create_vcpus(m, e);
	for (i = 0; r == 0 && i < m->nr_vcpus; i++) {
		r = vcpu_setup_cpuid(m->cpus[i].v, e);
		if (r == 0)
			r = vcpu_setup_lapic(m->cpus[i].v, e);
	}
	/* KVM leaves the APs in wait-for-SIPI (KVM_MP_STATE_UNINITIALIZED): the guest
	 * starts them with INIT and SIPI. Only the BSP gets the Multiboot entry state. */
	if (r == 0)
		r = vcpu_setup_multiboot(m->cpus[0].v, boot.entry, boot.mbi, boot.gdt, e);
	return r;
}

static void handle_io(struct machine *m, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint32_t i;

	__atomic_fetch_add(&m->io_exits, 1, __ATOMIC_RELAXED);
	for (i = 0; i < run->io.count; i++)
		pio_bus_access(&m->bus, run->io.port, data + i * run->io.size, run->io.size,
			       run->io.direction == KVM_EXIT_IO_OUT);
}

/* Returns false when the machine must stop. */
static bool handle_exit(struct vcpu_runner *c, struct kvm_run *run)
{
	struct machine *m = c->m;
	char msg[160];

	__atomic_fetch_add(&m->exits, 1, __ATOMIC_RELAXED);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(m, run);
		return true;
	case KVM_EXIT_MMIO:
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		snprintf(msg, sizeof(msg), "guest triple-faulted (shutdown) on vCPU %d", c->v->id);
		machine_stop(m, STOP_RESET, 0, msg);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		machine_stop(m, STOP_RESET, 0, "guest requested a system event (reset or power off)");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(msg, sizeof(msg), "KVM entry failed on vCPU %d, reason 0x%llx", c->v->id,
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		machine_stop(m, STOP_ERROR, 1, msg);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(msg, sizeof(msg), "KVM internal error on vCPU %d, suberror %u", c->v->id,
			 run->internal.suberror);
		machine_stop(m, STOP_ERROR, 1, msg);
		return false;
	default:
		snprintf(msg, sizeof(msg), "unhandled KVM exit %u on vCPU %d", run->exit_reason, c->v->id);
		machine_stop(m, STOP_ERROR, 1, msg);
		return false;
	}
}

static bool all_parked(struct machine *m)
{
	int i;

	for (i = 0; i < m->nr_vcpus; i++)
		if (m->cpus[i].started && !m->cpus[i].parked)
			return false;
	return true;
}

/* Called after KVM_RUN returned EINTR/EAGAIN, with the lock held: parks the
 * thread while a pause is wanted. Returns false when the machine stops. */
static bool park_if_asked(struct vcpu_runner *c)
{
	struct machine *m = c->m;

	while (m->held && !m->stop_req) {
		if (!c->parked) {
			c->parked = true;
			pthread_cond_broadcast(&m->cond);
		}
		pthread_cond_wait(&m->cond, &m->lock);
	}
	c->parked = false;
	c->v->run->immediate_exit = 0;
	return !m->stop_req;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu_runner *c = arg;
	struct machine *m = c->m;
	struct kvm_run *run = c->v->run;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	for (;;) {
		int r = ioctl(c->v->fd, KVM_RUN, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			/* EAGAIN: an AP left wait-for-SIPI. Either way the I/O of the last
			 * exit is complete now: KVM_RUN was re-entered. */
			bool go;
			pthread_mutex_lock(&m->lock);
			go = park_if_asked(c);
			pthread_mutex_unlock(&m->lock);
			if (!go)
				break;
			continue;
		}
		if (r < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "KVM_RUN failed on vCPU %d: %s", c->v->id, strerror(errno));
			machine_stop(m, STOP_ERROR, 1, msg);
			break;
		}
		if (!handle_exit(c, run))
			break;
	}
	pthread_mutex_lock(&m->lock);
	c->parked = true; /* a stopped vCPU is also a quiet one */
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Makes a vCPU thread leave KVM_RUN (or not enter it) soon; lock held. */
static void kick(struct vcpu_runner *c)
{
	if (!c->v)
		return;
	c->v->run->immediate_exit = 1; /* set before the signal: no lost wake-up */
	if (c->started)
		pthread_kill(c->thread, SIG_KICK);
}

static void kick_all(struct machine *m)
{
	int i;

	for (i = 0; i < m->nr_vcpus; i++)
		kick(&m->cpus[i]);
}

static void hold_clocks(struct machine *m);

int machine_start(struct machine *m, struct err *e)
{
	sigset_t set, old;
	int r = 0, i;

	for (i = 0; i < m->nr_vcpus; i++)
		if (!m->cpus[i].v)
			return err_set(e, -EINVAL, "vCPU %d does not exist", i);
	/* Only the vCPU threads take the kick signal (they inherit this mask and unblock it). */
	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	pthread_mutex_lock(&m->lock);
	m->state = m->held ? MACHINE_PAUSED : MACHINE_RUNNING;
	if (m->held)
		hold_clocks(m); /* e.g. loaded at a destination: waiting for COMMIT is not guest time */
	m->last_resume_ns = now_ns();
	for (i = 0; i < m->nr_vcpus && r == 0; i++) {
		struct vcpu_runner *c = &m->cpus[i];
		c->parked = false;
		c->v->run->immediate_exit = m->held ? 1 : 0; /* held: park before the first guest instruction */
		r = pthread_create(&c->thread, NULL, vcpu_thread, c);
		c->started = r == 0;
		if (r == 0) {
			char name[16];
			snprintf(name, sizeof(name), "vcpu%d", i); /* ps, top and the benchmark tell them apart */
			pthread_setname_np(c->thread, name);
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (r) {
		machine_stop(m, STOP_ERROR, 1, "cannot start a vCPU thread");
		return err_set(e, -r, "cannot start the thread of vCPU %d", i - 1);
	}
	return 0;
}

/* Under m->lock, vCPUs parked: a stop the guest must not see (anything but the
 * throttle, which slows the guest rather than stopping its time). */
static void hold_clocks(struct machine *m)
{
	struct err e = { 0 };

	if (m->clocks.held || !(m->held & ~PAUSE_THROTTLE))
		return;
	if (clock_hold(&m->vm, &m->clocks, &e) < 0)
		fprintf(stderr, "sealvm: warning: the guest will see this pause in its clocks: %s\n", e.msg);
}

static void release_clocks(struct machine *m)
{
	struct err e = { 0 };

	if (clock_release(&m->vm, &m->clocks, &e) < 0)
		fprintf(stderr, "sealvm: warning: the guest saw the pause in its clocks: %s\n", e.msg);
}

void machine_pause(struct machine *m, unsigned holder)
{
	pthread_mutex_lock(&m->lock);
	m->held |= holder;
	if (m->state == MACHINE_RUNNING) {
		kick_all(m);
		/* every vCPU parks, or ends if a stop raced with the pause: quiet either way */
		while (!all_parked(m))
			pthread_cond_wait(&m->cond, &m->lock);
		if (m->state == MACHINE_RUNNING) {
			m->state = MACHINE_PAUSED;
			m->run_ns += now_ns() - m->last_resume_ns;
		}
	}
	if (m->state == MACHINE_PAUSED)
		hold_clocks(m);
	pthread_mutex_unlock(&m->lock);
}

void machine_resume(struct machine *m, unsigned holder)
{
	bool thaw;

	pthread_mutex_lock(&m->lock);
	m->held &= ~holder;
	/* a save froze the extension's input; the VM stays here after all */
	thaw = m->ext_saved && !(m->held & (PAUSE_MIGRATION | PAUSE_SNAPSHOT)) && m->state != MACHINE_STOPPED;
	if (thaw)
		m->ext_saved = false;
	if (m->state == MACHINE_PAUSED && !m->held) {
		release_clocks(m);
		m->state = MACHINE_RUNNING;
		m->last_resume_ns = now_ns();
		pthread_cond_broadcast(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	if (thaw) {
		pthread_mutex_lock(&m->ext_lock);
		if (m->ext && m->ext->thaw)
			m->ext->thaw(m->ext_opaque);
		pthread_mutex_unlock(&m->ext_lock);
	}
}

unsigned machine_held(struct machine *m)
{
	unsigned h;

	pthread_mutex_lock(&m->lock);
	h = m->held;
	pthread_mutex_unlock(&m->lock);
	return h;
}

const char *pause_holder_names(unsigned held, char *buf, size_t len)
{
	static const char *const names[] = { "operator", "migration", "throttle", "snapshot", "incoming", "console" };
	size_t i, n = 0;

	if (len)
		buf[0] = 0;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (held & (1u << i))
			n += (size_t)snprintf(buf + (n < len ? n : len), n < len ? len - n : 0, "%s%s",
					      n ? "," : "", names[i]);
	return buf;
}

void machine_stop(struct machine *m, enum machine_stop_reason why, int status, const char *msg)
{
	/* tell the extension before anyone waiting for the stop can tear it down */
	if (why == STOP_MIGRATED)
		machine_handed_over(m);
	pthread_mutex_lock(&m->lock);
	if (m->stop_reason == STOP_NONE) {
		m->stop_reason = why;
		m->exit_status = status;
		snprintf(m->stop_msg, sizeof(m->stop_msg), "%s", msg ? msg : "");
	}
	m->stop_req = true;
	m->state = MACHINE_STOPPED;
	kick_all(m);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

enum machine_stop_reason machine_wait(struct machine *m)
{
	enum machine_stop_reason r;

	pthread_mutex_lock(&m->lock);
	while (m->state != MACHINE_STOPPED)
		pthread_cond_wait(&m->cond, &m->lock);
	r = m->stop_reason;
	pthread_mutex_unlock(&m->lock);
	return r;
}

enum machine_run_state machine_state(struct machine *m)
{
	enum machine_run_state s;

	pthread_mutex_lock(&m->lock);
	s = m->state;
	pthread_mutex_unlock(&m->lock);
	return s;
}

const char *machine_state_name(enum machine_run_state s)
{
	switch (s) {
	case MACHINE_CREATED:
		return "created";
	case MACHINE_RUNNING:
		return "running";
	case MACHINE_PAUSED:
		return "paused";
	case MACHINE_STOPPED:
		return "stopped";
	}
	return "unknown";
}

void machine_set_ext(struct machine *m, const struct machine_ext_ops *ops, void *opaque)
{
	pthread_mutex_lock(&m->ext_lock);
	m->ext = ops;
	m->ext_opaque = ops ? opaque : NULL;
	pthread_mutex_unlock(&m->ext_lock);
	pthread_mutex_lock(&m->lock);
	m->ext_saved = false;
	pthread_mutex_unlock(&m->lock);
}

bool machine_has_ext(struct machine *m)
{
	bool r;

	pthread_mutex_lock(&m->ext_lock);
	r = m->ext != NULL;
	pthread_mutex_unlock(&m->ext_lock);
	return r;
}

void machine_set_successor(struct machine *m, const char *console_addr)
{
	pthread_mutex_lock(&m->lock);
	snprintf(m->successor, sizeof(m->successor), "%s", console_addr ? console_addr : "");
	m->ext_told_moved = false;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_lock(&m->ext_lock);
	if (console_addr && *console_addr && m->ext && m->ext->moving)
		m->ext->moving(m->ext_opaque, console_addr);
	pthread_mutex_unlock(&m->ext_lock);
}

void machine_handed_over(struct machine *m)
{
	char addr[sizeof(m->successor)];
	bool first;

	pthread_mutex_lock(&m->lock);
	first = m->stop_reason == STOP_NONE && !m->ext_told_moved;
	m->ext_told_moved = true;
	memcpy(addr, m->successor, sizeof(addr));
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_lock(&m->ext_lock);
	if (first && m->ext && m->ext->handed_over)
		m->ext->handed_over(m->ext_opaque, addr);
	pthread_mutex_unlock(&m->ext_lock);
}

void machine_ext_sec_free(struct machine_ext_sec *s)
{
	if (s->data) {
		explicit_bzero(s->data, s->len); /* a console key may be among them */
		free(s->data);
	}
	memset(s, 0, sizeof(*s));
}

bool machine_take_ext(struct machine *m, uint32_t id, struct machine_ext_sec *out)
{
	int i;

	for (i = 0; i < MACHINE_EXT_SECTIONS; i++)
		if (m->ext_in[i].data && m->ext_in[i].id == id) {
			*out = m->ext_in[i];
			memset(&m->ext_in[i], 0, sizeof(m->ext_in[i]));
			return true;
		}
	return false;
}

bool machine_ext_pending(struct machine *m)
{
	int i;

	for (i = 0; i < MACHINE_EXT_SECTIONS; i++)
		if (m->ext_in[i].data)
			return true;
	return false;
}

int machine_save_config(struct machine *m, struct sec_writer *w, struct err *e)
{
	struct machine_config c;
	struct iovec iov = { &c, sizeof(c) };

	memset(&c, 0, sizeof(c));
	/* one vCPU: version 1, which sealvm versions before multi-vCPU support read too */
	c.version = m->nr_vcpus == 1 ? CONFIG_VERSION_1CPU : CONFIG_VERSION;
	c.nr_vcpus = (uint32_t)m->nr_vcpus;
	c.ram_size = m->vm.ram_size;
	return sec_write(w, SEC_CONFIG, c.version, &iov, 1, e);
}

int machine_save_state(struct machine *m, struct sec_writer *w, enum machine_save_purpose p, struct err *e)
{
	struct serial_state ss;
	struct vcpu_state *vs;
	struct vm_state vms;
	struct iovec iov;
	int r, i;

	vs = malloc(sizeof(*vs));
	if (!vs)
		return err_set(e, -ENOMEM, "vCPU state");
	pthread_mutex_lock(&m->ext_lock);
	/* Devices first: an interrupt they raise must reach the irqchip state we save. */
	serial_save(&m->serial, &ss);
	if (m->ext)
		serial_state_scrub(&ss); /* typed input travels only in the extension's sealed state */
	iov = (struct iovec){ &ss, sizeof(ss) };
	r = sec_write(w, SEC_SERIAL, 1, &iov, 1, e);
	if (r == 0 && pubmem_in_use(&m->pubmem)) {
		struct pubmem_state ps;
		pubmem_save(&m->pubmem, &ps);
		iov = (struct iovec){ &ps, sizeof(ps) };
		r = sec_write(w, SEC_PUBMEM, PUBMEM_STATE_VERSION, &iov, 1, e);
	}
	/* Every vCPU is parked: each one's state is from the same instant. An AP that
	 * waits for SIPI or halts travels as such (its MP state). */
	for (i = 0; r == 0 && i < m->nr_vcpus; i++) {
		r = vcpu_save_state(m->cpus[i].v, vs, e);
		if (r == 0) {
			iov = (struct iovec){ vs, sizeof(*vs) };
			r = sec_write(w, SEC_VCPU, VCPU_STATE_VERSION, &iov, 1, e);
		}
	}
	if (r == 0)
		r = vm_state_save(&m->vm, &vms, e);
	if (r == 0) {
		iov = (struct iovec){ &vms, sizeof(vms) };
		r = sec_write(w, SEC_VM, 1, &iov, 1, e);
	}
	if (r == 0 && m->ext) {
		r = m->ext->save(m->ext_opaque, w, p, e);
		pthread_mutex_lock(&m->lock);
		m->ext_saved = true; /* frozen even if it failed half-way: resume thaws it */
		pthread_mutex_unlock(&m->lock);
	}
	pthread_mutex_unlock(&m->ext_lock);
	explicit_bzero(&ss, sizeof(ss));
	free(vs);
	return r;
}

int machine_config_read(struct sec_reader *r, const struct sec_hdr *h, struct machine_config *c,
			struct err *e)
{
	int rc;

	if (h->id != SEC_CONFIG)
		return err_set(e, -EPROTO, "stream does not start with a CONFIG section (found %s)",
			       sec_name(h->id));
	rc = sec_read_exact(r, h, c, sizeof(*c), e);
	if (rc < 0)
		return rc;
	if (c->version != h->version || c->version < CONFIG_VERSION_1CPU || c->version > CONFIG_VERSION)
		return err_set(e, -EPROTO, "machine config version %u not supported (section version %u)",
			       c->version, h->version);
	if (c->version == CONFIG_VERSION_1CPU && c->nr_vcpus != 1)
		return err_set(e, -EINVAL, "machine config: version 1 describes one vCPU, not %u", c->nr_vcpus);
	if (c->nr_vcpus < 1 || c->nr_vcpus > VM_MAX_VCPUS)
		return err_set(e, -EINVAL, "machine config: %u vCPUs (sealvm runs 1 to %d)", c->nr_vcpus,
			       VM_MAX_VCPUS);
	if (c->ram_size < VM_MIN_RAM || c->ram_size > VM_MAX_RAM || c->ram_size % PAGE_SIZE)
		return err_set(e, -EINVAL, "machine config: RAM size %llu out of range",
			       (unsigned long long)c->ram_size);
	return 0;
}

void machine_loader_init(struct machine_loader *l)
{
	memset(l, 0, sizeof(*l));
}

void machine_loader_fini(struct machine_loader *l)
{
	for (int k = 0; k < MACHINE_EXT_SECTIONS; k++)
		machine_ext_sec_free(&l->ext[k]);
	int i;

	for (i = 0; i < VM_MAX_VCPUS; i++) {
		free(l->vcpu[i]);
		l->vcpu[i] = NULL;
	}
	free(l->vmst);
	l->vmst = NULL;
	l->have_vcpus = 0;
}

static int load_vcpu_section(struct machine_loader *l, struct sec_reader *r, const struct sec_hdr *h,
			     struct err *e)
{
	uint32_t limit = l->nr_vcpus ? l->nr_vcpus : VM_MAX_VCPUS;
	struct vcpu_state *s = malloc(sizeof(*s));
	int rc;

	if (!s)
		return err_set(e, -ENOMEM, "vCPU state");
	rc = sec_read_exact(r, h, s, sizeof(*s), e);
	if (rc == 0)
		rc = vcpu_state_validate(s, e);
	if (rc == 0 && s->id >= limit)
		rc = err_set(e, -EINVAL, "VCPU section for vCPU %u, but the VM has %u", s->id, limit);
	if (rc == 0 && l->vcpu[s->id])
		rc = err_set(e, -EPROTO, "stream has a second VCPU section for vCPU %u", s->id);
	if (rc < 0) {
		free(s);
		return rc;
	}
	l->vcpu[s->id] = s;
	l->have_vcpus++;
	return 0;
}

/* An extension's section: kept as it came (its owner opens it), at most one of each. */
static int load_ext(struct machine_loader *l, struct sec_reader *r, const struct sec_hdr *h, struct err *e)
{
	struct machine_ext_sec *s = NULL;
	int i, rc;

	for (i = 0; i < MACHINE_EXT_SECTIONS; i++) {
		if (l->ext[i].data && l->ext[i].id == h->id)
			return err_set(e, -EPROTO, "stream has a second %s section", sec_name(h->id));
		if (!l->ext[i].data && !s)
			s = &l->ext[i];
	}
	if (!s || !h->len) /* len is bounded by the section table */
		return err_set(e, -EPROTO, "unexpected %s section of %llu bytes", sec_name(h->id),
			       (unsigned long long)h->len);
	s->data = malloc(h->len);
	if (!s->data)
		return err_set(e, -ENOMEM, "%s section", sec_name(h->id));
	s->len = h->len;
	rc = sec_read_exact(r, h, s->data, s->len, e);
	if (rc < 0) {
		machine_ext_sec_free(s);
		return rc;
	}
	s->id = h->id;
	s->version = h->version;
	return 0;
}

int machine_load_section(struct machine_loader *l, struct sec_reader *r, const struct sec_hdr *h,
			 struct err *e)
{
	int rc;

	switch (h->id) {
	case SEC_VCPU:
		return load_vcpu_section(l, r, h, e);
	case SEC_VM:
		if (l->have_vm)
			return err_set(e, -EPROTO, "stream has a second VM section");
		if (!l->vmst && !(l->vmst = malloc(sizeof(*l->vmst))))
			return err_set(e, -ENOMEM, "VM state");
		rc = sec_read_exact(r, h, l->vmst, sizeof(*l->vmst), e);
		if (rc == 0)
			rc = vm_state_validate(l->vmst, e);
		l->have_vm = rc == 0;
		return rc;
	case SEC_SERIAL:
		if (l->have_serial)
			return err_set(e, -EPROTO, "stream has a second SERIAL section");
		rc = sec_read_exact(r, h, &l->serial, sizeof(l->serial), e);
		if (rc == 0)
			rc = serial_state_validate(&l->serial, e);
		l->have_serial = rc == 0;
		return rc;
	case SEC_PUBMEM:
		if (l->have_pubmem)
			return err_set(e, -EPROTO, "stream has a second PUBMEM section");
		rc = sec_read_exact(r, h, &l->pubmem, sizeof(l->pubmem), e);
		if (rc == 0) /* against the largest RAM here; against the VM's own at commit */
			rc = pubmem_state_validate(&l->pubmem, VM_MAX_RAM, e);
		l->have_pubmem = rc == 0;
		return rc;
	case SEC_CONSOLE:
	case SEC_CONSOLE_KEY:
	case SEC_CONSOLE_WRAP:
		return load_ext(l, r, h, e);
	default:
		return err_set(e, -EPROTO, "unexpected %s section at %llu", sec_name(h->id),
			       (unsigned long long)h->seq);
	}
}

int machine_loader_complete(const struct machine_loader *l, uint32_t nr_vcpus, struct err *e)
{
	uint32_t i;

	if (!l->have_vm || !l->have_serial)
		return err_set(e, -EPROTO, "state incomplete: missing %s section", !l->have_vm ? "VM" : "SERIAL");
	if (nr_vcpus < 1 || nr_vcpus > VM_MAX_VCPUS)
		return err_set(e, -EINVAL, "state for %u vCPUs", nr_vcpus);
	for (i = 0; i < nr_vcpus; i++)
		if (!l->vcpu[i])
			return err_set(e, -EPROTO, "state incomplete: missing VCPU section for vCPU %u of %u", i,
				       nr_vcpus);
	for (; i < VM_MAX_VCPUS; i++)
		if (l->vcpu[i])
			return err_set(e, -EPROTO, "stream has a VCPU section for vCPU %u, but the VM has %u", i,
				       nr_vcpus);
	return 0;
}

int machine_load_commit(struct machine *m, struct machine_loader *l, struct err *e)
{
	int r, i;

	r = machine_loader_complete(l, (uint32_t)m->nr_vcpus, e);
	if (r < 0)
		return r;
	/* Fresh vCPUs: KVM refuses CPUID changes after the first KVM_RUN. */
	r = create_vcpus(m, e);
	for (i = 0; r == 0 && i < m->nr_vcpus; i++) {
		r = vcpu_load_state(m->cpus[i].v, l->vcpu[i], e);
		if (r < 0)
			err_wrap(e, "vCPU %d", i);
	}
	if (r == 0)
		r = vm_state_load(&m->vm, l->vmst, e);
	if (r == 0)
		r = serial_load(&m->serial, &l->serial, e);
	if (r == 0 && l->have_pubmem)
		r = pubmem_load(&m->pubmem, &l->pubmem, e);
	if (r == 0)
		r = vm_state_load_clock(&m->vm, l->vmst, e);
	if (r == 0) {
		for (i = 0; i < MACHINE_EXT_SECTIONS; i++) {
			machine_ext_sec_free(&m->ext_in[i]);
			m->ext_in[i] = l->ext[i];
			memset(&l->ext[i], 0, sizeof(l->ext[i]));
		}
	}
	return r;
}
