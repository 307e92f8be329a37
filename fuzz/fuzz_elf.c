/* libFuzzer target: an ELF file a VMM process maps, as the integrity guard reads it
 * (elf_parse, module_parse), and the predictions it then makes: every loadable
 * segment mapped at a load bias and compared with "memory" (bytes from the input), with
 * its relocations, .dynamic entries and RELRO range applied. Nothing may be read or
 * written outside the file, the mapping or the compared range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/module.h"

static bool ptr_ok(void *opaque, uint64_t v, bool code)
{
	(void)opaque;
	return ((v >> 4) & 1) != code;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct module *mod = calloc(1, sizeof(*mod));
	struct err e = { 0 };
	uint64_t bias = 0x7f0000000000ull;

	if (!mod)
		return 0;
	mod->fd = -1;
	mod->size = size;
	mod->ref = malloc(size ? size : 1);
	if (!mod->ref) {
		free(mod);
		return 0;
	}
	memcpy(mod->ref, data, size);
	if (module_parse(mod, &e) == 0) {
		for (size_t k = 0; k < mod->elf.nloads; k++) {
			const struct elf_load *l = &mod->elf.loads[k], *fit = NULL;
			uint64_t cand[ELF_MAX_LOADS], lo = l->vaddr & ~(ELF_PAGE - 1);
			uint64_t len = ((l->vaddr + l->filesz + ELF_PAGE - 1) & ~(ELF_PAGE - 1)) - lo;
			struct map_ent m = { .start = bias + lo, .offset = l->offset & ~(ELF_PAGE - 1), .r = true };
			struct module_cmp r = { 0 };
			uint8_t *mem;

			if (len > (64u << 10))
				len = 64u << 10;
			if (!len)
				continue;
			m.end = m.start + len;
			module_bias_candidates(mod, &m, cand, ELF_MAX_LOADS);
			if (!module_fits(mod, bias, &m, &fit))
				fit = l;
			mem = malloc(len);
			if (!mem)
				break;
			for (uint64_t i = 0; i < len; i++)
				mem[i] = size ? data[(i * 7) % size] : 0;
			module_compare(mod, bias, &m, fit, m.start, mem, len, false, ptr_ok, NULL, &r);
			module_compare(mod, bias, &m, fit, m.start + len / 2, mem + len / 2, len - len / 2, true, ptr_ok, NULL, &r);
			module_got_page(mod, lo);
			free(mem);
		}
		for (size_t k = 0; k < mod->elf.nrelocs; k++)
			if (elf_reloc_from(&mod->elf, mod->elf.relocs[k].offset) > k)
				__builtin_trap();
	} else if (e.code >= 0 || !e.msg[0]) {
		__builtin_trap();
	}
	module_free(mod);
	return 0;
}
