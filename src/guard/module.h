/* A file whose code a VMM process runs (its executable, or a shared library), as the
 * guard measures it:
 *
 *  - opened once, through /proc/PID/map_files (the very file the process maps, even if
 *    the name on disk now points elsewhere) or /proc/PID/exe, and kept open;
 *  - read once: its SHA-256 (checked against the integrity validation table for the
 *    executable, and for libraries when the table lists them; otherwise pinned at
 *    first sight) and the bytes of its loadable segments, kept as the reference the
 *    process's mapped pages are compared with;
 *  - re-hashed from the open file in bounded steps (module_rehash_step), and at once
 *    when its size or times change, so a file changed in place on disk (which changes
 *    the page cache every process maps) cannot go unnoticed.
 *
 * The expected content of a mapped page is the file's bytes at the mapping's offset,
 * with what the dynamic loader writes applied: zeros past a segment's file size, and
 * every dynamic relocation (elf.h). RELATIVE relocations are predicted exactly (load
 * bias + addend); symbolic ones (GLOB_DAT, JUMP_SLOT, 64, IRELATIVE) depend on symbol
 * resolution and IFUNC choices at run time, so they are not predicted but validated:
 * the pointer must lead into a module the process maps (into code for JUMP_SLOT and
 * IRELATIVE). TLS relocations (small offsets) are skipped and counted. */
#ifndef SEALVM_GUARD_MODULE_H
#define SEALVM_GUARD_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "guard/elf.h"
#include "guard/maps.h"
#include "util/err.h"

#define MODULE_MAX_FILE (1ull << 30)

struct evp_md_ctx_st;

struct module {
	uint32_t dev_major, dev_minor;  /* identity as /proc/PID/maps shows it (the key) */
	uint64_t ino;
	char path[MAPS_PATH_MAX];       /* for messages */
	int fd;                         /* the file itself, kept open */
	uint64_t size;                  /* at first read */
	struct timespec mtime, ctime;
	uint8_t sha256[32];             /* pinned at first read */
	uint8_t *ref;                   /* file bytes [0, ref_len): every loadable segment */
	size_t ref_len;
	struct elf_info elf;
	uint64_t *got_pages;            /* RELRO pages (vaddr) holding resolved pointers: GOT */
	size_t ngot_pages;
	uint64_t lazy_lo, lazy_hi;      /* JUMP_SLOTs outside RELRO (lazily bound .got.plt), vaddrs */
	/* rolling re-hash */
	struct evp_md_ctx_st *rehash;
	uint64_t rehash_off;
	uint64_t rehashes;              /* complete re-hashes that matched */
	unsigned users;                 /* processes mapping it */
	uint64_t seen_round;
};

/* Opens and reads the file mapped by m in process pid (exe: the process's executable,
 * through /proc/PID/exe). The result is owned by the caller (module_free). */
int module_open(pid_t pid, const struct map_ent *m, bool exe, struct module **out, struct err *e);
/* The part of module_open after reading: mod->ref holds mod->size bytes of the file
 * (mod->fd may be -1); parses them and keeps what can be mapped. */
int module_parse(struct module *mod, struct err *e);
void module_free(struct module *mod);
bool module_is(const struct module *mod, const struct map_ent *m);

/* Checks the open file's size and times against the first read (a change triggers a
 * full re-hash now), then re-hashes up to budget bytes of it. Returns 0 while the file
 * still hashes as pinned (*completed counts a finished pass), -EBADMSG with e naming
 * the change when it does not. */
int module_rehash_step(struct module *mod, uint64_t budget, bool *completed, uint64_t *hashed, struct err *e);

/* Whether the open file's size or times differ from the last complete hash. */
bool module_changed(const struct module *mod);

/* Validates a pointer the loader resolved: whether v (or 0) lies in a module the
 * process maps (code: in an executable mapping of one). */
typedef bool (*module_ptr_ok_fn)(void *opaque, uint64_t v, bool code);

struct module_cmp {
	uint64_t bytes;                 /* compared */
	uint64_t relocs_predicted;      /* RELATIVE slots checked exactly */
	uint64_t relocs_validated;      /* symbolic slots whose pointer was validated */
	uint64_t relocs_skipped;        /* TLS and unknown types: not checked */
	bool bad;
	uint64_t bad_addr;              /* first mismatching byte */
	char why[256];
};

/* Compares buf (the process's bytes at [addr, addr + n), inside mapping m of this
 * module loaded at bias, m's segment being load) with what the module predicts; fills
 * r (accumulating). slots_only: check only the JUMP_SLOT pointers in the range (the
 * writable .got.plt of a lazily bound module), not the other bytes. */
void module_compare(const struct module *mod, uint64_t bias, const struct map_ent *m, const struct elf_load *load,
		    uint64_t addr, const uint8_t *buf, size_t n, bool slots_only, module_ptr_ok_fn ok, void *opaque,
		    struct module_cmp *r);

/* Whether the RELRO page at vaddr holds a resolved pointer the loader looked up
 * (GLOB_DAT, JUMP_SLOT, IRELATIVE): the GOT, compared every round. */
bool module_got_page(const struct module *mod, uint64_t vaddr);

/* Load biases under which mapping m could be one of this module's segments (at most
 * max); a module's bias is the one every one of its mappings fits. */
size_t module_bias_candidates(const struct module *mod, const struct map_ent *m, uint64_t *out, size_t max);
/* Whether mapping m is a piece of one of the module's loadable segments when the module
 * is loaded at bias (right place, right file offset); *load gets the segment. */
bool module_fits(const struct module *mod, uint64_t bias, const struct map_ent *m, const struct elf_load **load);

#endif
