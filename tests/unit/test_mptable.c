/* The processor tables: sealvm's MP table checked field by field against the MP
 * specification 1.4 (chapter 4), then found and read by the guest's own parser
 * (guest/cpus.c, compiled here for the host); the guest's ACPI MADT parser on a
 * table built here by the ACPI 6.x layouts (RSDP 5.2.5, RSDT 5.2.7, MADT 5.2.12),
 * which is what QEMU's firmware provides; and damaged tables refused. */
#include "unit.h"
#include "vm/mptable.h"

#include "../../guest/cpus.c"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LOWMEM (1u << 20)

static uint8_t *mem;

static uint16_t r16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t r32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void w16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void w32(uint8_t *p, uint32_t v) { w16(p, (uint16_t)v); w16(p + 2, (uint16_t)(v >> 16)); }

static uint8_t bytesum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static struct phys_mem window(void)
{
	struct phys_mem m = { (uintptr_t)mem, LOWMEM };
	return m;
}

/* The spec's rules, read from the bytes (not from sealvm's structs). */
static void check_spec(int n)
{
	const uint8_t *fp = mem + MPTABLE_ADDR, *ct, *e;
	uint32_t count, i, ioapic_id = 0, last_type = 0, cpus = 0, bsps = 0, intsrc = 0, lint = 0, buses = 0;
	uint16_t len;

	/* 4.1 floating pointer: 16 bytes on a 16-byte boundary in the BIOS ROM area */
	CHECK(MPTABLE_ADDR % 16 == 0 && MPTABLE_ADDR >= 0xf0000 && MPTABLE_ADDR + 16 <= 0x100000);
	CHECK(memcmp(fp, "_MP_", 4) == 0);
	CHECK_INT(fp[8], 1);            /* length in paragraphs */
	CHECK_INT(fp[9], 4);            /* spec revision 1.4 */
	CHECK_INT(bytesum(fp, 16), 0);
	CHECK_INT(fp[11], 0);           /* feature 1: a configuration table is present */
	CHECK_INT(fp[12] & 0x80, 0);    /* IMCRP clear: virtual wire mode */
	CHECK(r32(fp + 4) >= 0xf0000 && r32(fp + 4) < 0x100000);
	/* 4.2 configuration table header */
	ct = mem + r32(fp + 4);
	len = r16(ct + 4);
	CHECK(memcmp(ct, "PCMP", 4) == 0);
	CHECK_INT(ct[6], 4);
	CHECK_INT(bytesum(ct, len), 0);
	CHECK_INT(len + 16, mptable_size(n));
	CHECK_INT(r32(ct + 36), 0xfee00000);  /* local APIC address */
	CHECK_INT(r16(ct + 40), 0);           /* no extended table */
	CHECK_INT(r32(ct + 28), 0);           /* no OEM table */
	count = r16(ct + 34);
	CHECK_INT(count, (uint32_t)n + 2 + 16 + 2);
	/* 4.3 entries, sorted by type */
	e = ct + 44;
	for (i = 0; i < count; i++) {
		uint32_t type = e[0], elen = type == 0 ? 20 : 8;
		CHECKF(type <= 4 && type >= last_type, "entry %u has type %u after %u", i, type, last_type);
		CHECK(e + elen <= ct + len);
		last_type = type;
		switch (type) {
		case 0: /* processor: APIC ID = vCPU id, enabled, vCPU 0 the BSP */
			CHECK_INT(e[1], cpus);
			CHECK(e[3] & 1);
			CHECK_INT(!!(e[3] & 2), cpus == 0);
			bsps += !!(e[3] & 2);
			CHECK(e[2] >= 0x10);    /* an integrated local APIC */
			cpus++;
			break;
		case 1:
			CHECK(memcmp(e + 2, "ISA   ", 6) == 0);
			CHECK_INT(e[1], 0);
			buses++;
			break;
		case 2:
			ioapic_id = e[1];
			CHECK(e[3] & 1);
			CHECK_INT(r32(e + 4), 0xfec00000);
			break;
		case 3: /* ISA IRQ i to IOAPIC pin i, as KVM's default routing */
			CHECK(e[1] == 0 && r16(e + 2) == 0 && e[4] == 0);
			CHECK_INT(e[5], intsrc);
			CHECK_INT(e[6], ioapic_id);
			CHECK_INT(e[7], intsrc);
			intsrc++;
			break;
		case 4: /* ExtINT to the BSP's LINT0, NMI to every LINT1 */
			if (lint == 0)
				CHECK(e[1] == 3 && e[6] == 0 && e[7] == 0);
			else
				CHECK(e[1] == 1 && e[6] == 0xff && e[7] == 1);
			lint++;
			break;
		}
		e += elen;
	}
	CHECK_INT(e - ct, len);
	CHECK(cpus == (uint32_t)n && bsps == 1 && buses == 1 && intsrc == 16 && lint == 2);
	CHECK_INT(ioapic_id, (uint32_t)n); /* no clash with a local APIC ID */
}

