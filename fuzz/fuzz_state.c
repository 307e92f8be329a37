/* libFuzzer target: the saved-state validators and loaders on raw struct bytes.
 *
 * Input: one selector byte, then the struct's bytes (a shorter input is zero-padded).
 *   selector % 3 == 0: struct vcpu_state  -> vcpu_state_validate, then the copies
 *                      vcpu_load_state makes from an accepted state
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
