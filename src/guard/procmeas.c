#include "guard/procmeas.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "trust/keys.h"
#include "util/hex.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAP    (1ull << 62)
#define PM_FILE    (1ull << 61)
#define PAGE       ELF_PAGE
#define MAPS_TEXT_MAX (64u << 20)

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* ---- the shared module set ---- */

static struct module *set_find(struct module_set *s, const struct map_ent *m)
{
	for (size_t i = 0; i < s->n; i++)
		if (module_is(s->m[i], m))
			return s->m[i];
	return NULL;
}

static int set_add(struct module_set *s, struct module *mod, struct err *e)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct module **n = realloc(s->m, cap * sizeof(*n));
		if (!n)
			return err_set(e, -ENOMEM, "out of memory");
		s->m = n;
		s->cap = cap;
	}
	s->m[s->n++] = mod;
	return 0;
}

void module_set_free(struct module_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		module_free(s->m[i]);
	free(s->m);
	memset(s, 0, sizeof(*s));
}

void module_set_prune(struct module_set *s, uint64_t round)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (s->m[i]->seen_round + 1 < round)
			module_free(s->m[i]);
		else
			s->m[k++] = s->m[i];
	}
	s->n = k;
	if (s->rehash_next >= s->n)
		s->rehash_next = 0;
}

int module_set_rehash(struct module_set *s, uint64_t budget, uint64_t *hashed, struct err *e)
{
	uint64_t start = *hashed;

	/* a file whose size or times changed is hashed whole, now, whatever its turn */
	for (size_t i = 0; i < s->n; i++) {
		bool done;
		int rc;
		if (!module_changed(s->m[i]))
			continue;
		if ((rc = module_rehash_step(s->m[i], 0, &done, hashed, e)) < 0)
			return rc;
	}
	start = *hashed;
	for (size_t tries = 0; tries < s->n && *hashed - start < budget; tries++) {
		struct module *mod = s->m[s->rehash_next];
		bool done;
		int rc = module_rehash_step(mod, budget - (*hashed - start), &done, hashed, e);
		if (rc < 0)
			return rc;
		if (!done)
			break;
		s->rehash_next = (s->rehash_next + 1) % s->n;
	}
	return 0;
}

/* ---- pinning a process ---- */

struct layout;
static void layout_free(struct layout *L);
static void forget_verified(struct vmm_proc *p);

int procmeas_open(pid_t pid, struct vmm_proc **out, struct err *e)
{
	struct vmm_proc *p = calloc(1, sizeof(*p));
	char path[64];
	ssize_t n;

	*out = NULL;
	if (!p)
		return err_set(e, -ENOMEM, "out of memory");
	p->pid = pid;
	p->mapsfd = p->memfd = p->pagemapfd = -1;
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd < 0) {
		int rc = err_sys(e, -errno, "pidfd_open(%d)", (int)pid);
		free(p);
		return rc;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	p->mapsfd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	p->memfd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	p->pagemapfd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, p->exe_path, sizeof(p->exe_path) - 1);
	if (p->mapsfd < 0 || p->memfd < 0 || p->pagemapfd < 0 || n <= 0) {
		int rc = err_sys(e, -errno, "cannot open /proc/%d (maps, mem, pagemap, exe): the guard needs "
				 "CAP_SYS_PTRACE over the VMM processes", (int)pid);
		procmeas_close(p);
		return rc;
	}
	p->exe_path[n] = 0;
	if (n > 10 && !strcmp(p->exe_path + n - 10, " (deleted)"))
		p->exe_path[n - 10] = 0;
	*out = p;
	return 0;
}

void procmeas_close(struct vmm_proc *p)
{
	if (!p)
		return;
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->mapsfd >= 0)
		close(p->mapsfd);
	if (p->memfd >= 0)
		close(p->memfd);
	if (p->pagemapfd >= 0)
		close(p->pagemapfd);
	forget_verified(p);
	if (p->layout) {
		layout_free(p->layout);
		free(p->layout);
	}
	free(p->maps_text);
	free(p);
}

bool procmeas_gone(const struct vmm_proc *p)
{
	struct pollfd f = { .fd = p->pidfd, .events = POLLIN };

	return poll(&f, 1, 0) > 0;
}

