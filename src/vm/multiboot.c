#include "vm/multiboot.h"

#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MB_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_SEARCH 8192
#define MB_FLAG_AOUT_KLUDGE (1u << 16)
#define MB_KNOWN_REQUIRED 0x7u /* page-align modules, memory info, video mode (ignored) */

/* multiboot_info flags */
#define MBI_MEM (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MMAP (1u << 6)
#define MBI_LOADER_NAME (1u << 9)

struct mb_header {
	uint32_t magic, flags, checksum;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr, config_table, boot_loader_name, apm_table;
	uint32_t vbe[6];
};

struct mb_mmap_entry {
	uint32_t size;
	uint64_t addr, len;
	uint32_t type;
} __attribute__((packed));

int mb_read_file(const char *path, uint8_t **img, size_t *len, struct err *e)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_sys(e, -errno, "cannot open kernel %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, -EINVAL, "kernel %s is not a regular file", path);
	}
	if (st.st_size > MB_MAX_KERNEL || st.st_size == 0) {
		close(fd);
		return err_set(e, -EFBIG, "kernel %s: size %lld is not in 1..%u bytes", path,
			       (long long)st.st_size, MB_MAX_KERNEL);
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return err_set(e, -ENOMEM, "kernel %s", path);
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r <= 0) {
			int c = r < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return err_sys(e, c, "cannot read kernel %s", path);
		}
		got += (size_t)r;
	}
	close(fd);
	*img = buf;
	*len = got;
	return 0;
}

static const struct mb_header *find_header(const uint8_t *img, size_t len, size_t *off)
{
	size_t o, lim = len < MB_SEARCH ? len : MB_SEARCH;

	for (o = 0; o + sizeof(struct mb_header) <= lim; o += 4) {
		const struct mb_header *h = (const void *)(img + o);
		if (h->magic == MB_MAGIC && h->magic + h->flags + h->checksum == 0) {
			*off = o;
			return h;
		}
	}
	return NULL;
}

/* Copies [src, src+filesz) to guest paddr and zeroes up to memsz, inside kernel RAM. */
static int place(struct vm *vm, uint64_t paddr, const uint8_t *src, uint64_t filesz, uint64_t memsz,
		 struct err *e)
{
	uint64_t low = vm->slots[0].size;
	uint8_t *dst;

	if (filesz > memsz || paddr < MB_KERNEL_MIN || memsz > low || paddr > low - memsz)
		return err_set(e, -ERANGE,
			       "kernel segment at 0x%llx (+0x%llx bytes) lies outside guest RAM [0x%x, 0x%llx)",
			       (unsigned long long)paddr, (unsigned long long)memsz, MB_KERNEL_MIN,
			       (unsigned long long)low);
	dst = vm_gpa_ptr(vm, paddr, memsz ? memsz : 1);
	if (!dst)
		return err_set(e, -ERANGE, "kernel segment at 0x%llx is not RAM", (unsigned long long)paddr);
	memcpy(dst, src, filesz);
	memset(dst + filesz, 0, memsz - filesz);
	return 0;
}

static int load_elf(struct vm *vm, const uint8_t *img, size_t len, struct mb_boot *b, struct err *e)
{
	const Elf32_Ehdr *eh = (const void *)img;
	uint32_t i, lo = UINT32_MAX, hi = 0, nload = 0;
	int r;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG))
		return err_set(e, -ENOEXEC, "kernel is not an ELF file");
	if (eh->e_ident[EI_CLASS] != ELFCLASS32 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_386)
		return err_set(e, -ENOEXEC, "kernel is not a 32-bit little-endian x86 ELF (Multiboot v1 loads ELF32)");
	if (eh->e_type != ET_EXEC)
		return err_set(e, -ENOEXEC, "kernel ELF is not an executable");
	if (eh->e_phentsize != sizeof(Elf32_Phdr) || eh->e_phnum == 0 || eh->e_phnum > 64 ||
	    eh->e_phoff > len || (size_t)eh->e_phnum * sizeof(Elf32_Phdr) > len - eh->e_phoff)
		return err_set(e, -ENOEXEC, "kernel ELF program headers are malformed");
	for (i = 0; i < eh->e_phnum; i++) {
		Elf32_Phdr phdr, *ph = &phdr;
		/* e_phoff need not be 4-byte aligned: copy the header rather than cast */
		memcpy(&phdr, img + eh->e_phoff + i * sizeof(Elf32_Phdr), sizeof(phdr));
		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset)
			return err_set(e, -ENOEXEC, "kernel ELF segment %u extends past the end of the file", i);
		r = place(vm, ph->p_paddr, img + ph->p_offset, ph->p_filesz, ph->p_memsz, e);
		if (r < 0)
			return r;
		if (ph->p_paddr < lo)
			lo = ph->p_paddr;
		if (ph->p_paddr + ph->p_memsz > hi)
			hi = ph->p_paddr + ph->p_memsz;
		nload++;
	}
	if (!nload)
		return err_set(e, -ENOEXEC, "kernel ELF has no loadable segment");
	if (eh->e_entry < lo || eh->e_entry >= hi)
		return err_set(e, -ENOEXEC, "kernel entry point 0x%x is outside its segments", eh->e_entry);
	b->entry = eh->e_entry;
	b->kernel_start = lo;
	b->kernel_end = hi;
	return 0;
}

