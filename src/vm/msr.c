#include "vm/msr.h"

#include <stddef.h>

/* After Firecracker's serializable ranges: guest-visible state only, nothing that
 * configures the virtual CPU itself (feature control, VMX capabilities, MCG_CTL). */
bool msr_allowed(uint32_t i)
{
	if (i == MSR_MCG_CTL)
		return false;
	return i == MSR_IA32_TSC || i == 0x3b /* TSC_ADJUST */ || i == MSR_IA32_TSC_DEADLINE ||
	       i == 0xc0000103 /* TSC_AUX */ || i == 0x1b /* APICBASE */ ||
	       (i >= 0x174 && i <= 0x176) /* SYSENTER */ || i == 0x1a0 /* MISC_ENABLE */ ||
	       i == 0x48 /* SPEC_CTRL */ || (i >= 0x200 && i <= 0x2ff) /* MTRRs, PAT */ ||
	       (i >= 0x400 && i <= 0x47f) /* MC banks */ || i == 0xda0 /* XSS */ ||
	       i == 0x11 || i == 0x12 /* old kvmclock */ ||
	       (i >= 0x4b564d00 && i <= 0x4b564dff) /* KVM paravirt */ ||
	       (i >= 0xc0000080 && i <= 0xc0000084) /* EFER, STAR, LSTAR, CSTAR, SFMASK */ ||
	       (i >= 0xc0000100 && i <= 0xc0000102) /* FS/GS/KERNEL_GS base */;
}

const char *msr_name(uint32_t i)
{
	switch (i) {
	case MSR_IA32_FEATURE_CONTROL:
		return "IA32_FEATURE_CONTROL";
	case MSR_MCG_CTL:
		return "MCG_CTL";
	case 0x1d9:
		return "DEBUGCTL";
	case 0x8b:
		return "BIOS_SIGN_ID";
	case 0x10a:
		return "ARCH_CAPABILITIES";
	}
	if (i >= 0x480 && i <= 0x491)
		return "a VMX capability MSR";
	return NULL;
}
