/* What the integrity guard needs to know about an x86-64 ELF file (an executable or a
 * shared library a VMM process maps) to predict the bytes of its mapped code:
 *
 *  - its loadable segments (PT_LOAD): where each is mapped, from which file bytes, with
 *    which permissions;
 *  - its RELRO range (PT_GNU_RELRO): data the dynamic loader relocates, then makes
 *    read-only;
 *  - every dynamic relocation (DT_RELA, DT_JMPREL, DT_RELR): the places the loader
 *    writes into the mapped image, so the guard knows which mapped bytes differ from
 *    the file and what the loader wrote there.
 *
 * The file is untrusted input (a library in the process could be anything): every
 * offset, size and count is checked against the file; an ELF this parser does not
 * understand (32-bit, big-endian, another machine, REL relocations) is refused with a
 * message naming the problem, never guessed at. Fuzzed by fuzz_elf. */
#ifndef SEALVM_GUARD_ELF_H
#define SEALVM_GUARD_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define ELF_MAX_LOADS  32
#define ELF_MAX_RELOCS (4u << 20)
#define ELF_PAGE       4096ull

/* x86-64 relocation types the guard distinguishes (System V AMD64 ABI) */
#define ELF_R_X86_64_NONE      0
#define ELF_R_X86_64_64        1
#define ELF_R_X86_64_COPY      5
#define ELF_R_X86_64_GLOB_DAT  6
#define ELF_R_X86_64_JUMP_SLOT 7
#define ELF_R_X86_64_RELATIVE  8
#define ELF_R_X86_64_IRELATIVE 37

/* segment flags (p_flags) */
#define ELF_PF_X 1u
#define ELF_PF_W 2u
#define ELF_PF_R 4u

struct elf_load {
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags;                 /* ELF_PF_* */
};

struct elf_reloc {
	uint64_t offset;                /* the virtual address the loader writes (8 bytes) */
	int64_t addend;
	uint32_t type;                  /* ELF_R_X86_64_*; DT_RELR entries are RELATIVE */
	uint32_t sym;                   /* symbol index, 0: none */
};

struct elf_info {
	bool pie_or_dso;                /* ET_DYN: mapped at a load bias; ET_EXEC: at 0 */
	size_t nloads;
	struct elf_load loads[ELF_MAX_LOADS];
	bool has_relro;
	uint64_t relro_vaddr, relro_memsz;
	bool has_dynamic;               /* PT_DYNAMIC: the loader rewrites some of its entries */
	uint64_t dyn_vaddr, dyn_size;
	bool textrel;                   /* DT_TEXTREL or DF_TEXTREL: relocations in code */
	bool bind_now;                  /* DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW */
	size_t nrelocs;
	struct elf_reloc *relocs;       /* sorted by offset; malloc'd */
	uint64_t span_lo, span_hi;      /* lowest and highest vaddr of any PT_LOAD (page-rounded) */
};

/* Parses an ELF file held in buf. On success *out must be released with elf_free. */
int elf_parse(const uint8_t *buf, size_t len, struct elf_info *out, struct err *e);
void elf_free(struct elf_info *i);

/* The PT_LOAD holding vaddr (within its memsz), or NULL. */
const struct elf_load *elf_load_at(const struct elf_info *i, uint64_t vaddr);
/* Index of the first relocation whose 8-byte slot ends above vaddr (binary search). */
size_t elf_reloc_from(const struct elf_info *i, uint64_t vaddr);
/* Whether vaddr lies in the RELRO range. */
bool elf_in_relro(const struct elf_info *i, uint64_t vaddr);

#endif
