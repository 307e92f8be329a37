#include "vm/cpuid.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define LEAF_SVM 0x8000000au

struct cpuid_buf {
	struct kvm_cpuid2 h;
	struct kvm_cpuid_entry2 e[CPUID_MAX_ENTRIES];
};

uint32_t cpuid_filter(struct kvm_cpuid_entry2 *t, uint32_t n)
{
	uint32_t i, k = 0;

	for (i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 c = t[i];
		if (c.function == LEAF_SVM)
			continue; /* SVM's own leaf goes with the SVM bit */
		if (c.function == 1) {
			c.ecx |= 1u << 31;      /* running under a hypervisor */
			c.ecx &= ~(1u << 5);    /* no VMX: no nested state to migrate */
		} else if (c.function == 0x80000001) {
			c.ecx &= ~(1u << 2);    /* no SVM */
		}
		t[k++] = c;
	}
	return k;
}

int cpuid_host_table(int kvm_fd, struct kvm_cpuid_entry2 *out, uint32_t *n, struct err *e)
{
	struct cpuid_buf *b = calloc(1, sizeof(*b));

	if (!b)
		return err_set(e, -ENOMEM, "CPUID table");
	b->h.nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, b) < 0) {
		int r = err_sys(e, -errno, "KVM_GET_SUPPORTED_CPUID");
		free(b);
		return r;
	}
	*n = cpuid_filter(b->e, b->h.nent);
	memcpy(out, b->e, *n * sizeof(out[0]));
	free(b);
	return 0;
}

void cpuid_set_apic_id(struct kvm_cpuid_entry2 *t, uint32_t n, uint32_t apic_id)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (t[i].function == 1)
			t[i].ebx = (t[i].ebx & 0x00ffffffu) | (apic_id << 24);
		else if (t[i].function == 0x0b || t[i].function == 0x1f)
			t[i].edx = apic_id; /* x2APIC ID */
	}
}

/* How one register of an incoming leaf is treated. */
enum pol {
	HOST,   /* this host's value */
	KEEP,   /* the stream's: it describes the guest's CPU, enables nothing */
	AND,    /* feature bits: only those the host exposes too */
	MIN,    /* a maximum (leaf count): no higher than the host's */
	MINB,   /* bytes 0-2 are widths (address sizes): each no higher than the host's */
};

/* Policies for EAX, EBX, ECX, EDX of leaf f, subleaf i. */
static void policy(uint32_t f, uint32_t i, enum pol p[4])
{
	enum pol keep[4] = { KEEP, KEEP, KEEP, KEEP };

	p[0] = p[1] = p[2] = p[3] = HOST;
	switch (f) {
	case 0x0:
	case 0x80000000:
		memcpy(p, keep, sizeof(keep)); /* vendor string */
		p[0] = MIN;
		break;
	case 0x1:
	case 0x80000001:
		p[0] = p[1] = KEEP;            /* family/model/stepping, APIC ID, brand index */
		p[2] = p[3] = AND;
		break;
	case 0x2: case 0x4: case 0x0b: case 0x1f:  /* caches and topology */
	case 0x80000002: case 0x80000003: case 0x80000004:  /* brand string */
	case 0x80000005: case 0x80000006:
		memcpy(p, keep, sizeof(keep));
		break;
	case 0x6:
		p[0] = p[2] = AND;
		break;
	case 0x7:
		p[0] = i == 0 ? MIN : AND;     /* subleaf 0 EAX: the last subleaf */
		p[1] = p[2] = p[3] = AND;
		break;
	case 0xd:
		if (i == 0) {
			p[0] = p[3] = AND;     /* XCR0 bits; EBX/ECX are the host's sizes */
		} else if (i == 1) {
			p[0] = p[2] = p[3] = AND;
		}                              /* components 2..63: sizes and offsets */
		break;
	case 0x40000000:
		p[0] = MIN;
		break;
	case 0x40000001:
		p[0] = p[3] = AND;             /* KVM paravirt features and hints */
		break;
	case 0x80000007:
		p[3] = AND;
		break;
	case 0x80000008:
		p[0] = MINB;
		p[1] = AND;
		p[2] = KEEP;                   /* core count */
		break;
	}
}

static int popcount(uint32_t x)
{
	return __builtin_popcount(x);
}

static uint32_t apply(enum pol p, uint32_t in, uint32_t host, struct cpuid_mask_report *rep)
{
	uint32_t out = host, k;

	switch (p) {
	case HOST:
		break;
	case KEEP:
		out = in;
		break;
	case AND:
		out = in & host;
		rep->bits += (uint32_t)popcount(in & ~host);
		break;
	case MIN:
		out = in < host ? in : host;
		rep->clamped += in > host;
		break;
	case MINB:
		out = host & 0xff000000u;
		for (k = 0; k < 24; k += 8) {
			uint32_t a = (in >> k) & 0xff, b = (host >> k) & 0xff;
			out |= (a < b ? a : b) << k;
			rep->clamped += a > b;
		}
		break;
	}
	return out;
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid_entry2 *t, uint32_t n, uint32_t f,
					     uint32_t i)
{
	uint32_t k;

	for (k = 0; k < n; k++)
		if (t[k].function == f &&
		    (!(t[k].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || t[k].index == i))
			return &t[k];
	return NULL;
}

/* Bits the OS sets through CR4 (KVM recomputes them): leaf 1 ECX OSXSAVE over XSAVE,
 * leaf 7.0 ECX OSPKE over PKU. Returns the OS bit's mask, or 0, and its feature's. */
static uint32_t os_bit(const struct kvm_cpuid_entry2 *c, uint32_t *feature)
{
	if (c->function == 1) {
		*feature = 1u << 26;
		return 1u << 27;
	}
	if (c->function == 7 && c->index == 0) {
		*feature = 1u << 3;
		return 1u << 4;
	}
	*feature = 0;
	return 0;
}

uint32_t cpuid_mask(struct kvm_cpuid_entry2 *t, uint32_t n, const struct kvm_cpuid_entry2 *host,
		    uint32_t nhost, struct cpuid_mask_report *rep)
{
	uint32_t i, k = 0;

	memset(rep, 0, sizeof(*rep));
	for (i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 in = t[i], out;
		const struct kvm_cpuid_entry2 *h = find(host, nhost, in.function, in.index);
		uint32_t ri[4] = { in.eax, in.ebx, in.ecx, in.edx };
		uint32_t rh[4], ro[4], feature, os;
		enum pol p[4];
		int r;

		if ((in.function == 1 && (in.ecx & (1u << 5))) ||
		    (in.function == 0x80000001 && (in.ecx & (1u << 2))))
			rep->vmx_svm = 1;
		/* a leaf the host lacks, or one kept already (t[0..k) are the kept
		 * entries, with the host's flags, so find() applies the host's index rule) */
		if (!h || find(t, k, in.function, in.index)) {
			rep->dropped++;
			continue;
		}
		rh[0] = h->eax, rh[1] = h->ebx, rh[2] = h->ecx, rh[3] = h->edx;
		os = os_bit(&in, &feature);
		ri[2] &= ~os;
		policy(in.function, in.index, p);
		for (r = 0; r < 4; r++)
			ro[r] = apply(p[r], ri[r], rh[r], rep);
		if ((in.ecx & os) && (ro[2] & feature))
			ro[2] |= os;
		memset(&out, 0, sizeof(out));
		out.function = in.function;
		out.flags = h->flags;
		out.index = h->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX ? in.index : 0;
		out.eax = ro[0], out.ebx = ro[1], out.ecx = ro[2], out.edx = ro[3];
		t[k++] = out;
	}
	return k;
}
