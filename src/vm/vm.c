#include "vm/vm.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Region KVM needs on Intel for its real-mode TSS and identity map: below 4 GiB,
 * outside RAM and any MMIO (as kvmtool and Firecracker place it). */
#define TSS_ADDR 0xfffbd000ULL
#define IDENTITY_MAP_ADDR 0xfffbc000ULL

/* KVM memslot ids: logical RAM slot i is KVM slot 2i below its hole (or whole)
 * and 2i+1 above it; device memory uses ids from VM_DEVMEM_SLOT_BASE. */
#define VM_DEVMEM_SLOT_BASE (2 * VM_MAX_SLOTS)

static int set_region(struct vm *vm, uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size,
		      void *host, struct err *e)
{
	struct kvm_userspace_memory_region r = {
		.slot = id,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return err_sys(e, -errno, "KVM_SET_USER_MEMORY_REGION slot %u", id);
	return 0;
}

/* The parts of slot i that are RAM: [0] below the hole (or all of it), [1] above. */
static int slot_parts(const struct vm_slot *s, uint64_t gpa[2], uint64_t size[2], uint64_t off[2])
{
	if (!s->hole_size) {
		gpa[0] = s->gpa, size[0] = s->size, off[0] = s->ram_offset;
		return 1;
	}
	gpa[0] = s->gpa, size[0] = s->hole_gpa - s->gpa, off[0] = s->ram_offset;
	gpa[1] = s->hole_gpa + s->hole_size;
	size[1] = s->gpa + s->size - gpa[1];
	off[1] = s->ram_offset + (gpa[1] - s->gpa);
	return 2;
}

static int set_slot(struct vm *vm, int i, uint32_t flags, struct err *e)
{
	uint64_t gpa[2], size[2], off[2];
	int n = slot_parts(&vm->slots[i], gpa, size, off), k, r;

	for (k = 0; k < n; k++) {
		r = set_region(vm, (uint32_t)(2 * i + k), flags, gpa[k], size[k], vm->ram + off[k], e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The legacy VGA window [0xA0000, 0xC0000) is never RAM, as on a PC: a device may map
 * its own memory there (vm_map_devmem), otherwise accesses exit as MMIO. */
static void layout_slots(struct vm *vm)
{
	uint64_t low = vm->ram_size < LOWMEM_LIMIT ? vm->ram_size : LOWMEM_LIMIT;

	vm->nslots = 1;
	vm->slots[0] = (struct vm_slot){ .gpa = 0, .size = low, .ram_offset = 0,
					 .hole_gpa = VM_LEGACY_HOLE, .hole_size = VM_LEGACY_HOLE_SIZE };
	if (vm->ram_size > low) {
		vm->slots[1] = (struct vm_slot){ .gpa = HIGHMEM_BASE, .size = vm->ram_size - low,
						 .ram_offset = low };
		vm->nslots = 2;
	}
}

int vm_map_devmem(struct vm *vm, uint64_t gpa, uint64_t size, void *host, struct err *e)
{
	if (vm->ndevmem >= VM_MAX_DEVMEM)
		return err_set(e, -ENOSPC, "no memory slot left for device memory at 0x%llx",
			       (unsigned long long)gpa);
	if (gpa < VM_LEGACY_HOLE || size > VM_LEGACY_HOLE_SIZE || gpa - VM_LEGACY_HOLE > VM_LEGACY_HOLE_SIZE - size)
		return err_set(e, -EINVAL, "device memory 0x%llx+0x%llx outside the legacy hole",
			       (unsigned long long)gpa, (unsigned long long)size);
	return set_region(vm, (uint32_t)(VM_DEVMEM_SLOT_BASE + vm->ndevmem++), 0, gpa, size, host, e);
}

int vm_create(struct vm *vm, uint64_t ram_size, struct err *e)
{
	return vm_create_in(vm, ram_size, NULL, e);
}

int vm_create_in(struct vm *vm, uint64_t ram_size, uint8_t *ram, struct err *e)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	int r, i;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	vm->ram = ram;
	vm->ram_size = ram_size;
	if (ram_size < VM_MIN_RAM || ram_size > VM_MAX_RAM || ram_size % PAGE_SIZE) {
		r = err_set(e, -EINVAL, "guest memory size %llu is out of range (2 MiB to 64 GiB, whole pages)",
			    (unsigned long long)ram_size);
		vm_destroy(vm);
		return r;
	}
	vm->ram_pages = ram_size / PAGE_SIZE;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		err_sys(e, -errno, "cannot open /dev/kvm");
		goto fail;
	}
	r = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		err_set(e, -ENOTSUP, "KVM API version %d, expected %d", r, KVM_API_VERSION);
		goto fail;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		err_sys(e, -errno, "KVM_GET_VCPU_MMAP_SIZE");
		goto fail;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		err_sys(e, -errno, "KVM_CREATE_VM");
		goto fail;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0) {
		err_sys(e, -errno, "KVM_SET_TSS_ADDR");
		goto fail;
	}
	{
		uint64_t idmap = IDENTITY_MAP_ADDR;
		if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
			err_sys(e, -errno, "KVM_SET_IDENTITY_MAP_ADDR");
			goto fail;
		}
	}

	if (!vm->ram) {
		/* Reserve without committing: untouched pages stay unallocated (and read as
		 * zero), so a 4 GiB guest that uses 512 MiB costs 512 MiB. */
		vm->ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (vm->ram == MAP_FAILED) {
			vm->ram = NULL;
			err_sys(e, -errno, "cannot reserve %llu MiB of guest memory",
				(unsigned long long)(ram_size >> 20));
			goto fail;
		}
		/* Huge pages make first-touch several times faster on this kind of host. */
		madvise(vm->ram, ram_size, MADV_HUGEPAGE);
		madvise(vm->ram, ram_size, MADV_DONTDUMP);
	}

	layout_slots(vm);
	for (i = 0; i < vm->nslots; i++) {
		r = set_slot(vm, i, 0, e);
		if (r < 0)
			goto fail;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		err_sys(e, -errno, "KVM_CREATE_IRQCHIP");
		goto fail;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		err_sys(e, -errno, "KVM_CREATE_PIT2");
		goto fail;
	}
	return 0;
fail:
	r = e ? e->code : -EIO;
	vm_destroy(vm);
	return r ? r : -EIO;
}

