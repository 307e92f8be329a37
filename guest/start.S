/* Multiboot v1 entry: header, own flat GDT and stack, zeroed .bss, then gmain(magic, mbi). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000002 /* bit 1: ask for mem_lower/mem_upper and the memory map (ELF image, no a.out kludge) */

        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

        .text
        .globl _start
_start:
        cli
        cld                     /* the C code's string instructions assume DF=0 */
        movl %eax, %esi         /* loader magic and info pointer survive in callee-saved-by-us regs */
        movl %ebx, %edx
        lgdt gdt_desc           /* the loader's GDT is not guaranteed to stay valid */
        ljmp $0x08, $1f
1:      movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movw %ax, %ss
        movl $stack_top, %esp
        /* Zero .bss ourselves: cheap, and we do not depend on every loader doing it. */
        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        shrl $2, %ecx
        xorl %eax, %eax
        rep stosl
        pushl %edx              /* struct multiboot_info * */
        pushl %esi              /* magic */
        call gmain
2:      cli
        hlt
        jmp 2b

        .section .rodata
        .align 8
        .globl gdt, gdt_limit           /* the APs' trampoline loads it too */
gdt:    .quad 0                         /* null */
        .quad 0x00CF9A000000FFFF        /* 0x08: flat 4 GiB code, 32-bit */
        .quad 0x00CF92000000FFFF        /* 0x10: flat 4 GiB data */
gdt_end:
        .set gdt_limit, gdt_end - gdt - 1
        .align 4
        .word 0                         /* pad so the 6-byte descriptor's base is aligned */
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt

        .section .bss
        .align 16
stack:  .space 16384
stack_top:

        .section .note.GNU-stack, "", @progbits /* no executable stack */
