#include "guard/module.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/hex.h"

#define CHUNK (256u << 10)
#define DT_DEBUG_ 21

static uint64_t page_down(uint64_t v)
{
	return v / ELF_PAGE * ELF_PAGE;
}

static uint64_t page_up(uint64_t v)
{
	return (v + ELF_PAGE - 1) / ELF_PAGE * ELF_PAGE;
}

bool module_is(const struct module *mod, const struct map_ent *m)
{
	return mod->ino == m->ino && mod->dev_major == m->dev_major && mod->dev_minor == m->dev_minor;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* The exact file the process maps: /proc/PID/map_files needs CAP_SYS_ADMIN (or
 * CAP_CHECKPOINT_RESTORE); without it the path is opened and must still be that file. */
static int open_mapped(pid_t pid, const struct map_ent *m, bool exe, struct err *e)
{
	char p[128];
	struct stat st;
	int fd;

	if (exe)
		snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	else
		snprintf(p, sizeof(p), "/proc/%d/map_files/%llx-%llx", (int)pid, (unsigned long long)m->start,
			 (unsigned long long)m->end);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (exe || m->deleted || m->path_truncated))
		return err_sys(e, -errno, "cannot open %s (%s)", p, m->path);
	if (fd < 0) {
		fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ELOOP)
			fd = open(m->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return err_sys(e, -errno, "cannot open %s", m->path);
	}
	if (fstat(fd, &st) < 0) {
		int rc = err_sys(e, -errno, "fstat %s", m->path);
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || st.st_ino != m->ino || major(st.st_dev) != m->dev_major ||
	    minor(st.st_dev) != m->dev_minor) {
		close(fd);
		return err_set(e, -ESTALE, "%s on disk is no longer the file process %d maps (%x:%x inode %llu)", m->path,
			       (int)pid, m->dev_major, m->dev_minor, (unsigned long long)m->ino);
	}
	return fd;
}

static int read_all(int fd, uint8_t *buf, uint64_t size, uint8_t sha[32], struct err *e, const char *path)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint64_t off = 0;
	unsigned len = 32;

	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return err_set(e, -ENOMEM, "SHA-256 unavailable");
	}
	while (off < size) {
		ssize_t n = pread(fd, buf + off, size - off > CHUNK ? CHUNK : size - off, (off_t)off);
		if (n <= 0) {
			EVP_MD_CTX_free(c);
			return n < 0 ? err_sys(e, -errno, "reading %s", path)
				     : err_set(e, -ESTALE, "%s shrank while it was read", path);
		}
		EVP_DigestUpdate(c, buf + off, (size_t)n);
		off += (uint64_t)n;
	}
	EVP_DigestFinal_ex(c, sha, &len);
	EVP_MD_CTX_free(c);
	return 0;
}

/* The GOT proper: where the loader puts what it looked up. Data pointers relocated
 * against symbols (R_X86_64_64, spread over .data.rel.ro) are left to the sweep. */
static bool got_slot(const struct elf_reloc *x)
{
	return x->type == ELF_R_X86_64_GLOB_DAT || x->type == ELF_R_X86_64_JUMP_SLOT ||
	       x->type == ELF_R_X86_64_IRELATIVE;
}

static int find_got_pages(struct module *mod, struct err *e)
{
	const struct elf_info *elf = &mod->elf;
	size_t cap = 0;

	mod->lazy_lo = UINT64_MAX;
	mod->lazy_hi = 0;
	for (size_t k = 0; k < elf->nrelocs; k++) {
		uint64_t pg = elf->relocs[k].offset / ELF_PAGE * ELF_PAGE;
		if (elf->relocs[k].type == ELF_R_X86_64_JUMP_SLOT && !elf_in_relro(elf, elf->relocs[k].offset)) {
			if (elf->relocs[k].offset < mod->lazy_lo)
				mod->lazy_lo = elf->relocs[k].offset;
			if (elf->relocs[k].offset + 8 > mod->lazy_hi)
				mod->lazy_hi = elf->relocs[k].offset + 8;
		}
		if (!got_slot(&elf->relocs[k]) || !elf_in_relro(elf, elf->relocs[k].offset))
			continue;
		/* relocations are sorted: a page repeats only right after itself */
		if (mod->ngot_pages && mod->got_pages[mod->ngot_pages - 1] == pg)
			continue;
		if (mod->ngot_pages == cap) {
			uint64_t *n = realloc(mod->got_pages, (cap ? cap * 2 : 8) * sizeof(*n));
			if (!n)
				return err_set(e, -ENOMEM, "out of memory");
			mod->got_pages = n;
			cap = cap ? cap * 2 : 8;
		}
		mod->got_pages[mod->ngot_pages++] = pg;
	}
	return 0;
}

