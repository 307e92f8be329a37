# libFuzzer targets, built with clang (included by the top-level Makefile).
#   make fuzz-build             every fuzzer in build/fuzz/, plus build/fuzz/gen_seeds
#   make fuzz [FUZZ_SECONDS=N]  builds, replays fuzz/regress/ and fuzzes each target N s
#   make fuzz-seeds             rewrites the seed corpora in fuzz/corpus/ (gen_seeds + guest ELFs)
# A target is fuzz/NAME.c (NAME = fuzz_*) linked with a copy of the library whose objects
# are built with coverage, ASan and UBSan in build/fuzz/obj/.
B           ?= build
FUZZ_CC     ?= clang
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# clang names a few things gcc accepts: the kvm_cpuid2/kvm_msrs headers that vcpu.c embeds
# before their arrays, and gcc's -Wformat-truncation.
FUZZ_WARN   := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation \
               -Wno-unknown-warning-option -Wno-gnu-variable-sized-type-not-at-end
FUZZ_BASE   := -std=gnu11 -D_GNU_SOURCE -Isrc $(FUZZ_WARN) -pthread -O1 -g
FUZZ_LIBS   := -lssl -lcrypto -ljansson -lxxhash -lvncserver -lz -ltss2-esys -ltss2-mu -ltss2-rc -ltss2-tcti-swtpm -pthread
FUZZ_SRC    := $(filter-out src/main.c,$(sort $(wildcard src/*/*.c)))
FUZZ_OBJ    := $(FUZZ_SRC:src/%.c=$(B)/fuzz/obj/%.o)
FUZZ_NAMES  := fuzz_stream fuzz_state fuzz_multiboot fuzz_control fuzz_console fuzz_table fuzz_policy fuzz_evidence fuzz_audit fuzz_sealed fuzz_outcome fuzz_attest_phase fuzz_elf fuzz_maps fuzz_memserver fuzz_pageseal fuzz_pubmem
FUZZ_BIN    := $(FUZZ_NAMES:%=$(B)/fuzz/%)
FUZZ_SECONDS ?= 300

.PHONY: fuzz fuzz-build fuzz-seeds

fuzz-build: $(FUZZ_BIN) $(B)/fuzz/gen_seeds

fuzz:
	@scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz-seeds: $(B)/fuzz/gen_seeds $(B)/guest/counter.elf $(B)/guest/mbinfo.elf
	$(B)/fuzz/gen_seeds fuzz/corpus
	cp $(B)/guest/counter.elf $(B)/guest/mbinfo.elf fuzz/corpus/fuzz_multiboot/

$(B)/fuzz/obj/%.o: src/%.c | deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_BASE) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -MMD -MP -c $< -o $@

$(B)/fuzz/libsealvm-fuzz.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/fuzz/fuzz_%: fuzz/fuzz_%.c $(B)/fuzz/libsealvm-fuzz.a
	$(FUZZ_CC) $(FUZZ_BASE) -fsanitize=fuzzer $(FUZZ_SAN) -MMD -MP $< $(B)/fuzz/libsealvm-fuzz.a \
		$(FUZZ_LIBS) -o $@

# The seed generator is an ordinary program (no libFuzzer main) on the same objects.
$(B)/fuzz/gen_seeds: fuzz/gen_seeds.c $(B)/fuzz/libsealvm-fuzz.a
	$(FUZZ_CC) $(FUZZ_BASE) $(FUZZ_SAN) -MMD -MP $< $(B)/fuzz/libsealvm-fuzz.a $(FUZZ_LIBS) -o $@

-include $(FUZZ_OBJ:.o=.d) $(FUZZ_BIN:=.d) $(B)/fuzz/gen_seeds.d
