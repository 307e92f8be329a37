/* AP start-up as the Intel SDM (§8.4.4, "MP initialization example") describes it: INIT,
 * 10 ms, SIPI, 200 us, a second SIPI if the AP has not answered. One AP at a time, so
 * they can share the boot variables below. */
#include "smp.h"

#define LAPIC_ID 0x20
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

#define SVR_ENABLE 0x100
#define ICR_INIT 0x4500            /* INIT, level assert */
#define ICR_SIPI 0x4600            /* start-up, level assert; | vector */
#define ICR_BUSY (1u << 12)        /* delivery status: send pending */
#define TIMER_PERIODIC (1u << 17)
#define TIMER_MASKED (1u << 16)
#define AP_STACK 8192u

struct cpu_table smp_table;
uint32_t smp_ncpus = 1;
uint32_t smp_init_wait_ms = 10;
static uintptr_t lapic = 0xfee00000u;
volatile uint32_t *lapic_eoi_reg = (volatile uint32_t *)(0xfee00000u + LAPIC_EOI); /* isr.S */

/* What an AP reads when it starts (trampoline.S), one AP at a time. */
volatile uint32_t ap_boot_cpu, ap_boot_stack;
static volatile uint32_t ap_up;
static void (*ap_fn)(uint32_t cpu);
static uint32_t timer_count; /* LAPIC timer counts per tick, measured on the BSP */
static uint8_t ap_stacks[CPUS_MAX][AP_STACK] __attribute__((section(".bss.noinit"), aligned(16)));

extern const uint8_t tramp_start[], tramp_end[];

static inline uint32_t lapic_rd(uint32_t off) { return *(volatile uint32_t *)(lapic + off); }
static inline void lapic_wr(uint32_t off, uint32_t v) { *(volatile uint32_t *)(lapic + off) = v; }

uint32_t smp_cpu(void)
{
    uint8_t id = (uint8_t)(lapic_rd(LAPIC_ID) >> 24);
    for (uint32_t i = 0; i < smp_ncpus; i++)
        if (smp_table.apic_id[i] == id)
            return i;
    return 0;
}

/* Counts of the LAPIC timer (divide by 1) in one tick, against the TSC. */
static void timer_calibrate(void)
{
    lapic_wr(LAPIC_TIMER_DIV, 0xb);
    lapic_wr(LAPIC_LVT_TIMER, TIMER_MASKED | VEC_LAPIC_TIMER);
    lapic_wr(LAPIC_TIMER_INIT, 0xffffffffu);
    delay_us(TICK_MS * 1000u);
    timer_count = 0xffffffffu - lapic_rd(LAPIC_TIMER_CUR);
    lapic_wr(LAPIC_TIMER_INIT, 0);
    if (timer_count < 1000u)
        timer_count = 10000000u; /* implausible: assume KVM's 1 GHz */
}

void lapic_timer_start(void)
{
    lapic_wr(LAPIC_TIMER_DIV, 0xb);
    lapic_wr(LAPIC_LVT_TIMER, TIMER_PERIODIC | VEC_LAPIC_TIMER);
    lapic_wr(LAPIC_TIMER_INIT, timer_count);
}

uint32_t smp_init(uint32_t tables, uint32_t max)
{
    const struct phys_mem mem = {0, 1ull << 32};
    int r = -1;

    /* ACPI first, as modern OSes do: SeaBIOS's MP table lists one CPU per package only */
    if (tables != 1)
        r = cpus_find_acpi(&mem, &smp_table);
    if (r < 0 && tables != 2)
        r = cpus_find_mp(&mem, &smp_table);
    if (r < 0) {
        gprintf("ERR no %s processor table (%s)\n", tables == 1 ? "MP" : tables == 2 ? "ACPI" : "MP or ACPI",
                r == -1 ? "not found" : "malformed");
        return 0;
    }
    lapic = smp_table.lapic_addr;
    lapic_eoi_reg = (volatile uint32_t *)(lapic + LAPIC_EOI);
    lapic_wr(LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS); /* software-enable; LVTs stay as the loader left them */
    /* this processor is CPU 0 */
    uint8_t self = (uint8_t)(lapic_rd(LAPIC_ID) >> 24);
    for (uint32_t i = 0; i < smp_table.n; i++)
        if (smp_table.apic_id[i] == self) {
            smp_table.apic_id[i] = smp_table.apic_id[0];
            smp_table.apic_id[0] = self;
            break;
        }
    smp_ncpus = max && max < smp_table.n ? max : smp_table.n;
    timer_calibrate();
    return smp_ncpus;
}

static void send_ipi(uint8_t apic_id, uint32_t icr)
{
    while (lapic_rd(LAPIC_ICR_LO) & ICR_BUSY)
        __asm__ __volatile__("pause");
    lapic_wr(LAPIC_ICR_HI, (uint32_t)apic_id << 24);
    lapic_wr(LAPIC_ICR_LO, icr);
    while (lapic_rd(LAPIC_ICR_LO) & ICR_BUSY)
        __asm__ __volatile__("pause");
}

/* C entry of an AP (trampoline.S), on its own stack. */
__attribute__((noreturn, used)) void ap_main(uint32_t cpu)
{
    idt_load();
    lapic_wr(LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
    lapic_timer_start();
    ap_up = 1;
    __asm__ __volatile__("sti");
    ap_fn(cpu);
    for (;;)
        cpu_halt();
}

uint32_t smp_start_aps(void (*fn)(uint32_t cpu))
{
    uint32_t started = 0, len = (uint32_t)(tramp_end - tramp_start);

    ap_fn = fn;
    memcpy((void *)TRAMPOLINE_ADDR, tramp_start, len);
    for (uint32_t i = 1; i < smp_ncpus; i++) {
        uint8_t id = smp_table.apic_id[i];
        ap_up = 0;
        ap_boot_cpu = i;
        ap_boot_stack = (uint32_t)(uintptr_t)&ap_stacks[i][AP_STACK];
        __asm__ __volatile__("" ::: "memory");
        send_ipi(id, ICR_INIT);
        if (smp_init_wait_ms > 10) {
            gprintf("INIT sent to cpu %u, SIPI in %u ms\n", i, smp_init_wait_ms);
            uint32_t t0 = tsc_ms();
            while (tsc_ms() - t0 < smp_init_wait_ms)
                cpu_halt();
        } else {
            delay_us(smp_init_wait_ms * 1000u);
        }
        for (int k = 0; k < 2 && !ap_up; k++) {
            send_ipi(id, ICR_SIPI | (TRAMPOLINE_ADDR >> 12));
            delay_us(200);
        }
        uint32_t t0 = tsc_ms();
        while (!ap_up && tsc_ms() - t0 < 2000u)
            __asm__ __volatile__("pause");
        if (!ap_up) {
            gprintf("ERR cpu %u (APIC ID %u) did not start\n", i, id);
            continue;
        }
        started++;
    }
    return started;
}
