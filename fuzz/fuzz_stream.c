/* libFuzzer target: the state-stream parser as a restoring or incoming sealvm runs
 * it, without KVM.
 *
 * Input: one mode byte, then the stream (sections as state/section.h describes).
 *   mode bit 0 clear: the bytes are fed as they are. Every section's xxh3 trailer must
 *     be right for the parser to go past it, which a fuzzer rarely manages: this mode
 *     exercises the header and length checks and whatever runs before a checksum.
 *   mode bit 0 set: the harness first rewrites each trailer (and an END section's
 *     MAC of the transcript) to match the bytes, so mutations reach the payload parsers and the
 *     validators. Everything else (ids, seq, lengths, counts, payloads) stays as fuzzed.
 *
 * The stream must start with CONFIG (machine_config_read); RAM larger than 64 MiB is
 * refused to keep memory bounded. Then PAGES go to pages_recv into a fake RAM mapping
 * with a guard page on each side, ROUND and ABORT are read as a destination reads
 * them, VCPU/VM/SERIAL go through machine_load_section (told CONFIG's vCPU count, as
 * snapshot_restore does), and END to sec_check_end, after which nothing may follow,
 * the buffered state must be complete for every vCPU (machine_loader_complete) and
 * the serial state must load into a device. The first error ends the run. Failures must carry
 * a negative errno and a message. FUZZ_VERBOSE=1 prints how each input ended. */
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "dev/serial.h"
#include "migrate/proto.h"
#include "state/pages.h"
#include "state/section.h"
#include "vm/vm_state.h"
#include "vmm/machine.h"

#define FUZZ_MAX_RAM (64ULL << 20)
#define MODE_FIX_SUMS 1u
#define GUARD 4096ULL

static bool verbose; /* FUZZ_VERBOSE=1: say how each input ended (for checking seeds) */

/* ---- a read-only bstream over a buffer ---- */

struct mem_reader {
	struct bstream bs;
	const uint8_t *p;
	size_t len, pos;
};

static int mem_read_full(struct bstream *s, void *buf, size_t len, struct err *e)
{
	struct mem_reader *m = s->ctx;

	if (len > m->len - m->pos) {
		m->pos = m->len;
		return err_set(e, -ENODATA, "unexpected end of stream (truncated)");
	}
	memcpy(buf, m->p + m->pos, len);
	m->pos += len;
	return 0;
}

static int mem_writev_all(struct bstream *s, const struct iovec *iov, int iovcnt, struct err *e)
{
	return err_set(e, -EBADF, "read-only stream");
}

/* ---- checksum fix-up ---- */

