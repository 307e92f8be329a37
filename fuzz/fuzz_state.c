/* libFuzzer target: the saved-state validators and loaders on raw struct bytes.
 *
 * Input: one selector byte, then the struct's bytes (a shorter input is zero-padded).
 *   selector % 3 == 0: struct vcpu_state  -> vcpu_state_validate, then the copies
 *                      vcpu_load_state makes from an accepted state, and its CPUID
 *                      through cpuid_mask against a fixed host table: no VMX or SVM,
 *                      no leaf the host lacks, no repeated leaf, no feature bit the
 *                      host lacks, no maximum above the host's; every MSR of an
 *                      accepted state is on the allow-list
 *   selector % 3 == 1: struct vm_state    -> vm_state_validate
 *   selector % 3 == 2: struct serial_state -> serial_load into a serial device with a
 *                      no-op IRQ callback; bytes after the struct then drive the loaded
 *                      device: pairs {op, value}, op bit 7 = write, bit 6 = host input,
 *                      bits 0-2 = register. The UART's invariants are checked after
 *                      every access. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dev/bus.h"
#include "dev/serial.h"
#include "vm/cpuid.h"
#include "vm/msr.h"
#include "vm/vcpu.h"
#include "vm/vm_state.h"

static int irq_level_seen = -1;

static void irq_note(void *opaque, int level)
{
	if (level != 0 && level != 1)
		__builtin_trap();
	irq_level_seen = level;
}

static size_t fill(void *dst, size_t dst_len, const uint8_t *src, size_t len)
{
	size_t n = len < dst_len ? len : dst_len;

	memset(dst, 0, dst_len);
	memcpy(dst, src, n);
	return n;
}

/* A host as KVM_GET_SUPPORTED_CPUID might describe it, after cpuid_filter. */
static uint32_t host_cpuid(struct kvm_cpuid_entry2 *t)
{
	static const struct kvm_cpuid_entry2 raw[] = {
		{ .function = 0, .eax = 0xd, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69 },
		{ .function = 1, .eax = 0x806ea, .ebx = 0x800, .ecx = 0x04a02021 | (1u << 26), .edx = 0x0f8bfbff },
		{ .function = 4, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0x121 },
		{ .function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 0x01802042, .ecx = 8, .edx = 0xbc000400 },
		{ .function = 0xd, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 7, .ebx = 0x240, .ecx = 0x340 },
		{ .function = 0xd, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 1 },
		{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
		{ .function = 0x40000001, .eax = 0x01007afb },
		{ .function = 0x80000000, .eax = 0x80000008 },
		{ .function = 0x80000001, .ecx = 0x125, .edx = 0x2c100800 },
		{ .function = 0x80000008, .eax = 0x3027, .ebx = 0x200 },
		{ .function = 0x8000000a, .eax = 1 },
	};
	memcpy(t, raw, sizeof(raw));
	return cpuid_filter(t, sizeof(raw) / sizeof(raw[0]));
}

static const struct kvm_cpuid_entry2 *host_leaf(const struct kvm_cpuid_entry2 *h, uint32_t n,
						const struct kvm_cpuid_entry2 *c)
{
	uint32_t k;

	for (k = 0; k < n; k++)
		if (h[k].function == c->function &&
		    (!(h[k].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || h[k].index == c->index))
			return &h[k];
	return NULL;
}

static void check_mask(const struct vcpu_state *s)
{
	struct kvm_cpuid_entry2 host[16], *t = malloc(VCPU_MAX_CPUID * sizeof(*t));
	struct cpuid_mask_report rep;
	uint32_t nh = host_cpuid(host), n, i, k;

	if (!t)
		return;
	memcpy(t, s->cpuid, s->ncpuid * sizeof(t[0]));
	n = cpuid_mask(t, s->ncpuid, host, nh, &rep);
	if (n > s->ncpuid || n + rep.dropped != s->ncpuid)
		__builtin_trap();
	for (i = 0; i < n; i++) {
		const struct kvm_cpuid_entry2 *h = host_leaf(host, nh, &t[i]);
		if (!h || t[i].flags != h->flags)
			__builtin_trap(); /* a leaf this host does not expose */
		for (k = 0; k < i; k++)
			if (t[k].function == t[i].function && t[k].index == t[i].index)
				__builtin_trap(); /* a leaf twice */
		switch (t[i].function) {
		case 0:
		case 0x40000000:
		case 0x80000000:
			if (t[i].eax > h->eax)
				__builtin_trap();
			break;
		case 1:
			if ((t[i].ecx & ~h->ecx & ~(1u << 27)) || (t[i].edx & ~h->edx) || (t[i].ecx & (1u << 5)))
				__builtin_trap(); /* VMX, or a feature the host lacks */
			break;
		case 7:
			if ((t[i].ebx & ~h->ebx) || (t[i].ecx & ~h->ecx & ~(1u << 4)) || (t[i].edx & ~h->edx))
				__builtin_trap();
			break;
		case 0x80000001:
			if ((t[i].ecx & ~h->ecx) || (t[i].edx & ~h->edx) || (t[i].ecx & (1u << 2)))
				__builtin_trap(); /* SVM, or a feature the host lacks */
			break;
		case 0x80000008:
			if ((t[i].eax & 0xff) > (h->eax & 0xff) || ((t[i].eax >> 8) & 0xff) > ((h->eax >> 8) & 0xff))
				__builtin_trap();
			break;
		}
	}
	free(t);
}

static void fuzz_vcpu(const uint8_t *data, size_t size)
{
	struct vcpu_state *s = malloc(sizeof(*s));
	struct err e = { 0 };

	if (!s)
		return;
	fill(s, sizeof(*s), data, size);
	if (vcpu_state_validate(s, &e) == 0) {
		/* What vcpu_load_state does with an accepted state, into buffers of its sizes. */
		struct kvm_cpuid_entry2 *cpuid = malloc(VCPU_MAX_CPUID * sizeof(*cpuid));
		struct kvm_msr_entry *msrs = malloc(VCPU_MAX_MSRS * sizeof(*msrs));
		void *xs = calloc(1, s->xsave_size);

		if (cpuid && msrs && xs) {
			memcpy(cpuid, s->cpuid, s->ncpuid * sizeof(cpuid[0]));
			memcpy(msrs, s->msrs, s->nmsrs * sizeof(msrs[0]));
			memcpy(xs, s->xsave, s->xsave_size);
		}
		/* KVM_SET_XSAVE reads a whole struct kvm_xsave from the buffer */
		if (s->xsave_size < sizeof(struct kvm_xsave) || s->id >= VM_MAX_VCPUS)
			__builtin_trap();
		for (uint32_t i = 0; i < s->nmsrs; i++)
			if (!msr_allowed(s->msrs[i].index))
				__builtin_trap(); /* an MSR sealvm does not restore got through */
		check_mask(s);
		free(cpuid);
		free(msrs);
		free(xs);
	} else if (e.code >= 0 || !e.msg[0]) {
		__builtin_trap();
	}
	free(s);
}

static void fuzz_vm(const uint8_t *data, size_t size)
{
	struct vm_state s;
	struct err e = { 0 };

	fill(&s, sizeof(s), data, size);
	if (vm_state_validate(&s, &e) == 0) {
		int i;
		for (i = 0; i < 3; i++)
			if (s.chips[i].chip_id != (uint32_t)i)
				__builtin_trap();
	} else if (e.code >= 0 || !e.msg[0]) {
		__builtin_trap();
	}
}

static void check_uart(const struct serial *u)
{
	if (u->s.rx_head >= SERIAL_FIFO || u->s.rx_count > SERIAL_FIFO || u->s.thri_pending > 1 ||
	    (u->irq_level != 0 && u->irq_level != 1) || irq_level_seen != u->irq_level)
		__builtin_trap();
}

static void fuzz_serial(const uint8_t *data, size_t size)
{
	struct serial_state st;
	struct pio_bus bus;
	struct serial u;
	struct err e = { 0 };
	size_t used = fill(&st, sizeof(st), data, size);

	memset(&bus, 0, sizeof(bus));
	irq_level_seen = -1;
	serial_init(&u, -1, irq_note, NULL);
	if (serial_attach(&u, &bus) < 0)
		__builtin_trap();
	if (serial_load(&u, &st, &e) == 0) {
		check_uart(&u);
		data += used;
		size -= used;
		for (; size >= 2; data += 2, size -= 2) {
			uint8_t op = data[0], v = data[1];
			uint8_t buf[4] = { v, 0, 0, 0 };

			if (op & 0x40)
				serial_input(&u, data + 1, (size_t)(op & 0x7) + 1 <= size - 1 ? (size_t)(op & 0x7) + 1 : size - 1);
			else
				pio_bus_access(&bus, (uint16_t)(SERIAL_BASE + (op & 7)), buf,
					       (op & 0x20) ? 2 : 1, (op & 0x80) != 0);
			check_uart(&u);
		}
	} else if (e.code >= 0 || !e.msg[0]) {
		__builtin_trap();
	}
	serial_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_vcpu(data + 1, size - 1);
		break;
	case 1:
		fuzz_vm(data + 1, size - 1);
		break;
	default:
		fuzz_serial(data + 1, size - 1);
	}
	return 0;
}
