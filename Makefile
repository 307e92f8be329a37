# sealvm build. `make` builds the VMM and the test guests; `make check` runs every test;
# `make demo` shows a secure migration; `make bench` measures against QEMU.
CC      ?= gcc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
BASE    := -std=gnu11 -D_GNU_SOURCE -Isrc $(WARN) -pthread
LIBS    := -lssl -lcrypto -ljansson -lxxhash -lvncserver -lz -ltss2-esys -ltss2-mu -ltss2-rc -ltss2-tcti-swtpm -pthread
B       := build

LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(B)/obj/%.o)
ASAN_OBJ := $(LIB_SRC:src/%.c=$(B)/asan/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(B)/tools/%)
ASANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

.PHONY: all deps check demo demo-trust bench fuzz clean unit model
all: deps $(B)/sealvm guests $(TOOL_BIN)

# Installs missing Debian packages (as root) or says what to install. Every compile
# and link waits for it (order-only), so `make -jN` never compiles before the
# headers are there.
DEPS_SH ?= scripts/deps.sh
deps:
	@$(DEPS_SH) build

$(B)/obj/%.o: src/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/asan/%.o: src/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(BASE) -O1 -g $(ASANFLAGS) -MMD -MP -c $< -o $@

$(B)/libsealvm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libsealvm-asan.a: $(ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/sealvm: src/main.c $(B)/libsealvm.a | deps
	$(CC) $(BASE) $(CFLAGS) $< $(B)/libsealvm.a $(LIBS) -o $@

# Unit tests are built with ASan+UBSan against a sanitized copy of the library.
$(B)/tests/%: tests/unit/%.c tests/unit/unit.h $(B)/libsealvm-asan.a | deps
	@mkdir -p $(dir $@)
	$(CC) $(BASE) -O1 -g $(ASANFLAGS) -Itests/unit $< $(B)/libsealvm-asan.a $(LIBS) -o $@

$(B)/tools/%: tests/tools/%.c $(B)/libsealvm.a | deps
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) $< $(B)/libsealvm.a $(LIBS) -lvncclient -o $@

unit: $(UNIT_BIN)

include guest/guest.mk
include fuzz/fuzz.mk

check: all unit
	@scripts/deps.sh test
	@tests/run.sh

demo: all
	@scripts/demo.sh

# the same with a software TPM per host, signed table and policy, attestation, audit logs
demo-trust: all
	@scripts/deps.sh test
	@scripts/demo.sh --trust

# Model-checks the hand-over with SPIN (model/README.md); SECTIONS=deep for wider bounds.
model:
	@model/verify.sh $(SECTIONS)

bench: all
	@scripts/deps.sh bench
	@bench/run.sh $(BENCH)

clean:
	rm -rf $(B)

-include $(LIB_OBJ:.o=.d) $(ASAN_OBJ:.o=.d)
