/* Measuring one running VMM process from outside (issue 13): every interval,
 *
 *  exe          the file the process runs (/proc/PID/exe) hashes to a sealvm build the
 *               integrity validation table allows on this host
 *  exe-on-disk  the file now at the executable's path is that same file, or another
 *               allowed build (a replacement by anything else is an alarm)
 *  maps         every executable mapping is a loadable code segment of an ELF file the
 *               process maps, at the place and file offset its program headers give
 *               (never writable, never anonymous: no injected or remapped code)
 *  library      every mapped library hashes to what the table lists (when it lists
 *               libraries) and to what it hashed when the guard first saw it
 *  code         the bytes of the non-writable mappings equal the file's (see below)
 *  relro        relocated read-only data: RELATIVE relocations hold exactly bias +
 *               addend, resolved pointers lead into mapped modules, .dynamic holds
 *               what the loader writes there (module.h)
 *  got          lazily bound JUMP_SLOT pointers (writable .got.plt) lead into code
 *  vdso         the kernel's vDSO equals the guard's own
 *
 * Which bytes are read, and why that suffices: a page of a private file mapping is
 * either the page cache's page of the file (pagemap says "file") or, once anything
 * wrote to it — a write through /proc/PID/mem or ptrace, or the process itself after
 * mprotect — a private anonymous copy (copy-on-write), or that copy swapped out. The
 * file's page cache is verified by hashing the file (module.h). So every round the
 * guard reads the page map of every code and read-only mapping and compares, through
 * /proc/PID/mem, every copied page of code or read-only data (the tamper signal; there
 * should be none) and every RELRO page holding resolved pointers (the GOT), and checks
 * the lazily bound .got.plt. The other RELRO pages (relocated data: vtables, method
 * tables) and the resident pages that are still the file's are compared in a rolling
 * sweep, sweep_bytes a round, which re-checks the reasoning above rather than relying
 * on it. x86-64 code is position-independent, so the loader writes no relocation
 * into code segments; if an ELF has text relocations anyway, their slots are
 * predicted or validated like RELRO's.
 *
 * The process is pinned at first sight: a pidfd, and /proc/PID/{maps,mem,pagemap}
 * opened once (they stay bound to that process's memory even if the pid is reused). */
#ifndef SEALVM_GUARD_PROCMEAS_H
#define SEALVM_GUARD_PROCMEAS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "guard/maps.h"
#include "guard/module.h"
#include "trust/table.h"
#include "util/err.h"

/* The modules every watched process maps, shared (a library is read once). */
struct module_set {
	size_t n, cap;
	struct module **m;
	size_t rehash_next;             /* round-robin position of the rolling re-hash */
};

void module_set_free(struct module_set *s);
/* Drops modules no process used in round (their files are closed). */
void module_set_prune(struct module_set *s, uint64_t round);
/* Re-hashes up to budget bytes of the modules in turn. 0, or -EBADMSG naming the
 * changed file. */
int module_set_rehash(struct module_set *s, uint64_t budget, uint64_t *hashed, struct err *e);

/* What the process is measured against. */
struct procmeas_ref {
	const struct trust_table *table;
	const struct table_host *host;  /* this host's table entry (may be NULL) */
	uint64_t sweep_bytes;           /* resident library pages compared a round */
	const uint8_t *vdso;            /* the guard's own vDSO */
	size_t vdso_len;
};

struct proc_result {
	bool ok, gone;
	char check[16];                 /* the failed check (see above), "" when ok */
	char reason[600];
	char note[300];                 /* something worth saying that is not a failure */
	uint64_t ns;
	uint64_t modules, mappings;
	uint64_t pages_scanned;         /* pagemap entries looked at */
	uint64_t pages_copied;          /* copy-on-write pages found in code or read-only data */
	uint64_t bytes_read, bytes_compared, bytes_swept;
	uint64_t bytes_unchanged;       /* read every round, the same bytes that passed before */
	uint64_t relocs_predicted, relocs_validated, relocs_skipped;
	uint8_t exe_sha256[32];
};

struct verified;

struct vmm_proc {
	pid_t pid;
	int pidfd, mapsfd, memfd, pagemapfd;
	char exe_path[PATH_MAX];        /* where the executable was when first seen */
	bool exe_known;                 /* exe_key is set */
	struct map_ent exe_key;         /* the executable's identity (dev, inode) at first sight */
	/* the file last found at exe_path when it was not the running one */
	uint64_t disk_ino, disk_dev, disk_size;
	int64_t disk_mtime_ns, disk_ctime_ns;
	uint8_t disk_sha256[32];
	bool disk_known;
	uint64_t sweep_cursor;
	uint64_t sweeps;                /* complete passes of the rolling sweep */
	unsigned exiting_rounds;        /* failures excused because it was exiting */
	/* last round's map, analysed, and the ranges compared every round that passed
	 * with it (procmeas.c): reused while the map's text stays the same */
	char *maps_text;
	size_t maps_len;
	void *layout;
	struct verified *verified;
	size_t nverified;
};

/* Pins process pid (pidfd and /proc files). The process is not measured yet. */
int procmeas_open(pid_t pid, struct vmm_proc **out, struct err *e);
void procmeas_close(struct vmm_proc *p);
/* Whether the process has ended. */
bool procmeas_gone(const struct vmm_proc *p);

/* One measurement of p; round marks the modules it uses. Never fails: the verdict is
 * in r (r->gone when the process ended meanwhile). */
void procmeas_run(struct vmm_proc *p, struct module_set *mods, const struct procmeas_ref *ref, uint64_t round,
		  struct proc_result *r);

#endif