bool module_got_page(const struct module *mod, uint64_t vaddr)
{
	size_t lo = 0, hi = mod->ngot_pages;
	uint64_t pg = vaddr / ELF_PAGE * ELF_PAGE;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mod->got_pages[mid] < pg)
			lo = mid + 1;
		else if (mod->got_pages[mid] > pg)
			hi = mid;
		else
			return true;
	}
	return false;
}

int module_parse(struct module *mod, struct err *e)
{
	uint8_t *r;
	int rc;

	if ((rc = elf_parse(mod->ref, mod->size, &mod->elf, e)) < 0)
		return err_wrap(e, "%s", mod->path);
	/* keep only what can be mapped: the file pages of every loadable segment */
	mod->ref_len = 0;
	for (size_t k = 0; k < mod->elf.nloads; k++) {
		uint64_t end = page_up(mod->elf.loads[k].offset + mod->elf.loads[k].filesz);
		if (end > mod->ref_len)
			mod->ref_len = end;
	}
	if (mod->ref_len > mod->size)
		mod->ref_len = mod->size;
	r = realloc(mod->ref, mod->ref_len ? mod->ref_len : 1);
	if (r)
		mod->ref = r;
	return find_got_pages(mod, e);
}

int module_open(pid_t pid, const struct map_ent *m, bool exe, struct module **out, struct err *e)
{
	struct module *mod;
	struct stat st;
	int rc;

	*out = NULL;
	mod = calloc(1, sizeof(*mod));
	if (!mod)
		return err_set(e, -ENOMEM, "out of memory");
	mod->fd = -1;
	mod->dev_major = m->dev_major;
	mod->dev_minor = m->dev_minor;
	mod->ino = m->ino;
	snprintf(mod->path, sizeof(mod->path), "%s", m->path);
	if ((rc = open_mapped(pid, m, exe, e)) < 0)
		goto fail;
	mod->fd = rc;
	if (fstat(mod->fd, &st) < 0) {
		rc = err_sys(e, -errno, "fstat %s", m->path);
		goto fail;
	}
	if ((uint64_t)st.st_size > MODULE_MAX_FILE || st.st_size < 64) {
		rc = err_set(e, -EFBIG, "%s has an implausible size for code (%lld bytes)", m->path, (long long)st.st_size);
		goto fail;
	}
	mod->size = (uint64_t)st.st_size;
	mod->mtime = st.st_mtim;
	mod->ctime = st.st_ctim;
	mod->ref = malloc(mod->size);
	if (!mod->ref) {
		rc = err_set(e, -ENOMEM, "out of memory reading %s", m->path);
		goto fail;
	}
	if ((rc = read_all(mod->fd, mod->ref, mod->size, mod->sha256, e, m->path)) < 0 ||
	    (rc = module_parse(mod, e)) < 0)
		goto fail;
	*out = mod;
	return 0;
fail:
	module_free(mod);
	return rc;
}

void module_free(struct module *mod)
{
	if (!mod)
		return;
	if (mod->fd >= 0)
		close(mod->fd);
	EVP_MD_CTX_free(mod->rehash);
	elf_free(&mod->elf);
	free(mod->got_pages);
	free(mod->ref);
	free(mod);
}

bool module_changed(const struct module *mod)
{
	struct stat st;

	return fstat(mod->fd, &st) < 0 || (uint64_t)st.st_size != mod->size || !same_time(&st.st_mtim, &mod->mtime) ||
	       !same_time(&st.st_ctim, &mod->ctime);
}

static int rehash_fail(struct module *mod, const uint8_t got[32], struct err *e)
{
	char want[65], have[65];

	hex_encode(mod->sha256, 32, want);
	hex_encode(got, 32, have);
	return err_set(e, -EBADMSG, "%s changed on disk while mapped: it hashes to %.16s… now, %.16s… when first measured",
		       mod->path, have, want);
}