static void transcript_copy(EVP_MD_CTX *t, uint8_t out[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 32;

	memset(out, 0, 32);
	if (c && EVP_MD_CTX_copy_ex(c, t))
		EVP_DigestFinal_ex(c, out, &n);
	EVP_MD_CTX_free(c);
}

/* Rewrites every complete section's trailer, and the transcript in a well-sized END,
 * the way a sender would have computed them. */
static void fix_sums(uint8_t *p, size_t len)
{
	EVP_MD_CTX *t = EVP_MD_CTX_new();
	size_t off = 0;

	if (!t || !EVP_DigestInit_ex(t, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(t);
		return;
	}
	while (len - off >= SEC_HDR_SIZE) {
		struct sec_hdr h;
		size_t pay = off + SEC_HDR_SIZE;
		uint64_t sum;

		memcpy(&h, p + off, sizeof(h));
		if (h.len > len - pay || len - pay - h.len < SEC_TRAILER_SIZE)
			break;
		if (h.id == SEC_END && h.len == sizeof(struct sec_end_payload)) {
			struct sec_end_payload end;
			memcpy(&end, p + pay, sizeof(end));
			transcript_copy(t, end.mac);
			sec_end_mac(NULL, end.sections, end.pages, end.mac, end.mac);
			memcpy(p + pay, &end, sizeof(end));
		}
		sum = XXH3_64bits(p + off, SEC_HDR_SIZE + (size_t)h.len);
		memcpy(p + pay + h.len, &sum, sizeof(sum));
		EVP_DigestUpdate(t, p + off, SEC_HDR_SIZE);
		EVP_DigestUpdate(t, &sum, sizeof(sum));
		off = pay + (size_t)h.len + SEC_TRAILER_SIZE;
	}
	EVP_MD_CTX_free(t);
}

/* ---- fake guest RAM: a mapping with an inaccessible page on each side ---- */

static uint8_t *ram_map(uint64_t size)
{
	uint8_t *m = mmap(NULL, size + 2 * GUARD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	if (mprotect(m + GUARD, size, PROT_READ | PROT_WRITE) < 0) {
		munmap(m, size + 2 * GUARD);
		return NULL;
	}
	return m + GUARD;
}

static void ram_unmap(uint8_t *ram, uint64_t size)
{
	if (ram)
		munmap(ram - GUARD, size + 2 * GUARD);
}

static void irq_noop(void *opaque, int level)
{
}

/* What machine_load_commit checks and applies without KVM. */
static int commit_check(struct machine_loader *ld, uint32_t nr_vcpus, struct err *e)
{
	struct serial u;
	uint32_t i, n = 0;
	int r;

	r = machine_loader_complete(ld, nr_vcpus, e);
	if (r < 0)
		return r;
	for (i = 0; i < VM_MAX_VCPUS; i++) {
		const struct vcpu_state *v = ld->vcpu[i];
		if (!v)
			continue;
		n++;
		if (i >= nr_vcpus || v->id != i || vcpu_state_validate(v, e) < 0 || v->nmsrs > VCPU_MAX_MSRS ||
		    v->ncpuid > VCPU_MAX_CPUID || v->xsave_size > VCPU_XSAVE_MAX)
			__builtin_trap(); /* machine_load_section let an invalid vCPU state through */
	}
	if (n != nr_vcpus || ld->have_vcpus != nr_vcpus)
		__builtin_trap();
	if (vm_state_validate(ld->vmst, e) < 0)
		__builtin_trap();
	serial_init(&u, -1, irq_noop, NULL);
	r = serial_load(&u, &ld->serial, e);
	serial_destroy(&u);
	return r;
}

static void run_stream(const uint8_t *p, size_t n)
{
	struct mem_reader mr = { .bs = { mem_writev_all, mem_read_full, NULL, NULL }, .p = p, .len = n };
	struct pages_stats ps = { 0 };
	struct machine_loader ld;
	struct machine_config cfg;
	struct sec_reader rd;
	struct sec_hdr h;
	struct err e = { 0 };
	uint8_t *ram = NULL;
	bool done = false, aborted = false;
	int r;

	mr.bs.ctx = &mr;
	machine_loader_init(&ld);
	r = sec_reader_init(&rd, &mr.bs, &e);
	if (r == 0)
		r = sec_read_hdr(&rd, &h, &e);
	if (r == 0)
		r = machine_config_read(&rd, &h, &cfg, &e);
	if (r == 0 && cfg.ram_size > FUZZ_MAX_RAM)
		r = err_set(&e, -EFBIG, "fuzz harness: RAM above 64 MiB not mapped");
	if (r == 0 && !(ram = ram_map(cfg.ram_size)))
		r = err_set(&e, -ENOMEM, "fuzz harness: cannot map RAM");
	if (r == 0)
		ld.nr_vcpus = cfg.nr_vcpus;
	while (r == 0 && !done) {
		r = sec_read_hdr(&rd, &h, &e);
		if (r < 0)
			break;
		switch (h.id) {
		case SEC_PAGES:
			r = pages_recv(&rd, &h, ram, cfg.ram_size / PAGE_SIZE, &ps, &e);
			break;
		case SEC_ROUND: {
			struct mig_round rnd;
			r = sec_read_exact(&rd, &h, &rnd, sizeof(rnd), &e);
			break;
		}
		case SEC_ABORT: {
			struct mig_abort a;
			r = sec_read_exact(&rd, &h, &a, sizeof(a), &e);
			a.reason[sizeof(a.reason) - 1] = 0;
			if (r == 0) {
				r = err_set(&e, -ECONNABORTED, "%s", a.reason);
				aborted = true;
			}
			break;
		}
		case SEC_END:
			r = sec_check_end(&rd, &h, ps.data_pages + ps.markers, &e);
			if (r == 0)
				r = commit_check(&ld, cfg.nr_vcpus, &e);
			done = true;
			break;
		default:
			r = machine_load_section(&ld, &rd, &h, &e);
		}
	}
	if (r == 0 && mr.pos != mr.len)
		r = err_set(&e, -EPROTO, "data after the END section"); /* as snapshot_restore */
	if (verbose)
		fprintf(stderr, "fuzz_stream: %s after %llu sections, %llu data pages, %llu markers%s%s\n",
			r == 0 ? "accepted" : "refused", (unsigned long long)rd.seq,
			(unsigned long long)ps.data_pages, (unsigned long long)ps.markers, r ? ": " : "",
			r ? e.msg : "");
	/* Every failure is a negative errno with a message naming it. */
	if (r > 0 || (r < 0 && (e.code >= 0 || (!aborted && !e.msg[0]))))
		__builtin_trap();
	/* Counters agree with what was parsed. */
	if (rd.bytes > n || ps.zero_pages != ps.markers)
		__builtin_trap();
	sec_reader_fini(&rd);
	machine_loader_fini(&ld);
	ram_unmap(ram, ram ? cfg.ram_size : 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *v = getenv("FUZZ_VERBOSE");

	verbose = v && *v && strcmp(v, "0");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (size < 1)
		return 0;
	/* an exact-size heap copy: any read past the input is an ASan report */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (data[0] & MODE_FIX_SUMS)
		fix_sums(copy, size - 1);
	run_stream(copy, size - 1);
	free(copy);
	return 0;
}
