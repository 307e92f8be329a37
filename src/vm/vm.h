/* A KVM virtual machine: its file descriptors, guest RAM and vCPUs.
 * Guest RAM is one host mapping; RAM above 3 GiB is mapped at 4 GiB (a PC-like hole).
 * Pages are named by their index in that host mapping ("RAM page"), not by GPA, so
 * a page number from a stream is bounds-checked against one number. */
#ifndef SEALVM_VM_VM_H
#define SEALVM_VM_VM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define PAGE_SIZE 4096ULL
#define PAGE_SHIFT 12
#define LOWMEM_LIMIT (3ULL << 30)      /* RAM above this goes above 4 GiB */
#define HIGHMEM_BASE (4ULL << 30)
#define VM_MIN_RAM (2ULL << 20)
#define VM_MAX_RAM (64ULL << 30)
#define VM_MAX_VCPUS 64
#define VM_MAX_SLOTS 2
/* Legacy VGA window: never RAM, so device memory (the text screen) can live there
 * outside the RAM that snapshots and migrations copy page by page. The RAM pages of
 * the host mapping behind it stay unused (zero). */
#define VM_LEGACY_HOLE 0xa0000ULL
#define VM_LEGACY_HOLE_SIZE 0x20000ULL
#define VM_MAX_DEVMEM 2

struct vm_slot {
	uint64_t gpa;
	uint64_t size;
	uint64_t ram_offset;   /* offset of this slot in the host RAM mapping */
	uint64_t hole_gpa, hole_size;   /* GPAs inside the slot that are not RAM (0: none) */
};

struct vcpu;

struct vm {
	int kvm_fd;
	int vm_fd;
	int run_size;           /* bytes of each vCPU's kvm_run mapping */
	uint64_t ram_size;
	uint8_t *ram;           /* host mapping of all guest RAM */
	uint64_t ram_pages;
	int nslots;
	struct vm_slot slots[VM_MAX_SLOTS];
	int ndevmem;            /* device memory regions mapped (vm_map_devmem) */
	bool dirty_logging;
	int nr_vcpus;
	struct vcpu *vcpus[VM_MAX_VCPUS];
};

/* Creates the VM: KVM fds, RAM and memslots, in-kernel irqchip and PIT. No vCPU yet. */
int vm_create(struct vm *vm, uint64_t ram_size, struct err *e);
/* The same in a mapping of ram_size bytes made (and populated) beforehand; the VM
 * owns it from then on (vm_destroy unmaps it), even when creation fails. */
int vm_create_in(struct vm *vm, uint64_t ram_size, uint8_t *ram, struct err *e);
void vm_destroy(struct vm *vm);

/* Maps host memory that is not RAM (a device's, e.g. the VGA text buffer) into the
 * legacy hole; the guest reads and writes it without exits. Not dirty-logged, not RAM. */
int vm_map_devmem(struct vm *vm, uint64_t gpa, uint64_t size, void *host, struct err *e);

/* Host pointer for guest-physical range [gpa, gpa+len), or NULL if not all RAM (the legacy hole is not). */
void *vm_gpa_ptr(struct vm *vm, uint64_t gpa, uint64_t len);
/* Guest-physical address of RAM page index p. */
uint64_t vm_page_gpa(const struct vm *vm, uint64_t p);

/* Asserts/deasserts a GSI on the in-kernel irqchip. */
int vm_irq_line(struct vm *vm, uint32_t gsi, int level);

/* Dirty logging over all RAM slots. */
int vm_dirty_log_start(struct vm *vm, struct err *e);
int vm_dirty_log_stop(struct vm *vm, struct err *e);
/* ORs the pages dirtied since the last call into bitmap (one bit per RAM page,
 * ram_pages bits, 64-bit words) and clears KVM's log. */
int vm_dirty_log_fetch(struct vm *vm, uint64_t *bitmap, struct err *e);

#endif
