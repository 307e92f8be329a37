/* Runtime shared by the guests: serial output, a small printf, command-line args, exit paths. */
#include "lib.h"

#define COM1     0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20
#define THRE_SPIN 100000u

/* If a VMM's LSR never reports THRE we stop waiting rather than crawl (each poll is a VM exit). */
static int lsr_broken;

void gputc(char c)
{
    if (!lsr_broken) {
        uint32_t n = 0;
        while (!(inb(COM1_LSR) & LSR_THRE))
            if (++n == THRE_SPIN) {
                lsr_broken = 1;
                break;
            }
    }
    outb(COM1, (uint8_t)c);
}

static spinlock_t console;

void console_lock(void) { spin_lock(&console); }
void console_unlock(void) { spin_unlock(&console); }

void gputs(const char *s)
{
    while (*s)
        gputc(*s++);
}

uint64_t udiv64(uint64_t n, uint32_t d, uint32_t *rem)
{
    uint32_t hi = (uint32_t)(n >> 32), lo = (uint32_t)n;
    uint32_t qhi = hi / d, r = hi % d, qlo;
    /* r < d, so the 64/32 divl cannot overflow */
    __asm__("divl %4" : "=a"(qlo), "=d"(r) : "a"(lo), "d"(r), "rm"(d));
    if (rem)
        *rem = r;
    return ((uint64_t)qhi << 32) | qlo;
}

static void put_num(uint64_t v, uint32_t base, int width, char pad, int neg)
{
    char buf[24];
    int n = 0;
    do {
        uint32_t r;
        v = udiv64(v, base, &r);
        buf[n++] = "0123456789abcdef"[r];
    } while (v);
    if (neg)
        buf[n++] = '-';
    while (width-- > n)
        gputc(pad);
    while (n)
        gputc(buf[--n]);
}

/* Supports %c %s %d %u %x with optional 0-pad/width, and the ll length for 64-bit %llu/%llx. */
void gvprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            gputc(*fmt);
            continue;
        }
        char pad = ' ';
        int width = 0, lng = 0;
        if (*++fmt == '0')
            pad = '0', fmt++;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l')
            lng++, fmt++;
        switch (*fmt) {
        case 'c':
            gputc((char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            gputs(s ? s : "(null)");
            break;
        }
        case 'd': {
            int64_t v = lng >= 2 ? va_arg(ap, int64_t) : va_arg(ap, int32_t);
            put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, width, pad, v < 0);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = lng >= 2 ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t);
            put_num(v, *fmt == 'u' ? 10 : 16, width, pad, 0);
            break;
        }
        case '%':
            gputc('%');
            break;
        case '\0':
            return;
        default: /* unknown conversion: show it rather than guess */
            gputc('%');
            gputc(*fmt);
        }
    }
}

void gprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gvprintf(fmt, ap);
    va_end(ap);
}

const char *mb_cmdline(const struct multiboot_info *mbi)
{
    if (mbi && (mbi->flags & MBI_CMDLINE) && mbi->cmdline)
        return (const char *)(uintptr_t)mbi->cmdline;
    return "";
}

/* Parses decimal or 0x-prefixed hex; stops at the first non-digit. */
static uint32_t parse_u32(const char *s)
{
    uint32_t v = 0, base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        base = 16, s += 2;
    for (;; s++) {
        uint32_t d;
        if (*s >= '0' && *s <= '9')
            d = (uint32_t)(*s - '0');
        else if (base == 16 && (*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
            d = (uint32_t)((*s | 0x20) - 'a' + 10);
        else
            return v;
        v = v * base + d;
    }
}

/* Finds a whitespace-separated token "key=value"; the last one wins, like most command lines. */
uint32_t arg_u32(const char *cmdline, const char *key, uint32_t def)
{
    uint32_t v = def;
    const char *p = cmdline;
    while (p && *p) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *k = key, *t = p;
        while (*k && *t == *k)
            k++, t++;
        if (!*k && *t == '=')
            v = parse_u32(t + 1);
        while (*p && *p != ' ' && *p != '\t')
            p++;
    }
    return v;
}

void guest_exit(uint8_t status)
{
    outb(0xf4, status); /* isa-debug-exit: QEMU exits with (status << 1) | 1 */
    for (;;)
        __asm__ __volatile__("cli; hlt");
}

void guest_reset(void)
{
    outb(0x64, 0xFE); /* i8042 "pulse reset line" */
    for (;;)
        __asm__ __volatile__("cli; hlt");
}

void *memset(void *d, int c, size_t n)
{
    void *r = d;
    __asm__ __volatile__("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return r;
}

void *memcpy(void *d, const void *s, size_t n)
{
    void *r = d;
    __asm__ __volatile__("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return r;
}

void *memmove(void *d, const void *s, size_t n)
{
    unsigned char *dp = d;
    const unsigned char *sp = s;
    if (dp <= sp || dp >= sp + n)
        return memcpy(d, s, n);
    while (n--)
        dp[n] = sp[n];
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}
