/* The CPUID a guest sees: this host's filtered table (what KVM supports, VMX and
 * SVM hidden, the hypervisor bit set), the per-vCPU APIC ID fields, and the mask
 * an incoming table (from a migration or a snapshot) goes through before KVM sees
 * it, so a hostile stream cannot turn on a feature this host does not expose. */
#ifndef SEALVM_VM_CPUID_H
#define SEALVM_VM_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

#include "util/err.h"

#define CPUID_MAX_ENTRIES 128

/* KVM_GET_SUPPORTED_CPUID on kvm_fd, filtered with cpuid_filter. */
int cpuid_host_table(int kvm_fd, struct kvm_cpuid_entry2 *out, uint32_t *n, struct err *e);
/* What sealvm changes in KVM's supported table: hypervisor bit on; VMX, SVM and the
 * SVM leaf gone (no nested state to migrate). Returns the new count. */
uint32_t cpuid_filter(struct kvm_cpuid_entry2 *t, uint32_t n);
/* Writes a vCPU's APIC ID where CPUID reports it (leaf 1 EBX[31:24], x2APIC leaves). */
void cpuid_set_apic_id(struct kvm_cpuid_entry2 *t, uint32_t n, uint32_t apic_id);

/* What cpuid_mask changed, for a warning. */
struct cpuid_mask_report {
	uint32_t dropped;    /* leaves (or duplicates) the host does not expose */
	uint32_t bits;       /* feature bits cleared */
	uint32_t clamped;    /* max-leaf or width fields lowered */
	uint32_t vmx_svm;    /* 1 if VMX or SVM was asked for */
};

/* Masks t (n entries, from a stream) in place against host (this host's filtered
 * table): a leaf the host lacks is dropped, as is a repeated one; feature registers
 * are ANDed with the host's, with the OS-controlled bits (OSXSAVE, OSPKE) kept only
 * over their feature; max-leaf values and address widths are clamped to the host's;
 * registers that only describe the guest's CPU (vendor, family/model, brand, cache
 * and topology) keep the stream's value; every other register takes the host's.
 * Returns the new count. */
uint32_t cpuid_mask(struct kvm_cpuid_entry2 *t, uint32_t n, const struct kvm_cpuid_entry2 *host,
		    uint32_t nhost, struct cpuid_mask_report *rep);

#endif
