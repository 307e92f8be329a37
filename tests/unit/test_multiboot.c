/* Multiboot loader on ELF32 and a.out-kludge images built in memory, loaded into a
 * fake struct vm (no KVM): what lands in guest memory, the boot information, and
 * every malformed image refused with a message naming the problem. */
#include "unit.h"
#include "vm/multiboot.h"
#include "vm/vm.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1ULL << 20)
#define RAM (64 * MIB)

/* ---- a fake VM: RAM and memslots laid out as vm.c's layout_slots does ---- */

static bool fake_vm(struct vm *vm, uint64_t ram_size)
{
	uint64_t low = ram_size < LOWMEM_LIMIT ? ram_size : LOWMEM_LIMIT;
	void *m = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);

	memset(vm, 0, sizeof(*vm));
	if (m == MAP_FAILED)
		return false;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->ram = m;
	vm->ram_size = ram_size;
	vm->ram_pages = ram_size / PAGE_SIZE;
	vm->nslots = 1;
	vm->slots[0] = (struct vm_slot){ .gpa = 0, .size = low, .ram_offset = 0 };
	if (ram_size > low) {
		vm->slots[1] = (struct vm_slot){ .gpa = HIGHMEM_BASE, .size = ram_size - low, .ram_offset = low };
		vm->nslots = 2;
	}
	/* stale contents where the kernel goes: BSS must come out zero */
	memset(vm->ram + MIB, 0xcc, 2 * MIB < ram_size - MIB ? 2 * MIB : ram_size - MIB);
	return true;
}

static void free_vm(struct vm *vm)
{
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	vm->ram = NULL;
}

static uint32_t rd32(const struct vm *vm, uint64_t gpa)
{
	uint32_t v;
	memcpy(&v, vm->ram + gpa, 4);
	return v;
}

static uint64_t rd64(const struct vm *vm, uint64_t gpa)
{
	uint64_t v;
	memcpy(&v, vm->ram + gpa, 8);
	return v;
}

/* ---- ELF32 image builder ----
 * File layout: ELF header, program headers at 52, Multiboot header at 0x100,
 * text at 0x1000 (-> 0x100000, 4 KiB), data at 0x2000 (-> 0x101000, 2 KiB of file,
 * 12 KiB in memory), a PT_NOTE that is not loaded. Entry 0x100010. */
#define IMG_LEN 0x2800
#define MBH_OFF 0x100
#define TEXT_OFF 0x1000
#define DATA_OFF 0x2000
#define TEXT_PA 0x100000u
#define DATA_PA 0x101000u
#define ENTRY 0x100010u
#define MB_MAGIC 0x1BADB002u

struct img {
	uint8_t *b;
	size_t len;
};

static Elf32_Ehdr *EH(struct img *im) { return (Elf32_Ehdr *)im->b; }
static Elf32_Phdr *PH(struct img *im, int i) { return (Elf32_Phdr *)(im->b + EH(im)->e_phoff) + i; }
static uint32_t *MBH(struct img *im, size_t off) { return (uint32_t *)(im->b + off); }

static void mb_header(struct img *im, size_t off, uint32_t flags)
{
	uint32_t h[3] = { MB_MAGIC, flags, -(MB_MAGIC + flags) };

	memcpy(im->b + off, h, sizeof(h)); /* off may be unaligned on purpose */
}

