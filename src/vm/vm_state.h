/* VM-wide KVM state: the in-kernel PICs and IOAPIC, the PIT, and kvmclock. */
#ifndef SEALVM_VM_VM_STATE_H
#define SEALVM_VM_VM_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#include "util/err.h"
#include "vm/vm.h"

#define VM_STATE_VERSION 1

struct vm_state {
	uint32_t version;
	uint32_t pad;
	struct kvm_irqchip chips[3];   /* 0 PIC master, 1 PIC slave, 2 IOAPIC */
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

/* Saves irqchip and PIT, then the clock last (it keeps running until then). */
int vm_state_save(struct vm *vm, struct vm_state *s, struct err *e);
int vm_state_validate(const struct vm_state *s, struct err *e);
/* Loads irqchip and PIT; call after the vCPUs are loaded. */
int vm_state_load(struct vm *vm, const struct vm_state *s, struct err *e);
/* Sets kvmclock; call just before the vCPUs resume. */
int vm_state_load_clock(struct vm *vm, const struct vm_state *s, struct err *e);

#endif