/* Hashes [from, to) of the open file into the running re-hash. */
static int rehash_range(struct module *mod, uint64_t to, uint64_t *hashed, struct err *e)
{
	uint8_t *buf = malloc(CHUNK);

	if (!buf)
		return err_set(e, -ENOMEM, "out of memory");
	while (mod->rehash_off < to) {
		uint64_t want = to - mod->rehash_off > CHUNK ? CHUNK : to - mod->rehash_off;
		ssize_t n = pread(mod->fd, buf, want, (off_t)mod->rehash_off);
		if (n <= 0) {
			free(buf);
			return n < 0 ? err_sys(e, -errno, "re-reading %s", mod->path)
				     : err_set(e, -EBADMSG, "%s shrank on disk while mapped", mod->path);
		}
		EVP_DigestUpdate(mod->rehash, buf, (size_t)n);
		mod->rehash_off += (uint64_t)n;
		*hashed += (uint64_t)n;
	}
	free(buf);
	return 0;
}

int module_rehash_step(struct module *mod, uint64_t budget, bool *completed, uint64_t *hashed, struct err *e)
{
	struct stat st;
	uint8_t got[32];
	unsigned len = 32;
	bool changed;
	int rc;

	*completed = false;
	if (fstat(mod->fd, &st) < 0)
		return err_sys(e, -errno, "fstat %s", mod->path);
	if ((uint64_t)st.st_size != mod->size)
		return err_set(e, -EBADMSG, "%s changed size on disk while mapped (%llu bytes, %llu when first measured)",
			       mod->path, (unsigned long long)st.st_size, (unsigned long long)mod->size);
	/* written, truncated, renamed over or unlinked: hash it all now, not in steps */
	changed = !same_time(&st.st_mtim, &mod->mtime) || !same_time(&st.st_ctim, &mod->ctime);
	if (!mod->rehash || changed) {
		if (!mod->rehash && !(mod->rehash = EVP_MD_CTX_new()))
			return err_set(e, -ENOMEM, "out of memory");
		EVP_DigestInit_ex(mod->rehash, EVP_sha256(), NULL);
		mod->rehash_off = 0;
	}
	if ((rc = rehash_range(mod, changed ? mod->size
					      : (mod->size - mod->rehash_off > budget ? mod->rehash_off + budget : mod->size),
			       hashed, e)) < 0)
		return rc;
	if (mod->rehash_off < mod->size)
		return 0;
	EVP_DigestFinal_ex(mod->rehash, got, &len);
	EVP_DigestInit_ex(mod->rehash, EVP_sha256(), NULL);
	mod->rehash_off = 0;
	if (memcmp(got, mod->sha256, 32))
		return rehash_fail(mod, got, e);
	/* same bytes (touched, chmod'ed, renamed): the new times are the reference now */
	mod->mtime = st.st_mtim;
	mod->ctime = st.st_ctim;
	mod->rehashes++;
	*completed = true;
	return 0;
}

size_t module_bias_candidates(const struct module *mod, const struct map_ent *m, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t k = 0; k < mod->elf.nloads && n < max; k++) {
		const struct elf_load *l = &mod->elf.loads[k];
		uint64_t v;
		if (m->offset < page_down(l->offset) || m->offset >= page_up(l->offset + l->filesz))
			continue;
		v = page_down(l->vaddr) + (m->offset - page_down(l->offset));
		if (m->start < v)
			continue;
		if (!mod->elf.pie_or_dso && m->start != v)
			continue;
		out[n++] = m->start - v;
	}
	return n;
}

bool module_fits(const struct module *mod, uint64_t bias, const struct map_ent *m, const struct elf_load **load)
{
	for (size_t k = 0; k < mod->elf.nloads; k++) {
		const struct elf_load *l = &mod->elf.loads[k];
		uint64_t lo = bias + page_down(l->vaddr), hi = bias + page_up(l->vaddr + l->memsz);
		if (m->start < lo || m->end > hi)
			continue;
		if (m->offset != page_down(l->offset) + (m->start - lo))
			continue;
		/* file pages past the segment's file bytes are never mapped from the file */
		if (m->offset + (m->end - m->start) > page_up(l->offset + l->filesz))
			continue;
		*load = l;
		return true;
	}
	return false;
}

