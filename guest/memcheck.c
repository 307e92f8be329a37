/* memcheck.elf: proves a migration loses nothing. Every 4 KiB page i of a working set at 16 MiB holds
 *   dword0 = i, dword1 = version v (also kept in ver[], below 16 MiB), dwords 2..1023 = pattern(i, v).
 * The guest rewrites pages at a paced rate (each write bumps the version) and sweeps a checker over all
 * pages; a lost, stale, misplaced or zeroed page fails its check and prints BAD.
 *
 * Heartbeats carry both clocks: ms= (PIT ticks, the guest clock) and tsc_ms= (real time, see lib.h).
 * Args: ws=<MiB> (64)  rate=<MB/s> of page writes (0: only check)  hb=<ms> heartbeat (1000)
 *       passes=<n> exit after n full sweeps, status 0 if nothing was ever bad, else 1 (0: run forever)
 *       light=1  most writes change only dword1, the body is rewritten when v crosses a multiple of 256
 *                (versions below 256 have an all-zero body, so the initial fill writes two words a page):
 *                full-page string ops run at only ~9 MB/s on this machine's emulated CPU, a header write
 *                dirties a page for a few instructions, so light=1 reaches high dirty rates
 *       seed=<n> for the write positions
 *       selftest=1  corrupt the last page behind the checker's back, to prove the checker can fail
 * Exit status 2: working set does not fit (or no memory info).
 *
 * Hot paths are per page: a handful of instructions plus one rep stosd / repe scasd. */
#include "lib.h"

#define WS_BASE     0x01000000u                   /* 16 MiB */
#define PAGE_DW     1024u
#define MAX_PAGES   ((0u - WS_BASE) / 4096u)      /* everything from 16 MiB to 4 GiB */
#define RUN_MAX     16u                           /* pages in one write run */
#define CHK_CHUNK   2u                            /* pages checked between looks at the clock */
#define BACKLOG     10u                           /* ticks of write allowance we may owe at most */
#define BAD_LINES   20u
#define LIGHT_BODY  0xFFFFFF00u                   /* light=1: body version = v rounded down to 256 */

static uint32_t ver[MAX_PAGES] __attribute__((section(".bss.noinit"))); /* filled before use */
static uint32_t *const ws = (uint32_t *)WS_BASE;
static uint32_t npages;
static uint32_t bmask = 0xFFFFFFFFu; /* body pattern uses version v & bmask */
static uint32_t bad, bad_printed;

/* Multiplicative hash of (page, body version); |1 keeps it from ever being 0. In light mode the
 * body of versions 1..255 is all zeros (body version 0), so the initial fill writes only the two
 * header words: a lost or zeroed page still fails on them. */
static inline uint32_t pattern(uint32_t i, uint32_t b)
{
    return (b == 0 && bmask != 0xFFFFFFFFu) ? 0 : (i * 0x9E3779B1u + b * 0x85EBCA6Bu) | 1u;
}

static inline void stosd(uint32_t *d, uint32_t val, uint32_t n)
{
    __asm__ __volatile__("rep stosl" : "+D"(d), "+c"(n) : "a"(val) : "memory");
}

/* 1 if all n (> 0) dwords at d equal val. */
static inline int scasd_all(const uint32_t *d, uint32_t val, uint32_t n)
{
    uint8_t eq;
    __asm__ __volatile__("repe scasl" : "+D"(d), "+c"(n), "=@ccz"(eq) : "a"(val) : "memory");
    return eq;
}

static void page_fill(uint32_t i, uint32_t v)
{
    uint32_t *p = ws + i * PAGE_DW;
    p[0] = i;
    p[1] = v;
    stosd(p + 2, pattern(i, v & bmask), PAGE_DW - 2);
}

static void write_run(uint32_t i, uint32_t n)
{
    const uint32_t light = ~bmask; /* a local, so the loop does not reload it after every store */
    uint32_t *p = ws + i * PAGE_DW + 1;
    for (uint32_t end = i + n; i < end; i++, p += PAGE_DW) {
        uint32_t v = ++ver[i];
        if (v & light)
            *p = v; /* light write: the body pattern stays valid */
        else
            page_fill(i, v);
    }
}

/* Slow path: report (a limited number of lines), count, and repair so later damage counts anew. */
static void page_bad(uint32_t i, uint32_t v)
{
    const uint32_t *p = ws + i * PAGE_DW;
    bad++;
    if (bad_printed < BAD_LINES) {
        bad_printed++;
        gprintf("BAD page=%u want_ver=%u got_idx=%u got_ver=%u", i, v, p[0], p[1]);
        uint32_t want = pattern(i, v & bmask);
        for (uint32_t k = 2; k < PAGE_DW; k++)
            if (p[k] != want) {
                gprintf(" dword=%u got=0x%x want=0x%x", k, p[k], want);
                break;
            }
        gputs(bad_printed == BAD_LINES ? " (further BAD lines suppressed)\n" : "\n");
    }
    page_fill(i, v);
}

static void check_run(uint32_t i, uint32_t n)
{
    const uint32_t *p = ws + i * PAGE_DW;
    for (uint32_t end = i + n; i < end; i++, p += PAGE_DW) {
        uint32_t v = ver[i];
        if (p[0] != i || p[1] != v || !scasd_all(p + 2, pattern(i, v & bmask), PAGE_DW - 2))
            page_bad(i, v);
    }
}

/* Writes a page as a newer version without telling ver[]: what a migration that mixed up pages would do. */
static void selftest_corrupt(uint32_t i)
{
    uint32_t v = ver[i] + 1, *p = ws + i * PAGE_DW;
    p[1] = v;
    stosd(p + 2, pattern(i, v & bmask) ^ 0x5A5A0000u, PAGE_DW - 2);
    gprintf("SELFTEST corrupted page=%u\n", i);
}

