#include "vm/vcpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vm/cpuid.h"
#include "vm/msr.h"

/* kvm_cpuid2 and kvm_msrs end in flexible arrays; these give them room. */
struct cpuid_buf {
	struct kvm_cpuid2 h;
	struct kvm_cpuid_entry2 e[VCPU_MAX_CPUID];
};
struct msr_buf {
	struct kvm_msrs h;
	struct kvm_msr_entry e[VCPU_MAX_MSRS];
};

int vcpu_create(struct vm *vm, int id, struct vcpu **out, struct err *e)
{
	struct vcpu *v = calloc(1, sizeof(*v));

	if (!v)
		return err_set(e, -ENOMEM, "vCPU");
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		free(v);
		return err_sys(e, -errno, "KVM_CREATE_VCPU %d", id);
	}
	v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		int r = err_sys(e, -errno, "mmap kvm_run");
		close(v->fd);
		free(v);
		return r;
	}
	*out = v;
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (!v)
		return;
	munmap(v->run, (size_t)v->vm->run_size);
	close(v->fd);
	free(v);
}

int vcpu_setup_cpuid(struct vcpu *v, struct err *e)
{
	struct cpuid_buf b;
	int r;

	memset(&b, 0, sizeof(b));
	r = cpuid_host_table(v->vm->kvm_fd, b.e, &b.h.nent, e);
	if (r < 0)
		return r;
	cpuid_set_apic_id(b.e, b.h.nent, (uint32_t)v->id);
	if (ioctl(v->fd, KVM_SET_CPUID2, &b) < 0)
		return err_sys(e, -errno, "KVM_SET_CPUID2");
	return 0;
}

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7
#define APIC_LVT_MASKED (1u << 16)

static void lapic_set_lvt(struct kvm_lapic_state *l, int off, uint32_t mode, bool masked)
{
	uint32_t reg;

	memcpy(&reg, &l->regs[off], 4);
	reg = (reg & ~0x700u & ~APIC_LVT_MASKED) | (mode << 8) | (masked ? APIC_LVT_MASKED : 0);
	memcpy(&l->regs[off], &reg, 4);
}

int vcpu_setup_lapic(struct vcpu *v, struct err *e)
{
	struct kvm_lapic_state l;

	if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
		return err_sys(e, -errno, "KVM_GET_LAPIC");
	/* Virtual wire mode, as a BIOS leaves it and the MP table says: the 8259 PIC
	 * reaches the boot processor through LINT0; NMIs reach every CPU through LINT1.
	 * An AP's LINT0 stays masked, or it would race the BSP for PIC interrupts. */
	lapic_set_lvt(&l, APIC_LVT0, APIC_MODE_EXTINT, v->id != 0);
	lapic_set_lvt(&l, APIC_LVT1, APIC_MODE_NMI, false);
	if (ioctl(v->fd, KVM_SET_LAPIC, &l) < 0)
		return err_sys(e, -errno, "KVM_SET_LAPIC");
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
}

int vcpu_setup_multiboot(struct vcpu *v, uint32_t entry, uint32_t mbi, uint32_t gdt_gpa, struct err *e)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	struct msr_buf m;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return err_sys(e, -errno, "KVM_GET_SREGS");
	flat_segment(&sregs.cs, 0x08, 0x0b);  /* execute/read, accessed */
	flat_segment(&sregs.ds, 0x10, 0x03);  /* read/write, accessed */
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = gdt_gpa;
	sregs.gdt.limit = 3 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x11;  /* PE | ET: protected mode, paging off (Multiboot §3.2) */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return err_sys(e, -errno, "KVM_SET_SREGS");

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;   /* IF clear, as Multiboot requires */
	regs.rip = entry;
	regs.rax = 0x2BADB002;
	regs.rbx = mbi;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return err_sys(e, -errno, "KVM_SET_REGS");

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return err_sys(e, -errno, "KVM_SET_FPU");

	memset(&m, 0, sizeof(m));
	m.h.nmsrs = 1;
	m.e[0].index = MSR_MTRR_DEF_TYPE;
	m.e[0].data = (1u << 11) | 6; /* MTRRs enabled, default write-back */
	if (ioctl(v->fd, KVM_SET_MSRS, &m) != 1)
		return err_sys(e, -EIO, "KVM_SET_MSRS MTRRdefType");
	return 0;
}