static const char *rtype(uint32_t t)
{
	switch (t) {
	case ELF_R_X86_64_64: return "R_X86_64_64";
	case ELF_R_X86_64_GLOB_DAT: return "GLOB_DAT";
	case ELF_R_X86_64_JUMP_SLOT: return "JUMP_SLOT";
	case ELF_R_X86_64_IRELATIVE: return "IRELATIVE";
	default: return "relocation";
	}
}

#define R_X86_64_DTPMOD64 16
#define R_X86_64_DTPOFF64 17
#define R_X86_64_TPOFF64  18
#define R_X86_64_TLSDESC  36

/* The loader rewrites .dynamic in place: the address entries it uses (DT_STRTAB,
 * DT_SYMTAB, DT_JMPREL... which ones depends on the glibc release) get the load bias
 * added, and DT_DEBUG gets the debugger's rendezvous pointer. So an entry's tag must
 * be the file's, its value the file's, the file's plus the bias, or for DT_DEBUG 0 or a
 * pointer into a module. exp holds the file's bytes for [v0, v1) on entry. */
static void check_dynamic(const struct module *mod, uint64_t bias, uint64_t v0, uint64_t v1, uint8_t *exp,
			  const uint8_t *buf, module_ptr_ok_fn ok, void *opaque, struct module_cmp *r)
{
	const struct elf_info *elf = &mod->elf;
	uint64_t d = elf->dyn_vaddr;

	if (!elf->has_dynamic)
		return;
	/* only the entries inside [v0, v1): a hostile PT_DYNAMIC may claim a gigabyte */
	if (v0 > d)
		d += (v0 - d + 15) / 16 * 16;
	for (; d + 16 <= elf->dyn_vaddr + elf->dyn_size && d + 16 <= v1; d += 16) {
		int64_t tag;
		uint64_t fv, av;

		memcpy(&tag, exp + (d - v0), 8);
		memcpy(&fv, exp + (d - v0) + 8, 8);
		memcpy(&av, buf + (d - v0) + 8, 8);
		if (av == fv || av == fv + bias || (tag == DT_DEBUG_ && (av == 0 || ok(opaque, av, false)))) {
			memcpy(exp + (d - v0) + 8, &av, 8);
			r->relocs_validated++;
		}
		if (tag == 0)
			break;
	}
}

/* Inside RELRO only what the loader predictably writes is compared: relocation slots
 * and .dynamic. The rest is data the C library fills in at start-up before RELRO is
 * made read-only (ld.so's _rtld_global_ro, glibc's attribute_relro variables). */
static void mask_relro(const struct module *mod, uint64_t v0, uint64_t v1, uint8_t *exp, const uint8_t *buf)
{
	const struct elf_info *elf = &mod->elf;
	uint64_t a, b, d0 = elf->has_dynamic ? elf->dyn_vaddr : 0, d1 = elf->has_dynamic ? d0 + elf->dyn_size : 0;

	if (!elf->has_relro)
		return;
	a = elf->relro_vaddr > v0 ? elf->relro_vaddr : v0;
	b = elf->relro_vaddr + elf->relro_memsz < v1 ? elf->relro_vaddr + elf->relro_memsz : v1;
	for (uint64_t x = a; x < b;) {
		uint64_t end = b;
		if (x >= d0 && x < d1) {
			x = d1;
			continue;
		}
		if (d0 > x && d0 < end)
			end = d0;
		memcpy(exp + (x - v0), buf + (x - v0), end - x);
		x = end;
	}
}

void module_compare(const struct module *mod, uint64_t bias, const struct map_ent *m, const struct elf_load *load,
		    uint64_t addr, const uint8_t *buf, size_t n, bool slots_only, module_ptr_ok_fn ok, void *opaque,
		    struct module_cmp *r)
{
	uint64_t fo = m->offset + (addr - m->start), v0 = addr - bias, v1 = v0 + n;
	uint8_t *exp = slots_only ? NULL : malloc(n ? n : 1);