static void test_build(void)
{
	static const int ns[] = { 1, 2, 3, 7, 64 };
	struct err e;
	size_t i;

	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		struct phys_mem m = window();
		struct cpu_table t;
		int k;

		memset(mem, 0, LOWMEM);
		CHECK(mptable_build(mem + MPTABLE_ADDR, LOWMEM - MPTABLE_ADDR, MPTABLE_ADDR, ns[i], &e) == 0);
		check_spec(ns[i]);
		/* the guest finds it where the spec says to look, and reads every CPU */
		CHECK_INT(cpus_find_mp(&m, &t), 0);
		CHECK_INT(t.n, (uint32_t)ns[i]);
		CHECK_INT(t.bsp, 0);
		CHECK_INT(t.lapic_addr, 0xfee00000);
		CHECK_INT(t.table_addr, MPTABLE_ADDR);
		CHECK_STR(t.source, "mp");
		for (k = 0; k < ns[i]; k++)
			CHECK_INT(t.apic_id[k], k);
		/* sealvm builds no ACPI tables */
		CHECK_INT(cpus_find_acpi(&m, &t), -1);
	}
	CHECK_INT(mptable_build(mem, LOWMEM, 0xf0000, 0, &e), -EINVAL);
	CHECK_INT(mptable_build(mem, LOWMEM, 0xf0000, 65, &e), -EINVAL);
	CHECK_INT(mptable_build(mem, mptable_size(2) - 1, 0xf0000, 2, &e), -EINVAL);
	CHECK_INT(mptable_build(mem, LOWMEM, 0xf0008, 2, &e), -EINVAL);
	CHECK_INT(mptable_size(64), 16 + 44 + 64 * 20 + 8 + 8 + 16 * 8 + 2 * 8);
}

static void test_mp_damaged(void)
{
	struct phys_mem m = window();
	struct cpu_table t;
	struct err e;
	uint8_t *ct;

	/* the floating pointer's checksum: it is not a floating pointer */
	memset(mem, 0, LOWMEM);
	mptable_build(mem + MPTABLE_ADDR, LOWMEM - MPTABLE_ADDR, MPTABLE_ADDR, 2, &e);
	mem[MPTABLE_ADDR + 10] ^= 1;
	CHECK_INT(cpus_find_mp(&m, &t), -1);
	/* the table's checksum, signature, an unknown entry type, a length past the window */
	mptable_build(mem + MPTABLE_ADDR, LOWMEM - MPTABLE_ADDR, MPTABLE_ADDR, 2, &e);
	ct = mem + MPTABLE_ADDR + 16;
	ct[50] ^= 1;
	CHECK_INT(cpus_find_mp(&m, &t), -2);
	ct[50] ^= 1;
	CHECK_INT(cpus_find_mp(&m, &t), 0);
	ct[0] = 'X';
	CHECK_INT(cpus_find_mp(&m, &t), -2);
	ct[0] = 'P';
	ct[44] = 9;
	ct[7] = (uint8_t)(ct[7] - 9);
	CHECK_INT(cpus_find_mp(&m, &t), -2);
	ct[44] = 0;
	ct[7] = (uint8_t)(ct[7] + 9);
	w32(mem + MPTABLE_ADDR + 4, LOWMEM - 20);   /* the table pointer runs off the end */
	mem[MPTABLE_ADDR + 10] = 0;
	mem[MPTABLE_ADDR + 10] = (uint8_t)-bytesum(mem + MPTABLE_ADDR, 16);
	CHECK_INT(cpus_find_mp(&m, &t), -2);
	/* every processor disabled */
	mptable_build(mem + MPTABLE_ADDR, LOWMEM - MPTABLE_ADDR, MPTABLE_ADDR, 1, &e);
	ct[44 + 3] = 0;
	ct[7] = (uint8_t)(ct[7] + 3);
	CHECK_INT(cpus_find_mp(&m, &t), -2);

	/* found in the EBDA before the BIOS area, as the search order says */
	memset(mem, 0, LOWMEM);
	mptable_build(mem + MPTABLE_ADDR, LOWMEM - MPTABLE_ADDR, MPTABLE_ADDR, 2, &e);
	mptable_build(mem + 0x9fc00, 0x400, 0x9fc00, 3, &e); /* the last KiB of base memory */
	w16(mem + 0x40e, 0x9fc0);
	CHECK_INT(cpus_find_mp(&m, &t), 0);
	CHECK_INT(t.table_addr, 0x9fc00);
	CHECK_INT(t.n, 3);
	/* a window too small for the BIOS area: nothing found, nothing read beyond it */
	m.size = 0x9f000;
	w16(mem + 0x40e, 0);
	CHECK_INT(cpus_find_mp(&m, &t), -1);
}

/* ---- ACPI: RSDP at 0xf5000, RSDT at 0x80000 listing a FACP-like table and the MADT ---- */

