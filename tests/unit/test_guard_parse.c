/* The integrity guard's parsers of untrusted input: ELF files (the test's own
 * executable and the C library as real cases; truncated, out-of-range and unsupported
 * files refused with a message), /proc/PID/maps lines (paths with spaces, deleted
 * files, overlong paths, malformed lines), and the text sanitizer used on everything
 * reported. */
#include "unit.h"

#include <elf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/elf.h"
#include "guard/maps.h"
#include "guard/text.h"
#include "util/file.h"
#include "guard/text.h"

static uint8_t *slurp(const char *path, size_t *len)
{
	struct err e = { 0 };
	char *t = NULL;

	CHECKF(file_read_all(path, 1u << 30, &t, len, &e) == 0, "%s", e.msg);
	return (uint8_t *)t;
}

static void check_sorted(const struct elf_info *i)
{
	for (size_t k = 1; k < i->nrelocs; k++)
		if (i->relocs[k - 1].offset > i->relocs[k].offset) {
			CHECKF(0, "relocations not sorted at %zu", k);
			return;
		}
}

static void test_real_files(void)
{
	struct elf_info i;
	struct err e = { 0 };
	struct maps m;
	char libc[MAPS_PATH_MAX] = "";
	size_t len;
	uint8_t *b = slurp("/proc/self/exe", &len);
	char *text;
	size_t tlen;
	bool x = false;

	CHECKF(elf_parse(b, len, &i, &e) == 0, "%s", e.msg);
	CHECK(i.pie_or_dso);
	CHECK(i.nloads >= 2);
	for (size_t k = 0; k < i.nloads; k++)
		x |= !!(i.loads[k].flags & ELF_PF_X);
	CHECK(x);
	CHECK(i.has_relro);
	CHECK(i.has_dynamic);
	CHECK(i.nrelocs > 0);
	CHECK(!i.textrel);
	check_sorted(&i);
	/* x86-64 code is position-independent: nothing relocates a code segment */
	for (size_t k = 0; k < i.nrelocs; k++) {
		const struct elf_load *l = elf_load_at(&i, i.relocs[k].offset);
		CHECKF(l && !(l->flags & ELF_PF_X), "relocation at 0x%llx is in code",
		       (unsigned long long)i.relocs[k].offset);
		if (!l || (l->flags & ELF_PF_X))
			break;
	}
	/* binary search: the first slot ending above an address */
	if (i.nrelocs > 2) {
		size_t mid = i.nrelocs / 2;
		size_t at = elf_reloc_from(&i, i.relocs[mid].offset);
		CHECK(at <= mid && i.relocs[at].offset + 8 > i.relocs[mid].offset);
		CHECK(elf_reloc_from(&i, UINT64_MAX - 16) == i.nrelocs);
	}
	elf_free(&i);
	free(b);

	CHECKF(proc_read("/proc/self/maps", 1 << 24, &text, &tlen, &e) == 0, "%s", e.msg);
	CHECKF(maps_parse(text, tlen, &m, &e) == 0, "%s", e.msg);
	free(text);
	for (size_t k = 0; k < m.n; k++)
		if (strstr(m.ent[k].path, "/libc.so"))
			snprintf(libc, sizeof(libc), "%s", m.ent[k].path);
	maps_free(&m);
	CHECK(libc[0]);
	if (!libc[0])
		return;
	b = slurp(libc, &len);
	CHECKF(elf_parse(b, len, &i, &e) == 0, "%s: %s", libc, e.msg);
	CHECK(i.nrelocs > 0);
	check_sorted(&i);
	elf_free(&i);
	free(b);
}

/* A minimal ELF64 x86-64 shared object: one PT_LOAD, one PT_DYNAMIC with DT_RELA. */
struct mini {
	Elf64_Ehdr h;
	Elf64_Phdr ph[3];
	Elf64_Dyn dyn[6];
	Elf64_Rela rela[2];
	uint64_t relr[3];
	uint8_t pad[64];
};