void vm_destroy(struct vm *vm)
{
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->ram = NULL;
	vm->vm_fd = vm->kvm_fd = -1;
}

void *vm_gpa_ptr(struct vm *vm, uint64_t gpa, uint64_t len)
{
	int i;

	for (i = 0; i < vm->nslots; i++) {
		struct vm_slot *s = &vm->slots[i];
		if (gpa >= s->gpa && len <= s->size && gpa - s->gpa <= s->size - len) {
			if (s->hole_size && gpa < s->hole_gpa + s->hole_size && gpa + len > s->hole_gpa)
				return NULL; /* not RAM */
			return vm->ram + s->ram_offset + (gpa - s->gpa);
		}
	}
	return NULL;
}

uint64_t vm_page_gpa(const struct vm *vm, uint64_t p)
{
	uint64_t off = p * PAGE_SIZE;
	int i;

	for (i = 0; i < vm->nslots; i++)
		if (off >= vm->slots[i].ram_offset && off - vm->slots[i].ram_offset < vm->slots[i].size)
			return vm->slots[i].gpa + (off - vm->slots[i].ram_offset);
	return UINT64_MAX;
}

int vm_irq_line(struct vm *vm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };
	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int vm_dirty_log_start(struct vm *vm, struct err *e)
{
	int i, r;

	for (i = 0; i < vm->nslots; i++) {
		r = set_slot(vm, i, KVM_MEM_LOG_DIRTY_PAGES, e);
		if (r < 0)
			return r;
	}
	vm->dirty_logging = true;
	return 0;
}

int vm_dirty_log_stop(struct vm *vm, struct err *e)
{
	int i, r;

	for (i = 0; i < vm->nslots; i++) {
		r = set_slot(vm, i, 0, e);
		if (r < 0)
			return r;
	}
	vm->dirty_logging = false;
	return 0;
}

int vm_dirty_log_fetch(struct vm *vm, uint64_t *bitmap, struct err *e)
{
	int i, k, n;

	for (i = 0; i < vm->nslots; i++) {
		uint64_t gpa[2], size[2], off[2];

		n = slot_parts(&vm->slots[i], gpa, size, off);
		for (k = 0; k < n; k++) {
			uint64_t pages = size[k] / PAGE_SIZE, words = (pages + 63) / 64, w;
			uint64_t first = off[k] / PAGE_SIZE;
			uint64_t *buf = calloc(words, sizeof(uint64_t));
			struct kvm_dirty_log log = { .slot = (uint32_t)(2 * i + k), .dirty_bitmap = buf };

			if (!buf)
				return err_set(e, -ENOMEM, "dirty bitmap");
			if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
				free(buf);
				return err_sys(e, -errno, "KVM_GET_DIRTY_LOG slot %d", 2 * i + k);
			}
			if (first % 64 == 0) {
				/* whole words line up (bits past the part are zero) */
				for (w = 0; w < words; w++)
					bitmap[first / 64 + w] |= buf[w];
			} else {
				for (w = 0; w < pages; w++)
					if (buf[w / 64] & (1ULL << (w % 64)))
						bitmap[(first + w) / 64] |= 1ULL << ((first + w) % 64);
			}
			free(buf);
		}
	}
	return 0;
}