static struct img elf_image(void)
{
	struct img im = { calloc(1, IMG_LEN), IMG_LEN };
	Elf32_Ehdr *eh = EH(&im);
	size_t i;

	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_386;
	eh->e_version = EV_CURRENT;
	eh->e_entry = ENTRY;
	eh->e_phoff = sizeof(Elf32_Ehdr);
	eh->e_ehsize = sizeof(Elf32_Ehdr);
	eh->e_phentsize = sizeof(Elf32_Phdr);
	eh->e_phnum = 3;
	*PH(&im, 0) = (Elf32_Phdr){ .p_type = PT_LOAD, .p_offset = TEXT_OFF, .p_vaddr = TEXT_PA,
				    .p_paddr = TEXT_PA, .p_filesz = 0x1000, .p_memsz = 0x1000,
				    .p_flags = PF_R | PF_X, .p_align = 0x1000 };
	*PH(&im, 1) = (Elf32_Phdr){ .p_type = PT_LOAD, .p_offset = DATA_OFF, .p_vaddr = DATA_PA,
				    .p_paddr = DATA_PA, .p_filesz = 0x800, .p_memsz = 0x3000,
				    .p_flags = PF_R | PF_W, .p_align = 0x1000 };
	*PH(&im, 2) = (Elf32_Phdr){ .p_type = PT_NOTE, .p_offset = MBH_OFF, .p_filesz = 12 };
	mb_header(&im, MBH_OFF, 0x3);
	for (i = TEXT_OFF; i < IMG_LEN; i++)
		im.b[i] = (uint8_t)(i * 13 + 7);
	return im;
}

#define CHECK_MSG(e, sub)                                                           \
	CHECKF(strstr((e)->msg, (sub)) != NULL, "message \"%s\" lacks \"%s\"", (e)->msg, (sub))

/* Loads im into a fresh 64 MiB VM; expects failure with code and a message part. */
static void expect_bad(const char *what, struct img im, int code, const char *msg)
{
	struct mb_boot b;
	struct err e = { 0 };
	struct vm vm;
	int r;

	if (!fake_vm(&vm, RAM)) {
		CHECKF(0, "cannot map fake RAM");
		free(im.b);
		return;
	}
	r = mb_load(&vm, im.b, im.len, "x", &b, &e);
	CHECKF(r == code, "%s: mb_load returned %d (%s), expected %d", what, r, e.msg, code);
	CHECKF(strstr(e.msg, msg) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, msg);
	free_vm(&vm);
	free(im.b);
}

static void check_mbi(struct vm *vm, const char *cmdline, uint32_t nmmap)
{
	uint64_t low = vm->slots[0].size;

	CHECK_INT(rd32(vm, MB_INFO_ADDR + 0), 0x1 | 0x4 | 0x40 | 0x200);  /* mem, cmdline, mmap, name */
	CHECK_INT(rd32(vm, MB_INFO_ADDR + 4), 639);                      /* mem_lower KiB */
	CHECK_INT(rd32(vm, MB_INFO_ADDR + 8), (low - MIB) / 1024);        /* mem_upper KiB */
	CHECK_INT(rd32(vm, MB_INFO_ADDR + 16), MB_CMDLINE_ADDR);
	CHECK_STR((const char *)vm->ram + MB_CMDLINE_ADDR, cmdline);
	CHECK_INT(rd32(vm, MB_INFO_ADDR + 20), 0);                        /* no modules */
	CHECK_INT(rd32(vm, MB_INFO_ADDR + 44), nmmap * 24);
	CHECK_INT(rd32(vm, MB_INFO_ADDR + 48), MB_MMAP_ADDR);
	CHECK_INT(rd32(vm, MB_INFO_ADDR + 64), MB_NAME_ADDR);
	CHECK_STR((const char *)vm->ram + MB_NAME_ADDR, "sealvm");
	/* memory map: {size=20, addr, len, type} packed, 24 bytes each */
	{
		static const uint64_t fixed[3][3] = { { 0, 0x9fc00, 1 }, { 0x9fc00, 0x400, 2 },
						      { 0xf0000, 0x10000, 2 } };
		uint64_t m = MB_MMAP_ADDR;
		int i;

		for (i = 0; i < 3; i++, m += 24) {
			CHECK_INT(rd32(vm, m), 20);
			CHECK_INT(rd64(vm, m + 4), fixed[i][0]);
			CHECK_INT(rd64(vm, m + 12), fixed[i][1]);
			CHECK_INT(rd32(vm, m + 20), fixed[i][2]);
		}
		CHECK_INT(rd64(vm, m + 4), MIB);
		CHECK_INT(rd64(vm, m + 12), low - MIB);
		CHECK_INT(rd32(vm, m + 20), 1);
		if (nmmap > 4) {
			m += 24;
			CHECK_INT(rd64(vm, m + 4), HIGHMEM_BASE);
			CHECK_INT(rd64(vm, m + 12), vm->ram_size - low);
			CHECK_INT(rd32(vm, m + 20), 1);
		}
	}
	/* flat GDT: null, 4 GiB code, 4 GiB data */
	CHECK_INT(rd64(vm, MB_GDT_ADDR), 0);
	CHECK_INT(rd64(vm, MB_GDT_ADDR + 8), 0x00cf9b000000ffffULL);
	CHECK_INT(rd64(vm, MB_GDT_ADDR + 16), 0x00cf93000000ffffULL);
}