	if (!slots_only && !exp) {
		r->bad = true;
		snprintf(r->why, sizeof(r->why), "out of memory comparing %s", mod->path);
		return;
	}
	if (exp) {
		/* the file's bytes at the mapping's offset; zeros past the end of the file */
		size_t have = fo < mod->ref_len ? (size_t)(mod->ref_len - fo < n ? mod->ref_len - fo : n) : 0;
		memcpy(exp, mod->ref + fo, have);
		memset(exp + have, 0, n - have);
		/* the loader zeroes a segment's memory past its file bytes (the start of .bss) */
		if (load->memsz > load->filesz) {
			uint64_t z0 = load->vaddr + load->filesz, z1 = page_up(load->vaddr + load->memsz);
			uint64_t a = z0 > v0 ? z0 : v0, b = z1 < v1 ? z1 : v1;
			if (a < b)
				memset(exp + (a - v0), 0, b - a);
		}
	}
	if (exp) {
		check_dynamic(mod, bias, v0, v1, exp, buf, ok, opaque, r);
		mask_relro(mod, v0, v1, exp, buf);
	}
	for (size_t k = elf_reloc_from(&mod->elf, v0); k < mod->elf.nrelocs && mod->elf.relocs[k].offset < v1; k++) {
		const struct elf_reloc *x = &mod->elf.relocs[k];
		size_t width = x->type == R_X86_64_TLSDESC ? 16 : 8;
		uint64_t s0 = x->offset, s1 = x->offset + width, val;
		bool code = x->type == ELF_R_X86_64_JUMP_SLOT || x->type == ELF_R_X86_64_IRELATIVE;

		if (s0 < v0 || s1 > v1) {
			/* a slot cut by the range's edge: not predicted here */
			if (exp) {
				uint64_t a = s0 > v0 ? s0 : v0, b = s1 < v1 ? s1 : v1;
				memcpy(exp + (a - v0), buf + (a - v0), b - a);
			}
			r->relocs_skipped++;
			continue;
		}
		memcpy(&val, buf + (s0 - v0), 8);
		if (slots_only) {
			if (x->type != ELF_R_X86_64_JUMP_SLOT)
				continue;
		} else if (x->type == ELF_R_X86_64_RELATIVE) {
			uint64_t want = bias + (uint64_t)x->addend;
			memcpy(exp + (s0 - v0), &want, 8);
			r->relocs_predicted++;
			continue;
		} else {
			memcpy(exp + (s0 - v0), buf + (s0 - v0), width);
		}
		switch (x->type) {
		case ELF_R_X86_64_64:
			if (!x->sym) {
				/* an absolute value: predicted */
				if (val != (uint64_t)x->addend && !r->bad) {
					r->bad = true;
					r->bad_addr = bias + s0;
					snprintf(r->why, sizeof(r->why), "R_X86_64_64 at 0x%llx (%s+0x%llx) holds 0x%llx, not 0x%llx",
						 (unsigned long long)(bias + s0), mod->path, (unsigned long long)s0,
						 (unsigned long long)val, (unsigned long long)x->addend);
				}
				r->relocs_predicted++;
				break;
			}
			val -= (uint64_t)x->addend;
			/* fall through */
		case ELF_R_X86_64_GLOB_DAT:
		case ELF_R_X86_64_JUMP_SLOT:
		case ELF_R_X86_64_IRELATIVE:
			/* 0: a weak symbol nobody defines */
			if (val != 0 && !ok(opaque, val, code) && !r->bad) {
				r->bad = true;
				r->bad_addr = bias + s0;
				snprintf(r->why, sizeof(r->why),
					 "%s pointer at 0x%llx (%s+0x%llx) leads to 0x%llx, outside every %s the process maps",
					 rtype(x->type), (unsigned long long)(bias + s0), mod->path, (unsigned long long)s0,
					 (unsigned long long)val, code ? "code segment of a module" : "module");
			}
			r->relocs_validated++;
			break;
		case R_X86_64_TLSDESC:
		case R_X86_64_DTPMOD64:
		case R_X86_64_DTPOFF64:
		case R_X86_64_TPOFF64:
		default:
			r->relocs_skipped++;
			break;
		}
	}
	if (exp) {
		r->bytes += n;
		if (memcmp(exp, buf, n) && !r->bad) {
			size_t i = 0;
			while (exp[i] == buf[i])
				i++;
			r->bad = true;
			r->bad_addr = addr + i;
			snprintf(r->why, sizeof(r->why),
				 "byte at 0x%llx (%s, file offset 0x%llx) is 0x%02x in memory, 0x%02x expected from the file",
				 (unsigned long long)(addr + i), mod->path, (unsigned long long)(fo + i), buf[i], exp[i]);
		}
		free(exp);
	}
}
