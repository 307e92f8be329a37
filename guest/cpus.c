/* Processor discovery from the MP table or the ACPI MADT; every read is bounds-checked
 * against the physical memory window, every structure checksummed, as both specs
 * require before a table may be trusted. */
#include "cpus.h"

#include <stddef.h>

static const uint8_t *at(const struct phys_mem *m, uint64_t addr, uint64_t len)
{
    if (addr > m->size || len > m->size - addr)
        return 0;
    return (const uint8_t *)(m->base + (uintptr_t)addr);
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static int same(const uint8_t *p, const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (p[i] != (uint8_t)s[i])
            return 0;
    return 1;
}

static uint8_t sum(const uint8_t *p, uint32_t n)
{
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *p++);
    return s;
}

/* First 16-byte aligned match of sig (with a zero checksum over len bytes) in [lo, hi). */
static uint32_t scan(const struct phys_mem *m, uint32_t lo, uint32_t hi, const char *sig, int siglen, uint32_t len)
{
    for (uint32_t a = (lo + 15) & ~15u; a + len <= hi; a += 16) {
        const uint8_t *p = at(m, a, len);
        if (p && same(p, sig, siglen) && sum(p, len) == 0)
            return a;
    }
    return 0;
}

/* The BIOS data area: EBDA segment at 0x40E, base memory KiB at 0x413 (zero when no BIOS wrote them). */
static uint32_t ebda(const struct phys_mem *m)
{
    const uint8_t *p = at(m, 0x40e, 2);
    uint32_t a = p ? (uint32_t)rd16(p) << 4 : 0;
    return a >= 0x80000 && a < 0xa0000 ? a : 0;
}

static uint32_t base_top(const struct phys_mem *m)
{
    const uint8_t *p = at(m, 0x413, 2);
    uint32_t kb = p ? rd16(p) : 0;
    return (kb >= 512 && kb <= 640 ? kb : 639) * 1024u; /* no BIOS: the usual 639 KiB */
}

static void add(struct cpu_table *t, uint8_t apic_id)
{
    if (t->n < CPUS_MAX)
        t->apic_id[t->n++] = apic_id;
}

/* MP spec 1.4 §4: the floating pointer in the first KiB of the EBDA, the last KiB of
 * base memory, or the BIOS ROM 0xF0000-0xFFFFF. */
int cpus_find_mp(const struct phys_mem *m, struct cpu_table *t)
{
    uint32_t e = ebda(m), top = base_top(m), fp = 0;
    if (e)
        fp = scan(m, e, e + 1024, "_MP_", 4, 16);
    if (!fp)
        fp = scan(m, top - 1024, top, "_MP_", 4, 16);
    if (!fp)
        fp = scan(m, 0xf0000, 0x100000, "_MP_", 4, 16);
    if (!fp)
        return -1;
    const uint8_t *f = at(m, fp, 16);
    if (f[8] != 1 || f[11] != 0) /* length 1; feature byte 1 nonzero = a default configuration, no table */
        return -2;
    uint32_t ct = rd32(f + 4);
    const uint8_t *h = at(m, ct, 44);
    if (!h || !same(h, "PCMP", 4))
        return -2;
    uint16_t len = rd16(h + 4), count = rd16(h + 34);
    const uint8_t *c = at(m, ct, len);
    if (len < 44 || !c || sum(c, len) != 0)
        return -2;
    t->n = 0;
    t->bsp = -1;
    t->lapic_addr = rd32(h + 36);
    t->source = "mp";
    t->table_addr = fp;
    uint32_t off = 44;
    for (uint32_t i = 0; i < count; i++) {
        if (off >= len)
            return -2;
        uint8_t type = c[off];
        uint32_t elen = type == 0 ? 20 : type <= 4 ? 8 : 0;
        if (!elen || elen > len - off)
            return -2; /* an unknown entry's length is unknown: stop rather than guess */
        if (type == 0 && (c[off + 3] & 1)) { /* processor, enabled */
            if (c[off + 3] & 2)
                t->bsp = (int)t->n;
            add(t, c[off + 1]);
        }
        off += elen;
    }
    return t->n ? 0 : -2;
}

/* ACPI: the RSDP ("RSD PTR ", 20-byte checksum) in the first KiB of the EBDA or in
 * 0xE0000-0xFFFFF; its RSDT lists the tables; the MADT ("APIC") the processors. */
static const uint8_t *sdt(const struct phys_mem *m, uint32_t addr, const char *sig)
{
    const uint8_t *h = at(m, addr, 36);
    if (!h || (sig && !same(h, sig, 4)))
        return 0;
    uint32_t len = rd32(h + 4);
    const uint8_t *p = at(m, addr, len);
    return len >= 36 && p && sum(p, len) == 0 ? p : 0;
}

int cpus_find_acpi(const struct phys_mem *m, struct cpu_table *t)
{
    uint32_t e = ebda(m), rp = 0;
    if (e)
        rp = scan(m, e, e + 1024, "RSD PTR ", 8, 20);
    if (!rp)
        rp = scan(m, 0xe0000, 0x100000, "RSD PTR ", 8, 20);
    if (!rp)
        return -1;
    const uint8_t *rsdt = sdt(m, rd32(at(m, rp, 20) + 16), "RSDT");
    if (!rsdt)
        return -2;
    uint32_t n = (rd32(rsdt + 4) - 36) / 4;
    const uint8_t *madt = 0;
    for (uint32_t i = 0; i < n && !madt; i++) {
        uint32_t a = rd32(rsdt + 36 + 4 * i);
        const uint8_t *h = at(m, a, 4);
        if (h && same(h, "APIC", 4))
            madt = sdt(m, a, "APIC");
    }
    if (!madt)
        return -2;
    uint32_t len = rd32(madt + 4);
    if (len < 44)
        return -2;
    t->n = 0;
    t->bsp = -1; /* the MADT does not say: the boot processor is whoever runs this */
    t->lapic_addr = rd32(madt + 36);
    t->source = "acpi";
    t->table_addr = rp;
    for (uint32_t off = 44; off + 2 <= len;) {
        uint8_t type = madt[off], elen = madt[off + 1];
        if (elen < 2 || elen > len - off)
            return -2;
        if (type == 0 && elen >= 8 && (rd32(madt + off + 4) & 1)) /* processor local APIC, enabled */
            add(t, madt[off + 3]);
        else if (type == 5 && elen >= 12 && !rd32(madt + off + 8)) /* local APIC address override, below 4 GiB */
            t->lapic_addr = rd32(madt + off + 4);
        off += elen;
    }
    return t->n ? 0 : -2;
}