static void test_good_elf(void)
{
	struct img im = elf_image();
	struct mb_boot b;
	struct err e = { 0 };
	struct vm vm;
	int r;

	CHECK(fake_vm(&vm, RAM));
	r = mb_load(&vm, im.b, im.len, "console=ttyS0 quiet", &b, &e);
	CHECKF(r == 0, "good ELF: %s", e.msg);
	CHECK_INT(b.entry, ENTRY);
	CHECK_INT(b.mbi, MB_INFO_ADDR);
	CHECK_INT(b.gdt, MB_GDT_ADDR);
	CHECK_INT(b.kernel_start, TEXT_PA);
	CHECK_INT(b.kernel_end, DATA_PA + 0x3000);
	CHECK(memcmp(vm.ram + TEXT_PA, im.b + TEXT_OFF, 0x1000) == 0);
	CHECK(memcmp(vm.ram + DATA_PA, im.b + DATA_OFF, 0x800) == 0);
	{
		size_t i, nz = 0;
		for (i = DATA_PA + 0x800; i < DATA_PA + 0x3000; i++)
			nz += vm.ram[i] != 0;
		CHECK_INT(nz, 0); /* BSS zeroed over stale bytes */
	}
	CHECK_INT(vm.ram[DATA_PA + 0x3000], 0xcc); /* nothing past memsz */
	check_mbi(&vm, "console=ttyS0 quiet", 4);

	/* no command line is an empty one */
	r = mb_load(&vm, im.b, im.len, NULL, &b, &e);
	CHECK_INT(r, 0);
	CHECK_STR((const char *)vm.ram + MB_CMDLINE_ADDR, "");
	free_vm(&vm);

	/* optional (upper) flag bits, the ignored video bit, and unaligned program headers */
	{
		struct img im2 = elf_image();
		size_t phoff = 0x301;

		mb_header(&im2, MBH_OFF, 0x00020007);
		memmove(im2.b + phoff, PH(&im2, 0), 3 * sizeof(Elf32_Phdr));
		EH(&im2)->e_phoff = (Elf32_Off)phoff;
		CHECK(fake_vm(&vm, RAM));
		r = mb_load(&vm, im2.b, im2.len, "a", &b, &e);
		CHECKF(r == 0, "optional flags / odd e_phoff: %s", e.msg);
		CHECK_INT(b.entry, ENTRY);
		CHECK(memcmp(vm.ram + DATA_PA, im2.b + DATA_OFF, 0x800) == 0);
		free_vm(&vm);
		free(im2.b);
	}
	/* the header is found anywhere in the first 8 KiB, up to its last 32 bytes */
	{
		struct img im2 = elf_image();

		memset(MBH(&im2, MBH_OFF), 0, 12);
		mb_header(&im2, 8192 - 32, 0x3);
		CHECK(fake_vm(&vm, RAM));
		r = mb_load(&vm, im2.b, im2.len, "a", &b, &e);
		CHECKF(r == 0, "header at 8160: %s", e.msg);
		free_vm(&vm);
		free(im2.b);
	}
	/* the smallest RAM a kernel fits: 2 MiB */
	CHECK(fake_vm(&vm, 2 * MIB));
	r = mb_load(&vm, im.b, im.len, "", &b, &e);
	CHECKF(r == 0, "2 MiB: %s", e.msg);
	check_mbi(&vm, "", 4);
	free_vm(&vm);
	free(im.b);
}

