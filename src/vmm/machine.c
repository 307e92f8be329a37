#include "vmm/machine.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

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

int machine_init(struct machine *m, uint64_t ram_size, int serial_fd, struct err *e)
{
	struct sigaction sa;
	int r;

	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->ext_lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigaction(SIG_KICK, &sa, NULL);

	r = vm_create(&m->vm, ram_size, e);
	if (r < 0)
		return r;
	serial_init(&m->serial, serial_fd, serial_irq, m);
	i8042_init(&m->kbd, kbd_irq, on_reset, m);
	r = vga_init(&m->vga, e);
	if (r == 0)
		r = vga_attach(&m->vga, &m->bus, &m->vm, e);
	if (r < 0) {
		vga_destroy(&m->vga);
		vm_destroy(&m->vm);
		pthread_mutex_destroy(&m->ext_lock);
		return r;
	}
	if (serial_attach(&m->serial, &m->bus) || i8042_attach(&m->kbd, &m->bus) ||
	    debug_exit_attach(&m->dbg, &m->bus, on_debug_exit, m)) {
		vga_destroy(&m->vga);
		vm_destroy(&m->vm);
		pthread_mutex_destroy(&m->ext_lock);
		return err_set(e, -ENOSPC, "port bus full");
	}
	m->state = MACHINE_CREATED;
	m->started_ns = now_ns();
	return 0;
}

void machine_destroy(struct machine *m)
{
	int i;

	for (i = 0; i < MACHINE_EXT_SECTIONS; i++)
		machine_ext_sec_free(&m->ext_in[i]);
	if (m->thread_started) {
		machine_stop(m, STOP_QUIT, 0, NULL);
		pthread_join(m->thread, NULL);
		m->thread_started = false;
	}
	vcpu_destroy(m->vcpu);
	m->vcpu = NULL;
	serial_destroy(&m->serial);
	i8042_destroy(&m->kbd);
	vm_destroy(&m->vm);
	vga_destroy(&m->vga);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->ext_lock);
}

int machine_boot(struct machine *m, const char *kernel, const char *cmdline, struct err *e)
{
	struct mb_boot boot;
	uint8_t *img;
	size_t len;
	int r;

	r = mb_read_file(kernel, &img, &len, e);
	if (r < 0)
		return r;
	r = mb_load(&m->vm, img, len, cmdline, &boot, e);
	free(img);
	if (r < 0)
		return err_wrap(e, "%s", kernel);
	r = vcpu_create(&m->vm, 0, &m->vcpu, e);
	if (r == 0)
		r = vcpu_setup_cpuid(m->vcpu, e);
	if (r == 0)
		r = vcpu_setup_lapic(m->vcpu, e);
	if (r == 0)
		r = vcpu_setup_multiboot(m->vcpu, boot.entry, boot.mbi, boot.gdt, e);
	if (r == 0) {
		m->vm.vcpus[0] = m->vcpu;
		m->vm.nr_vcpus = 1;
	}
	return r;
}

static void handle_io(struct machine *m, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint32_t i;

	m->io_exits++;
	for (i = 0; i < run->io.count; i++)
		pio_bus_access(&m->bus, run->io.port, data + i * run->io.size, run->io.size,
			       run->io.direction == KVM_EXIT_IO_OUT);
}

/* Returns false when the machine must stop. */
static bool handle_exit(struct machine *m, struct kvm_run *run)
{
	char msg[128];

	m->exits++;
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
		machine_stop(m, STOP_RESET, 0, "guest triple-faulted (shutdown)");
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		machine_stop(m, STOP_RESET, 0, "guest requested a system event (reset or power off)");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(msg, sizeof(msg), "KVM entry failed, reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		machine_stop(m, STOP_ERROR, 1, msg);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(msg, sizeof(msg), "KVM internal error, suberror %u", run->internal.suberror);
		machine_stop(m, STOP_ERROR, 1, msg);
		return false;
	default:
		snprintf(msg, sizeof(msg), "unhandled KVM exit %u", run->exit_reason);
		machine_stop(m, STOP_ERROR, 1, msg);
		return false;
	}
}

/* Called on EINTR with the lock held: parks the thread while a pause is wanted. */
static bool park_if_asked(struct machine *m)
{
	struct kvm_run *run = m->vcpu->run;

	while (m->held && !m->stop_req) {
		if (!m->paused_ack) {
			m->paused_ack = true;
			m->run_ns += now_ns() - m->last_resume_ns;
			pthread_cond_broadcast(&m->cond);
		}
		pthread_cond_wait(&m->cond, &m->lock);
	}
	if (m->paused_ack) {
		m->paused_ack = false;
		m->last_resume_ns = now_ns();
	}
	run->immediate_exit = 0;
	return !m->stop_req;
}

static void *vcpu_thread(void *arg)
{
	struct machine *m = arg;
	struct kvm_run *run = m->vcpu->run;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	for (;;) {
		int r = ioctl(m->vcpu->fd, KVM_RUN, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			bool go;
			/* I/O of the last exit is complete now: KVM_RUN was re-entered. */
			pthread_mutex_lock(&m->lock);
			go = park_if_asked(m);
			pthread_mutex_unlock(&m->lock);
			if (!go)
				break;
			continue;
		}
		if (r < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "KVM_RUN failed: %s", strerror(errno));
			machine_stop(m, STOP_ERROR, 1, msg);
			break;
		}
		if (!handle_exit(m, run))
			break;
	}
	pthread_mutex_lock(&m->lock);
	m->paused_ack = true; /* a stopped vCPU is also a quiet one */
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int machine_start(struct machine *m, struct err *e)
{
	sigset_t set, old;
	int r;

	if (!m->vcpu)
		return err_set(e, -EINVAL, "no vCPU to run");
	/* Only the vCPU thread takes the kick signal. */
	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	pthread_mutex_lock(&m->lock);
	m->state = m->held ? MACHINE_PAUSED : MACHINE_RUNNING;
	m->vcpu->run->immediate_exit = m->held ? 1 : 0; /* held: park before the first guest instruction */
	m->last_resume_ns = now_ns();
	pthread_mutex_unlock(&m->lock);
	r = pthread_create(&m->thread, NULL, vcpu_thread, m);
	if (r)
		return err_set(e, -r, "cannot start the vCPU thread");
	m->thread_started = true;
	return 0;
}

