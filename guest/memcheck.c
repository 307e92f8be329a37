/* memcheck.elf: proves a migration loses nothing. Every 4 KiB page i of a working set at 16 MiB holds
 *   dword0 = i, dword1 = version v (also kept in ver[], below 16 MiB), dwords 2..1023 = pattern(i, v).
 * The guest rewrites pages at a paced rate (each write bumps the version) and sweeps a checker over all
 * pages; a lost, stale, misplaced or zeroed page fails its check and prints BAD.
 *
 * On several processors (found in the MP table or the ACPI MADT, started with INIT/SIPI) each CPU writes
 * and checks its own share of the pages at its share of the rate, and all of them write and check a shared
 * region at the start of the working set under a spinlock, so a page one CPU wrote is verified by another.
 * Every CPU prints its own heartbeat ("CPU c seq=.. writes=.. checks=.. passes=.. bad=.. tsc_ms=..");
 * CPU 0 also prints the machine's ("HB ..."), whose counters are the sums over CPUs and whose passes= is
 * the fewest full sweeps any CPU has made (a sweep covers its share and the shared region).
 *
 * Heartbeats carry both clocks: ms= (PIT ticks, the guest clock) and tsc_ms= (real time, see lib.h).
 * Args: ws=<MiB> (64)  rate=<MB/s> of page writes, all CPUs together (0: only check)  hb=<ms> heartbeat (1000)
 *       passes=<n> exit after every CPU made n full sweeps, status 0 if nothing was ever bad, else 1
 *                (0: run forever)
 *       light=1  most writes change only dword1, the body is rewritten when v crosses a multiple of 256
 *                (versions below 256 have an all-zero body, so the initial fill writes two words a page):
 *                full-page string ops run at only ~9 MB/s on this machine's emulated CPU, a header write
 *                dirties a page for a few instructions, so light=1 reaches high dirty rates
 *       seed=<n> for the write positions
 *       selftest=1  corrupt the last page behind the checker's back, to prove the checker can fail
 *       cpus=<n>  use at most n processors (0: every one the table lists)
 *       tables=<0|1|2>  where to find them: 0 the ACPI MADT, else the MP table (sealvm builds only this
 *                one); 1 MP only; 2 ACPI only. SeaBIOS's MP table lists one CPU per package, so under
 *                QEMU tables=1 finds every CPU only with one core per socket (-smp N,sockets=N)
 *       shared=<pages>  shared region on several CPUs (64)
 *       duty=<pct>  share of each timer tick a CPU works before it halts until the next interrupt
 *                (100: never halts; default 100 on one CPU, 50 on several, so idle time is given back)
 *       apdelay=<ms>  wait this long (halted) before starting the APs, which wait for INIT meanwhile
 *       initwait=<ms>  between INIT and SIPI (10), the AP waiting for SIPI meanwhile
 *       public=<MiB>  declare the last MiB of the working set non-sensitive through sealvm's public-memory
 *                port (src/dev/pubmem.h) and print "PUBLIC ..."; every heartbeat then reads back how many
 *                pages the port says are public (pub=): the declaration travels with the VM. Without the
 *                port (QEMU) it prints "PUBLIC none" and carries on
 * Exit status 2: working set does not fit (or no memory info); 3: an AP did not start.
 *
 * Hot paths are per page: a handful of instructions plus one rep stosd / repe scasd. */
#include "lib.h"
#include "smp.h"

#define WS_BASE     0x01000000u                   /* 16 MiB */
#define PAGE_DW     1024u
#define MAX_PAGES   ((0u - WS_BASE) / 4096u)      /* everything from 16 MiB to 4 GiB */
#define RUN_MAX     16u                           /* pages in one write run */
#define CHK_CHUNK   2u                            /* pages checked between looks at the clock */
#define BACKLOG     10u                           /* ticks of write allowance we may owe at most */
#define BAD_LINES   20u
#define LIGHT_BODY  0xFFFFFF00u                   /* light=1: body version = v rounded down to 256 */
#define SHARED_EVERY 8u                           /* one write run in 8 goes to the shared region */

static uint32_t ver[MAX_PAGES] __attribute__((section(".bss.noinit"))); /* filled before use */
static uint32_t *const ws = (uint32_t *)WS_BASE;
static uint32_t npages, nshared;
static uint32_t bmask = 0xFFFFFFFFu; /* body pattern uses version v & bmask */
static uint32_t bad_printed;
static spinlock_t shared_lock;       /* the shared region's pages and their ver[] */

/* Settings every CPU reads. */
static uint32_t rate, hb, passes_max, duty, ncpus, seed;
static volatile uint32_t go;
static uint32_t pub_on;              /* public=: show the port's count of public pages in HB lines */