static void test_cmdline(void)
{
	struct img im = elf_image();
	char *cl = malloc(MB_MAX_CMDLINE + 2);
	struct mb_boot b;
	struct err e = { 0 };
	struct vm vm;

	memset(cl, 'c', MB_MAX_CMDLINE);
	cl[MB_MAX_CMDLINE] = 0;
	CHECK(fake_vm(&vm, RAM));
	CHECKF(mb_load(&vm, im.b, im.len, cl, &b, &e) == 0, "%s", e.msg);
	CHECK_INT(strlen((const char *)vm.ram + MB_CMDLINE_ADDR), MB_MAX_CMDLINE);
	CHECK(MB_CMDLINE_ADDR + MB_MAX_CMDLINE + 1 <= MB_MMAP_ADDR);
	cl[MB_MAX_CMDLINE] = 'c';
	cl[MB_MAX_CMDLINE + 1] = 0;
	CHECK_INT(mb_load(&vm, im.b, im.len, cl, &b, &e), -E2BIG);
	CHECK_MSG(&e, "command line of 4001 bytes exceeds 4000");
	free_vm(&vm);
	free(cl);
	free(im.b);
}

static void test_bad_elf(void)
{
	struct img im;

	im = (struct img){ (uint8_t *)strdup("just some text, not a kernel"), 28 };
	expect_bad("text", im, -ENOEXEC, "not an ELF file and has no Multiboot header");
	im = (struct img){ calloc(1, 3), 3 };
	expect_bad("3 bytes", im, -ENOEXEC, "no Multiboot header");
	im = (struct img){ calloc(1, 1), 0 };
	expect_bad("empty", im, -ENOEXEC, "no Multiboot header");

	im = elf_image();
	im.b[1] = 'X';
	expect_bad("bad ELF magic", im, -ENOEXEC, "kernel is not an ELF file");
	im = elf_image();
	im.b[EI_CLASS] = ELFCLASS64;
	expect_bad("ELF64", im, -ENOEXEC, "not a 32-bit little-endian x86 ELF");
	im = elf_image();
	im.b[EI_DATA] = ELFDATA2MSB;
	expect_bad("big-endian", im, -ENOEXEC, "not a 32-bit little-endian x86 ELF");
	im = elf_image();
	EH(&im)->e_machine = EM_X86_64;
	expect_bad("x86-64 machine", im, -ENOEXEC, "not a 32-bit little-endian x86 ELF");
	im = elf_image();
	EH(&im)->e_machine = EM_ARM;
	expect_bad("ARM machine", im, -ENOEXEC, "x86 ELF");
	im = elf_image();
	EH(&im)->e_type = ET_DYN;
	expect_bad("ET_DYN", im, -ENOEXEC, "not an executable");

	/* Multiboot header missing, corrupt, or past the first 8 KiB */
	im = elf_image();
	MBH(&im, MBH_OFF)[0] = 0;
	expect_bad("no header", im, -ENOEXEC, "no Multiboot header in its first 8192 bytes");
	im = elf_image();
	MBH(&im, MBH_OFF)[2] += 1;
	expect_bad("bad checksum", im, -ENOEXEC, "no Multiboot header");
	im = elf_image();
	MBH(&im, MBH_OFF)[1] ^= 1; /* flags changed, checksum not */
	expect_bad("flags without checksum", im, -ENOEXEC, "no Multiboot header");
	im = elf_image();
	memset(MBH(&im, MBH_OFF), 0, 12);
	mb_header(&im, 8192, 0x3);
	expect_bad("header at 8192", im, -ENOEXEC, "no Multiboot header");
	im = elf_image();
	memset(MBH(&im, MBH_OFF), 0, 12);
	mb_header(&im, 0x102, 0x3); /* not 4-byte aligned */
	expect_bad("unaligned header", im, -ENOEXEC, "no Multiboot header");

	/* required features */
	im = elf_image();
	mb_header(&im, MBH_OFF, 0x3 | 0x8);
	expect_bad("flag 3", im, -ENOTSUP, "requires Multiboot features 0x8 that sealvm does not provide");
	im = elf_image();
	mb_header(&im, MBH_OFF, 0x8000);
	expect_bad("flag 15", im, -ENOTSUP, "features 0x8000");

	/* program headers */
	im = elf_image();
	EH(&im)->e_phnum = 65;
	expect_bad("phnum 65", im, -ENOEXEC, "program headers are malformed");
	im = elf_image();
	EH(&im)->e_phnum = 0xffff;
	expect_bad("phnum 65535", im, -ENOEXEC, "program headers are malformed");
	im = elf_image();
	EH(&im)->e_phnum = 0;
	expect_bad("phnum 0", im, -ENOEXEC, "program headers are malformed");
	im = elf_image();
	EH(&im)->e_phentsize = 56;
	expect_bad("phentsize 56", im, -ENOEXEC, "program headers are malformed");
	im = elf_image();
	EH(&im)->e_phoff = IMG_LEN - 40;
	expect_bad("phdrs past EOF", im, -ENOEXEC, "program headers are malformed");
	im = elf_image();
	EH(&im)->e_phoff = 0xffffffffu;
	expect_bad("phoff huge", im, -ENOEXEC, "program headers are malformed");

	/* segments */
	im = elf_image();
	PH(&im, 1)->p_paddr = (uint32_t)(RAM - 0x1000);
	expect_bad("segment beyond RAM", im, -ERANGE, "lies outside guest RAM");
	im = elf_image();
	PH(&im, 1)->p_paddr = 0xfffff000u;
	expect_bad("segment wrapping 4 GiB", im, -ERANGE, "outside guest RAM");
	im = elf_image();
	PH(&im, 0)->p_paddr = 0xff000;
	expect_bad("segment below 1 MiB", im, -ERANGE, "kernel segment at 0xff000");
	im = elf_image();
	PH(&im, 0)->p_paddr = MB_INFO_ADDR;
	expect_bad("segment over the boot info", im, -ERANGE, "outside guest RAM");
	im = elf_image();
	PH(&im, 1)->p_memsz = 0x400; /* filesz 0x800 */
	expect_bad("filesz > memsz", im, -ERANGE, "kernel segment at 0x101000");
	im = elf_image();
	PH(&im, 1)->p_offset = IMG_LEN - 0x100;
	expect_bad("segment past EOF", im, -ENOEXEC, "segment 1 extends past the end of the file");
	im = elf_image();
	PH(&im, 1)->p_offset = 0xffffff00u;
	expect_bad("p_offset huge", im, -ENOEXEC, "extends past the end of the file");
	im = elf_image();
	PH(&im, 1)->p_filesz = 0xffffffffu;
	PH(&im, 1)->p_memsz = 0xffffffffu;
	expect_bad("filesz huge", im, -ENOEXEC, "extends past the end of the file");
	im = elf_image();
	PH(&im, 0)->p_type = PT_NOTE;
	PH(&im, 1)->p_memsz = 0;
	expect_bad("no PT_LOAD", im, -ENOEXEC, "no loadable segment");

	/* entry point */
	im = elf_image();
	EH(&im)->e_entry = DATA_PA + 0x3000;
	expect_bad("entry at end", im, -ENOEXEC, "entry point 0x104000 is outside its segments");
	im = elf_image();
	EH(&im)->e_entry = TEXT_PA - 1;
	expect_bad("entry below", im, -ENOEXEC, "outside its segments");

	/* RAM too small for any kernel */
	{
		struct mb_boot b;
		struct err e = { 0 };
		struct vm vm;

		im = elf_image();
		CHECK(fake_vm(&vm, MIB));
		CHECK_INT(mb_load(&vm, im.b, im.len, "", &b, &e), -EINVAL);
		CHECK_MSG(&e, "too small");
		free_vm(&vm);
		free(im.b);
	}
}

