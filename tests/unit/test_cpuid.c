/* What an incoming vCPU state may ask of this host, without KVM: the CPUID mask
 * against a synthetic host table (VMX asked for and cleared, leaves the host lacks
 * dropped, feature bits ANDed, maxima and widths clamped, guest identity kept) and
 * the MSR allow-list. */
#include "unit.h"
#include "vm/cpuid.h"
#include "vm/msr.h"

#include <stdint.h>
#include <string.h>

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

static struct kvm_cpuid_entry2 leaf(uint32_t f, uint32_t i, uint32_t flags, uint32_t a, uint32_t b, uint32_t c,
				    uint32_t d)
{
	struct kvm_cpuid_entry2 x;

	memset(&x, 0, sizeof(x));
	x.function = f;
	x.index = i;
	x.flags = flags;
	x.eax = a;
	x.ebx = b;
	x.ecx = c;
	x.edx = d;
	return x;
}

/* As KVM_GET_SUPPORTED_CPUID might report it on a VMX host, before sealvm's filter. */
static uint32_t host_table(struct kvm_cpuid_entry2 *t)
{
	uint32_t n = 0;

	t[n++] = leaf(0, 0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69);          /* GenuineIntel */
	t[n++] = leaf(1, 0, 0, 0x806ea, 0x00000800, 0x04a02021 | (1u << 26), 0x0f8bfbff); /* VMX (5), XSAVE (26) */
	t[n++] = leaf(4, 0, SIG, 0x121, 0x1c0003f, 0x3f, 0);
	t[n++] = leaf(7, 0, SIG, 0, 0x01802042, 0x8, 0xbc000400);                 /* ECX 3: PKU */
	t[n++] = leaf(0xd, 0, SIG, 0x7, 0x240, 0x340, 0);
	t[n++] = leaf(0xd, 1, SIG, 0x1, 0, 0, 0);
	t[n++] = leaf(0xd, 2, SIG, 0x100, 0x240, 0, 0);
	t[n++] = leaf(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
	t[n++] = leaf(0x40000001, 0, 0, 0x01007afb, 0, 0, 0);
	t[n++] = leaf(0x80000000, 0, 0, 0x80000008, 0, 0, 0);
	t[n++] = leaf(0x80000001, 0, 0, 0, 0, 0x121 | (1u << 2), 0x2c100800);  /* SVM (2) */
	t[n++] = leaf(0x80000008, 0, 0, 0x3027, 0x200, 0, 0);                   /* 39 physical, 48 virtual bits */
	t[n++] = leaf(0x8000000a, 0, 0, 1, 0x40, 0, 0x7f);                      /* SVM's own leaf */
	return n;
}

static const struct kvm_cpuid_entry2 *get(const struct kvm_cpuid_entry2 *t, uint32_t n, uint32_t f, uint32_t i)
{
	uint32_t k;

	for (k = 0; k < n; k++)
		if (t[k].function == f && t[k].index == i)
			return &t[k];
	return NULL;
}

static void test_filter(void)
{
	struct kvm_cpuid_entry2 t[32];
	uint32_t n = host_table(t), m;

	m = cpuid_filter(t, n);
	CHECK_INT(m, n - 1);
	CHECK(get(t, m, 0x8000000a, 0) == NULL);
	CHECK(!(get(t, m, 1, 0)->ecx & (1u << 5)));        /* no VMX */
	CHECK(get(t, m, 1, 0)->ecx & (1u << 31));          /* hypervisor */
	CHECK(!(get(t, m, 0x80000001, 0)->ecx & (1u << 2))); /* no SVM */
	cpuid_set_apic_id(t, m, 5);
	CHECK_INT(get(t, m, 1, 0)->ebx >> 24, 5);
	CHECK_INT(get(t, m, 1, 0)->ebx & 0xffffff, 0x800);
}

static void test_mask(void)
{
	struct kvm_cpuid_entry2 host[32], in[32];
	struct cpuid_mask_report rep;
	const struct kvm_cpuid_entry2 *c;
	uint32_t nh = cpuid_filter(host, host_table(host)), n = 0, m;

	/* a same-host table comes back unchanged, with no report */
	memcpy(in, host, nh * sizeof(in[0]));
	cpuid_set_apic_id(in, nh, 1);
	m = cpuid_mask(in, nh, host, nh, &rep);
	CHECK_INT(m, nh);
	CHECK(!rep.dropped && !rep.bits && !rep.clamped && !rep.vmx_svm);
	CHECK_INT(get(in, m, 1, 0)->ebx >> 24, 1);

	/* a hostile one */
	in[n++] = leaf(0, 0, 0, 0x20, 0x68747541, 0x444d4163, 0x69746e65);  /* AuthenticAMD, max leaf 0x20 */
	in[n++] = leaf(1, 0, 0, 0x906ea, 0x03000800, 0xffffffff, 0xffffffff); /* VMX and everything else */
	in[n++] = leaf(1, 0, 0, 0, 0, 0xffffffff, 0xffffffff);                /* again */
	in[n++] = leaf(4, 0, SIG, 0x4121, 0x2c0003f, 0x7f, 1);                /* cache: the guest's */
	in[n++] = leaf(7, 0, SIG, 2, 0xffffffff, 0x18, 0xffffffff);          /* PKU and OSPKE */
	in[n++] = leaf(7, 5, SIG, 1, 1, 1, 1);                               /* a subleaf the host lacks */
	in[n++] = leaf(0xd, 2, SIG, 0x400, 0x1000, 0, 0);                    /* AVX state: the host's layout */
	in[n++] = leaf(0x12, 0, SIG, 1, 0, 0, 0);                            /* SGX: not here */
	in[n++] = leaf(0x40000000, 0, 0, 0x40000010, 0, 0, 0);
	in[n++] = leaf(0x80000001, 0, 0, 0, 0, 0xffffffff, 0);               /* SVM */
	in[n++] = leaf(0x80000008, 0, 0, 0x3034, 0xffffffff, 7, 0);          /* 52 physical bits */
	in[n++] = leaf(0x8000000a, 0, 0, 1, 0x40, 0, 0x7f);                  /* SVM's leaf */
	m = cpuid_mask(in, n, host, nh, &rep);
	CHECK_INT(m, n - 4);                /* the repeat, 7.5, 0x12 and 0x8000000a */
	CHECK_INT(rep.dropped, 4);
	CHECK_INT(rep.vmx_svm, 1);
	CHECK(rep.bits > 0);
	CHECK(get(in, m, 0x12, 0) == NULL && get(in, m, 7, 5) == NULL && get(in, m, 0x8000000a, 0) == NULL);

	c = get(in, m, 0, 0);
	CHECK_INT(c->eax, 0xd);             /* max leaf clamped */
	CHECK_INT(c->ebx, 0x68747541);      /* vendor: the guest's */
	c = get(in, m, 1, 0);
	CHECK(!(c->ecx & (1u << 5)));       /* VMX never */
	CHECK_INT(c->ecx & ~(1u << 27), host[1].ecx);
	CHECK(c->ecx & (1u << 27));         /* OSXSAVE kept: XSAVE is there */
	CHECK_INT(c->edx, host[1].edx);
	CHECK_INT(c->eax, 0x906ea);         /* family/model/stepping: the guest's */
	CHECK_INT(c->ebx, 0x03000800);      /* APIC ID: the guest's */
	c = get(in, m, 4, 0);
	CHECK(c && c->eax == 0x4121 && c->edx == 1);
	c = get(in, m, 7, 0);
	CHECK_INT(c->eax, 0);               /* max subleaf clamped */
	CHECK_INT(c->ebx, 0x01802042);
	CHECK_INT(c->ecx, 0x18);            /* PKU from the host, OSPKE over it */
	CHECK_INT(c->edx, 0xbc000400);
	CHECK_INT(c->flags, SIG);
	c = get(in, m, 0xd, 2);
	CHECK(c->eax == 0x100 && c->ebx == 0x240);
	CHECK_INT(get(in, m, 0x40000000, 0)->eax, 0x40000001);
	CHECK_INT(get(in, m, 0x40000000, 0)->ebx, 0x4b4d564b);
	CHECK_INT(get(in, m, 0x80000001, 0)->ecx, 0x121); /* no SVM */
	c = get(in, m, 0x80000008, 0);
	CHECK_INT(c->eax, 0x3027);          /* address widths clamped to the host's */
	CHECK_INT(c->ebx, 0x200);
	CHECK_INT(c->ecx, 7);               /* core count: the guest's */
	CHECK(rep.clamped >= 4);

	/* OSXSAVE without XSAVE does not survive */
	n = 0;
	host[1].ecx &= ~(1u << 26);
	in[n++] = leaf(1, 0, 0, 0, 0, (1u << 27) | (1u << 26), 0);
	m = cpuid_mask(in, n, host, nh, &rep);
	CHECK_INT(m, 1);
	CHECK(!(in[0].ecx & (3u << 26)));

	/* an index that does not matter for the host's leaf is normalised, padding cleared */
	n = 0;
	in[n] = leaf(0x80000008, 9, 0, 0x3027, 0, 0, 0);
	in[n].padding[0] = 0xdead;
	n++;
	m = cpuid_mask(in, n, host, nh, &rep);
	CHECK(m == 1 && in[0].index == 0 && in[0].flags == 0 && in[0].padding[0] == 0);
	/* nothing in, nothing out */
	CHECK_INT(cpuid_mask(in, 0, host, nh, &rep), 0);
	CHECK_INT(cpuid_mask(in, 1, host, 0, &rep), 0);
}

static void test_msrs(void)
{
	static const uint32_t ok[] = { 0x10, 0x1b, 0x3b, 0x48, 0x174, 0x176, 0x1a0, 0x200, 0x277, 0x2ff, 0x400,
				       0x47f, 0x6e0, 0xda0, 0x11, 0x12, 0x4b564d00, 0x4b564dff, 0xc0000080,
				       0xc0000084, 0xc0000100, 0xc0000102, 0xc0000103 };
	static const uint32_t no[] = { 0x3a, 0x17b, 0x480, 0x491, 0x1d9, 0x10a, 0x8b, 0x0, 0x3c, 0x173, 0x177,
				       0x1ff, 0x300, 0x480, 0x6e1, 0xc0000085, 0xc0000104, 0x4b564e00,
				       0x4b564cff, 0x40000000, 0xffffffff, 0x9b, 0x1a4 };
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CHECKF(msr_allowed(ok[i]), "MSR 0x%x refused", ok[i]);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECKF(!msr_allowed(no[i]), "MSR 0x%x allowed", no[i]);
	CHECK_STR(msr_name(0x3a), "IA32_FEATURE_CONTROL");
	CHECK(msr_name(0x10) == NULL);
}

int main(void)
{
	test_filter();
	test_mask();
	test_msrs();
	return unit_done();
}
