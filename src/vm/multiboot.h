/* Multiboot v1 loader: ELF32 kernels (or the a.out-kludge header), the boot
 * information structure, and a flat GDT, as the Multiboot 0.6.96 spec describes. */
#ifndef SEALVM_VM_MULTIBOOT_H
#define SEALVM_VM_MULTIBOOT_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "vm/vm.h"

#define MB_MAX_KERNEL (256u << 20)
#define MB_MAX_CMDLINE 4000

/* Fixed low-memory layout of what the loader writes (below 640 KiB, under 1 MiB). */
#define MB_GDT_ADDR 0x8000u
#define MB_INFO_ADDR 0x9000u
#define MB_CMDLINE_ADDR 0x9200u
#define MB_MMAP_ADDR 0xa200u
#define MB_NAME_ADDR 0xa800u
#define MB_KERNEL_MIN 0x100000u  /* kernels load at or above 1 MiB */

struct mb_boot {
	uint32_t entry;
	uint32_t mbi;
	uint32_t gdt;
	uint32_t kernel_start, kernel_end;
};

/* Validates the image (a whole file in memory) and loads it into the VM's RAM. */
int mb_load(struct vm *vm, const uint8_t *img, size_t len, const char *cmdline,
	    struct mb_boot *out, struct err *e);
/* Reads a kernel file with a size bound; caller frees *img. */
int mb_read_file(const char *path, uint8_t **img, size_t *len, struct err *e);

#endif