/* ---- a.out kludge: a flat binary whose header says where it goes ---- */

#define AOUT_LEN 0x1000
#define AOUT_HOFF 0x40

static struct img aout_image(uint32_t load, uint32_t load_end, uint32_t bss_end, uint32_t entry,
			     uint32_t skip)
{
	struct img im = { malloc(AOUT_LEN), AOUT_LEN };
	uint32_t *h;
	size_t i;

	for (i = 0; i < AOUT_LEN; i++)
		im.b[i] = (uint8_t)(i * 31 + 3);
	mb_header(&im, AOUT_HOFF, 0x10003);
	h = MBH(&im, AOUT_HOFF);
	h[3] = load + AOUT_HOFF - skip; /* header_addr: the file from offset skip loads at load */
	h[4] = load;
	h[5] = load_end;
	h[6] = bss_end;
	h[7] = entry;
	return im;
}

static void test_aout(void)
{
	struct img im = aout_image(0x200000, 0x200800, 0x202000, 0x200100, 0);
	struct mb_boot b;
	struct err e = { 0 };
	struct vm vm;
	size_t i, nz = 0;
	int r;

	CHECK(fake_vm(&vm, RAM));
	r = mb_load(&vm, im.b, im.len, "aout", &b, &e);
	CHECKF(r == 0, "a.out: %s", e.msg);
	CHECK_INT(b.entry, 0x200100);
	CHECK_INT(b.kernel_start, 0x200000);
	CHECK_INT(b.kernel_end, 0x202000);
	CHECK(memcmp(vm.ram + 0x200000, im.b, 0x800) == 0);
	for (i = 0x200800; i < 0x202000; i++)
		nz += vm.ram[i] != 0;
	CHECK_INT(nz, 0);
	check_mbi(&vm, "aout", 4);
	free_vm(&vm);
	free(im.b);

	/* load_end 0: the rest of the file; bss_end 0: no BSS; the file from offset 0x20 */
	im = aout_image(0x100000, 0, 0, 0x100000, 0x20);
	CHECK(fake_vm(&vm, RAM));
	r = mb_load(&vm, im.b, im.len, "", &b, &e);
	CHECKF(r == 0, "a.out whole file: %s", e.msg);
	CHECK_INT(b.kernel_end, 0x100000 + AOUT_LEN - 0x20);
	CHECK(memcmp(vm.ram + 0x100000, im.b + 0x20, AOUT_LEN - 0x20) == 0);
	CHECK_INT(vm.ram[0x100000 + AOUT_LEN - 0x20], 0xcc);
	free_vm(&vm);
	free(im.b);

	/* inconsistent headers */
	im = aout_image(0x200000, 0, 0, 0x200000, 0);
	MBH(&im, AOUT_HOFF)[3] = 0x1fffff; /* header_addr below load_addr */
	expect_bad("a.out header_addr < load_addr", im, -ENOEXEC, "addresses are inconsistent");
	im = aout_image(0x200000, 0, 0, 0x200000, 0);
	MBH(&im, AOUT_HOFF)[3] = 0x200000 + AOUT_HOFF + 4; /* file would start before offset 0 */
	expect_bad("a.out header before file", im, -ENOEXEC, "addresses are inconsistent");
	im = aout_image(0x200000, 0x200000 + AOUT_LEN + 1, 0, 0x200000, 0);
	expect_bad("a.out load_end past EOF", im, -ENOEXEC, "load_end_addr is past the end of the file");
	im = aout_image(0x200000, 0x1ff000, 0, 0x200000, 0);
	expect_bad("a.out load_end < load", im, -ENOEXEC, "load_end_addr");
	im = aout_image(0x200000, 0x200800, 0x202000, 0x202000, 0);
	expect_bad("a.out entry past BSS", im, -ENOEXEC, "entry point 0x202000 is outside its image");
	im = aout_image(0x80000, 0, 0, 0x80000, 0);
	expect_bad("a.out below 1 MiB", im, -ERANGE, "outside guest RAM");
	im = aout_image(0x200000, 0, 0x200000 + 64 * MIB, 0x200000, 0);
	expect_bad("a.out BSS beyond RAM", im, -ERANGE, "outside guest RAM");
	im = aout_image(0xfffff000u, 0, 0, 0xfffff000u, 0);
	expect_bad("a.out at 4 GiB", im, -ERANGE, "outside guest RAM");
}

