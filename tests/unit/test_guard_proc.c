/* The integrity guard's process measurement (procmeas.h) against real processes: a
 * forked copy of this test, measured from outside, passes; then each way of
 * tampering is detected and named: a byte of code patched through /proc/PID/mem, a
 * lazily bound .got.plt pointer and a GOT pointer redirected, anonymous executable
 * memory, a library segment replaced by other memory, a library changed on disk while
 * mapped, a library the table does not list, an executable the table does not allow,
 * a patched vDSO. A process that ended is "gone", not tampered with. */
#include "unit.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard/procmeas.h"
#include "guard/text.h"
#include "trust/jsonx.h"
#include "trust/keys.h"
#include "util/file.h"
#include "util/hex.h"

static char tmpdir[64], libcopy[128], self_hex[65];

/* Never called: the code the tests patch. */
__attribute__((noinline, used)) int guard_test_victim(int x)
{
	return x * 7 + 3;
}

/* The child waits without calling through the PLT (the tests redirect its slots). */
static void idle(void)
{
	for (;;)
		__asm__ volatile("syscall" : : "a"(34) : "rcx", "r11", "memory");   /* pause() */
}

enum { PLAIN, ANON_EXEC, DLOPEN, DLOPEN_HOLE };

static pid_t child(int mode)
{
	int p[2];
	pid_t pid;
	char c = 0;

	CHECK(pipe(p) == 0);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (mode == ANON_EXEC) {
			void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m == MAP_FAILED)
				_exit(1);
		}
		if (mode == DLOPEN || mode == DLOPEN_HOLE) {
			void *h = dlopen(libcopy, RTLD_NOW | RTLD_LOCAL);
			if (!h)
				_exit(2);
		}
		if (mode == DLOPEN_HOLE) {
			/* the copy's code segment: its first page becomes anonymous read-only memory */
			char *text;
			size_t len;
			struct maps m;
			struct err e;
			if (proc_read("/proc/self/maps", 1 << 24, &text, &len, &e) < 0 || maps_parse(text, len, &m, &e) < 0)
				_exit(3);
			for (size_t i = 0; i < m.n; i++)
				if (m.ent[i].x && !strcmp(m.ent[i].path, libcopy) &&
				    mmap((void *)m.ent[i].start, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
					 0) == MAP_FAILED)
					_exit(4);
		}
		if (write(p[1], &c, 1) != 1)
			_exit(5);
		idle();
	}
	close(p[1]);
	CHECKF(read(p[0], &c, 1) == 1, "child mode %d did not start", mode);
	close(p[0]);
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static struct trust_table *make_table(const char *exe_hex, const char *libs)
{
	char body[2048];
	struct trust_table *t = NULL;
	struct err e = { 0 };
	json_t *b;

	snprintf(body, sizeof(body), "{\"type\":\"sealvm-table\",\"version\":1,\"serial\":1,\"sealvm\":[\"%s\"]%s,\"hosts\":[]}",
		 exe_hex, libs ? libs : "");
	b = jx_parse(body, strlen(body), "table", &e);
	CHECKF(b && table_from_json(b, &t, &e) == 0, "%s", e.msg);
	json_decref(b);
	return t;
}

struct run {
	struct module_set mods;
	struct procmeas_ref ref;
	struct vmm_proc *p;
	struct proc_result r;
	uint64_t round;
};

static void start(struct run *x, pid_t pid, struct trust_table *t)
{
	struct err e = { 0 };

	memset(x, 0, sizeof(*x));
	x->ref.table = t;
	x->ref.sweep_bytes = 64 << 10;
	CHECKF(procmeas_open(pid, &x->p, &e) == 0, "%s", e.msg);
}

static void measure(struct run *x)
{
	if (x->p)
		procmeas_run(x->p, &x->mods, &x->ref, x->round++, &x->r);
}

static void finish(struct run *x)
{
	procmeas_close(x->p);
	module_set_free(&x->mods);
}

static void expect_ok(const char *what, struct run *x)
{
	measure(x);
	CHECKF(x->r.ok && !x->r.gone, "%s: [%s] %s", what, x->r.check, x->r.reason);
}

static void expect_fail(const char *what, struct run *x, const char *check, const char *msg)
{
	measure(x);
	CHECKF(!x->r.ok && !strcmp(x->r.check, check) && strstr(x->r.reason, msg), "%s: %s [%s] %s", what,
	       x->r.ok ? "PASSED" : "wrong failure", x->r.check, x->r.reason);
	if (!x->r.ok)
		fprintf(stderr, "  %s: [%s] %s\n", what, x->r.check, x->r.reason);
}

static int poke(pid_t pid, uint64_t addr, const void *buf, size_t n)
{
	char path[64];
	int fd, ok;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ok = pwrite(fd, buf, n, (off_t)addr) == (ssize_t)n;
	close(fd);
	return ok ? 0 : -1;
}

static int peek(pid_t pid, uint64_t addr, void *buf, size_t n)
{
	char path[64];
	int fd, ok;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ok = pread(fd, buf, n, (off_t)addr) == (ssize_t)n;
	close(fd);
	return ok ? 0 : -1;
}

