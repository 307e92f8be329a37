# Freestanding 32-bit Multiboot test guests (included by the top-level Makefile, which sets B).
# No 32-bit libc or libgcc is installed: compile -m32 -ffreestanding and link with ld directly.
GUEST_CC     := gcc
GUEST_CFLAGS := -m32 -std=c11 -ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 \
                -Wall -Wextra -Werror -mgeneral-regs-only -fno-asynchronous-unwind-tables -MMD -MP
GUEST_LD     := ld -m elf_i386 -T guest/linker.ld -z max-page-size=0x1000 --build-id=none
GUEST_PROGS  := counter memcheck mbinfo touch console
GUEST_RT     := start isr time lib cpus smp trampoline
GUEST_BIN    := $(GUEST_PROGS:%=$(B)/guest/%.elf)
GUEST_RT_OBJ := $(GUEST_RT:%=$(B)/guest/obj/%.o)

.PHONY: guests
# keep the objects: they are make intermediates of the pattern rules below
.SECONDARY: $(GUEST_RT_OBJ) $(GUEST_PROGS:%=$(B)/guest/obj/%.o)
guests: $(GUEST_BIN)

$(B)/guest/obj/%.o: guest/%.c | deps
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(B)/guest/obj/%.o: guest/%.S | deps
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(B)/guest/%.elf: $(GUEST_RT_OBJ) $(B)/guest/obj/%.o guest/linker.ld
	$(GUEST_LD) -o $@ $(GUEST_RT_OBJ) $(B)/guest/obj/$*.o

-include $(wildcard $(B)/guest/obj/*.d)