/* Above 3 GiB of RAM the rest is mapped at 4 GiB: a second memory map entry. */
static void test_two_slots(void)
{
	struct img im = elf_image();
	struct mb_boot b;
	struct err e = { 0 };
	struct vm vm;

	if (!fake_vm(&vm, LOWMEM_LIMIT + 16 * MIB)) {
		fprintf(stderr, "note: cannot reserve 3 GiB of address space; two-slot layout not tested\n");
		free(im.b);
		return;
	}
	CHECK_INT(vm.nslots, 2);
	CHECKF(mb_load(&vm, im.b, im.len, "hi", &b, &e) == 0, "%s", e.msg);
	check_mbi(&vm, "hi", 5);
	CHECK_INT(rd32(&vm, MB_INFO_ADDR + 8), (LOWMEM_LIMIT - MIB) / 1024);
	free_vm(&vm);
	free(im.b);
}

/* The project's own guests, when they are built; and mb_read_file's refusals. */
static void test_files(void)
{
	static const char *const guests[] = { "build/guest/counter.elf", "build/guest/mbinfo.elf",
					      "build/guest/memcheck.elf" };
	char tmp[] = "/tmp/sealvm-mbtest.XXXXXX";
	uint8_t *img;
	size_t len, i;
	struct mb_boot b;
	struct err e = { 0 };
	struct vm vm;
	int fd;

	for (i = 0; i < sizeof(guests) / sizeof(guests[0]); i++) {
		if (access(guests[i], R_OK) != 0)
			continue;
		CHECKF(mb_read_file(guests[i], &img, &len, &e) == 0, "%s: %s", guests[i], e.msg);
		CHECK(fake_vm(&vm, RAM));
		CHECKF(mb_load(&vm, img, len, "guest", &b, &e) == 0, "%s: %s", guests[i], e.msg);
		CHECK(b.entry >= b.kernel_start && b.entry < b.kernel_end && b.kernel_start >= MIB);
		free_vm(&vm);
		free(img);
	}
	CHECK_INT(mb_read_file("/nonexistent/kernel", &img, &len, &e), -ENOENT);
	CHECK_MSG(&e, "cannot open kernel /nonexistent/kernel");
	CHECK_INT(mb_read_file("/tmp", &img, &len, &e), -EINVAL);
	CHECK_MSG(&e, "not a regular file");
	fd = mkstemp(tmp);
	CHECK(fd >= 0);
	if (fd >= 0) {
		close(fd);
		CHECK_INT(mb_read_file(tmp, &img, &len, &e), -EFBIG);
		CHECK_MSG(&e, "size 0 is not in 1..");
		unlink(tmp);
	}
}

int main(void)
{
	test_good_elf();
	test_cmdline();
	test_bad_elf();
	test_aout();
	test_two_slots();
	test_files();
	return unit_done();
}
