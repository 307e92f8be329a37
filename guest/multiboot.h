/* Multiboot v1 information structure, as a loader hands it to the guest in %ebx. */
#ifndef GUEST_MULTIBOOT_H
#define GUEST_MULTIBOOT_H

#include <stdint.h>

#define MB_BOOT_MAGIC  0x2BADB002u /* in %eax at entry when a Multiboot loader started us */

#define MBI_MEM     (1u << 0) /* mem_lower / mem_upper valid */
#define MBI_CMDLINE (1u << 2) /* cmdline valid */
#define MBI_MMAP    (1u << 6) /* mmap_length / mmap_addr valid */

struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower;   /* KiB below 1 MiB */
    uint32_t mem_upper;   /* KiB of contiguous memory from 1 MiB */
    uint32_t boot_device;
    uint32_t cmdline;     /* physical address of a NUL-terminated string */
    uint32_t mods_count;
    uint32_t mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length; /* bytes */
    uint32_t mmap_addr;
};

/* One memory map entry; `size` does not count itself, so the next entry is at +size+4. */
struct multiboot_mmap {
    uint32_t size;
    uint64_t base;
    uint64_t len;
    uint32_t type; /* 1 = usable RAM */
} __attribute__((packed));

#endif
