/* libFuzzer target: mb_load on arbitrary bytes into a fake 64 MiB VM (no KVM).
 * The fake RAM is one mapping with an inaccessible page on each side, laid out in
 * memslots as vm.c does. After a load that succeeds, what the loader reports must
 * describe the RAM it wrote: entry inside the kernel, kernel in [1 MiB, RAM end),
 * the boot information where it says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vm/multiboot.h"
#include "vm/vm.h"

#define FUZZ_RAM (64ULL << 20)
#define GUARD 4096ULL

static struct vm fvm;

static int setup(void)
{
	uint8_t *m = mmap(NULL, FUZZ_RAM + 2 * GUARD, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (m == MAP_FAILED || mprotect(m + GUARD, FUZZ_RAM, PROT_READ | PROT_WRITE) < 0)
		return -1;
	fvm.kvm_fd = fvm.vm_fd = -1;
	fvm.ram = m + GUARD;
	fvm.ram_size = FUZZ_RAM;
	fvm.ram_pages = FUZZ_RAM / PAGE_SIZE;
	fvm.nslots = 1;
	fvm.slots[0] = (struct vm_slot){ .gpa = 0, .size = FUZZ_RAM, .ram_offset = 0 };
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (setup() < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mb_boot b;
	struct err e = { 0 };
	int r = mb_load(&fvm, data, size, "console=ttyS0 fuzz", &b, &e);

	if (r == 0) {
		const uint32_t *mbi = (const uint32_t *)(fvm.ram + MB_INFO_ADDR);
		if (b.kernel_start < MB_KERNEL_MIN || b.kernel_end > FUZZ_RAM ||
		    b.kernel_start >= b.kernel_end || b.entry < b.kernel_start ||
		    b.entry >= b.kernel_end || b.mbi != MB_INFO_ADDR || b.gdt != MB_GDT_ADDR ||
		    mbi[0] == 0 || strcmp((const char *)fvm.ram + MB_CMDLINE_ADDR, "console=ttyS0 fuzz"))
			__builtin_trap();
	} else if (r > 0 || e.code >= 0 || !e.msg[0]) {
		__builtin_trap();
	}
	return 0;
}