/* Pages written in ms, as tenths of MB/s (256 pages per MiB): pages * 10000 / 256 / ms. */
static uint32_t mb10_per_s(uint64_t pages, uint32_t ms)
{
    return ms ? (uint32_t)(udiv64(pages * 625u, ms, 0) >> 4) : 0;
}

void gmain(uint32_t magic, struct multiboot_info *mbi)
{
    if (magic != MB_BOOT_MAGIC) {
        gprintf("ERR bad multiboot magic 0x%x\n", magic);
        guest_exit(2);
    }
    const char *cmd = mb_cmdline(mbi);
    uint32_t ws_mib = arg_u32(cmd, "ws", 64);
    uint32_t rate = arg_u32(cmd, "rate", 0);
    uint32_t hb = arg_u32(cmd, "hb", 1000);
    uint32_t passes_max = arg_u32(cmd, "passes", 0);
    uint32_t selftest = arg_u32(cmd, "selftest", 0);
    if (arg_u32(cmd, "light", 0))
        bmask = LIGHT_BODY;
    if (rate > 65535)
        rate = 65535; /* keeps the allowance arithmetic in 32 bits */
    if (hb < TICK_MS)
        hb = TICK_MS;

    if (!(mbi->flags & MBI_MEM)) {
        gputs("ERR no memory info\n");
        guest_exit(2);
    }
    uint64_t top = 0x100000ull + (uint64_t)mbi->mem_upper * 1024u;
    if (ws_mib == 0 || ws_mib > MAX_PAGES / 256u || WS_BASE + ((uint64_t)ws_mib << 20) > top) {
        gprintf("ERR ws too large ws=%u mem_upper=%u\n", ws_mib, mbi->mem_upper);
        guest_exit(2);
    }
    npages = ws_mib * 256u;
    time_init();
    gprintf("MEMCHECK ws=%u rate=%u hb=%u passes=%u light=%u selftest=%u tsc_mhz=%u\n", ws_mib, rate, hb,
            passes_max, bmask != 0xFFFFFFFFu, selftest, tsc_mhz());

    uint32_t t_fill = tsc_ms();
    for (uint32_t i = 0; i < npages; i++) {
        ver[i] = 1;
        if (bmask == 0xFFFFFFFFu) {
            page_fill(i, 1);
        } else { /* light: fresh RAM is zero, which is body version 0; the checker verifies it */
            ws[i * PAGE_DW] = i;
            ws[i * PAGE_DW + 1] = 1;
        }
    }
    gprintf("READY ws=%u pages=%u fill_ms=%u\n", ws_mib, npages, tsc_ms() - t_fill);

    uint32_t wlimit = npages; /* writes pick pages below this */
    if (selftest) {
        selftest_corrupt(npages - 1);
        wlimit = npages - 1; /* no write may repair it before the checker gets there */
    }

    const uint32_t per_tick = rate * 256u;      /* write allowance per tick, in 1/100 pages */
    const uint32_t credit_max = per_tick * BACKLOG;
    uint32_t credit = 0, rng = arg_u32(cmd, "seed", 0x2545F491u) | 1u, cur = 0, passes = 0, seq = 0;
    uint64_t writes = 0, checks = 0, w_last = 0;
    uint32_t last_t = ticks, last_chk = last_t, next_hb = ms_now() + hb, tms_last = tsc_ms();

    for (;;) {
        uint32_t t = ticks;
        if (t != last_t) {
            uint32_t dt = t - last_t;
            last_t = t;
            credit += (dt > BACKLOG ? BACKLOG : dt) * per_tick;
            if (credit > credit_max)
                credit = credit_max; /* behind: drop what we cannot catch up, wrate tells */
            uint32_t now = t * TICK_MS;
            if ((int32_t)(now - next_hb) >= 0) {
                uint32_t tms = tsc_ms();
                gprintf("HB seq=%u ms=%u writes=%llu checks=%llu passes=%u bad=%u tsc_ms=%u", ++seq, now, writes,
                        checks, passes, bad, tms);
                if (rate) { /* over TSC time: late ticks must not make a missed rate look met */
                    uint32_t r10 = mb10_per_s(writes - w_last, tms - tms_last);
                    gprintf(" wrate=%u.%u", r10 / 10, r10 % 10);
                }
                gputc('\n');
                w_last = writes;
                tms_last = tms;
                next_hb += hb;
                if ((int32_t)(now - next_hb) >= 0)
                    next_hb = now + hb;
            }
        }
        if (credit >= 100u && wlimit) {
            uint32_t n = credit / 100u, s = xorshift32(&rng) % wlimit;
            if (n > RUN_MAX)
                n = RUN_MAX;
            if (n > wlimit - s)
                n = wlimit - s;
            write_run(s, n);
            writes += n;
            credit -= n * 100u;
            /* Behind on writes: the writer has priority, but the checker still gets a chunk per tick. */
            if (credit >= 100u && t == last_chk)
                continue;
        }
        last_chk = t;
        uint32_t n = npages - cur < CHK_CHUNK ? npages - cur : CHK_CHUNK;
        check_run(cur, n);
        checks += n;
        cur += n;
        if (cur == npages) {
            cur = 0;
            passes++;
            if (passes_max && passes >= passes_max) {
                gprintf("DONE passes=%u writes=%llu checks=%llu bad=%u ms=%u tsc_ms=%u\n", passes, writes, checks,
                        bad, ms_now(), tsc_ms());
                guest_exit(bad ? 1 : 0);
            }
        }
    }
}