static void kick(struct machine *m)
{
	m->vcpu->run->immediate_exit = 1; /* set before the signal: no lost wake-up */
	if (m->thread_started)
		pthread_kill(m->thread, SIG_KICK);
}

void machine_pause(struct machine *m, unsigned holder)
{
	pthread_mutex_lock(&m->lock);
	m->held |= holder;
	if (m->state == MACHINE_RUNNING) {
		kick(m);
		while (!m->paused_ack && !m->stop_req)
			pthread_cond_wait(&m->cond, &m->lock);
		/* a stop that raced with the pause still leaves the vCPU quiet */
		while (!m->paused_ack)
			pthread_cond_wait(&m->cond, &m->lock);
		if (m->state == MACHINE_RUNNING)
			m->state = MACHINE_PAUSED;
	}
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
		m->state = MACHINE_RUNNING;
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
	if (m->vcpu)
		kick(m);
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
	c.version = CONFIG_VERSION;
	c.nr_vcpus = 1;
	c.ram_size = m->vm.ram_size;
	return sec_write(w, SEC_CONFIG, 1, &iov, 1, e);
}

int machine_save_state(struct machine *m, struct sec_writer *w, enum machine_save_purpose p, struct err *e)
{
	struct serial_state ss;
	struct vcpu_state *vs;
	struct vm_state vms;
	struct iovec iov;
	int r;

	vs = malloc(sizeof(*vs));
	if (!vs)
		return err_set(e, -ENOMEM, "vCPU state");
	pthread_mutex_lock(&m->ext_lock);
	/* Devices first: an interrupt they raise must reach the irqchip state we save. */
	serial_save(&m->serial, &ss);
	if (m->ext)
		serial_state_scrub(&ss); /* typed input travels only in the extension's sealed state */
	r = vcpu_save_state(m->vcpu, vs, e);
	if (r == 0)
		r = vm_state_save(&m->vm, &vms, e);
	if (r == 0) {
		iov = (struct iovec){ &ss, sizeof(ss) };
		r = sec_write(w, SEC_SERIAL, 1, &iov, 1, e);
	}
	if (r == 0) {
		iov = (struct iovec){ vs, sizeof(*vs) };
		r = sec_write(w, SEC_VCPU, 1, &iov, 1, e);
	}
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
	if (c->version != CONFIG_VERSION)
		return err_set(e, -EPROTO, "machine config version %u not supported", c->version);
	if (c->nr_vcpus != 1)
		return err_set(e, -EINVAL, "machine config: %u vCPUs (this sealvm runs 1)", c->nr_vcpus);
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
	int i;

	for (i = 0; i < MACHINE_EXT_SECTIONS; i++)
		machine_ext_sec_free(&l->ext[i]);
	free(l->vcpu);
	free(l->vmst);
	l->vcpu = NULL;
	l->vmst = NULL;
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
		if (l->have_vcpu)
			return err_set(e, -EPROTO, "stream has a second VCPU section");
		if (!l->vcpu && !(l->vcpu = malloc(sizeof(*l->vcpu))))
			return err_set(e, -ENOMEM, "vCPU state");
		rc = sec_read_exact(r, h, l->vcpu, sizeof(*l->vcpu), e);
		if (rc == 0)
			rc = vcpu_state_validate(l->vcpu, e);
		l->have_vcpu = rc == 0;
		return rc;
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
	case SEC_CONSOLE:
	case SEC_CONSOLE_KEY:
	case SEC_CONSOLE_WRAP:
		return load_ext(l, r, h, e);
	default:
		return err_set(e, -EPROTO, "unexpected %s section at %llu", sec_name(h->id),
			       (unsigned long long)h->seq);
	}
}

int machine_load_commit(struct machine *m, struct machine_loader *l, struct err *e)
{
	int r;

	if (!l->have_vcpu || !l->have_vm || !l->have_serial)
		return err_set(e, -EPROTO, "state incomplete: missing %s section",
			       !l->have_vcpu ? "VCPU" : !l->have_vm ? "VM" : "SERIAL");
	/* A fresh vCPU: KVM refuses CPUID changes after the first KVM_RUN. */
	r = vcpu_create(&m->vm, 0, &m->vcpu, e);
	if (r < 0)
		return r;
	m->vm.vcpus[0] = m->vcpu;
	m->vm.nr_vcpus = 1;
	r = vcpu_load_state(m->vcpu, l->vcpu, e);
	if (r == 0)
		r = vm_state_load(&m->vm, l->vmst, e);
	if (r == 0)
		r = serial_load(&m->serial, &l->serial, e);
	if (r == 0)
		r = vm_state_load_clock(&m->vm, l->vmst, e);
	if (r == 0) {
		int i;
		for (i = 0; i < MACHINE_EXT_SECTIONS; i++) {
			machine_ext_sec_free(&m->ext_in[i]);
			m->ext_in[i] = l->ext[i];
			memset(&l->ext[i], 0, sizeof(l->ext[i]));
		}
	}
	return r;
}
