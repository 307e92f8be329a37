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

struct vm_slot {
	uint64_t gpa;
	uint64_t size;
	uint64_t ram_offset;   /* offset of this slot in the host RAM mapping */
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
	bool dirty_logging;
	int nr_vcpus;
	struct vcpu *vcpus[VM_MAX_VCPUS];
};

/* Creates the VM: KVM fds, RAM and memslots, in-kernel irqchip and PIT. No vCPU yet. */
int vm_create(struct vm *vm, uint64_t ram_size, struct err *e);
void vm_destroy(struct vm *vm);

/* Host pointer for guest-physical range [gpa, gpa+len), or NULL if not all RAM. */
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