static int msr_index_list(struct vm *vm, uint32_t *out, uint32_t *n, struct err *e)
{
	struct {
		struct kvm_msr_list h;
		uint32_t idx[1024];
	} l;
	uint32_t i, k = 0;

	l.h.nmsrs = 1024;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &l) < 0)
		return err_sys(e, -errno, "KVM_GET_MSR_INDEX_LIST");
	for (i = 0; i < l.h.nmsrs && k < VCPU_MAX_MSRS; i++)
		if (msr_allowed(l.idx[i]))
			out[k++] = l.idx[i];
	*n = k;
	return 0;
}

static int get_xsave(struct vcpu *v, struct vcpu_state *s, struct err *e)
{
	int size = ioctl(v->vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	unsigned long req = KVM_GET_XSAVE2;
	void *buf;

	if (size <= 0) {
		size = sizeof(struct kvm_xsave);
		req = KVM_GET_XSAVE;
	}
	if (size < (int)sizeof(struct kvm_xsave))
		size = sizeof(struct kvm_xsave);
	if (size > VCPU_XSAVE_MAX)
		return err_set(e, -E2BIG, "XSAVE area of %d bytes exceeds %d", size, VCPU_XSAVE_MAX);
	buf = calloc(1, (size_t)size);
	if (!buf)
		return err_set(e, -ENOMEM, "xsave buffer");
	if (ioctl(v->fd, req, buf) < 0) {
		free(buf);
		return err_sys(e, -errno, "KVM_GET_XSAVE");
	}
	memcpy(s->xsave, buf, (size_t)size);
	s->xsave_size = (uint32_t)size;
	free(buf);
	return 0;
}

int vcpu_save_state(struct vcpu *v, struct vcpu_state *s, struct err *e)
{
	uint32_t idx[VCPU_MAX_MSRS], n = 0, i;
	struct cpuid_buf c;
	struct msr_buf m;
	int r;

	memset(s, 0, sizeof(*s)); /* no host bytes leak through padding */
	s->version = VCPU_STATE_VERSION;
	s->id = (uint32_t)v->id;
	/* MP_STATE first: reading it accepts pending APIC events (Linux api.rst). */
	if (ioctl(v->fd, KVM_GET_MP_STATE, &s->mp_state) < 0)
		return err_sys(e, -errno, "KVM_GET_MP_STATE");
	if (ioctl(v->fd, KVM_GET_REGS, &s->regs) < 0)
		return err_sys(e, -errno, "KVM_GET_REGS");
	if (ioctl(v->fd, KVM_GET_SREGS, &s->sregs) < 0)
		return err_sys(e, -errno, "KVM_GET_SREGS");
	r = get_xsave(v, s, e);
	if (r < 0)
		return r;
	if (ioctl(v->fd, KVM_GET_XCRS, &s->xcrs) < 0)
		return err_sys(e, -errno, "KVM_GET_XCRS");
	if (ioctl(v->fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
		return err_sys(e, -errno, "KVM_GET_DEBUGREGS");
	if (ioctl(v->fd, KVM_GET_LAPIC, &s->lapic) < 0)
		return err_sys(e, -errno, "KVM_GET_LAPIC");
	r = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	if (r < 0)
		return err_sys(e, -errno, "KVM_GET_TSC_KHZ");
	s->tsc_khz = (uint32_t)r;

	memset(&c, 0, sizeof(c));
	c.h.nent = VCPU_MAX_CPUID;
	if (ioctl(v->fd, KVM_GET_CPUID2, &c) < 0)
		return err_sys(e, -errno, "KVM_GET_CPUID2");
	s->ncpuid = c.h.nent;
	memcpy(s->cpuid, c.e, sizeof(c.e[0]) * c.h.nent);

	r = msr_index_list(v->vm, idx, &n, e);
	if (r < 0)
		return r;
	/* KVM_GET_MSRS stops at the first MSR it cannot read: drop that one and retry. */
	for (;;) {
		memset(&m, 0, sizeof(m));
		m.h.nmsrs = n;
		for (i = 0; i < n; i++)
			m.e[i].index = idx[i];
		r = ioctl(v->fd, KVM_GET_MSRS, &m);
		if (r < 0)
			return err_sys(e, -errno, "KVM_GET_MSRS");
		if ((uint32_t)r == n)
			break;
		memmove(&idx[r], &idx[r + 1], (n - (uint32_t)r - 1) * sizeof(idx[0]));
		n--;
	}
	s->nmsrs = n;
	memcpy(s->msrs, m.e, sizeof(m.e[0]) * n);

	/* Events last: nothing after this may change pending exceptions. */
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		return err_sys(e, -errno, "KVM_GET_VCPU_EVENTS");
	return 0;
}

static int segment_ok(const struct kvm_segment *g)
{
	return g->type <= 15 && g->dpl <= 3 && g->present <= 1 && g->db <= 1 && g->s <= 1 && g->l <= 1 &&
	       g->g <= 1 && g->avl <= 1 && g->unusable <= 1 && !(g->l && g->db);
}

int vcpu_state_validate(const struct vcpu_state *s, struct err *e)
{
	const struct kvm_segment *segs[] = { &s->sregs.cs, &s->sregs.ds, &s->sregs.es, &s->sregs.fs,
					     &s->sregs.gs, &s->sregs.ss, &s->sregs.tr, &s->sregs.ldt };
	static const char *const names[] = { "CS", "DS", "ES", "FS", "GS", "SS", "TR", "LDT" };
	uint32_t i;

	if (s->version != VCPU_STATE_VERSION)
		return err_set(e, -EPROTO, "vCPU state version %u not supported (expected %u)",
			       s->version, VCPU_STATE_VERSION);
	if (s->id >= VM_MAX_VCPUS)
		return err_set(e, -EINVAL, "vCPU state: id %u out of range", s->id);
	if (s->nmsrs > VCPU_MAX_MSRS || s->ncpuid > VCPU_MAX_CPUID)
		return err_set(e, -EINVAL, "vCPU state: %u MSRs / %u CPUID entries exceed the limits",
			       s->nmsrs, s->ncpuid);
	if (s->xsave_size < sizeof(struct kvm_xsave) || s->xsave_size > VCPU_XSAVE_MAX)
		return err_set(e, -EINVAL, "vCPU state: XSAVE size %u out of range", s->xsave_size);
	if (s->mp_state.mp_state > KVM_MP_STATE_AP_RESET_HOLD)
		return err_set(e, -EINVAL, "vCPU state: MP state %u unknown", s->mp_state.mp_state);
	if ((s->sregs.cr0 & 0x80000000u) && !(s->sregs.cr0 & 1))
		return err_set(e, -EINVAL, "vCPU state: CR0 has paging without protected mode");
	if (s->sregs.efer & ~0xd01ULL)
		return err_set(e, -EINVAL, "vCPU state: EFER 0x%llx has reserved bits",
			       (unsigned long long)s->sregs.efer);
	if ((s->sregs.efer & 0x400) && !(s->sregs.efer & 0x100))
		return err_set(e, -EINVAL, "vCPU state: EFER has long mode active but not enabled");
	if (s->sregs.cr0 >> 32 || s->sregs.cr4 >> 32 || s->sregs.cr8 > 15)
		return err_set(e, -EINVAL, "vCPU state: CR0/CR4/CR8 reserved bits set");
	if (s->sregs.apic_base & 0x2ffULL || s->sregs.apic_base >> 52)
		return err_set(e, -EINVAL, "vCPU state: APIC base 0x%llx is malformed",
			       (unsigned long long)s->sregs.apic_base);
	for (i = 0; i < sizeof(segs) / sizeof(segs[0]); i++)
		if (!segment_ok(segs[i]))
			return err_set(e, -EINVAL, "vCPU state: %s segment descriptor fields out of range", names[i]);
	if (s->events.exception.nr >= 32 || s->events.exception.injected > 1 ||
	    s->events.nmi.injected > 1 || s->events.nmi.pending > 1 || s->events.nmi.masked > 1)
		return err_set(e, -EINVAL, "vCPU state: pending event fields out of range");
	for (i = 0; i < s->ncpuid; i++)
		if (s->cpuid[i].flags & ~7u)
			return err_set(e, -EINVAL, "vCPU state: CPUID entry %u has unknown flags", i);
	for (i = 0; i < s->nmsrs; i++) {
		uint32_t idx = s->msrs[i].index;
		const char *name = msr_name(idx);
		if (!msr_allowed(idx))
			return err_set(e, -EPERM, "vCPU state: MSR 0x%x%s%s%s is not one sealvm restores", idx,
				       name ? " (" : "", name ? name : "", name ? ")" : "");
	}
	return 0;
}

static int set_msrs(struct vcpu *v, const struct kvm_msr_entry *ents, uint32_t n, struct err *e)
{
	struct msr_buf m;
	int r;

	if (!n)
		return 0;
	memset(&m, 0, sizeof(m));
	m.h.nmsrs = n;
	memcpy(m.e, ents, n * sizeof(ents[0]));
	r = ioctl(v->fd, KVM_SET_MSRS, &m);
	if (r < 0)
		return err_sys(e, -errno, "KVM_SET_MSRS");
	/* KVM_SET_MSRS returns how many it set; a short count is a failure. */
	if ((uint32_t)r != n)
		return err_set(e, -EINVAL, "KVM_SET_MSRS: MSR 0x%x rejected", ents[r].index);
	return 0;
}

int vcpu_load_state(struct vcpu *v, const struct vcpu_state *s, struct err *e)
{
	struct kvm_msr_entry early[VCPU_MAX_MSRS], late[VCPU_MAX_MSRS];
	struct kvm_cpuid_entry2 host[CPUID_MAX_ENTRIES];
	struct cpuid_mask_report rep;
	struct kvm_vcpu_events ev;
	struct cpuid_buf c;
	uint32_t i, ne = 0, nl = 0, nhost = 0;
	void *xs;
	int r, cur;

	r = vcpu_state_validate(s, e);
	if (r < 0)
		return r;
	cur = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	if (s->tsc_khz && cur > 0 && (uint32_t)cur != s->tsc_khz &&
	    ioctl(v->fd, KVM_SET_TSC_KHZ, s->tsc_khz) < 0)
		fprintf(stderr, "sealvm: warning: cannot set TSC to %u kHz (host runs %d kHz)\n",
			s->tsc_khz, cur);

	/* Only what this host exposes to its own guests: a stream cannot enable VMX or
	 * any feature KVM would accept but sealvm hides. */
	r = cpuid_host_table(v->vm->kvm_fd, host, &nhost, e);
	if (r < 0)
		return r;
	memset(&c, 0, sizeof(c));
	memcpy(c.e, s->cpuid, s->ncpuid * sizeof(c.e[0]));
	c.h.nent = cpuid_mask(c.e, s->ncpuid, host, nhost, &rep);
	/* Bits alone are not worth a word: some KVMs report more in GET_CPUID2 than they
	 * support, so even a same-host round trip clears a few. */
	if (rep.vmx_svm || rep.dropped || rep.clamped)
		fprintf(stderr,
			"sealvm: warning: vCPU %u: incoming CPUID masked to this host's: %u leaves dropped, "
			"%u feature bits cleared%s, %u limits lowered\n",
			s->id, rep.dropped, rep.bits, rep.vmx_svm ? " (VMX/SVM among them)" : "", rep.clamped);
	if (ioctl(v->fd, KVM_SET_CPUID2, &c) < 0)
		return err_sys(e, -errno, "KVM_SET_CPUID2");
	if (ioctl(v->fd, KVM_SET_MP_STATE, &s->mp_state) < 0)
		return err_sys(e, -errno, "KVM_SET_MP_STATE");
	/* REGS before EVENTS: setting registers clears pending exceptions. */
	if (ioctl(v->fd, KVM_SET_REGS, &s->regs) < 0)
		return err_sys(e, -errno, "KVM_SET_REGS");
	if (ioctl(v->fd, KVM_SET_SREGS, &s->sregs) < 0)
		return err_sys(e, -errno, "KVM_SET_SREGS");
	/* the kernel reads its own XSAVE size, which may exceed the saved one */
	xs = calloc(1, VCPU_XSAVE_MAX);
	if (!xs)
		return err_set(e, -ENOMEM, "xsave buffer");
	memcpy(xs, s->xsave, s->xsave_size);
	r = ioctl(v->fd, KVM_SET_XSAVE, xs);
	free(xs);
	if (r < 0)
		return err_sys(e, -errno, "KVM_SET_XSAVE");
	if (ioctl(v->fd, KVM_SET_XCRS, &s->xcrs) < 0)
		return err_sys(e, -errno, "KVM_SET_XCRS");
	if (ioctl(v->fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
		return err_sys(e, -errno, "KVM_SET_DEBUGREGS");
	/* LAPIC after SREGS (APIC base) and before MSRs (TSC deadline needs it). */
	if (ioctl(v->fd, KVM_SET_LAPIC, &s->lapic) < 0)
		return err_sys(e, -errno, "KVM_SET_LAPIC");
	/* The TSC goes before the TSC deadline, or a timer interrupt can be lost. */
	for (i = 0; i < s->nmsrs; i++) {
		if (s->msrs[i].index == MSR_IA32_TSC_DEADLINE)
			late[nl++] = s->msrs[i];
		else
			early[ne++] = s->msrs[i];
	}
	r = set_msrs(v, early, ne, e);
	if (r == 0)
		r = set_msrs(v, late, nl, e);
	if (r < 0)
		return r;
	ev = s->events;
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return err_sys(e, -errno, "KVM_SET_VCPU_EVENTS");
	return 0;
}
