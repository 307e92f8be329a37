/* touch.elf: the benchmark's working set. Writes one word into every page of
 * ws=<MiB> (default 512) from 16 MiB up, so each page is non-zero and must be
 * carried, then idles on hlt. A one-word write per page keeps the setup fast on
 * an emulated CPU (a full-page write runs at ~9 MB/s there); snapshot and
 * migration cost depends on how many pages are non-zero, not on their bytes. */
#include "lib.h"

#define BASE 0x01000000u /* 16 MiB, clear of the image */

void gmain(uint32_t magic, struct multiboot_info *mbi)
{
    const char *cmd = magic == MB_BOOT_MAGIC ? mb_cmdline(mbi) : "";
    uint32_t ws = arg_u32(cmd, "ws", 512);
    uint32_t pages = ws * 256u, i;

    if (magic != MB_BOOT_MAGIC || !(mbi->flags & 1u) ||
        (uint64_t)BASE + (uint64_t)pages * 4096u > 0x100000ull + (uint64_t)mbi->mem_upper * 1024u) {
        gputs("ERR ws too large\n");
        guest_exit(2);
    }
    time_init();
    for (i = 0; i < pages; i++)
        *(volatile uint32_t *)(uintptr_t)(BASE + i * 4096u) = (i << 1) | 1u; /* never 0 */
    gprintf("TOUCHED ws=%u pages=%u ms=%u\n", ws, pages, tsc_ms());
    for (;;)
        cpu_halt();
}
