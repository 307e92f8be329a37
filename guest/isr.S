/* Interrupt entry stubs. IRQ0 is tiny because it runs 100 times a second on an emulated CPU. */

/* Return from a same-privilege interrupt without IRET: this machine's nested KVM runs guest code in
 * KVM's instruction emulator, which cannot emulate a protected-mode IRET ("KVM internal error.
 * Suberror: 1, emulation failure"). The frame is EIP, CS, EFLAGS; CS never changes here (flat 0x08),
 * so rebuild it as EFLAGS, EIP and use POPF + RET. An interrupt taken right after POPF just nests. */
        .macro IRET_EMU
        pushl %eax              /* eax, EIP, CS, EFLAGS */
        movl 4(%esp), %eax
        xchgl %eax, 12(%esp)    /* eax, EIP, CS, EIP   ; eax = EFLAGS */
        movl %eax, 8(%esp)      /* eax, EIP, EFLAGS, EIP */
        popl %eax
        addl $4, %esp           /* EFLAGS, EIP */
        popfl
        ret
        .endm

        .text

/* Timer: count the tick, end-of-interrupt to the master PIC. The return restores the flags incl touched. */
        .globl isr_irq0
isr_irq0:
        incl ticks
        pushl %eax
        movb $0x20, %al
        outb %al, $0x20
        popl %eax
        IRET_EMU

/* Other master IRQs (all masked, so normally spurious IRQ7): EOI only if really in service. */
        .globl isr_irq_master
isr_irq_master:
        pushl %eax
        movb $0x0b, %al         /* OCW3: next read of 0x20 returns the in-service register */
        outb %al, $0x20
        inb $0x20, %al
        testb %al, %al
        jz 1f
        movb $0x20, %al
        outb %al, $0x20
1:      popl %eax
        IRET_EMU

/* Slave IRQs: EOI the slave if really in service; the master always saw the cascade on IRQ2. */
        .globl isr_irq_slave
isr_irq_slave:
        pushl %eax
        movb $0x0b, %al
        outb %al, $0xa0
        inb $0xa0, %al
        testb %al, %al
        jz 1f
        movb $0x20, %al
        outb %al, $0xa0
1:      movb $0x20, %al
        outb %al, $0x20
        popl %eax
        IRET_EMU

/* Local APIC interrupts (the AP's timer): end-of-interrupt to the local APIC, whose EOI
 * register smp.c keeps in lapic_eoi_reg. */
        .globl isr_lapic_eoi
isr_lapic_eoi:
        pushl %eax
        movl lapic_eoi_reg, %eax
        movl $0, (%eax)
        popl %eax
        IRET_EMU

/* NMI and every vector we never expect: ignore. */
        .globl isr_ignore
isr_ignore:
        IRET_EMU

/* CPU exceptions: push a dummy error code where the CPU pushes none, then the vector. The stack then
 * reads like the arguments exc_handler(vec, err, eip), which reports and exits (never returns). */
#define ERRCODE_MASK 0x60227D00 /* vectors 8,10-14,17,21,29,30 push an error code */
        .macro EXC n
exc\n:
        .if ((ERRCODE_MASK >> \n) & 1) == 0
        pushl $0
        .endif
        pushl $\n
        jmp exc_common
        .endm

        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        EXC \n
        .endr

exc_common:
        call exc_handler
3:      cli
        hlt
        jmp 3b

        .section .rodata
        .align 4
        .globl isr_exc_table
isr_exc_table:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .long exc\n
        .endr

        .section .note.GNU-stack, "", @progbits /* no executable stack */