static void mini_init(struct mini *f)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->h.e_ident, ELFMAG, SELFMAG);
	f->h.e_ident[EI_CLASS] = ELFCLASS64;
	f->h.e_ident[EI_DATA] = ELFDATA2LSB;
	f->h.e_type = ET_DYN;
	f->h.e_machine = EM_X86_64;
	f->h.e_phoff = offsetof(struct mini, ph);
	f->h.e_phentsize = sizeof(Elf64_Phdr);
	f->h.e_phnum = 3;
	f->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = 0, .p_vaddr = 0,
				 .p_filesz = sizeof(*f), .p_memsz = sizeof(*f) + 4096 };
	f->ph[1] = (Elf64_Phdr){ .p_type = PT_DYNAMIC, .p_flags = PF_R | PF_W, .p_offset = offsetof(struct mini, dyn),
				 .p_vaddr = offsetof(struct mini, dyn), .p_filesz = sizeof(f->dyn), .p_memsz = sizeof(f->dyn) };
	f->ph[2] = (Elf64_Phdr){ .p_type = PT_GNU_RELRO, .p_vaddr = 0, .p_memsz = 4096 };
	f->dyn[0] = (Elf64_Dyn){ .d_tag = DT_RELA, .d_un.d_ptr = offsetof(struct mini, rela) };
	f->dyn[1] = (Elf64_Dyn){ .d_tag = DT_RELASZ, .d_un.d_val = sizeof(f->rela) };
	f->dyn[2] = (Elf64_Dyn){ .d_tag = DT_RELR, .d_un.d_ptr = offsetof(struct mini, relr) };
	f->dyn[3] = (Elf64_Dyn){ .d_tag = DT_RELRSZ, .d_un.d_val = sizeof(f->relr) };
	f->rela[0] = (Elf64_Rela){ .r_offset = 0x200, .r_info = ELF64_R_INFO(0, R_X86_64_RELATIVE), .r_addend = 0x40 };
	f->rela[1] = (Elf64_Rela){ .r_offset = 0x100, .r_info = ELF64_R_INFO(3, R_X86_64_GLOB_DAT) };
	/* RELR: an address (0x300), then a bitmap relocating the 1st and 3rd words after it */
	f->relr[0] = 0x300;
	f->relr[1] = (1u << 1 | 1u << 3) | 1;
	f->relr[2] = 0x400;
}

static int parse_mini(const struct mini *f, size_t len, struct elf_info *i, struct err *e)
{
	return elf_parse((const uint8_t *)f, len, i, e);
}

static void expect_refused(const char *what, const struct mini *f, size_t len, const char *msg)
{
	struct elf_info i;
	struct err e = { 0 };

	CHECKF(parse_mini(f, len, &i, &e) < 0 && strstr(e.msg, msg), "%s: %s", what, e.msg[0] ? e.msg : "accepted");
}

