/* Finding the processors: the Intel MP table (MP spec 1.4, what sealvm builds) or the
 * ACPI MADT (what QEMU's firmware adds), by the searches their specs prescribe.
 * Freestanding and portable: physical memory is read through a window (base, size),
 * so the host unit tests run the same code on a buffer. */
#ifndef GUEST_CPUS_H
#define GUEST_CPUS_H

#include <stdint.h>

#define CPUS_MAX 64

struct phys_mem {
    uintptr_t base;   /* where physical address 0 is mapped (0 in the guest: paging is off) */
    uint64_t size;    /* addresses at or above this are not readable */
};

struct cpu_table {
    uint32_t n;                  /* enabled processors */
    uint8_t apic_id[CPUS_MAX];   /* their local APIC IDs, in table order */
    int bsp;                     /* index of the boot processor if the table says (MP), else -1 */
    uint32_t lapic_addr;         /* local APIC registers */
    const char *source;          /* "mp" or "acpi" */
    uint32_t table_addr;         /* the MP floating pointer or the RSDP */
};

/* 0 and a filled table, or a negative code: -1 not found, -2 malformed. */
int cpus_find_mp(const struct phys_mem *m, struct cpu_table *t);
int cpus_find_acpi(const struct phys_mem *m, struct cpu_table *t);

#endif