/* This test's executable: its parsed ELF and load bias (a forked child has the same). */
static struct elf_info self_elf;
static uint64_t self_bias, vdso_lo, vdso_hi;
static uint8_t *self_file;

static int file_read_self(uint8_t **out, size_t *len)
{
	char *t;
	struct err e;
	int rc = file_read_all("/proc/self/exe", 1u << 30, &t, len, &e);

	*out = (uint8_t *)t;
	return rc;
}

static void learn_self(void)
{
	struct err e = { 0 };
	char *text, self[MAPS_PATH_MAX];
	size_t len;
	struct maps m;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	CHECK(n > 0);
	self[n > 0 ? n : 0] = 0;
	CHECKF(proc_read("/proc/self/maps", 1 << 24, &text, &len, &e) == 0, "%s", e.msg);
	CHECKF(maps_parse(text, len, &m, &e) == 0, "%s", e.msg);
	free(text);
	for (size_t i = 0; i < m.n; i++) {
		if (!strcmp(m.ent[i].path, self) && m.ent[i].offset == 0 && !self_bias)
			self_bias = m.ent[i].start;
		if (!strcmp(m.ent[i].path, "[vdso]")) {
			vdso_lo = m.ent[i].start;
			vdso_hi = m.ent[i].end;
		}
		if (strstr(m.ent[i].path, "/libxxhash.so") && !libcopy[0]) {
			char cmd[2 * MAPS_PATH_MAX];
			snprintf(libcopy, sizeof(libcopy), "%s/libguardcopy.so", tmpdir);
			snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", m.ent[i].path, libcopy);
			CHECK(system(cmd) == 0);
		}
	}
	maps_free(&m);
	CHECKF(self_bias && libcopy[0], "bias %llx, library copy %s", (unsigned long long)self_bias, libcopy);
	CHECK(file_read_self(&self_file, &len) == 0);
	CHECKF(elf_parse(self_file, len, &self_elf, &e) == 0, "%s", e.msg);
}

static const struct elf_reloc *find_reloc(uint32_t type, bool in_relro)
{
	for (size_t k = 0; k < self_elf.nrelocs; k++)
		if (self_elf.relocs[k].type == type && elf_in_relro(&self_elf, self_elf.relocs[k].offset) == in_relro)
			return &self_elf.relocs[k];
	return NULL;
}

static void test_clean_and_patched_code(struct trust_table *t)
{
	pid_t pid = child(PLAIN);
	uint64_t at = (uint64_t)(uintptr_t)&guard_test_victim;
	uint8_t b, x;
	struct run r;

	start(&r, pid, t);
	expect_ok("untouched process", &r);
	CHECK(r.r.modules >= 4);
	CHECK(r.r.pages_scanned > 0 && r.r.bytes_compared > 0);
	CHECK(r.r.relocs_predicted > 0 && r.r.relocs_validated > 0);
	CHECK_INT(r.r.pages_copied, 0);
	for (int i = 0; i < 50; i++)
		expect_ok("untouched process, again", &r);
	CHECK(peek(pid, at, &b, 1) == 0);
	x = b ^ 0xff;
	CHECK(poke(pid, at, &x, 1) == 0);
	expect_fail("one byte of code patched", &r, "code", "expected from the file");
	CHECK(strstr(r.r.reason, "file offset") != NULL);
	/* written back: the page is a copy now, but holds the file's bytes again */
	CHECK(poke(pid, at, &b, 1) == 0);
	expect_ok("code patched back", &r);
	CHECK_INT(r.r.pages_copied, 1);
	finish(&r);
	reap(pid);

	/* the process ended: gone, not a failure */
	pid = child(PLAIN);
	start(&r, pid, t);
	expect_ok("second process", &r);
	reap(pid);
	measure(&r);
	CHECK(r.r.gone && r.r.ok);
	finish(&r);
}

