/* The MSRs that carry a vCPU's state across a snapshot or a migration. The same
 * list decides what is saved and what an incoming state may write: an MSR outside
 * it (IA32_FEATURE_CONTROL, a VMX capability, anything KVM would accept) is refused
 * before any vCPU runs. */
#ifndef SEALVM_VM_MSR_H
#define SEALVM_VM_MSR_H

#include <stdbool.h>
#include <stdint.h>

#define MSR_IA32_TSC 0x10
#define MSR_IA32_FEATURE_CONTROL 0x3a
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_MCG_CTL 0x17b

/* True if sealvm saves and restores this MSR. */
bool msr_allowed(uint32_t index);
/* A short name for messages ("IA32_FEATURE_CONTROL"), or NULL. */
const char *msr_name(uint32_t index);

#endif
