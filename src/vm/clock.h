/* The guest's clocks while sealvm holds the machine stopped (one semantic for a
 * pause, a snapshot, a hand-over and a restore): the guest's clocks — the PIT's
 * ticks and kvmclock — do not see the time it spent stopped. At the stop both are
 * recorded; at the restart they are loaded back, which also drops the ticks KVM
 * queued to catch up. The TSC is the machine's cycle counter: KVM ties it to the
 * host's, so it counts real time across a stop (on a nested KVM with an unstable
 * host TSC, KVM's TSC catch-up undoes any attempt to hold it back). */
#ifndef SEALVM_VM_CLOCK_H
#define SEALVM_VM_CLOCK_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "util/err.h"
#include "vm/vm.h"

struct clock_hold {
	bool held;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data kvmclock;
};

/* Records the PIT and kvmclock (the vCPUs are outside KVM_RUN). */
int clock_hold(struct vm *vm, struct clock_hold *h, struct err *e);
/* Loads them back: the guest continues where its clocks stopped. */
int clock_release(struct vm *vm, struct clock_hold *h, struct err *e);

#endif