static void test_pointers(struct trust_table *t)
{
	const struct elf_reloc *slot = find_reloc(ELF_R_X86_64_JUMP_SLOT, self_elf.bind_now);
	const struct elf_reloc *got = find_reloc(ELF_R_X86_64_GLOB_DAT, true);
	uint64_t bogus = 0x1234000, orig;
	pid_t pid = child(PLAIN);
	struct run r;

	start(&r, pid, t);
	expect_ok("before the GOT is touched", &r);
	CHECK(slot != NULL);
	if (slot) {
		uint64_t a = self_bias + slot->offset;
		CHECK(peek(pid, a, &orig, 8) == 0);
		CHECK(poke(pid, a, &bogus, 8) == 0);
		expect_fail("a JUMP_SLOT pointer redirected", &r, self_elf.bind_now ? "relro" : "got", "JUMP_SLOT");
		CHECK(poke(pid, a, &orig, 8) == 0);
		expect_ok("JUMP_SLOT restored", &r);
	}
	if (got) {
		uint64_t a = self_bias + got->offset;
		CHECK(peek(pid, a, &orig, 8) == 0);
		CHECK(poke(pid, a, &bogus, 8) == 0);
		expect_fail("a GOT pointer redirected", &r, "relro", "GLOB_DAT");
		CHECK(poke(pid, a, &orig, 8) == 0);
	}
	/* a RELATIVE slot in RELRO is predicted exactly: off by one is caught */
	{
		const struct elf_reloc *rel = find_reloc(ELF_R_X86_64_RELATIVE, true);
		CHECK(rel != NULL);
		if (rel) {
			uint64_t a = self_bias + rel->offset, v;
			CHECK(peek(pid, a, &orig, 8) == 0);
			CHECK_INT(orig, self_bias + (uint64_t)rel->addend);
			/* only a GOT page is compared every round; sweep until the page comes up */
			v = orig + 1;
			CHECK(poke(pid, a, &v, 8) == 0);
			for (int i = 0; i < 200 && r.r.ok; i++)
				measure(&r);
			CHECKF(!r.r.ok && !strcmp(r.r.check, "relro"), "relocated pointer changed: [%s] %s", r.r.check,
			       r.r.reason);
			CHECK(poke(pid, a, &orig, 8) == 0);
		}
	}
	/* the vDSO */
	if (vdso_lo) {
		uint8_t b, x;
		static uint8_t own[65536];
		size_t n = vdso_hi - vdso_lo;
		if (n <= sizeof(own)) {
			memcpy(own, (void *)vdso_lo, n);
			r.ref.vdso = own;
			r.ref.vdso_len = n;
			expect_ok("vDSO as the kernel's", &r);
			if (peek(pid, vdso_lo + n / 2, &b, 1) == 0) {
				x = b ^ 0xff;
				if (poke(pid, vdso_lo + n / 2, &x, 1) == 0)
					expect_fail("vDSO patched", &r, "vdso", "differs");
				else
					fprintf(stderr, "  (the kernel refuses writes to the vDSO here)\n");
			}
		}
	}
	finish(&r);
	reap(pid);
}

static void test_maps_and_exe(struct trust_table *t)
{
	struct trust_table *other = make_table("00000000000000000000000000000000000000000000000000000000000000aa", NULL);
	pid_t pid = child(ANON_EXEC);
	struct run r;

	start(&r, pid, t);
	expect_fail("anonymous executable memory", &r, "maps", "executable memory");
	finish(&r);
	reap(pid);

	pid = child(PLAIN);
	start(&r, pid, other);
	expect_fail("an executable the table does not allow", &r, "exe", "does not allow");
	finish(&r);
	reap(pid);
	table_free(other);

	pid = child(DLOPEN_HOLE);
	start(&r, pid, t);
	expect_fail("a library page replaced by anonymous memory", &r, "maps", "not mapped from its file");
	finish(&r);
	reap(pid);
}

static void test_library_files(struct trust_table *t)
{
	struct trust_table *listed = make_table(self_hex, ",\"libs\":[\"00000000000000000000000000000000000000000000000000000000000000bb\"]");
	pid_t pid = child(DLOPEN);
	uint64_t hashed = 0;
	struct err e = { 0 };
	struct stat st;
	struct run r;
	uint8_t b;
	int fd, rc;

	start(&r, pid, listed);
	expect_fail("a library the table does not list", &r, "library", "not among");
	finish(&r);

	start(&r, pid, t);
	expect_ok("a dlopen'ed copy of a library", &r);
	rc = module_set_rehash(&r.mods, 1u << 30, &hashed, &e);
	CHECKF(rc == 0 && hashed > 0, "%s", e.msg);
	/* touched, not changed: the same bytes */
	CHECK(utimensat(AT_FDCWD, libcopy, NULL, 0) == 0);
	hashed = 0;
	CHECKF(module_set_rehash(&r.mods, 4096, &hashed, &e) == 0, "touched: %s", e.msg);
	/* changed in place, as root could: every process mapping it sees the change */
	fd = open(libcopy, O_RDWR);
	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	CHECK(pread(fd, &b, 1, st.st_size - 1) == 1);
	b ^= 0xff;
	CHECK(pwrite(fd, &b, 1, st.st_size - 1) == 1);
	close(fd);
	rc = 0;
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = module_set_rehash(&r.mods, 4096, &hashed, &e);
	CHECKF(rc == -EBADMSG && strstr(e.msg, "changed on disk"), "library changed on disk: %d %s", rc, e.msg);
	fprintf(stderr, "  library changed on disk: %s\n", e.msg);
	finish(&r);
	reap(pid);
	table_free(listed);
}

int main(void)
{
	struct trust_table *t;
	uint8_t d[32];
	struct err e = { 0 };
	char cmd[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/guard-unit.XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);
	CHECK(sha256_file("/proc/self/exe", d, &e) == 0);
	hex_encode(d, 32, self_hex);
	learn_self();
	t = make_table(self_hex, NULL);
	test_clean_and_patched_code(t);
	test_pointers(t);
	test_maps_and_exe(t);
	test_library_files(t);
	table_free(t);
	elf_free(&self_elf);
	free(self_file);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return unit_done();
}