/* sealvm's public-memory port (src/dev/pubmem.h): 32-bit registers. */
#define PUBMEM_PORT 0x520u
#define PUBMEM_SIGNATURE 0x4d425053u
static inline void outl(uint16_t port, uint32_t v) { __asm__ __volatile__("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ __volatile__("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* Public pages as the port counts them (CPU 0 only: the registers are shared). */
static uint32_t pub_pages(void)
{
    outl(PUBMEM_PORT, 5); /* TOTALS */
    return inl(PUBMEM_PORT + 4);
}

/* One CPU's state; only that CPU writes it (CPU 0 reads the counters for the HB line). */
struct work {
    uint32_t lo, hi;          /* own pages [lo, hi) */
    uint32_t whi;             /* own pages written: [lo, whi) (selftest keeps the last one intact) */
    uint32_t cur;             /* checker position in [0, hi - lo + nshared) */
    uint32_t rng, credit, runs, seq, last_t, last_chk, next_hb, tms_last;
    volatile uint64_t writes, checks;
    uint64_t w_last;
    volatile uint32_t passes, bad, done;
} __attribute__((aligned(64)));
static struct work work[CPUS_MAX];

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

/* A 64-bit counter another CPU updates: re-read until the high half holds still. */
static uint64_t read64(const volatile uint64_t *p)
{
    const volatile uint32_t *h = (const volatile uint32_t *)p;
    uint32_t hi, lo;
    do {
        hi = h[1];
        lo = h[0];
    } while (hi != h[1]);
    return ((uint64_t)hi << 32) | lo;
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
static void page_bad(struct work *w, uint32_t i, uint32_t v)
{
    const uint32_t *p = ws + i * PAGE_DW;
    w->bad++;
    console_lock();
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
    console_unlock();
    page_fill(i, v);
}

static void check_run(struct work *w, uint32_t i, uint32_t n)
{
    const uint32_t *p = ws + i * PAGE_DW;
    for (uint32_t end = i + n; i < end; i++, p += PAGE_DW) {
        uint32_t v = ver[i];
        if (p[0] != i || p[1] != v || !scasd_all(p + 2, pattern(i, v & bmask), PAGE_DW - 2))
            page_bad(w, i, v);
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

/* CPU 0's line for the whole machine. */
static void heartbeat_all(struct work *w0, uint32_t now)
{
    static uint64_t w_last;
    static uint32_t tms_last;
    uint64_t writes = 0, checks = 0;
    uint32_t passes = 0xFFFFFFFFu, bad = 0;
    for (uint32_t c = 0; c < ncpus; c++) {
        writes += read64(&work[c].writes);
        checks += read64(&work[c].checks);
        bad += work[c].bad;
        if (work[c].passes < passes)
            passes = work[c].passes;
    }
    uint32_t tms = tsc_ms();
    console_lock();
    gprintf("HB seq=%u ms=%u writes=%llu checks=%llu passes=%u bad=%u tsc_ms=%u", w0->seq, now, writes, checks,
            passes, bad, tms);
    if (rate) { /* over TSC time: late ticks must not make a missed rate look met */
        uint32_t r10 = mb10_per_s(writes - w_last, tms - tms_last);
        gprintf(" wrate=%u.%u", r10 / 10, r10 % 10);
    }
    if (ncpus > 1)
        gprintf(" cpus=%u", ncpus);
    if (pub_on)
        gprintf(" pub=%u", pub_pages());
    gputc('\n');
    console_unlock();
    w_last = writes;
    tms_last = tms;
}

static void heartbeat_cpu(uint32_t c, struct work *w, uint32_t now)
{
    uint32_t tms = tsc_ms();
    console_lock();
    gprintf("CPU %u seq=%u ms=%u writes=%llu checks=%llu passes=%u bad=%u tsc_ms=%u", c, w->seq, now,
            read64(&w->writes), read64(&w->checks), w->passes, w->bad, tms);
    if (rate) {
        uint32_t r10 = mb10_per_s(w->writes - w->w_last, tms - w->tms_last);
        gprintf(" wrate=%u.%u", r10 / 10, r10 % 10);
    }
    gputc('\n');
    console_unlock();
    w->w_last = w->writes;
    w->tms_last = tms;
}

static int all_done(void)
{
    for (uint32_t c = 0; c < ncpus; c++)
        if (!work[c].done)
            return 0;
    return 1;
}

static void finish(void)
{
    uint64_t writes = 0, checks = 0;
    uint32_t passes = 0xFFFFFFFFu, bad = 0;
    for (uint32_t c = 0; c < ncpus; c++) {
        writes += read64(&work[c].writes);
        checks += read64(&work[c].checks);
        bad += work[c].bad;
        if (work[c].passes < passes)
            passes = work[c].passes;
    }
    console_lock();
    gprintf("DONE passes=%u writes=%llu checks=%llu bad=%u ms=%u tsc_ms=%u\n", passes, writes, checks, bad,
            ms_now(), tsc_ms());
    guest_exit(bad ? 1 : 0);
}

/* One CPU's work, forever: paced writes (own share, now and then the shared region), the checker's
 * sweep, heartbeats, and a halt once this tick's duty is spent. */
static void cpu_loop(uint32_t c)
{
    struct work *w = &work[c];
    const uint32_t per_tick = rate * 256u / ncpus; /* write allowance per tick, in 1/100 pages */
    const uint32_t credit_max = per_tick * BACKLOG;
    const uint32_t own = w->hi - w->lo, sweep = own + nshared;
    const uint64_t budget = duty < 100 ? udiv64((uint64_t)tsc_mhz() * 1000u * TICK_MS * duty, 100u, 0) : 0;
    uint64_t budget_end = rdtsc() + budget;

    w->last_t = w->last_chk = ticks;
    w->next_hb = ms_now() + hb;
    w->tms_last = tsc_ms();
    for (;;) {
        uint32_t t = ticks;
        if (t != w->last_t) {
            uint32_t dt = t - w->last_t;
            w->last_t = t;
            w->credit += (dt > BACKLOG ? BACKLOG : dt) * per_tick;
            if (w->credit > credit_max)
                w->credit = credit_max; /* behind: drop what we cannot catch up, wrate tells */
            uint32_t now = t * TICK_MS;
            if ((int32_t)(now - w->next_hb) >= 0) {
                ++w->seq;
                if (c == 0)
                    heartbeat_all(w, now);
                if (ncpus > 1)
                    heartbeat_cpu(c, w, now);
                w->next_hb += hb;
                if ((int32_t)(now - w->next_hb) >= 0)
                    w->next_hb = now + hb;
            }
        }
        if (w->done) {
            if (c == 0 && all_done())
                finish();
            cpu_halt();
            continue;
        }
        if (w->credit >= 100u && w->whi > w->lo) {
            uint32_t n = w->credit / 100u, r = xorshift32(&w->rng);
            if (n > RUN_MAX)
                n = RUN_MAX;
            if (nshared && ++w->runs % SHARED_EVERY == 0) {
                uint32_t s = r % nshared;
                if (n > nshared - s)
                    n = nshared - s;
                spin_lock(&shared_lock);
                write_run(s, n);
                spin_unlock(&shared_lock);
            } else {
                uint32_t s = w->lo + r % (w->whi - w->lo);
                if (n > w->whi - s)
                    n = w->whi - s;
                write_run(s, n);
            }
            w->writes += n;
            w->credit -= n * 100u;
            /* Behind on writes: the writer has priority, but the checker still gets a chunk per tick. */
            if (w->credit >= 100u && t == w->last_chk)
                continue;
        }
        w->last_chk = t;
        uint32_t n = sweep - w->cur < CHK_CHUNK ? sweep - w->cur : CHK_CHUNK;
        if (w->cur < own) {
            if (n > own - w->cur)
                n = own - w->cur;
            check_run(w, w->lo + w->cur, n);
        } else {
            spin_lock(&shared_lock);
            check_run(w, w->cur - own, n);
            spin_unlock(&shared_lock);
        }
        w->checks += n;
        w->cur += n;
        if (w->cur == sweep) {
            w->cur = 0;
            w->passes++;
            if (passes_max && w->passes >= passes_max)
                w->done = 1;
        }
        if (budget && rdtsc() >= budget_end) {
            cpu_halt(); /* until the next timer interrupt: this core is free meanwhile */
            budget_end = rdtsc() + budget;
        }
    }
}

static void ap_entry(uint32_t c)
{
    console_lock();
    gprintf("CPU %u up apic=%u\n", c, smp_table.apic_id[c]);
    console_unlock();
    while (!go)
        cpu_halt(); /* the LAPIC timer wakes us to look again */
    cpu_loop(c);
}

void gmain(uint32_t magic, struct multiboot_info *mbi)
{
    if (magic != MB_BOOT_MAGIC) {
        gprintf("ERR bad multiboot magic 0x%x\n", magic);
        guest_exit(2);
    }
    const char *cmd = mb_cmdline(mbi);
    uint32_t ws_mib = arg_u32(cmd, "ws", 64);
    rate = arg_u32(cmd, "rate", 0);
    hb = arg_u32(cmd, "hb", 1000);
    passes_max = arg_u32(cmd, "passes", 0);
    seed = arg_u32(cmd, "seed", 0x2545F491u);
    uint32_t selftest = arg_u32(cmd, "selftest", 0);
    uint32_t cpus_max = arg_u32(cmd, "cpus", 0), tables = arg_u32(cmd, "tables", 0);
    uint32_t shared_arg = arg_u32(cmd, "shared", 64), apdelay = arg_u32(cmd, "apdelay", 0);
    uint32_t public_mib = arg_u32(cmd, "public", 0);
    smp_init_wait_ms = arg_u32(cmd, "initwait", 10);
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

    /* One processor unless a table lists more (a VMM without one, or cpus=1). */
    ncpus = 1;
    if (cpus_max != 1 && smp_init(tables, cpus_max) > 1) {
        ncpus = smp_ncpus;
        gprintf("SMP cpus=%u of %u source=%s table=0x%x lapic=0x%x apic=", ncpus, smp_table.n, smp_table.source,
                smp_table.table_addr, smp_table.lapic_addr);
        for (uint32_t c = 0; c < ncpus; c++)
            gprintf(c ? ",%u" : "%u", smp_table.apic_id[c]);
        gputc('\n');
    }
    duty = arg_u32(cmd, "duty", ncpus > 1 ? 50 : 100);
    if (duty == 0 || duty > 100 || !tsc_mhz())
        duty = 100;
    nshared = ncpus > 1 ? shared_arg : 0;
    if (nshared > npages / 4)
        nshared = npages / 4;
    if (npages - nshared < ncpus) {
        gprintf("ERR ws too small for %u cpus\n", ncpus);
        guest_exit(2);
    }
    if (ncpus > 1) {
        if (apdelay) {
            gprintf("APDELAY %u ms: the APs wait for INIT\n", apdelay);
            uint32_t t0 = tsc_ms();
            while (tsc_ms() - t0 < apdelay)
                cpu_halt();
        }
        uint32_t up = smp_start_aps(ap_entry);
        if (up != ncpus - 1) {
            gprintf("ERR only %u of %u APs started\n", up, ncpus - 1);
            guest_exit(3);
        }
    }
    /* from here on the APs print too: whole lines under the console lock */
    console_lock();
    gprintf("MEMCHECK ws=%u rate=%u hb=%u passes=%u light=%u selftest=%u tsc_mhz=%u cpus=%u duty=%u shared=%u\n",
            ws_mib, rate, hb, passes_max, bmask != 0xFFFFFFFFu, selftest, tsc_mhz(), ncpus, duty, nshared);
    console_unlock();

    /* Shares: the shared region first, then one slice per CPU (the last takes the remainder). */
    uint32_t share = (npages - nshared) / ncpus;
    for (uint32_t c = 0; c < ncpus; c++) {
        struct work *w = &work[c];
        w->lo = nshared + c * share;
        w->hi = c == ncpus - 1 ? npages : w->lo + share;
        w->whi = w->hi;
        w->rng = (seed ^ (c * 0x9E3779B9u)) | 1u;
    }

    if (public_mib) {
        uint32_t n = public_mib > ws_mib ? npages : public_mib * 256u, first = WS_BASE / 4096u + npages - n;
        if (inl(PUBMEM_PORT) != PUBMEM_SIGNATURE) {
            gputs("PUBLIC none: no public-memory port\n");
        } else {
            outl(PUBMEM_PORT + 4, first);
            outl(PUBMEM_PORT + 8, n);
            outl(PUBMEM_PORT, 1); /* PUBLIC */
            uint32_t st = inl(PUBMEM_PORT + 12) & 0xffffu;
            outl(PUBMEM_PORT, 5); /* TOTALS */
            uint32_t pages = inl(PUBMEM_PORT + 4), ranges = inl(PUBMEM_PORT + 8);
            gprintf("PUBLIC first=0x%x pages=%u status=%u ranges=%u total=%u\n", first * 4096u, n, st, ranges, pages);
            pub_on = 1;
        }
    }
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
    console_lock();
    gprintf("READY ws=%u pages=%u fill_ms=%u\n", ws_mib, npages, tsc_ms() - t_fill);
    console_unlock();

    if (selftest) {
        selftest_corrupt(npages - 1); /* the APs wait for go: they print nothing meanwhile */
        work[ncpus - 1].whi = npages - 1; /* no write may repair it before the checker gets there */
    }
    __asm__ __volatile__("" ::: "memory");
    go = 1;
    cpu_loop(0);
}
