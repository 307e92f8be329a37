/* A vCPU: its fd and kvm_run mapping, CPUID setup, and complete state save/restore. */
#ifndef SEALVM_VM_VCPU_H
#define SEALVM_VM_VCPU_H

#include <linux/kvm.h>
#include <stdint.h>

#include "util/err.h"
#include "vm/cpuid.h"
#include "vm/vm.h"

#define VCPU_STATE_VERSION 1
#define VCPU_MAX_MSRS 256
#define VCPU_MAX_CPUID CPUID_MAX_ENTRIES
#define VCPU_XSAVE_MAX 16384

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
};

/* Everything KVM exposes about one vCPU, as a plain pointer-free struct.
 * Fields are raw KVM uapi structs (a stable ABI), as Firecracker stores them. */
struct vcpu_state {
	uint32_t version;
	uint32_t id;
	uint32_t tsc_khz;
	uint32_t nmsrs;
	uint32_t ncpuid;
	uint32_t xsave_size;         /* bytes of xsave[] in use */
	struct kvm_mp_state mp_state;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_msr_entry msrs[VCPU_MAX_MSRS];
	struct kvm_cpuid_entry2 cpuid[VCPU_MAX_CPUID];
	uint8_t xsave[VCPU_XSAVE_MAX];
};

int vcpu_create(struct vm *vm, int id, struct vcpu **out, struct err *e);
void vcpu_destroy(struct vcpu *v);

/* Boot configuration: CPUID from this host's filtered table with the vCPU's APIC ID;
 * LAPIC in virtual wire mode (BSP LINT0=ExtINT, every LINT1=NMI, AP LINT0 masked). */
int vcpu_setup_cpuid(struct vcpu *v, struct err *e);
int vcpu_setup_lapic(struct vcpu *v, struct err *e);
/* Multiboot v1 entry: 32-bit protected mode, flat segments, paging off,
 * EAX=0x2BADB002, EBX=mbi, EIP=entry. gdt_gpa holds a flat GDT written by the loader. */
int vcpu_setup_multiboot(struct vcpu *v, uint32_t entry, uint32_t mbi, uint32_t gdt_gpa, struct err *e);

/* Saves the complete state of a vCPU that is out of KVM_RUN with its I/O completed. */
int vcpu_save_state(struct vcpu *v, struct vcpu_state *s, struct err *e);
/* Checks a saved state before anything is applied (version, counts, sizes, field
 * ranges, MSRs only from the allow-list in vm/msr.h). */
int vcpu_state_validate(const struct vcpu_state *s, struct err *e);
/* Loads a saved state into a fresh vCPU (never run). The CPUID goes through
 * cpuid_mask against this host's table first. */
int vcpu_load_state(struct vcpu *v, const struct vcpu_state *s, struct err *e);

#endif
