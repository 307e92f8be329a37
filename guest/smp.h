/* Several processors: finding them (cpus.h), starting the APs with INIT/SIPI through
 * the local APIC, per-CPU identity, spinlocks, and a per-CPU LAPIC timer that wakes a
 * halted AP (the PIT's interrupts reach only the boot processor, through the PIC). */
#ifndef GUEST_SMP_H
#define GUEST_SMP_H

#include <stdint.h>

#include "cpus.h"
#include "lib.h"

#define TRAMPOLINE_ADDR 0x7000u   /* the AP's real-mode start page (SIPI vector 0x07) */
#define VEC_LAPIC_TIMER 0x40
#define VEC_SPURIOUS 0xff

extern struct cpu_table smp_table; /* valid after smp_init */
extern uint32_t smp_ncpus;         /* processors this guest uses (1 until smp_init) */
extern uint32_t smp_init_wait_ms;  /* INIT to SIPI (10, as the SDM says; longer halts meanwhile) */

/* Reads the processor table (tables: 0 the ACPI MADT, else the MP table; 1 MP only; 2 ACPI only), limits it
 * to max CPUs (0: all) and makes the caller CPU 0. Returns smp_ncpus, or 0 with a message
 * printed if no usable table was found. Call after time_init(). */
uint32_t smp_init(uint32_t tables, uint32_t max);
/* Starts every other processor; each runs fn(cpu) on its own stack with interrupts on and
 * its LAPIC timer ticking. Returns how many started (an AP that does not answer is reported). */
uint32_t smp_start_aps(void (*fn)(uint32_t cpu));
/* This processor's index in smp_table (0 = the one that ran smp_init). */
uint32_t smp_cpu(void);

/* Local APIC timer: periodic at TICK_HZ with VEC_LAPIC_TIMER. */
void lapic_timer_start(void);

#endif
