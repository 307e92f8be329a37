/* Time base: IDT, 8259 PIC remapped to 0x20/0x28, PIT channel 0 at 100 Hz counting `ticks`, and the
 * TSC rate measured against PIT channel 2 for tsc_ms(). */
#include "lib.h"

volatile uint32_t ticks;
static uint64_t tsc0;
static uint32_t tsc_per_ms; /* 0: calibration failed, tsc_ms() falls back to ticks */

extern void isr_irq0(void), isr_irq_master(void), isr_irq_slave(void), isr_ignore(void), isr_lapic_eoi(void);
extern void (*const isr_exc_table[32])(void);

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t zero, type; /* 0x8E: present, ring 0, 32-bit interrupt gate (IF cleared on entry) */
    uint16_t off_hi;
} __attribute__((packed));

static struct idt_gate idt[256];

static void set_gate(int vec, void (*fn)(void))
{
    uint32_t a = (uint32_t)(uintptr_t)fn;
    idt[vec] = (struct idt_gate){(uint16_t)a, 0x08, 0, 0x8E, (uint16_t)(a >> 16)};
}

/* Called by the exception stubs in isr.S; a guest that faults is broken, so say where and stop. */
__attribute__((noreturn, used)) void exc_handler(uint32_t vec, uint32_t err, uint32_t eip)
{
    gprintf("\nEXC vec=%u err=0x%x eip=0x%x\n", vec, err, eip);
    guest_exit(EXIT_FATAL);
}

static void idt_init(void)
{
    for (int v = 0; v < 256; v++)
        set_gate(v, isr_ignore);
    for (int v = 0; v < 32; v++)
        set_gate(v, isr_exc_table[v]);
    set_gate(2, isr_ignore); /* NMI: harmless here */
    set_gate(0x20, isr_irq0);
    for (int v = 0x21; v < 0x28; v++)
        set_gate(v, isr_irq_master);
    for (int v = 0x28; v < 0x30; v++)
        set_gate(v, isr_irq_slave);
    set_gate(0x40, isr_lapic_eoi); /* smp.h VEC_LAPIC_TIMER; the spurious vector 0xff needs no EOI */
    idt_load();
}

void idt_load(void)
{
    struct {
        uint16_t limit;
        uint32_t base;
    } __attribute__((packed)) d = {sizeof idt - 1, (uint32_t)(uintptr_t)idt};
    __asm__ __volatile__("lidt %0" : : "m"(d));
}

/* Moves IRQ0-15 off the CPU exception vectors, then masks everything but the timer. */
static void pic_init(void)
{
    outb(0x20, 0x11); /* ICW1: edge, cascade, ICW4 follows */
    outb(0xa0, 0x11);
    outb(0x21, 0x20); /* ICW2: master base vector */
    outb(0xa1, 0x28); /* ICW2: slave base vector */
    outb(0x21, 0x04); /* ICW3: slave on IRQ2 */
    outb(0xa1, 0x02);
    outb(0x21, 0x01); /* ICW4: 8086 mode */
    outb(0xa1, 0x01);
    outb(0x21, 0xfe); /* only IRQ0 */
    outb(0xa1, 0xff);
}

#define PIT_HZ 1193182u

static void pit_init(void)
{
    uint32_t div = (PIT_HZ + TICK_HZ / 2) / TICK_HZ;
    outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2 (rate generator) */
    outb(0x40, (uint8_t)div);
    outb(0x40, (uint8_t)(div >> 8));
}

/* Counts TSC cycles while PIT channel 2 (mode 0, gate on, speaker off) runs down 50 ms, polling its
 * output on port 0x61 bit 5; PIT counting follows host time even when guest interrupts come late. */
#define CAL_MS 50u
static void tsc_calibrate(void)
{
    uint32_t count = PIT_HZ * CAL_MS / 1000u, spins = 0;
    outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
    outb(0x43, 0xB0); /* channel 2, lobyte/hibyte, mode 0: output rises at terminal count */
    outb(0x42, (uint8_t)count);
    outb(0x42, (uint8_t)(count >> 8));
    uint64_t t = rdtsc();
    while (!(inb(0x61) & 0x20))
        if (++spins == 10000000u)
            return; /* no PIT channel 2 behind this port: keep ticks */
    uint64_t per_ms = udiv64(rdtsc() - t, CAL_MS, 0);
    tsc_per_ms = per_ms >> 32 ? 0xFFFFFFFFu : (uint32_t)per_ms;
}

uint32_t tsc_mhz(void) { return tsc_per_ms / 1000u; }

void delay_us(uint32_t us)
{
    if (!tsc_per_ms) { /* not calibrated: a loop of port reads, ~1 us each on real hardware */
        while (us--)
            inb(0x80);
        return;
    }
    uint64_t end = rdtsc() + udiv64((uint64_t)tsc_per_ms * us, 1000u, 0);
    while (rdtsc() < end)
        __asm__ __volatile__("pause");
}

uint32_t tsc_ms(void)
{
    if (!tsc_per_ms)
        return ms_now();
    return (uint32_t)udiv64(rdtsc() - tsc0, tsc_per_ms, 0);
}

void time_init(void)
{
    tsc_calibrate();
    tsc0 = rdtsc();
    idt_init();
    pic_init();
    pit_init();
    __asm__ __volatile__("sti");
}