/* The a.out kludge: the header itself says where the file goes. */
static int load_aout(struct vm *vm, const uint8_t *img, size_t len, const struct mb_header *h,
		     size_t hoff, struct mb_boot *b, struct err *e)
{
	uint64_t start, filesz, memsz, end;

	if (h->header_addr < h->load_addr || h->header_addr - h->load_addr > hoff)
		return err_set(e, -ENOEXEC, "Multiboot header addresses are inconsistent");
	start = hoff - (h->header_addr - h->load_addr);
	end = h->load_end_addr ? h->load_end_addr : h->load_addr + (len - start);
	if (end < h->load_addr || end - h->load_addr > len - start)
		return err_set(e, -ENOEXEC, "Multiboot load_end_addr is past the end of the file");
	filesz = end - h->load_addr;
	memsz = h->bss_end_addr > end ? h->bss_end_addr - h->load_addr : filesz;
	if (place(vm, h->load_addr, img + start, filesz, memsz, e) < 0)
		return e ? e->code : -ERANGE;
	if (h->entry_addr < h->load_addr || h->entry_addr >= h->load_addr + memsz)
		return err_set(e, -ENOEXEC, "kernel entry point 0x%x is outside its image", h->entry_addr);
	b->entry = h->entry_addr;
	b->kernel_start = h->load_addr;
	b->kernel_end = (uint32_t)(h->load_addr + memsz);
	return 0;
}

static uint32_t build_mmap(struct vm *vm, struct mb_mmap_entry *m)
{
	uint64_t low = vm->slots[0].size;
	uint32_t n = 0;

	m[n++] = (struct mb_mmap_entry){ 20, 0, 0x9fc00, 1 };
	m[n++] = (struct mb_mmap_entry){ 20, 0x9fc00, 0x400, 2 };
	m[n++] = (struct mb_mmap_entry){ 20, 0xf0000, 0x10000, 2 };
	m[n++] = (struct mb_mmap_entry){ 20, 0x100000, low - 0x100000, 1 };
	if (vm->nslots > 1)
		m[n++] = (struct mb_mmap_entry){ 20, vm->slots[1].gpa, vm->slots[1].size, 1 };
	return n;
}

int mb_load(struct vm *vm, const uint8_t *img, size_t len, const char *cmdline,
	    struct mb_boot *b, struct err *e)
{
	static const uint64_t gdt[3] = { 0, 0x00cf9b000000ffffULL, 0x00cf93000000ffffULL };
	static const char name[] = "sealvm";
	const struct mb_header *h;
	struct mb_mmap_entry mm[5];
	struct mb_info *mbi;
	size_t hoff, clen = cmdline ? strlen(cmdline) : 0;
	uint32_t n;
	int r;

	memset(b, 0, sizeof(*b));
	if (vm->slots[0].size < 2 * MB_KERNEL_MIN)
		return err_set(e, -EINVAL, "guest memory too small for a Multiboot kernel (need 2 MiB)");
	if (clen > MB_MAX_CMDLINE)
		return err_set(e, -E2BIG, "command line of %zu bytes exceeds %d", clen, MB_MAX_CMDLINE);
	h = find_header(img, len, &hoff);
	if (!h) {
		if (len >= SELFMAG && !memcmp(img, ELFMAG, SELFMAG))
			return err_set(e, -ENOEXEC, "kernel has no Multiboot header in its first %d bytes", MB_SEARCH);
		return err_set(e, -ENOEXEC, "kernel is not an ELF file and has no Multiboot header");
	}
	if ((h->flags & 0xffff) & ~MB_KNOWN_REQUIRED)
		return err_set(e, -ENOTSUP, "kernel requires Multiboot features 0x%x that sealvm does not provide",
			       (h->flags & 0xffff) & ~MB_KNOWN_REQUIRED);
	if (h->flags & MB_FLAG_AOUT_KLUDGE) {
		if (hoff + sizeof(*h) > len)
			return err_set(e, -ENOEXEC, "Multiboot header truncated");
		r = load_aout(vm, img, len, h, hoff, b, e);
	} else {
		r = load_elf(vm, img, len, b, e);
	}
	if (r < 0)
		return r;

	memcpy(vm_gpa_ptr(vm, MB_GDT_ADDR, sizeof(gdt)), gdt, sizeof(gdt));
	mbi = vm_gpa_ptr(vm, MB_INFO_ADDR, sizeof(*mbi));
	memset(mbi, 0, sizeof(*mbi));
	mbi->flags = MBI_MEM | MBI_CMDLINE | MBI_MMAP | MBI_LOADER_NAME;
	mbi->mem_lower = 0x9fc00 / 1024;
	mbi->mem_upper = (uint32_t)((vm->slots[0].size - 0x100000) / 1024);
	mbi->cmdline = MB_CMDLINE_ADDR;
	memcpy(vm_gpa_ptr(vm, MB_CMDLINE_ADDR, clen + 1), cmdline ? cmdline : "", clen + 1);
	n = build_mmap(vm, mm);
	memcpy(vm_gpa_ptr(vm, MB_MMAP_ADDR, sizeof(mm)), mm, n * sizeof(mm[0]));
	mbi->mmap_addr = MB_MMAP_ADDR;
	mbi->mmap_length = n * (uint32_t)sizeof(mm[0]);
	memcpy(vm_gpa_ptr(vm, MB_NAME_ADDR, sizeof(name)), name, sizeof(name));
	mbi->boot_loader_name = MB_NAME_ADDR;
	b->mbi = MB_INFO_ADDR;
	b->gdt = MB_GDT_ADDR;
	return 0;
}
