/* The Intel MultiProcessor Specification 1.4 table that tells a guest how many
 * processors it has: a floating pointer ("_MP_") and a configuration table
 * ("PCMP") in the BIOS area at 0xF0000, where the spec (§4) says an OS searches.
 * It lists one enabled processor per vCPU (APIC ID = vCPU id, vCPU 0 the boot
 * processor), an ISA bus, the IOAPIC at 0xFEC00000 with ISA IRQs 0-15 on pins 0-15
 * (KVM's default routing), and virtual wire mode: ExtINT to the BSP's LINT0, NMI to
 * every LINT1. sealvm builds no ACPI tables. */
#ifndef SEALVM_VM_MPTABLE_H
#define SEALVM_VM_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "vm/vm.h"

#define MPTABLE_ADDR 0xf0000u     /* start of the BIOS area (reserved in the memory map) */
#define MPTABLE_MAX_CPUS 64
#define MP_LAPIC_ADDR 0xfee00000u
#define MP_IOAPIC_ADDR 0xfec00000u

/* Bytes the table takes for ncpus processors. */
size_t mptable_size(int ncpus);
/* Builds the floating pointer and the configuration table into buf, as they are to
 * lie at guest-physical gpa (16-byte aligned). */
int mptable_build(uint8_t *buf, size_t len, uint32_t gpa, int ncpus, struct err *e);
/* Builds the table at MPTABLE_ADDR in the VM's RAM. */
int mptable_write(struct vm *vm, int ncpus, struct err *e);

#endif