static void sdt_header(uint8_t *p, const char *sig, uint32_t len)
{
	memcpy(p, sig, 4);
	w32(p + 4, len);
	p[8] = 1;
	memcpy(p + 10, "SEALVM", 6);
	p[9] = 0;
	p[9] = (uint8_t)-bytesum(p, len);
}

static void build_acpi(uint32_t madt_len_adjust)
{
	uint8_t *rsdp = mem + 0xf5000, *rsdt = mem + 0x80000, *other = mem + 0x80100, *madt = mem + 0x80200;
	uint8_t *e = madt + 44;
	uint32_t len;

	memset(mem, 0, LOWMEM);
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "QEMU  ", 6);
	rsdp[15] = 0;                       /* ACPI 1.0 RSDP: 20 bytes */
	w32(rsdp + 16, 0x80000);
	rsdp[8] = (uint8_t)-bytesum(rsdp, 20);

	memset(other + 36, 0xaa, 8);
	sdt_header(other, "FACP", 44);

	/* MADT: local APIC address and flags, then entries */
	w32(madt + 36, 0xfee00000);
	w32(madt + 40, 1);                  /* PCAT_COMPAT */
	e[0] = 0, e[1] = 8, e[2] = 0, e[3] = 0, w32(e + 4, 1), e += 8;       /* CPU 0, APIC 0, enabled */
	e[0] = 1, e[1] = 12, e[2] = 0, w32(e + 4, 0xfec00000), e += 12;      /* IOAPIC */
	e[0] = 0, e[1] = 8, e[2] = 1, e[3] = 2, w32(e + 4, 1), e += 8;       /* CPU 1, APIC 2, enabled */
	e[0] = 0, e[1] = 8, e[2] = 2, e[3] = 3, w32(e + 4, 0), e += 8;       /* CPU 2, APIC 3, disabled */
	e[0] = 2, e[1] = 10, e[3] = 0, w32(e + 4, 2), e += 10;               /* IRQ0 -> GSI 2 override */
	e[0] = 4, e[1] = 6, e[2] = 0xff, e[5] = 1, e += 6;                  /* local APIC NMI */
	e[0] = 9, e[1] = 16, w32(e + 4, 300), w32(e + 8, 1), e += 16;        /* x2APIC 300: not ours */
	len = (uint32_t)(e - madt);
	sdt_header(madt, "APIC", len);
	w32(madt + 4, len + madt_len_adjust); /* a wrong length breaks the checksum too: recompute */
	madt[9] = 0;
	madt[9] = (uint8_t)-bytesum(madt, len + madt_len_adjust);

	w32(rsdt + 36, 0x80100);
	w32(rsdt + 40, 0x80200);
	sdt_header(rsdt, "RSDT", 44);
}

static void test_acpi(void)
{
	struct phys_mem m = window();
	struct cpu_table t;

	build_acpi(0);
	CHECK_INT(cpus_find_acpi(&m, &t), 0);
	CHECK_INT(t.n, 2);
	CHECK(t.apic_id[0] == 0 && t.apic_id[1] == 2);
	CHECK_INT(t.bsp, -1);
	CHECK_INT(t.lapic_addr, 0xfee00000);
	CHECK_INT(t.table_addr, 0xf5000);
	CHECK_STR(t.source, "acpi");
	CHECK_INT(cpus_find_mp(&m, &t), -1);

	/* damaged: the RSDP's checksum (not an RSDP), the RSDT's, the MADT's, an entry
	 * running past the table, the RSDT pointing outside memory */
	build_acpi(0);
	mem[0xf5000 + 12] ^= 1;
	CHECK_INT(cpus_find_acpi(&m, &t), -1);
	build_acpi(0);
	mem[0x80000 + 40] ^= 1;
	CHECK_INT(cpus_find_acpi(&m, &t), -2);
	build_acpi(0);
	mem[0x80200 + 50] ^= 1;
	CHECK_INT(cpus_find_acpi(&m, &t), -2);
	build_acpi((uint32_t)-3);              /* the x2APIC entry now ends past the table */
	CHECK_INT(cpus_find_acpi(&m, &t), -2);
	build_acpi(0);
	w32(mem + 0xf5000 + 16, 0xfffff000);
	mem[0xf5000 + 8] = 0;
	mem[0xf5000 + 8] = (uint8_t)-bytesum(mem + 0xf5000, 20);
	CHECK_INT(cpus_find_acpi(&m, &t), -2);
	/* an entry of length 0 would loop forever */
	build_acpi(0);
	mem[0x80200 + 44 + 1] = 0;
	mem[0x80200 + 9] = 0;
	mem[0x80200 + 9] = (uint8_t)-bytesum(mem + 0x80200, r32(mem + 0x80204));
	CHECK_INT(cpus_find_acpi(&m, &t), -2);
}

int main(void)
{
	mem = calloc(1, LOWMEM);
	if (!mem)
		return 1;
	test_build();
	test_mp_damaged();
	test_acpi();
	free(mem);
	return unit_done();
}
