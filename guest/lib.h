/* Shared runtime for the freestanding test guests: serial, printf, args, PIT time, exit. */
#ifndef GUEST_LIB_H
#define GUEST_LIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "multiboot.h"

/* Every guest program defines this; start.S calls it with the loader's %eax and %ebx. */
void gmain(uint32_t magic, struct multiboot_info *mbi);

static inline void outb(uint16_t port, uint8_t v) { __asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* serial console (8250 at 0x3f8) */
void gputc(char c);
void gputs(const char *s);
void gprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void gvprintf(const char *fmt, va_list ap);

/* Multiboot command line ("" when the loader gave none) and key=value lookup. */
const char *mb_cmdline(const struct multiboot_info *mbi);
uint32_t arg_u32(const char *cmdline, const char *key, uint32_t def);

/* time: PIC remapped to 0x20/0x28, PIT channel 0 at 100 Hz, interrupts on. */
#define TICK_HZ 100u
#define TICK_MS (1000u / TICK_HZ)
extern volatile uint32_t ticks;
void time_init(void);
static inline uint32_t ms_now(void) { return ticks * TICK_MS; }
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
/* ms since time_init() by the TSC (rate measured against the PIT at boot). On this machine's KVM, PIT
 * interrupts arrive late or are lost while the vCPU is stalled (string ops, first touch of memory, a busy
 * host), so ticks can run up to ~2x slow for seconds; the TSC follows real time. Ticks stay the spec'd
 * guest clock (they also prove interrupts work); use this one to measure rates honestly. */
uint32_t tsc_ms(void);
uint32_t tsc_mhz(void); /* 0 when calibration failed (then tsc_ms() is ms_now()) */
static inline void cpu_halt(void) { __asm__ __volatile__("hlt"); } /* sleep until the next interrupt */

/* Spinlocks for guests on several processors. */
typedef volatile uint32_t spinlock_t;
static inline void spin_lock(spinlock_t *l)
{
    for (;;) {
        uint32_t v = 1;
        __asm__ __volatile__("xchgl %0, %1" : "+r"(v), "+m"(*l) : : "memory");
        if (!v)
            return;
        while (*l)
            __asm__ __volatile__("pause" ::: "memory");
    }
}
static inline void spin_unlock(spinlock_t *l)
{
    __asm__ __volatile__("" ::: "memory");
    *l = 0;
}
/* Held around a whole line when several processors print. */
void console_lock(void);
void console_unlock(void);

/* Busy-waits us microseconds (TSC; a spin estimate before calibration). */
void delay_us(uint32_t us);
/* Loads the IDT time_init built (an AP's first step). */
void idt_load(void);

/* leaving: status byte to the debug-exit port 0xf4, or a reset through the i8042. */
__attribute__((noreturn)) void guest_exit(uint8_t status);
__attribute__((noreturn)) void guest_reset(void);
#define EXIT_FATAL 0x7f /* an unexpected CPU exception */

/* xorshift32 PRNG; the state must never be 0. */
static inline uint32_t xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* 64-by-32 division without libgcc (no 32-bit libgcc here). */
uint64_t udiv64(uint64_t n, uint32_t d, uint32_t *rem);

/* gcc may emit calls to these even in freestanding code. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif
