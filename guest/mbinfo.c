/* mbinfo.elf: prints the Multiboot information it was given, so a VMM's loader can be checked.
 * Then resets (reset=1) or exits with status=<n> (default 0). Wrong magic: exit 3. */
#include "lib.h"

void gmain(uint32_t magic, struct multiboot_info *mbi)
{
    if (magic != MB_BOOT_MAGIC) {
        gprintf("MBI BADMAGIC 0x%x\n", magic);
        guest_exit(3);
    }
    const char *cmd = mb_cmdline(mbi);
    gprintf("MBI magic=0x%x flags=0x%x mem_lower=%u mem_upper=%u cmdline=%s\n", magic, mbi->flags,
            mbi->mem_lower, mbi->mem_upper, cmd);
    if (mbi->flags & MBI_MMAP) {
        uint32_t a = mbi->mmap_addr, end = a + mbi->mmap_length;
        while (a < end) {
            const struct multiboot_mmap *e = (const struct multiboot_mmap *)(uintptr_t)a;
            gprintf("MMAP base=0x%llx len=0x%llx type=%u\n", e->base, e->len, e->type);
            a += e->size + 4;
        }
    }
    gputs("MBI END\n");
    if (arg_u32(cmd, "reset", 0) == 1)
        guest_reset();
    guest_exit((uint8_t)arg_u32(cmd, "status", 0));
}
