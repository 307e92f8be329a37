/* counter.elf: prints "COUNT <n>" every interval=<ms> (default 100); exits 0 after limit=<n> counts
 * (0 = run forever). The simplest sign of life that a VM keeps running across a migration. */
#include "lib.h"

void gmain(uint32_t magic, struct multiboot_info *mbi)
{
    const char *cmd = magic == MB_BOOT_MAGIC ? mb_cmdline(mbi) : "";
    uint32_t interval = arg_u32(cmd, "interval", 100);
    uint32_t limit = arg_u32(cmd, "limit", 0);
    if (interval < TICK_MS)
        interval = TICK_MS;

    time_init();
    uint32_t next = ms_now() + interval;
    for (uint32_t n = 1;; n++) {
        while ((int32_t)(ms_now() - next) < 0)
            cpu_halt(); /* the PIT wakes us every tick */
        next += interval;
        gprintf("COUNT %u\n", n);
        if (limit && n >= limit)
            guest_exit(0);
    }
}
