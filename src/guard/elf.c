#include "guard/elf.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PHDRS   256
#define MAX_DYNAMIC 4096

static bool in_file(size_t len, uint64_t off, uint64_t n)
{
	return off <= len && n <= len - off;
}

/* The file offset of [vaddr, vaddr + n) if a PT_LOAD holds it within its file bytes. */
static int vaddr_to_off(const struct elf_info *i, uint64_t vaddr, uint64_t n, uint64_t *off)
{
	for (size_t k = 0; k < i->nloads; k++) {
		const struct elf_load *l = &i->loads[k];
		if (vaddr >= l->vaddr && vaddr - l->vaddr <= l->filesz && n <= l->filesz - (vaddr - l->vaddr)) {
			*off = l->offset + (vaddr - l->vaddr);
			return 0;
		}
	}
	return -1;
}

static int add_reloc(struct elf_info *i, size_t *cap, uint64_t offset, uint32_t type, uint32_t sym, int64_t addend,
		     struct err *e)
{
	if (i->nrelocs >= ELF_MAX_RELOCS)
		return err_set(e, -E2BIG, "more than %u dynamic relocations", ELF_MAX_RELOCS);
	if (offset > (1ull << 47))
		return err_set(e, -EINVAL, "a relocation at 0x%llx lies outside any user address space",
			       (unsigned long long)offset);
	if (i->nrelocs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct elf_reloc *r = realloc(i->relocs, ncap * sizeof(*r));
		if (!r)
			return err_set(e, -ENOMEM, "out of memory");
		i->relocs = r;
		*cap = ncap;
	}
	i->relocs[i->nrelocs++] = (struct elf_reloc){ .offset = offset, .type = type, .sym = sym, .addend = addend };
	return 0;
}

static int read_rela(const uint8_t *buf, size_t len, struct elf_info *i, size_t *cap, uint64_t vaddr, uint64_t size,
		     const char *what, struct err *e)
{
	uint64_t off;
	int rc;

	if (!size)
		return 0;
	if (size % sizeof(Elf64_Rela))
		return err_set(e, -EINVAL, "%s size %llu is not a multiple of %zu", what, (unsigned long long)size,
			       sizeof(Elf64_Rela));
	if (vaddr_to_off(i, vaddr, size, &off) < 0 || !in_file(len, off, size))
		return err_set(e, -EINVAL, "%s at 0x%llx (%llu bytes) is outside the file's loadable bytes", what,
			       (unsigned long long)vaddr, (unsigned long long)size);
	for (uint64_t p = 0; p < size; p += sizeof(Elf64_Rela)) {
		Elf64_Rela r;
		memcpy(&r, buf + off + p, sizeof(r));
		if ((rc = add_reloc(i, cap, r.r_offset, (uint32_t)ELF64_R_TYPE(r.r_info), (uint32_t)ELF64_R_SYM(r.r_info),
				    r.r_addend, e)) < 0)
			return rc;
	}
	return 0;
}

/* DT_RELR (compact relative relocations): an even word is an address (relocate it,
 * then the words after it), an odd word a bitmap of the next 63 words. The addend is
 * implicit: the word the file holds at the slot. */
static int add_relr(const uint8_t *buf, size_t len, struct elf_info *i, size_t *cap, uint64_t where, struct err *e)
{
	int64_t addend = 0;
	uint64_t off;

	if (vaddr_to_off(i, where, 8, &off) == 0 && in_file(len, off, 8))
		memcpy(&addend, buf + off, 8);
	return add_reloc(i, cap, where, ELF_R_X86_64_RELATIVE, 0, addend, e);
}

static int read_relr(const uint8_t *buf, size_t len, struct elf_info *i, size_t *cap, uint64_t vaddr, uint64_t size,
		     struct err *e)
{
	uint64_t off, where = 0;
	int rc;

	if (!size)
		return 0;
	if (size % 8 || vaddr_to_off(i, vaddr, size, &off) < 0 || !in_file(len, off, size))
		return err_set(e, -EINVAL, "DT_RELR table at 0x%llx (%llu bytes) is malformed or outside the file",
			       (unsigned long long)vaddr, (unsigned long long)size);
	for (uint64_t p = 0; p < size; p += 8) {
		uint64_t w;
		memcpy(&w, buf + off + p, 8);
		if (!(w & 1)) {
			where = w;
			if ((rc = add_relr(buf, len, i, cap, where, e)) < 0)
				return rc;
			where += 8;
			continue;
		}
		for (unsigned b = 1; b < 64; b++)
			if (w >> b & 1 && (rc = add_relr(buf, len, i, cap, where + (b - 1) * 8ull, e)) < 0)
				return rc;
		where += 63 * 8;
	}
	return 0;
}