/* Gone, or on its way out: the memory of an exiting process is torn down before its
 * pidfd says it exited, and that must not look like tampering. PF_EXITING is the
 * ninth field of /proc/PID/stat (after the command name, which may hold anything). */
static bool exiting(const struct vmm_proc *p)
{
	char path[64], buf[1024], *s;
	unsigned long flags = 0;
	ssize_t n;
	int fd;

	if (procmeas_gone(p))
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = 0;
	s = strrchr(buf, ')');
	if (!s || sscanf(s + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
		return false;
	return (flags & 0x4) != 0 || procmeas_gone(p);   /* PF_EXITING */
}

/* ---- one measurement ---- */

struct pmod {
	struct module *mod;
	uint64_t bias;
	bool exe;
	size_t *idx;                    /* its mappings (indices into maps), in address order */
	size_t n;
};

struct range {
	uint64_t lo, hi;
};

/* What a process's memory map says, analysed: reused while the map's text stays the
 * same (the same files at the same places), rebuilt when it changes. */
struct layout {
	struct maps maps;
	int *owner;                     /* maps index -> pmods index, -1 */
	const struct elf_load **load;   /* maps index -> its segment */
	struct pmod *pm;
	size_t npm, last_pm;
	size_t *idx;                    /* storage of every pmod's idx */
	struct range *code, *spans;     /* sorted: executable module mappings, module spans */
	size_t ncode, nspans, code_hint, span_hint;
	const struct map_ent *vdso;
};

/* A range compared every round, with the bytes that passed: the same bytes in the
 * same layout pass again (the verdict depends on nothing else). */
struct verified {
	uint64_t addr;
	size_t len;
	uint8_t *data;
};

struct ctx {
	struct vmm_proc *p;
	const struct procmeas_ref *ref;
	struct proc_result *r;
	struct layout L;
	struct module *exe;             /* the executable's module */
	uint8_t *buf;
	size_t buf_cap;
};

static bool failed(const struct ctx *c)
{
	return !c->r->ok;
}

__attribute__((format(printf, 3, 4))) static void fail(struct ctx *c, const char *check, const char *fmt, ...)
{
	va_list ap;

	if (failed(c))
		return;
	c->r->ok = false;
	snprintf(c->r->check, sizeof(c->r->check), "%s", check);
	va_start(ap, fmt);
	vsnprintf(c->r->reason, sizeof(c->r->reason), fmt, ap);
	va_end(ap);
}

static int read_maps(struct ctx *c, char **text, size_t *len)
{
	size_t cap = 64 << 10, n = 0;
	char *t = malloc(cap);

	if (!t || lseek(c->p->mapsfd, 0, SEEK_SET) < 0) {
		free(t);
		return -1;
	}
	for (;;) {
		ssize_t k;
		if (n == cap) {
			char *nt = cap < MAPS_TEXT_MAX ? realloc(t, cap * 2) : NULL;
			if (!nt) {
				free(t);
				return -1;
			}
			t = nt;
			cap *= 2;
		}
		k = read(c->p->mapsfd, t + n, cap - n);
		if (k < 0) {
			free(t);
			return -1;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	*text = t;
	*len = n;
	return 0;
}

/* Whether v lies in one of the sorted ranges; *hint remembers the last hit (resolved
 * pointers cluster: most lead into the C library). */
static bool in_ranges(const struct range *r, size_t n, uint64_t v, size_t *hint)
{
	size_t lo = 0, hi = n;

	if (*hint < n && v >= r[*hint].lo && v < r[*hint].hi)
		return true;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v < r[mid].lo) {
			hi = mid;
		} else if (v >= r[mid].hi) {
			lo = mid + 1;
		} else {
			*hint = mid;
			return true;
		}
	}
	return false;
}

static bool ptr_ok(void *opaque, uint64_t v, bool code)
{
	struct ctx *c = opaque;

	return in_ranges(c->L.code, c->L.ncode, v, &c->L.code_hint) ||
	       (!code && in_ranges(c->L.spans, c->L.nspans, v, &c->L.span_hint));
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static uint8_t *scratch(struct ctx *c, size_t n)
{
	if (n > c->buf_cap) {
		uint8_t *b = realloc(c->buf, n);
		if (!b)
			return NULL;
		c->buf = b;
		c->buf_cap = n;
	}
	return c->buf;
}

static const char *mod_label(const struct pmod *pm)
{
	return pm->mod->path;
}

/* The executable: the running file, and what is at its path now. */
static bool module_is_key(const struct map_ent *k, const struct map_ent *m)
{
	return k->ino == m->ino && k->dev_major == m->dev_major && k->dev_minor == m->dev_minor;
}

static void check_exe(struct ctx *c, struct module_set *mods, uint64_t round)
{
	struct vmm_proc *p = c->p;
	const struct map_ent *ent = NULL;
	char path[64], hex[65];
	struct module *mod;
	struct stat st;
	struct err e;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)p->pid);
	if (stat(path, &st) < 0) {
		fail(c, "exe", "cannot stat %s: %s", path, strerror(errno));
		return;
	}
	for (size_t i = 0; i < c->L.maps.n; i++) {
		const struct map_ent *m = &c->L.maps.ent[i];
		if (m->ino == st.st_ino && m->dev_major == major(st.st_dev) && m->dev_minor == minor(st.st_dev)) {
			ent = m;
			break;
		}
	}
	if (!ent) {
		fail(c, "exe", "process %d's executable %s is not among its mappings", (int)p->pid, p->exe_path);
		return;
	}
	if (p->exe_known && !module_is_key(&p->exe_key, ent)) {
		fail(c, "exe", "process %d runs another executable than when it was first measured", (int)p->pid);
		return;
	}
	if (!(mod = set_find(mods, ent))) {
		if (module_open(p->pid, ent, true, &mod, &e) < 0) {
			fail(c, "exe", "%s", e.msg);
			return;
		}
		if (set_add(mods, mod, &e) < 0) {
			module_free(mod);
			fail(c, "exe", "%s", e.msg);
			return;
		}
	}
	mod->seen_round = round;
	c->exe = mod;
	if (!p->exe_known) {
		p->exe_key = *ent;
		p->exe_known = true;
	}
	memcpy(c->r->exe_sha256, mod->sha256, 32);
	if (!table_allows_exe(c->ref->table, c->ref->host, mod->sha256)) {
		hex_encode(mod->sha256, 32, hex);
		fail(c, "exe", "process %d runs %s, sha256 %.16s…, which the integrity validation table does not allow%s",
		     (int)p->pid, p->exe_path, hex, c->ref->host ? " on this host" : "");
		return;
	}
	/* the file now at the executable's path: the next start would run it */
	if (stat(p->exe_path, &st) < 0) {
		snprintf(c->r->note, sizeof(c->r->note), "the executable %s is no longer on disk (%s)", p->exe_path,
			 strerror(errno));
		return;
	}
	if (st.st_ino == mod->ino && major(st.st_dev) == mod->dev_major && minor(st.st_dev) == mod->dev_minor)
		return;
	if (!p->disk_known || p->disk_ino != st.st_ino || p->disk_dev != st.st_dev || p->disk_size != (uint64_t)st.st_size ||
	    p->disk_mtime_ns != st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec ||
	    p->disk_ctime_ns != st.st_ctim.tv_sec * 1000000000ll + st.st_ctim.tv_nsec) {
		if (sha256_file(p->exe_path, p->disk_sha256, &e) < 0) {
			fail(c, "exe-on-disk", "%s was replaced on disk and cannot be read: %s", p->exe_path, e.msg);
			return;
		}
		p->disk_known = true;
		p->disk_ino = st.st_ino;
		p->disk_dev = st.st_dev;
		p->disk_size = (uint64_t)st.st_size;
		p->disk_mtime_ns = st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
		p->disk_ctime_ns = st.st_ctim.tv_sec * 1000000000ll + st.st_ctim.tv_nsec;
	}
	hex_encode(p->disk_sha256, 32, hex);
	if (!table_allows_exe(c->ref->table, c->ref->host, p->disk_sha256)) {
		fail(c, "exe-on-disk", "%s was replaced on disk by a build the integrity validation table does not allow "
		     "(sha256 %.16s…)", p->exe_path, hex);
		return;
	}
	snprintf(c->r->note, sizeof(c->r->note), "%s now holds another allowed build (sha256 %.16s…)", p->exe_path, hex);
}

static int find_pmod(struct ctx *c, const struct map_ent *m)
{
	/* a file's mappings are next to each other: try the last one found first */
	if (c->L.last_pm < c->L.npm && module_is(c->L.pm[c->L.last_pm].mod, m))
		return (int)c->L.last_pm;
	for (size_t k = 0; k < c->L.npm; k++)
		if (module_is(c->L.pm[k].mod, m)) {
			c->L.last_pm = k;
			return (int)k;
		}
	return -1;
}

/* A module's load bias: the one under which all its executable mappings, and as many
 * others as possible, are pieces of its segments. Mappings of the file that are not
 * (a program may map a file it also runs, to read it) are not the module's. */
static void choose_bias(struct ctx *c, int k)
{
	struct pmod *pm = &c->L.pm[k];
	size_t best_fit = 0;
	uint64_t best = 0;
	bool found = false;

	/* candidates from each mapping in turn; the first (the ELF header's page) almost
	 * always gives the bias every mapping fits */
	for (size_t f = 0; f < pm->n && best_fit < pm->n; f++) {
		uint64_t cand[ELF_MAX_LOADS];
		size_t nc = module_bias_candidates(pm->mod, &c->L.maps.ent[pm->idx[f]], cand, ELF_MAX_LOADS);
		for (size_t j = 0; j < nc; j++) {
			const struct elf_load *l;
			size_t fit = 0;
			bool code_ok = true;
			for (size_t x = 0; x < pm->n && code_ok; x++) {
				if (module_fits(pm->mod, cand[j], &c->L.maps.ent[pm->idx[x]], &l))
					fit++;
				else if (c->L.maps.ent[pm->idx[x]].x)
					code_ok = false;
			}
			if (code_ok && fit > best_fit) {
				best = cand[j];
				best_fit = fit;
				found = true;
			}
		}
	}
	if (!found) {
		fail(c, "maps", "the code mappings of %s do not match its loadable segments (code remapped or moved)",
		     mod_label(pm));
		return;
	}
	pm->bias = best;
	for (size_t x = 0; x < pm->n; x++)
		if (!module_fits(pm->mod, best, &c->L.maps.ent[pm->idx[x]], &c->L.load[pm->idx[x]]))
			c->L.owner[pm->idx[x]] = -1;
}

/* Every file page of every segment must be mapped from the file, where the program
 * headers put it: code, read-only data, RELRO and .got.plt cannot have been replaced by
 * other memory at the same addresses. */
static void check_coverage(struct ctx *c, int k)
{
	const struct pmod *pm = &c->L.pm[k];
	const struct elf_info *elf = &pm->mod->elf;

	for (size_t l = 0; l < elf->nloads; l++) {
		uint64_t lo = pm->bias + elf->loads[l].vaddr / PAGE * PAGE;
		uint64_t hi = pm->bias + (elf->loads[l].vaddr + elf->loads[l].filesz + PAGE - 1) / PAGE * PAGE;
		uint64_t at = lo;

		for (size_t x = 0; x < pm->n && at < hi; x++) {
			const struct map_ent *m = &c->L.maps.ent[pm->idx[x]];
			if (m->end <= at || c->L.owner[pm->idx[x]] != k)
				continue;
			if (m->start > at)
				break;
			at = m->end;
		}
		if (at < hi) {
			fail(c, "maps", "segment %zu of %s (0x%llx-0x%llx) is not mapped from its file at 0x%llx", l,
			     mod_label(pm), (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)at);
			return;
		}
	}
}

/* Which file each mapping belongs to, the modules' load biases, and executable memory
 * that is not a measured code segment. */
static void check_maps(struct ctx *c, struct module_set *mods, uint64_t round)
{
	struct err e;

	for (size_t i = 0; i < c->L.maps.n && !failed(c); i++) {
		const struct map_ent *m = &c->L.maps.ent[i];
		struct module *mod;
		int k;

		if (!m->x || !map_is_file(m) || find_pmod(c, m) >= 0)
			continue;
		if (!(mod = set_find(mods, m))) {
			if (module_open(c->p->pid, m, false, &mod, &e) < 0) {
				fail(c, "library", "code mapped at 0x%llx cannot be measured: %s", (unsigned long long)m->start,
				     e.msg);
				return;
			}
			if (set_add(mods, mod, &e) < 0) {
				module_free(mod);
				fail(c, "library", "%s", e.msg);
				return;
			}
		}
		mod->seen_round = round;
		k = (int)c->L.npm++;
		c->L.pm[k] = (struct pmod){ .mod = mod, .exe = mod == c->exe };
	}
	/* inaccessible (PROT_NONE) pages, such as the gaps the loader leaves between a
	 * library's segments, hold nothing to measure */
	for (size_t i = 0; i < c->L.maps.n; i++) {
		const struct map_ent *m = &c->L.maps.ent[i];
		c->L.owner[i] = map_is_file(m) && (m->r || m->w || m->x) ? find_pmod(c, m) : -1;
		if (c->L.owner[i] >= 0)
			c->L.pm[c->L.owner[i]].n++;
	}
	/* each module's mappings, in address order, laid out one module after another */
	{
		size_t at = 0;
		for (size_t k = 0; k < c->L.npm; k++) {
			c->L.pm[k].idx = c->L.idx + at;
			at += c->L.pm[k].n;
			c->L.pm[k].n = 0;
		}
		for (size_t i = 0; i < c->L.maps.n; i++)
			if (c->L.owner[i] >= 0) {
				struct pmod *pm = &c->L.pm[c->L.owner[i]];
				pm->idx[pm->n++] = i;
			}
	}
	for (size_t k = 0; k < c->L.npm && !failed(c); k++)
		choose_bias(c, (int)k);
	for (size_t k = 0; k < c->L.npm && !failed(c); k++)
		check_coverage(c, (int)k);
	for (size_t i = 0; i < c->L.maps.n && !failed(c); i++) {
		const struct map_ent *m = &c->L.maps.ent[i];
		if (!m->x)
			continue;
		if (c->L.owner[i] < 0) {
			if (!strcmp(m->path, "[vdso]")) {
				c->L.vdso = m;
				continue;
			}
			if (!strcmp(m->path, "[vsyscall]"))
				continue;
			fail(c, "maps", "executable memory at 0x%llx-0x%llx (%s) is not a measured code segment",
			     (unsigned long long)m->start, (unsigned long long)m->end, m->path[0] ? m->path : "anonymous");
			return;
		}
		if (m->w || !(c->L.load[i]->flags & ELF_PF_X)) {
			fail(c, "maps", "%s is mapped %s at 0x%llx where its segment is %s", mod_label(&c->L.pm[c->L.owner[i]]),
			     m->w ? "writable and executable" : "executable", (unsigned long long)m->start,
			     m->w ? "code" : "not code");
			return;
		}
	}
	if (failed(c))
		return;
	/* where resolved pointers may lead */
	c->L.code = calloc(c->L.maps.n + 1, sizeof(*c->L.code));
	c->L.spans = calloc(c->L.npm + 1, sizeof(*c->L.spans));
	if (!c->L.code || !c->L.spans) {
		fail(c, "maps", "out of memory");
		return;
	}
	for (size_t i = 0; i < c->L.maps.n; i++)
		if (c->L.maps.ent[i].x && (c->L.owner[i] >= 0 || &c->L.maps.ent[i] == c->L.vdso))
			c->L.code[c->L.ncode++] = (struct range){ c->L.maps.ent[i].start, c->L.maps.ent[i].end };
	for (size_t k = 0; k < c->L.npm; k++)
		c->L.spans[c->L.nspans++] = (struct range){ c->L.pm[k].bias + c->L.pm[k].mod->elf.span_lo,
							c->L.pm[k].bias + c->L.pm[k].mod->elf.span_hi + 1 };
	qsort(c->L.spans, c->L.nspans, sizeof(*c->L.spans), cmp_range);
}

/* Reads [addr, addr + n) of the process and compares it with the module's prediction. */
static struct verified *find_verified(struct vmm_proc *p, uint64_t addr, size_t n)
{
	for (size_t i = 0; i < p->nverified; i++)
		if (p->verified[i].addr == addr && p->verified[i].len == n)
			return &p->verified[i];
	return NULL;
}

/* Remembers bytes that passed (best effort: without memory they are compared again). */
static void remember(struct vmm_proc *p, uint64_t addr, const uint8_t *b, size_t n)
{
	struct verified *v = find_verified(p, addr, n), *nv;
	uint8_t *d;

	if (!v) {
		if (!(nv = realloc(p->verified, (p->nverified + 1) * sizeof(*nv))))
			return;
		p->verified = nv;
		v = &p->verified[p->nverified];
		*v = (struct verified){ .addr = addr, .len = n };
		if (!(v->data = malloc(n)))
			return;
		p->nverified++;
	}
	d = v->data;
	memcpy(d, b, n);
}

/* Reads [addr, addr + n) of the process and compares it with the module's prediction.
 * every_round: a range read every round, whose bytes are remembered once they pass. */
static void compare_run(struct ctx *c, size_t i, uint64_t addr, size_t n, bool slots_only, bool every_round)
{
	const struct map_ent *m = &c->L.maps.ent[i];
	const struct pmod *pm = &c->L.pm[c->L.owner[i]];
	struct module_cmp cmp = { 0 };
	uint8_t *b = scratch(c, n);
	struct verified *v;
	ssize_t got;

	if (!b) {
		fail(c, "code", "out of memory");
		return;
	}
	got = pread(c->p->memfd, b, n, (off_t)addr);
	if (got != (ssize_t)n) {
		fail(c, "code", "cannot read process %d's memory at 0x%llx (%zu bytes): %s", (int)c->p->pid,
		     (unsigned long long)addr, n, got < 0 ? strerror(errno) : "short read");
		return;
	}
	c->r->bytes_read += n;
	if (every_round && (v = find_verified(c->p, addr, n)) && !memcmp(v->data, b, n)) {
		c->r->bytes_unchanged += n;
		return;
	}
	module_compare(pm->mod, pm->bias, m, c->L.load[i], addr, b, n, slots_only, ptr_ok, c, &cmp);
	c->r->bytes_compared += cmp.bytes;
	c->r->relocs_predicted += cmp.relocs_predicted;
	c->r->relocs_validated += cmp.relocs_validated;
	c->r->relocs_skipped += cmp.relocs_skipped;
	if (cmp.bad) {
		bool relro = elf_in_relro(&pm->mod->elf, cmp.bad_addr - pm->bias);
		fail(c, slots_only ? "got" : relro ? "relro" : "code", "process %d: %s", (int)c->p->pid, cmp.why);
	} else if (every_round) {
		remember(c->p, addr, b, n);
	}
}

static bool page_in_relro(const struct elf_info *elf, uint64_t v)
{
	return elf->has_relro && v + PAGE > elf->relro_vaddr && v < elf->relro_vaddr + elf->relro_memsz;
}

/* Non-writable mappings of the modules: the pages that must be read, then compared. */
static void check_code(struct ctx *c, uint64_t *sweep_left, bool *wrapped)
{
	uint64_t *pm_ent = NULL;
	size_t pm_cap = 0;

	for (size_t i = 0; i < c->L.maps.n && !failed(c); i++) {
		const struct map_ent *m = &c->L.maps.ent[i];
		const struct pmod *pm;
		uint64_t npages, run = 0, run_len = 0;
		int run_kind = 0;
		ssize_t got;

		if (c->L.owner[i] < 0 || m->w || !m->r)
			continue;
		pm = &c->L.pm[c->L.owner[i]];
		npages = (m->end - m->start) / PAGE;
		if (npages > pm_cap) {
			uint64_t *n = realloc(pm_ent, npages * 8);
			if (!n) {
				fail(c, "code", "out of memory");
				break;
			}
			pm_ent = n;
			pm_cap = npages;
		}
		got = pread(c->p->pagemapfd, pm_ent, npages * 8, (off_t)(m->start / PAGE * 8));
		if (got != (ssize_t)(npages * 8)) {
			fail(c, "code", "cannot read process %d's page map at 0x%llx: %s", (int)c->p->pid,
			     (unsigned long long)m->start, got < 0 ? strerror(errno) : "short read");
			break;
		}
		c->r->pages_scanned += npages;
		for (uint64_t k = 0; k <= npages && !failed(c); k++) {
			uint64_t a = m->start + k * PAGE;
			int want = 0;       /* 1: every round, 2: the sweep's turn */

			if (k < npages) {
				uint64_t f = pm_ent[k], v = a - pm->bias;
				bool present = f & PM_PRESENT, swapped = f & PM_SWAP;
				bool copied = (present && !(f & PM_FILE)) || swapped;
				bool relro = page_in_relro(&pm->mod->elf, v);

				if (relro ? module_got_page(pm->mod, v) : copied) {
					/* every round: code or read-only data somebody wrote, and the GOT */
					want = 1;
					c->r->pages_copied += !relro;
				} else if ((present || swapped) && *sweep_left >= PAGE && a >= c->p->sweep_cursor) {
					/* in turn: the rest of RELRO, and resident pages still the file's */
					want = 2;
					*sweep_left -= PAGE;
					c->r->bytes_swept += PAGE;
					c->p->sweep_cursor = a + PAGE;
				}
			}
			if (want && want == run_kind && run + run_len == a) {
				run_len += PAGE;
				continue;
			}
			if (run_len)
				compare_run(c, i, run, run_len, false, run_kind == 1);
			run = a;
			run_len = want ? PAGE : 0;
			run_kind = want;
		}
	}
	free(pm_ent);
	/* the sweep went past the last page with budget left: start again from the bottom */
	*wrapped = *sweep_left >= PAGE;
}

/* Lazily bound JUMP_SLOT pointers in writable .got.plt: they must lead into code. */
static void check_got(struct ctx *c)
{
	for (size_t i = 0; i < c->L.maps.n && !failed(c); i++) {
		const struct map_ent *m = &c->L.maps.ent[i];
		const struct pmod *pm;
		uint64_t lo, hi;

		if (c->L.owner[i] < 0 || !m->w)
			continue;
		pm = &c->L.pm[c->L.owner[i]];
		if (pm->mod->lazy_lo >= pm->mod->lazy_hi)
			continue;
		lo = pm->bias + pm->mod->lazy_lo > m->start ? pm->bias + pm->mod->lazy_lo : m->start;
		hi = pm->bias + pm->mod->lazy_hi < m->end ? pm->bias + pm->mod->lazy_hi : m->end;
		if (lo < hi)
			compare_run(c, i, lo, hi - lo, true, true);
	}
}

static void check_vdso(struct ctx *c)
{
	const struct map_ent *v = c->L.vdso;
	uint8_t *b;
	size_t n;

	if (!v || !c->ref->vdso)
		return;
	n = v->end - v->start;
	if (n != c->ref->vdso_len) {
		fail(c, "vdso", "process %d's vDSO is %zu bytes, the kernel's is %zu", (int)c->p->pid, n, c->ref->vdso_len);
		return;
	}
	if (!(b = scratch(c, n)) || pread(c->p->memfd, b, n, (off_t)v->start) != (ssize_t)n) {
		fail(c, "vdso", "cannot read process %d's vDSO", (int)c->p->pid);
		return;
	}
	c->r->bytes_read += n;
	c->r->bytes_compared += n;
	if (memcmp(b, c->ref->vdso, n)) {
		size_t k = 0;
		while (b[k] == c->ref->vdso[k])
			k++;
		fail(c, "vdso", "process %d's vDSO differs from the kernel's at 0x%llx", (int)c->p->pid,
		     (unsigned long long)(v->start + k));
	}
}

static void layout_free(struct layout *L)
{
	free(L->owner);
	free(L->load);
	free(L->pm);
	free(L->idx);
	free(L->code);
	free(L->spans);
	maps_free(&L->maps);
	memset(L, 0, sizeof(*L));
}

static void forget_verified(struct vmm_proc *p)
{
	for (size_t i = 0; i < p->nverified; i++)
		free(p->verified[i].data);
	free(p->verified);
	p->verified = NULL;
	p->nverified = 0;
}

/* Every library must be one the table lists (when it lists any): checked every round,
 * since the table may have been updated. */
static void check_libs(struct ctx *c, uint64_t round)
{
	for (size_t k = 0; k < c->L.npm && !failed(c); k++) {
		struct module *mod = c->L.pm[k].mod;
		mod->seen_round = round;
		c->L.pm[k].exe = mod == c->exe;
		if (!c->L.pm[k].exe && !table_allows_lib(c->ref->table, mod->sha256)) {
			char hex[65];
			hex_encode(mod->sha256, 32, hex);
			fail(c, "library", "library %s (sha256 %.16s…) is not among the integrity validation table's "
			     "libraries", mod->path, hex);
		}
	}
	c->r->modules = c->L.npm;
}

/* The map, analysed: last round's if its text is the same, else a new analysis. */
static bool build_layout(struct ctx *c, struct module_set *mods, char *text, size_t len, uint64_t round)
{
	struct vmm_proc *p = c->p;
	struct err e;

	if (p->layout && len == p->maps_len && !memcmp(text, p->maps_text, len)) {
		c->L = *(struct layout *)p->layout;
		/* the modules stay alive while a layout refers to them */
		for (size_t k = 0; k < c->L.npm; k++)
			c->L.pm[k].mod->seen_round = round;
		return true;
	}
	if (maps_parse(text, len, &c->L.maps, &e) < 0) {
		fail(c, "maps", "process %d: %s", (int)p->pid, e.msg);
		return false;
	}
	c->L.owner = calloc(c->L.maps.n + 1, sizeof(*c->L.owner));
	c->L.load = calloc(c->L.maps.n + 1, sizeof(*c->L.load));
	c->L.pm = calloc(c->L.maps.n + 1, sizeof(*c->L.pm));
	c->L.idx = calloc(c->L.maps.n + 1, sizeof(*c->L.idx));
	if (!c->L.owner || !c->L.load || !c->L.pm || !c->L.idx)
		fail(c, "maps", "out of memory");
	return false;
}

/* Keeps a layout that passed for the next round (taking text); drops one that did not. */
static void keep_layout(struct ctx *c, bool reused, char **text, size_t len)
{
	struct vmm_proc *p = c->p;

	if (reused && !failed(c))
		return;
	forget_verified(p);
	if (p->layout) {
		layout_free(p->layout);
		free(p->layout);
		p->layout = NULL;
	}
	free(p->maps_text);
	p->maps_text = NULL;
	p->maps_len = 0;
	if (failed(c) || !(p->layout = malloc(sizeof(struct layout)))) {
		if (!reused)
			layout_free(&c->L);
		return;
	}
	*(struct layout *)p->layout = c->L;
	p->maps_text = *text;
	p->maps_len = len;
	*text = NULL;
}

void procmeas_run(struct vmm_proc *p, struct module_set *mods, const struct procmeas_ref *ref, uint64_t round,
		  struct proc_result *r)
{
	struct ctx c = { .p = p, .ref = ref, .r = r };
	uint64_t t0 = mono_ns(), sweep_left = ref->sweep_bytes;
	bool wrapped = false, reused = false;
	char *text = NULL;
	size_t len = 0;

	memset(r, 0, sizeof(*r));
	r->ok = true;
	if (procmeas_gone(p)) {
		r->gone = true;
		goto out;
	}
	if (read_maps(&c, &text, &len) < 0 || len == 0) {
		fail(&c, "maps", "cannot read process %d's memory map", (int)p->pid);
		goto out;
	}
	reused = build_layout(&c, mods, text, len, round);
	r->mappings = c.L.maps.n;
	if (!failed(&c))
		check_exe(&c, mods, round);
	if (!failed(&c) && !reused)
		check_maps(&c, mods, round);
	if (!failed(&c))
		check_libs(&c, round);
	if (!failed(&c))
		check_code(&c, &sweep_left, &wrapped);
	if (!failed(&c))
		check_got(&c);
	if (!failed(&c))
		check_vdso(&c);
	if (!failed(&c) && wrapped) {
		p->sweep_cursor = 0;
		p->sweeps++;
	}
	keep_layout(&c, reused, &text, len);
out:
	/* a process that ended while it was measured is gone, not tampered with */
	/* excused only for a while: a main thread that exits alone leaves a process that
	 * runs on, and that is measured like any other */
	if (!r->ok && exiting(p) && (procmeas_gone(p) || ++p->exiting_rounds <= 50)) {
		r->gone = true;
		r->ok = true;
		r->check[0] = r->reason[0] = 0;
	}
	free(text);
	free(c.buf);
	r->ns = mono_ns() - t0;
}