static void test_synthetic(void)
{
	struct mini f;
	struct elf_info i;
	struct err e = { 0 };

	mini_init(&f);
	CHECKF(parse_mini(&f, sizeof(f), &i, &e) == 0, "%s", e.msg);
	CHECK_INT(i.nloads, 1);
	CHECK(i.has_relro && i.has_dynamic);
	/* 2 RELA + 2 RELR addresses + 2 bitmap bits, sorted */
	CHECK_INT(i.nrelocs, 6);
	if (i.nrelocs == 6) {
		CHECK_INT(i.relocs[0].offset, 0x100);
		CHECK_INT(i.relocs[0].type, ELF_R_X86_64_GLOB_DAT);
		CHECK_INT(i.relocs[0].sym, 3);
		CHECK_INT(i.relocs[1].offset, 0x200);
		CHECK_INT(i.relocs[1].addend, 0x40);
		CHECK_INT(i.relocs[2].offset, 0x300);
		CHECK_INT(i.relocs[3].offset, 0x308);
		CHECK_INT(i.relocs[4].offset, 0x318);
		CHECK_INT(i.relocs[4].type, ELF_R_X86_64_RELATIVE);
		CHECK_INT(i.relocs[5].offset, 0x400);
	}
	CHECK(i.span_lo == 0 && i.span_hi == 8192);
	elf_free(&i);

	expect_refused("empty", &f, 0, "not an ELF");
	expect_refused("truncated header", &f, 20, "not an ELF");
	mini_init(&f);
	f.h.e_ident[EI_CLASS] = ELFCLASS32;
	expect_refused("32-bit", &f, sizeof(f), "64-bit");
	mini_init(&f);
	f.h.e_machine = EM_AARCH64;
	expect_refused("another machine", &f, sizeof(f), "x86-64");
	mini_init(&f);
	f.h.e_type = ET_REL;
	expect_refused("object file", &f, sizeof(f), "neither");
	mini_init(&f);
	f.h.e_phoff = 1u << 30;
	expect_refused("program headers past the end", &f, sizeof(f), "program header table");
	mini_init(&f);
	f.h.e_phnum = 0;
	expect_refused("no program headers", &f, sizeof(f), "program header table");
	mini_init(&f);
	f.ph[0].p_filesz = 1u << 20;
	f.ph[0].p_memsz = 1u << 20;
	expect_refused("segment past the end", &f, sizeof(f), "outside the file");
	mini_init(&f);
	f.ph[0].p_vaddr = 0x10;
	expect_refused("misaligned segment", &f, sizeof(f), "malformed");
	mini_init(&f);
	f.ph[0].p_filesz = f.ph[0].p_memsz + 1;
	expect_refused("file size above memory size", &f, sizeof(f), "malformed");
	mini_init(&f);
	f.dyn[1].d_un.d_val = 24 * 40000;
	expect_refused("relocation table past the end", &f, sizeof(f), "outside the file");
	mini_init(&f);
	f.dyn[1].d_un.d_val = 7;
	expect_refused("odd relocation table size", &f, sizeof(f), "not a multiple");
	mini_init(&f);
	f.dyn[4] = (Elf64_Dyn){ .d_tag = DT_REL, .d_un.d_ptr = 0 };
	expect_refused("REL relocations", &f, sizeof(f), "DT_REL");
	mini_init(&f);
	f.rela[0].r_offset = 1ull << 60;
	expect_refused("relocation beyond the address space", &f, sizeof(f), "address space");
	mini_init(&f);
	f.relr[0] = 1ull << 60;
	expect_refused("RELR address beyond the address space", &f, sizeof(f), "address space");
	mini_init(&f);
	f.ph[1].p_offset = 1u << 30;
	expect_refused("dynamic section past the end", &f, sizeof(f), "PT_DYNAMIC");
	/* every truncation is refused or parsed, never read past */
	mini_init(&f);
	for (size_t n = 0; n < sizeof(f); n++) {
		if (parse_mini(&f, n, &i, &e) == 0)
			elf_free(&i);
	}
}

