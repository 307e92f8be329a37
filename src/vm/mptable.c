#include "vm/mptable.h"

#include <string.h>

/* Layouts from the MP spec 1.4, chapter 4; every field little-endian, packed. */
struct mpf_intel {
	char signature[4];        /* "_MP_" */
	uint32_t physptr;         /* the configuration table */
	uint8_t length;           /* in 16-byte units: 1 */
	uint8_t specification;    /* 4: version 1.4 */
	uint8_t checksum;         /* all 16 bytes sum to 0 */
	uint8_t feature1;         /* 0: a configuration table is present */
	uint8_t feature2;         /* bit 7 IMCR present: 0, virtual wire mode */
	uint8_t feature3, feature4, feature5;
} __attribute__((packed));

struct mpc_table {
	char signature[4];        /* "PCMP" */
	uint16_t length;          /* base table, header included */
	uint8_t spec;             /* 4 */
	uint8_t checksum;         /* the base table sums to 0 */
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;        /* entries */
	uint32_t lapic;           /* local APIC address */
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;          /* bit 0 enabled, bit 1 boot processor */
	uint32_t cpufeature;      /* CPUID.1 EAX: stepping, model, family */
	uint32_t featureflag;     /* CPUID.1 EDX */
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;            /* bit 0 enabled */
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;          /* 0 INT, 1 NMI, 2 SMI, 3 ExtINT */
	uint16_t irqflag;         /* polarity and trigger: 0 conforms to the bus */
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;          /* IOAPIC id (type 3), local APIC id or 0xff for all (type 4) */
	uint8_t dstirq;           /* IOAPIC pin, or LINTIN 0/1 */
} __attribute__((packed));

_Static_assert(sizeof(struct mpf_intel) == 16, "MP floating pointer is 16 bytes");
_Static_assert(sizeof(struct mpc_table) == 44, "MP table header is 44 bytes");
_Static_assert(sizeof(struct mpc_cpu) == 20, "processor entry is 20 bytes");
_Static_assert(sizeof(struct mpc_bus) == 8 && sizeof(struct mpc_ioapic) == 8 &&
		       sizeof(struct mpc_intsrc) == 8,
	       "bus, IOAPIC and interrupt entries are 8 bytes");

#define ISA_IRQS 16
#define APIC_VERSION 0x14         /* an integrated local APIC, as KVM's reports */
#define IOAPIC_VERSION 0x11       /* KVM's IOAPIC */
#define CPU_SIGNATURE 0x600       /* family 6 */
#define CPU_FEATURES 0x201        /* FPU, APIC */

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

size_t mptable_size(int ncpus)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) + (size_t)ncpus * sizeof(struct mpc_cpu) +
	       sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) + ISA_IRQS * sizeof(struct mpc_intsrc) +
	       2 * sizeof(struct mpc_intsrc);
}

int mptable_build(uint8_t *buf, size_t len, uint32_t gpa, int ncpus, struct err *e)
{
	struct mpf_intel *mpf = (struct mpf_intel *)buf;
	struct mpc_table *mpc = (struct mpc_table *)(buf + sizeof(*mpf));
	uint8_t *p = (uint8_t *)(mpc + 1);
	const uint8_t ioapic_id = (uint8_t)ncpus; /* after the last local APIC, as SeaBIOS numbers it */
	uint16_t count = 0;
	int i;

	if (ncpus < 1 || ncpus > MPTABLE_MAX_CPUS)
		return err_set(e, -EINVAL, "MP table: %d processors (1 to %d)", ncpus, MPTABLE_MAX_CPUS);
	if (len < mptable_size(ncpus) || gpa % 16)
		return err_set(e, -EINVAL, "MP table: %zu bytes at 0x%x do not hold %zu aligned bytes", len, gpa,
			       mptable_size(ncpus));
	memset(buf, 0, mptable_size(ncpus));

	for (i = 0; i < ncpus; i++) {
		struct mpc_cpu c = { .type = MP_PROCESSOR, .apicid = (uint8_t)i, .apicver = APIC_VERSION,
				     .cpuflag = (uint8_t)(1 | (i == 0 ? 2 : 0)),
				     .cpufeature = CPU_SIGNATURE, .featureflag = CPU_FEATURES };
		memcpy(p, &c, sizeof(c));
		p += sizeof(c);
		count++;
	}
	{
		struct mpc_bus b = { .type = MP_BUS, .busid = 0, .bustype = { 'I', 'S', 'A', ' ', ' ', ' ' } };
		struct mpc_ioapic io = { .type = MP_IOAPIC, .apicid = ioapic_id, .apicver = IOAPIC_VERSION,
					 .flags = 1, .apicaddr = MP_IOAPIC_ADDR };
		memcpy(p, &b, sizeof(b));
		p += sizeof(b);
		memcpy(p, &io, sizeof(io));
		p += sizeof(io);
		count += 2;
	}
	for (i = 0; i < ISA_IRQS; i++) {
		struct mpc_intsrc s = { .type = MP_INTSRC, .irqtype = 0, .srcbus = 0, .srcbusirq = (uint8_t)i,
					.dstapic = ioapic_id, .dstirq = (uint8_t)i };
		memcpy(p, &s, sizeof(s));
		p += sizeof(s);
		count++;
	}
	{
		struct mpc_intsrc extint = { .type = MP_LINTSRC, .irqtype = 3, .srcbus = 0, .srcbusirq = 0,
					     .dstapic = 0, .dstirq = 0 };
		struct mpc_intsrc nmi = { .type = MP_LINTSRC, .irqtype = 1, .srcbus = 0, .srcbusirq = 0,
					  .dstapic = 0xff, .dstirq = 1 };
		memcpy(p, &extint, sizeof(extint));
		p += sizeof(extint);
		memcpy(p, &nmi, sizeof(nmi));
		p += sizeof(nmi);
		count += 2;
	}

	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->spec = 4;
	memcpy(mpc->oem, "SEALVM  ", 8);
	memcpy(mpc->productid, "SEALVM MP   ", 12);
	mpc->oemcount = count;
	mpc->lapic = MP_LAPIC_ADDR;
	mpc->checksum = (uint8_t)-sum((const uint8_t *)mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = gpa + (uint32_t)sizeof(*mpf);
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = (uint8_t)-sum(buf, sizeof(*mpf));
	return 0;
}

int mptable_write(struct vm *vm, int ncpus, struct err *e)
{
	size_t len = mptable_size(ncpus > 0 && ncpus <= MPTABLE_MAX_CPUS ? ncpus : 1);
	uint8_t *dst = vm_gpa_ptr(vm, MPTABLE_ADDR, len);

	if (!dst)
		return err_set(e, -ERANGE, "MP table at 0x%x is not in guest RAM", MPTABLE_ADDR);
	return mptable_build(dst, len, MPTABLE_ADDR, ncpus, e);
}