static int cmp_reloc(const void *a, const void *b)
{
	const struct elf_reloc *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int read_dynamic(const uint8_t *buf, size_t len, const Elf64_Phdr *dyn, struct elf_info *i, struct err *e)
{
	uint64_t rela = 0, relasz = 0, relaent = sizeof(Elf64_Rela), jmprel = 0, pltrelsz = 0, pltrel = DT_RELA;
	uint64_t relr = 0, relrsz = 0, relrent = 8;
	size_t cap = 0, n;
	int rc;

	if (!in_file(len, dyn->p_offset, dyn->p_filesz))
		return err_set(e, -EINVAL, "PT_DYNAMIC lies outside the file");
	n = dyn->p_filesz / sizeof(Elf64_Dyn);
	if (n > MAX_DYNAMIC)
		return err_set(e, -E2BIG, "PT_DYNAMIC has more than %d entries", MAX_DYNAMIC);
	for (size_t k = 0; k < n; k++) {
		Elf64_Dyn d;
		memcpy(&d, buf + dyn->p_offset + k * sizeof(d), sizeof(d));
		if (d.d_tag == DT_NULL)
			break;
		switch (d.d_tag) {
		case DT_RELA: rela = d.d_un.d_ptr; break;
		case DT_RELASZ: relasz = d.d_un.d_val; break;
		case DT_RELAENT: relaent = d.d_un.d_val; break;
		case DT_JMPREL: jmprel = d.d_un.d_ptr; break;
		case DT_PLTRELSZ: pltrelsz = d.d_un.d_val; break;
		case DT_PLTREL: pltrel = d.d_un.d_val; break;
		case DT_RELR: relr = d.d_un.d_ptr; break;
		case DT_RELRSZ: relrsz = d.d_un.d_val; break;
		case DT_RELRENT: relrent = d.d_un.d_val; break;
		case DT_TEXTREL: i->textrel = true; break;
		case DT_BIND_NOW: i->bind_now = true; break;
		case DT_FLAGS:
			i->textrel |= !!(d.d_un.d_val & DF_TEXTREL);
			i->bind_now |= !!(d.d_un.d_val & DF_BIND_NOW);
			break;
		case DT_FLAGS_1: i->bind_now |= !!(d.d_un.d_val & DF_1_NOW); break;
		case DT_REL:
		case DT_RELSZ:
			return err_set(e, -EINVAL, "REL relocations (DT_REL) are not used on x86-64; refusing to guess");
		default: break;
		}
	}
	if (relaent != sizeof(Elf64_Rela) || relrent != 8)
		return err_set(e, -EINVAL, "unexpected relocation entry size (DT_RELAENT %llu, DT_RELRENT %llu)",
			       (unsigned long long)relaent, (unsigned long long)relrent);
	if (pltrelsz && pltrel != DT_RELA)
		return err_set(e, -EINVAL, "DT_PLTREL is not DT_RELA");
	if ((rc = read_rela(buf, len, i, &cap, rela, relasz, "DT_RELA table", e)) < 0 ||
	    (rc = read_rela(buf, len, i, &cap, jmprel, pltrelsz, "DT_JMPREL table", e)) < 0 ||
	    (rc = read_relr(buf, len, i, &cap, relr, relrsz, e)) < 0)
		return rc;
	if (i->nrelocs)
		qsort(i->relocs, i->nrelocs, sizeof(*i->relocs), cmp_reloc);
	return 0;
}

int elf_parse(const uint8_t *buf, size_t len, struct elf_info *i, struct err *e)
{
	const Elf64_Phdr *dyn = NULL;
	Elf64_Phdr dynbuf;
	Elf64_Ehdr h;
	int rc;

	memset(i, 0, sizeof(*i));
	if (len < sizeof(h) || memcmp(buf, ELFMAG, SELFMAG))
		return err_set(e, -ENOEXEC, "not an ELF file");
	memcpy(&h, buf, sizeof(h));
	if (h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB || h.e_machine != EM_X86_64)
		return err_set(e, -ENOEXEC, "not a 64-bit little-endian x86-64 ELF file");
	if (h.e_type != ET_DYN && h.e_type != ET_EXEC)
		return err_set(e, -ENOEXEC, "ELF type %u is neither an executable nor a shared object", h.e_type);
	if (h.e_phentsize != sizeof(Elf64_Phdr) || h.e_phnum == 0 || h.e_phnum > MAX_PHDRS ||
	    !in_file(len, h.e_phoff, (uint64_t)h.e_phnum * sizeof(Elf64_Phdr)))
		return err_set(e, -EINVAL, "program header table is malformed or outside the file");
	i->pie_or_dso = h.e_type == ET_DYN;
	i->span_lo = UINT64_MAX;
	for (unsigned k = 0; k < h.e_phnum; k++) {
		Elf64_Phdr p;
		memcpy(&p, buf + h.e_phoff + (uint64_t)k * sizeof(p), sizeof(p));
		if (p.p_type == PT_LOAD) {
			struct elf_load *l;
			if (i->nloads == ELF_MAX_LOADS)
				return err_set(e, -E2BIG, "more than %d loadable segments", ELF_MAX_LOADS);
			if (p.p_filesz > p.p_memsz || !in_file(len, p.p_offset, p.p_filesz) ||
			    p.p_vaddr % ELF_PAGE != p.p_offset % ELF_PAGE || p.p_memsz > (1ull << 40) ||
			    p.p_vaddr > (1ull << 47) || p.p_vaddr + p.p_memsz > (1ull << 47))
				return err_set(e, -EINVAL, "loadable segment %u (vaddr 0x%llx) is malformed or outside the file",
					       k, (unsigned long long)p.p_vaddr);
			l = &i->loads[i->nloads++];
			*l = (struct elf_load){ .vaddr = p.p_vaddr, .memsz = p.p_memsz, .offset = p.p_offset,
						.filesz = p.p_filesz, .flags = p.p_flags & 7 };
			if (p.p_vaddr / ELF_PAGE * ELF_PAGE < i->span_lo)
				i->span_lo = p.p_vaddr / ELF_PAGE * ELF_PAGE;
			if ((p.p_vaddr + p.p_memsz + ELF_PAGE - 1) / ELF_PAGE * ELF_PAGE > i->span_hi)
				i->span_hi = (p.p_vaddr + p.p_memsz + ELF_PAGE - 1) / ELF_PAGE * ELF_PAGE;
		} else if (p.p_type == PT_GNU_RELRO) {
			if (p.p_memsz > (1ull << 40) || p.p_vaddr > (1ull << 47))
				return err_set(e, -EINVAL, "PT_GNU_RELRO is malformed");
			i->has_relro = true;
			i->relro_vaddr = p.p_vaddr;
			i->relro_memsz = p.p_memsz;
		} else if (p.p_type == PT_DYNAMIC) {
			if (p.p_memsz > (1ull << 30) || p.p_vaddr > (1ull << 47))
				return err_set(e, -EINVAL, "PT_DYNAMIC is malformed");
			dynbuf = p;
			dyn = &dynbuf;
			i->has_dynamic = true;
			i->dyn_vaddr = p.p_vaddr;
			i->dyn_size = p.p_memsz;
		}
	}
	if (!i->nloads)
		return err_set(e, -EINVAL, "no loadable segment");
	if (dyn && (rc = read_dynamic(buf, len, dyn, i, e)) < 0) {
		elf_free(i);
		return rc;
	}
	return 0;
}

void elf_free(struct elf_info *i)
{
	free(i->relocs);
	i->relocs = NULL;
	i->nrelocs = 0;
}

const struct elf_load *elf_load_at(const struct elf_info *i, uint64_t vaddr)
{
	for (size_t k = 0; k < i->nloads; k++)
		if (vaddr >= i->loads[k].vaddr && vaddr - i->loads[k].vaddr < i->loads[k].memsz)
			return &i->loads[k];
	return NULL;
}

size_t elf_reloc_from(const struct elf_info *i, uint64_t vaddr)
{
	size_t lo = 0, hi = i->nrelocs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (i->relocs[mid].offset + 8 <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool elf_in_relro(const struct elf_info *i, uint64_t vaddr)
{
	return i->has_relro && vaddr >= i->relro_vaddr && vaddr - i->relro_vaddr < i->relro_memsz;
}