static void test_maps(void)
{
	static const char text[] =
		"55d0c8e00000-55d0c8e08000 r--p 00000000 fe:00 5341720                    /usr/bin/sealvm\n"
		"55d0c8e08000-55d0c8e34000 r-xp 00008000 fe:00 5341720                    /usr/bin/sealvm\n"
		"7f0000000000-7f0000001000 r-xp 00001000 08:01 42    /tmp/a dir/lib x.so (deleted)\n"
		"7f0000002000-7f0000003000 rw-s 00000000 00:10 1044                       anon_inode:kvm-vcpu:0\n"
		"7f0000003000-7f0000004000 rw-p 00000000 00:00 0 \n"
		"7ffe00000000-7ffe00002000 r-xp 00000000 00:00 0                          [vdso]\n"
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";
	static const char *const bad[] = {
		"55d0c8e00000 r--p 00000000 fe:00 1 /x\n",
		"55d0c8e00000-55d0c8e08000 rwxq 00000000 fe:00 1 /x\n",
		"55d0c8e00000-55d0c8e08000 r--p 0000zz00 fe:00 1 /x\n",
		"55d0c8e08000-55d0c8e00000 r--p 00000000 fe:00 1 /x\n",
		"55d0c8e00000-55d0c8e08000 r--p 00000000 fe00 1 /x\n",
		"155d0c8e000000000-155d0c8e000000001 r--p 00000000 fe:00 1 /x\n",
		"55d0c8e00000-55d0c8e08000 r--p 00000000 fe:00 99999999999999999999999 /x\n",
		"2000-3000 r--p 00000000 fe:00 1 /x\n1000-2000 r--p 00000000 fe:00 1 /x\n",
		"1000-3000 r--p 00000000 fe:00 1 /x\n2000-4000 r--p 00000000 fe:00 1 /x\n",
	};
	char longline[MAPS_PATH_MAX + 200];
	struct err e = { 0 };
	struct maps m;

	CHECKF(maps_parse(text, strlen(text), &m, &e) == 0, "%s", e.msg);
	CHECK_INT(m.n, 7);
	if (m.n == 7) {
		CHECK(m.ent[1].x && m.ent[1].r && !m.ent[1].w && !m.ent[1].shared);
		CHECK_INT(m.ent[1].offset, 0x8000);
		CHECK_INT(m.ent[1].dev_major, 0xfe);
		CHECK_INT(m.ent[1].ino, 5341720);
		CHECK_STR(m.ent[1].path, "/usr/bin/sealvm");
		CHECK(map_is_file(&m.ent[1]));
		CHECK_STR(m.ent[2].path, "/tmp/a dir/lib x.so");
		CHECK(m.ent[2].deleted);
		CHECK(m.ent[3].shared && !map_is_file(&m.ent[3]));
		CHECK_STR(m.ent[4].path, "");
		CHECK(!map_is_file(&m.ent[4]));
		CHECK_STR(m.ent[5].path, "[vdso]");
		CHECK(m.ent[6].x && !m.ent[6].r);
	}
	maps_free(&m);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		CHECKF(maps_parse(bad[k], strlen(bad[k]), &m, &e) < 0, "accepted: %s", bad[k]);
		if (e.code == 0)
			maps_free(&m);
	}
	/* an overlong path is cut and marked, not refused */
	snprintf(longline, sizeof(longline), "1000-2000 r-xp 00000000 fe:00 7 /");
	memset(longline + strlen(longline), 'a', MAPS_PATH_MAX + 50);
	longline[sizeof(longline) - 1] = 0;
	CHECKF(maps_parse(longline, strlen(longline), &m, &e) == 0, "%s", e.msg);
	CHECK(m.n == 1 && m.ent[0].path_truncated && strlen(m.ent[0].path) == MAPS_PATH_MAX - 1);
	maps_free(&m);
	/* a NUL inside a path */
	CHECK(maps_parse("1000-2000 r-xp 00000000 fe:00 7 /a\0b\n", 38, &m, &e) < 0);
}

static void test_text(void)
{
	char a[] = "ok \xe2\x80\xa6 fine";
	char b[] = "ctl\x01\x7f bad\xff\xfe x";
	char c[] = "cut \xe2\x80";
	char d[] = "surrogate \xed\xa0\x80 overlong \xe0\x80\xaf";

	text_sanitize(a);
	CHECK_STR(a, "ok \xe2\x80\xa6 fine");
	text_sanitize(b);
	CHECK_STR(b, "ctl?? bad?? x");
	text_sanitize(c);
	CHECK_STR(c, "cut ");
	text_sanitize(d);
	CHECK_STR(d, "surrogate ??? overlong ???");
}

int main(void)
{
	test_real_files();
	test_synthetic();
	test_maps();
	test_text();
	return unit_done();
}
