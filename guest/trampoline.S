/* Where an application processor starts. A SIPI with vector V starts it in real mode at
 * CS=V<<8, IP=0, i.e. at physical V*4096 below 1 MiB; smp.c copies [tramp_start, tramp_end)
 * to TRAMPOLINE_ADDR. The code uses only offsets from its own start: load the kernel's
 * flat GDT, turn on protected mode (and the caches INIT turned off), jump to ap_pm_entry. */
        .text
        .code16
        .globl tramp_start, tramp_end
tramp_start:
        cli
        cld
        movw %cs, %ax
        movw %ax, %ds
        lgdtl tramp_gdt_desc - tramp_start
        movl %cr0, %eax
        andl $0x9fffffff, %eax          /* CD, NW off */
        orl $1, %eax                    /* PE */
        movl %eax, %cr0
        ljmpl $0x08, $ap_pm_entry       /* absolute: the kernel's code, above 1 MiB */
        .align 4
tramp_gdt_desc:
        .word gdt_limit
        .long gdt
tramp_end:

/* 32-bit protected mode, paging off: the stack and CPU index the BSP set for this AP. */
        .code32
ap_pm_entry:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movw %ax, %ss
        movl ap_boot_stack, %esp
        pushl ap_boot_cpu
        call ap_main
1:      cli
        hlt
        jmp 1b

        .section .note.GNU-stack, "", @progbits /* no executable stack */
