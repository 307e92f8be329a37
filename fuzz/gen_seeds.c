/* Writes the seed corpora for the fuzz targets (no KVM needed):
 *   gen_seeds DIR   ->  files in DIR/fuzz_stream/, DIR/fuzz_state/, DIR/fuzz_multiboot/
 *                       and DIR/fuzz_control/
 * Stream seeds are valid streams as sealvm writes them (CONFIG for 4 MiB of RAM, PAGES,
 * SERIAL, VCPU and VM states that pass validation, END) behind fuzz_stream's mode byte.
 * and DIR/fuzz_console/ (frames of protocol version 2, a sealed console state and a
 * wrapped console key for the seed owner key of console_seed_key.h), DIR/fuzz_memserver/
 * (a store's hand-over and expiry as event sequences, a GET answer), DIR/fuzz_pageseal/
 * (pages sealed and plain under pageseal_seed_key.h) and DIR/fuzz_pubmem/ (a saved
 * state, a --public list, a guest's port accesses).
 * Everything but the last two is deterministic (sealing draws nonces and ephemeral
 * keys), so regenerating gives the same files. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console/proto.h"
#include "console/state.h"
#include "console/wrap.h"
#include "console_seed_key.h"
#include "dev/pubmem.h"
#include "memserver/proto.h"
#include "paging/page_seal.h"
#include "pageseal_seed_key.h"
#include "dev/serial.h"
#include "migrate/proto.h"
#include "state/pages.h"
#include "state/sealed.h"
#include "vmm/snapshot.h"
#include "state/section.h"
#include "vm/multiboot.h"
#include "vm/vcpu.h"
#include "vm/vm_state.h"
#include "vmm/machine.h"

#define RAM_SIZE (4ULL << 20)
#define RAM_PAGES (RAM_SIZE / PAGE_SIZE)

static const char *root;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void die(const char *what, const struct err *e)
{
	fprintf(stderr, "gen_seeds: %s: %s\n", what, e ? e->msg : strerror(errno));
	exit(1);
}

static int open_out(const char *sub, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, sub);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path, NULL);
	snprintf(path, sizeof(path), "%s/%s/%s", root, sub, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path, NULL);
	return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		die("write", NULL);
}

static void write_file(const char *sub, const char *name, const void *buf, size_t len)
{
	int fd = open_out(sub, name);

	write_all(fd, buf, len);
	close(fd);
}

/* ---- plausible saved states ---- */

static void make_vcpu(struct vcpu_state *s)
{
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 11,
				    .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1 };
	struct kvm_segment data = code;

	memset(s, 0, sizeof(*s));
	s->version = VCPU_STATE_VERSION;
	s->id = 0;
	s->tsc_khz = 2000000;
	s->mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
	s->regs.rip = 0x100010;
	s->regs.rflags = 0x202;
	s->regs.rsp = 0x10f000;
	s->regs.rax = 0x2badb002;
	s->regs.rbx = MB_INFO_ADDR;
	data.selector = 0x10;
	data.type = 3;
	s->sregs.cs = code;
	s->sregs.ds = s->sregs.es = s->sregs.fs = s->sregs.gs = s->sregs.ss = data;
	s->sregs.gdt.base = MB_GDT_ADDR;
	s->sregs.gdt.limit = 23;
	s->sregs.cr0 = 0x11;
	s->sregs.apic_base = 0xfee00900;
	s->xcrs.nr_xcrs = 1;
	s->xcrs.xcrs[0].xcr = 0;
	s->xcrs.xcrs[0].value = 1;
	s->debugregs.dr6 = 0xffff0ff0;
	s->debugregs.dr7 = 0x400;
	s->nmsrs = 3;
	s->msrs[0] = (struct kvm_msr_entry){ .index = 0x10, .data = 123456789 };       /* TSC */
	s->msrs[1] = (struct kvm_msr_entry){ .index = 0x1b, .data = 0xfee00900 };      /* APIC base */
	s->msrs[2] = (struct kvm_msr_entry){ .index = 0x6e0, .data = 0 };              /* TSC deadline */
	s->ncpuid = 2;
	s->cpuid[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd, .ebx = 0x756e6547,
						 .ecx = 0x6c65746e, .edx = 0x49656e69 };
	s->cpuid[1] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x906ea, .edx = 0x178bfbff };
	s->xsave_size = sizeof(struct kvm_xsave);
	s->xsave[0] = 0x7f; /* FCW 0x037f */
	s->xsave[1] = 0x03;
	s->xsave[24] = 0x80; /* MXCSR 0x1f80 */
	s->xsave[25] = 0x1f;
}

static void make_vm(struct vm_state *s)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->version = VM_STATE_VERSION;
	for (i = 0; i < 3; i++)
		s->chips[i].chip_id = (uint32_t)i;
	s->chips[0].chip.pic.irq_base = 0x20;
	s->chips[0].chip.pic.imr = 0xb8;
	s->chips[0].chip.pic.elcr_mask = 0xf8;
	s->chips[1].chip.pic.irq_base = 0x28;
	s->chips[1].chip.pic.imr = 0xff;
	s->chips[1].chip.pic.elcr_mask = 0xde;
	s->chips[2].chip.ioapic.base_address = 0xfec00000;
	for (i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		s->chips[2].chip.ioapic.redirtbl[i].fields.mask = 1;
	for (i = 0; i < 3; i++) {
		struct kvm_pit_channel_state *c = &s->pit.channels[i];
		c->count = 0x10000;
		c->mode = i == 0 ? 2 : 0xff;
		c->rw_mode = 3;
		c->read_state = 3;
		c->write_state = 3;
		c->gate = i != 2;
	}
	s->clock.clock = 987654321;
}

static void make_serial(struct serial_state *out)
{
	struct serial u;

	serial_init(&u, -1, NULL, NULL);
	serial_input(&u, (const uint8_t *)"hi", 2);
	serial_save(&u, out);
	serial_destroy(&u);
	out->ier = 0x01;
}

/* ---- stream seeds ---- */

enum { PART_ROUND = 1, PART_STATE = 2, PART_MANY_PAGES = 4, PART_ABORT = 8, PART_TWO_VCPUS = 16 };

static void stream_seed(const char *name, uint8_t mode, unsigned parts)
{
	static uint8_t ram[RAM_SIZE];
	struct machine_config cfg = { .version = CONFIG_VERSION_1CPU, .nr_vcpus = 1, .ram_size = RAM_SIZE };
	struct iovec iov;
	struct pages_stats st = { 0 };
	struct fd_bstream fb;
	struct sec_writer w;
	struct err e = { 0 };
	uint64_t idx[64];
	uint64_t i, n = 0;
	int fd = open_out("fuzz_stream", name);

	write_all(fd, &mode, 1);
	fd_bstream_init(&fb, fd);
	if (sec_writer_init(&w, &fb.bs, &e) < 0)
		die("writer", &e);
	if (parts & PART_TWO_VCPUS) {
		cfg.version = CONFIG_VERSION;
		cfg.nr_vcpus = 2;
	}
	iov = (struct iovec){ &cfg, sizeof(cfg) };
	if (sec_write(&w, SEC_CONFIG, cfg.version, &iov, 1, &e) < 0)
		die("CONFIG", &e);

	memset(ram, 0, sizeof(ram));
	/* a run of 4 adjacent pages, a page with one byte set, a zero page, scattered pages */
	for (i = 0; i < 4; i++) {
		uint64_t *p = (uint64_t *)(ram + (0x100 + i) * PAGE_SIZE), k;
		for (k = 0; k < PAGE_SIZE / 8; k += 61)
			p[k] = next_rand();
		idx[n++] = 0x100 + i;
	}
	ram[0x200 * PAGE_SIZE + 4095] = 1;
	idx[n++] = 0x200;
	idx[n++] = 0x201; /* zero */
	if (parts & PART_MANY_PAGES) {
		for (i = 0; i < 8; i++) {
			uint64_t p = 0x300 + i * 7;
			ram[p * PAGE_SIZE + i] = (uint8_t)next_rand() | 1;
			idx[n++] = p;
			idx[n++] = RAM_PAGES - 1 - i; /* zero */
		}
	}
	if (parts & PART_ROUND) {
		struct mig_round rnd = { .round = 1, .pages = n };
		iov = (struct iovec){ &rnd, sizeof(rnd) };
		if (sec_write(&w, SEC_ROUND, 1, &iov, 1, &e) < 0)
			die("ROUND", &e);
	}
	if (pages_send(&w, ram, idx, n, true, false, &st, &e) < 0)
		die("PAGES", &e);
	if (parts & PART_ROUND) {
		struct mig_round rnd = { .round = 2, .pages = 2 };
		iov = (struct iovec){ &rnd, sizeof(rnd) };
		if (sec_write(&w, SEC_ROUND, 1, &iov, 1, &e) < 0)
			die("ROUND", &e);
		if (pages_send(&w, ram, idx, 2, false, false, &st, &e) < 0)
			die("PAGES", &e);
	}
	if (parts & PART_ABORT) {
		struct mig_abort a;
		memset(&a, 0, sizeof(a));
		snprintf(a.reason, sizeof(a.reason), "source gave up");
		iov = (struct iovec){ &a, sizeof(a) };
		if (sec_write(&w, SEC_ABORT, 1, &iov, 1, &e) < 0)
			die("ABORT", &e);
	}
	if (parts & PART_STATE) {
		struct serial_state ss;
		struct vcpu_state *vs = malloc(sizeof(*vs));
		struct vm_state vms;

		if (!vs)
			die("malloc", NULL);
		make_serial(&ss);
		make_vcpu(vs);
		make_vm(&vms);
		iov = (struct iovec){ &ss, sizeof(ss) };
		if (sec_write(&w, SEC_SERIAL, SERIAL_STATE_VERSION, &iov, 1, &e) < 0)
			die("SERIAL", &e);
		iov = (struct iovec){ vs, sizeof(*vs) };
		if (sec_write(&w, SEC_VCPU, VCPU_STATE_VERSION, &iov, 1, &e) < 0)
			die("VCPU", &e);
		if (parts & PART_TWO_VCPUS) { /* an AP that still waits for SIPI */
			vs->id = 1;
			vs->mp_state.mp_state = KVM_MP_STATE_UNINITIALIZED;
			vs->sregs.apic_base = 0xfee00800;
			vs->regs.rip = 0xfff0;
			if (sec_write(&w, SEC_VCPU, VCPU_STATE_VERSION, &iov, 1, &e) < 0)
				die("VCPU", &e);
		}
		iov = (struct iovec){ &vms, sizeof(vms) };
		if (sec_write(&w, SEC_VM, VM_STATE_VERSION, &iov, 1, &e) < 0)
			die("VM", &e);
		free(vs);
	}
	if (sec_write_end(&w, st.data_pages + st.markers, &e) < 0)
		die("END", &e);
	sec_writer_fini(&w);
	close(fd);
}

/* ---- state seeds: selector byte + struct ---- */

static void state_seeds(void)
{
	struct vcpu_state *vs = malloc(sizeof(*vs));
	uint8_t buf[1 + sizeof(struct vm_state) + 64];
	struct serial_state ss;
	struct vm_state vms;
	/* {op, value}: write LCR, set IER, read IIR, read RX twice, loopback write, input */
	static const uint8_t ops[] = { 0x83, 0x03, 0x81, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
				       0x84, 0x10, 0x80, 0x41, 0x05, 0x00, 0x43, 0x7a, 0x06, 0x00 };

	if (!vs)
		die("malloc", NULL);
	make_vcpu(vs);
	/* everything validation reads lies before the LAPIC state; the rest is zero-padded */
	buf[0] = 0;
	{
		int fd = open_out("fuzz_state", "vcpu");
		write_all(fd, buf, 1);
		write_all(fd, vs, offsetof(struct vcpu_state, lapic));
		close(fd);
	}
	/* whole states: MSRs and CPUID lie after the LAPIC. One a hostile source might send
	 * (VMX in CPUID, an unknown leaf; refused for IA32_FEATURE_CONTROL), one that passes. */
	vs->cpuid[1].ecx |= 1u << 5;
	vs->cpuid[vs->ncpuid++] = (struct kvm_cpuid_entry2){ .function = 0x12, .eax = 1 };
	vs->cpuid[vs->ncpuid++] = (struct kvm_cpuid_entry2){ .function = 0x80000001, .ecx = 0xffffffff };
	{
		int fd = open_out("fuzz_state", "vcpu-vmx");
		write_all(fd, buf, 1);
		write_all(fd, vs, sizeof(*vs));
		close(fd);
	}
	vs->msrs[vs->nmsrs++] = (struct kvm_msr_entry){ .index = 0x3a, .data = 5 }; /* IA32_FEATURE_CONTROL */
	{
		int fd = open_out("fuzz_state", "vcpu-feature-control");
		write_all(fd, buf, 1);
		write_all(fd, vs, sizeof(*vs));
		close(fd);
	}
	free(vs);
	make_vm(&vms);
	buf[0] = 1;
	memcpy(buf + 1, &vms, sizeof(vms));
	write_file("fuzz_state", "vm", buf, 1 + sizeof(vms));
	make_serial(&ss);
	buf[0] = 2;
	memcpy(buf + 1, &ss, sizeof(ss));
	memcpy(buf + 1 + sizeof(ss), ops, sizeof(ops));
	write_file("fuzz_state", "serial", buf, 1 + sizeof(ss) + sizeof(ops));
}

/* ---- multiboot seeds: a tiny ELF32 kernel and an a.out-kludge image ---- */

static void multiboot_seeds(void)
{
	static uint8_t img[0x1100];
	Elf32_Ehdr *eh = (Elf32_Ehdr *)img;
	Elf32_Phdr *ph = (Elf32_Phdr *)(img + sizeof(*eh));
	uint32_t *mb = (uint32_t *)(img + 0x80);
	size_t i;

	memset(img, 0, sizeof(img));
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_386;
	eh->e_version = EV_CURRENT;
	eh->e_entry = 0x100000;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 2;
	ph[0] = (Elf32_Phdr){ .p_type = PT_LOAD, .p_offset = 0x1000, .p_vaddr = 0x100000,
			      .p_paddr = 0x100000, .p_filesz = 0x100, .p_memsz = 0x2000, .p_flags = 7,
			      .p_align = 0x1000 };
	ph[1] = (Elf32_Phdr){ .p_type = PT_NOTE, .p_offset = 0x80, .p_filesz = 12 };
	mb[0] = 0x1BADB002;
	mb[1] = 0x3;
	mb[2] = -(0x1BADB002u + 0x3);
	for (i = 0; i < 0x100; i++)
		img[0x1000 + i] = (uint8_t)(i * 7 + 1);
	img[0x1000] = 0xf4; /* hlt */
	write_file("fuzz_multiboot", "tiny.elf", img, sizeof(img));

	/* a.out kludge: a flat image loaded at 1 MiB whose header (at 0x10) says so */
	memset(img, 0x90, 0x200);
	mb = (uint32_t *)(img + 0x10);
	mb[0] = 0x1BADB002;
	mb[1] = 0x10003;
	mb[2] = -(0x1BADB002u + 0x10003);
	mb[3] = 0x100010;  /* header_addr */
	mb[4] = 0x100000;  /* load_addr */
	mb[5] = 0x100200;  /* load_end_addr */
	mb[6] = 0x104000;  /* bss_end_addr */
	mb[7] = 0x100040;  /* entry_addr */
	write_file("fuzz_multiboot", "aout.bin", img, 0x200);
}

static void control_seeds(void)
{
	static const char *const lines[] = {
		"{\"cmd\":\"status\"}",
		"{\"cmd\":\"migrate\",\"uri\":\"tls://127.0.0.1:4444\",\"max_downtime_ms\":300}\r",
		"{\"cmd\":\"snapshot\",\"path\":\"/tmp/a.snap\",\"nested\":{\"a\":[1,2.5,true,null,\"\\u00e9\"]}}",
		"[\"cmd\",\"status\"]",
		"{\"cmd\":\"\"}",
		"{\"cmd\":\"a\",\"cmd\":\"b\"}",
	};
	char name[16];
	size_t i;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(name, sizeof(name), "line%zu", i);
		write_file("fuzz_control", name, lines[i], strlen(lines[i]));
	}
}

/* ---- sealed snapshot seeds: sealed with fuzz_sealed's fixed key ---- */

static const uint8_t fixed_key[32] = { 0x5e, 0xa1, 0x7d, 0x00, 0xf0, 0x22, 0x11, 0x33 };

static void sealed_seed(const char *name, unsigned npages)
{
	static uint8_t ram[RAM_SIZE];
	struct snapshot_file_header fh = { .format = SNAPSHOT_FORMAT, .header_size = sizeof(fh),
					   .cipher = SNAPSHOT_CIPHER_AES256GCM };
	struct machine_config cfg = { .version = CONFIG_VERSION, .nr_vcpus = 1, .ram_size = RAM_SIZE };
	struct iovec iov = { &cfg, sizeof(cfg) };
	struct pages_stats st = { 0 };
	struct sealed_keys k;
	struct sealed_stream ss;
	struct sec_writer w;
	struct sec_bind bind;
	struct err e = { 0 };
	uint64_t idx[64];
	unsigned i;
	int fd = open_out("fuzz_sealed", name);

	memcpy(fh.magic, SNAPSHOT_MAGIC, 8);
	for (i = 0; i < 32; i++)
		fh.salt[i] = (uint8_t)next_rand();
	if (snapshot_file_keys(&fh, fixed_key, &k, fh.key_id, &e) < 0)
		die("keys", &e);
	write_all(fd, &fh, sizeof(fh));
	if (sealed_writer_init(&ss, fd, k.data, &fh, sizeof(fh), fh.nonce_prefix, &e) < 0 ||
	    sec_writer_init(&w, &ss.bs, &e) < 0)
		die("sealed writer", &e);
	snapshot_end_bind(&k, &fh, &bind);
	w.bind = &bind;
	if (sec_write(&w, SEC_CONFIG, 1, &iov, 1, &e) < 0)
		die("CONFIG", &e);
	memset(ram, 0, sizeof(ram));
	for (i = 0; i < npages && i < 64; i++) {
		ram[(0x10 + i) * PAGE_SIZE + i] = (uint8_t)(i + 1);
		idx[i] = 0x10 + i;
	}
	if (npages && pages_send(&w, ram, idx, npages, false, true, &st, &e) < 0)
		die("PAGES", &e);
	if (sec_write_end(&w, st.data_pages + st.markers, &e) < 0 || sealed_writer_finish(&ss, &e) < 0)
		die("END", &e);
	sec_writer_fini(&w);
	sealed_fini(&ss);
	close(fd);
}

static void outcome_seeds(void)
{
	static const struct {
		char sel;              /* 1: outcome record, 0: key text */
		const char *text;
	} seeds[] = {
		{ 1, "{\"version\":1,\"outcome\":\"committed\",\"time\":1764400000,\"peer\":\"hosta\",\"ended\":\"\"}\n" },
		{ 1, "{\"version\":1,\"outcome\":\"aborted\",\"time\":1764400000,\"peer\":\"hosta\",\"ended\":\"\"}\n" },
		{ 1, "{\"version\":1,\"outcome\":\"committed\",\"time\":5,\"peer\":\"\",\"ended\":\"quit from the control socket\"}\n" },
		{ 0, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" },
		{ 0, "abcdefghijklmnopqrstuvwxyz012345" },
	};
	char name[32];
	size_t i;

	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		int fd;
		snprintf(name, sizeof(name), "seed-%zu", i);
		fd = open_out("fuzz_outcome", name);
		write_all(fd, &seeds[i].sel, 1);
		write_all(fd, seeds[i].text, strlen(seeds[i].text));
		close(fd);
	}
}

static void console_seeds(void)
{
	static struct console_state st;
	static const struct console_key key = CONSOLE_SEED_KEY;
	static uint8_t sealed[sizeof(st) + SEAL_OVERHEAD];
	struct cp_hello h = { CPROTO_VERSION, CP_HELLO_RW | CP_HELLO_SCREEN, 0 };
	struct cp_redirect rd = { 4096, 3, "tls://hostb:7701" };
	uint8_t buf[512], spki[CONSOLE_SPKI_MAX];
	EVP_PKEY *owner = console_seed_owner();
	struct err e = { 0 };
	size_t n, m;

	n = cp_encode_hello(buf, &h);
	n += cp_encode_redirect(buf + n, &rd);
	write_file("fuzz_console", "hello-redirect", buf, n);
	memset(&st, 0, sizeof(st));
	st.version = CONSOLE_STATE_VERSION;
	st.vga.version = VGA_STATE_VERSION;
	st.kbd.version = I8042_STATE_VERSION;
	st.kbd.kbd_enabled = 1;
	make_serial(&st.uart);
	st.serial_total = 1000;
	st.scroll_len = 40;
	memcpy(st.scrollback, "CONSOLE READY\r\nsealvm> HB 1\r\nsealvm> ab", 40);
	st.input_len = 2;
	memcpy(st.input, "ab", 2);
	if (console_seal(&key, CONSOLE_STATE_VERSION, &st, console_state_size(&st), sealed, &n, &e) < 0)
		die("seal", &e);
	write_file("fuzz_console", "sealed", sealed, n);
	if (console_spki(owner, spki, sizeof(spki), &m, &e) < 0 || console_wrap(&key, spki, m, buf, &n, &e) < 0)
		die("wrap", &e);
	write_file("fuzz_console", "wrap", buf, n);
	EVP_PKEY_free(owner);
}

/* fuzz_memserver: event byte (who | event << 2), then a record. */
static size_t ms_rec(uint8_t *buf, uint8_t who, uint16_t op, uint64_t tag, const void *p, uint32_t len)
{
	struct ms_hdr h = { .op = op, .len = len, .tag = tag };

	buf[0] = who; /* event 0: a request */
	memcpy(buf + 1, &h, sizeof(h));
	memcpy(buf + 1 + sizeof(h), p, len);
	return 1 + sizeof(h) + len;
}

static void memserver_seeds(void)
{
	static uint8_t buf[1 << 20];
	static uint8_t blob[MS_BLOB_MAX];
	const uint8_t *bp[4] = { blob, blob, blob, blob };
	const uint32_t lens[4] = { PAGE_BLOB_SIZE, 100, 1, MS_BLOB_MAX };
	const uint64_t keys[4] = { 7, 8, 9, 1000 };
	uint8_t put[MS_PUT_LEN_MAX];
	struct ms_create cr = { .quota = 20, .flags = MS_CREATE_EPHEMERAL };
	struct ms_key_req get = { .key = 8 };
	struct ms_store_req sr;
	struct ms_grant g = { .ttl_s = 5, .grantee = { 0xb2 } };
	struct ms_ping ping = { 42 };
	struct ms_get_reply gr = { .key = 8, .len = 100 };
	struct ms_hdr ah = { .op = MS_GET | MS_REPLY, .len = sizeof(gr) + 100, .tag = 3 };
	size_t n = 0, pl;

	memset(blob, 0x3c, sizeof(blob));
	for (int i = 0; i < 16; i++)
		cr.store[i] = sr.store[i] = get.store[i] = g.store[i] = (uint8_t)(0xe0 + i);
	/* hosta creates, fills, reads; grants to hostb, hangs up; hostb looks, adopts, reads, frees */
	n += ms_rec(buf + n, 0, MS_CREATE, 1, &cr, sizeof(cr));
	pl = ms_encode_put(put, cr.store, 4, keys, bp, lens);
	n += ms_rec(buf + n, 0, MS_PUT, 2, put, (uint32_t)pl);
	n += ms_rec(buf + n, 0, MS_GET, 3, &get, sizeof(get));
	n += ms_rec(buf + n, 2, MS_GET, 4, &get, sizeof(get));
	n += ms_rec(buf + n, 0, MS_GRANT, 5, &g, sizeof(g));
	buf[n++] = 0 | 5 << 2; /* hosta's connection ends */
	n += ms_rec(buf + n, 1, MS_STAT, 6, &sr, sizeof(sr));
	n += ms_rec(buf + n, 1, MS_ADOPT, 7, &sr, sizeof(sr));
	n += ms_rec(buf + n, 1, MS_GET, 8, &get, sizeof(get));
	n += ms_rec(buf + n, 1, MS_PING, 9, &ping, sizeof(ping));
	n += ms_rec(buf + n, 1, MS_FREE, 10, &sr, sizeof(sr));
	write_file("fuzz_memserver", "handover", buf, n);
	/* an ephemeral store granted, both sides gone, time passes */
	n = 0;
	n += ms_rec(buf + n, 0, MS_CREATE, 1, &cr, sizeof(cr));
	n += ms_rec(buf + n, 0, MS_GRANT, 2, &g, sizeof(g));
	buf[n++] = 0 | 5 << 2;
	n += ms_rec(buf + n, 1, MS_DECLINE, 3, &sr, sizeof(sr));
	buf[n++] = 1 | 6 << 2;
	buf[n++] = 10;
	write_file("fuzz_memserver", "expire", buf, n);
	/* the client checking a GET answer */
	n = 0;
	buf[n++] = 7 << 2;
	buf[n++] = MS_GET;
	memcpy(buf + n, &ah, sizeof(ah));
	n += sizeof(ah);
	memcpy(buf + n, &gr, sizeof(gr));
	n += sizeof(gr);
	memset(buf + n, 0x11, 100);
	n += 100;
	write_file("fuzz_memserver", "answer", buf, n);
}

static void pageseal_seeds(void)
{
	const struct page_key k = PAGESEAL_SEED_KEY;
	static uint8_t buf[16 + PAGE_BLOB_SIZE], page[PAGE_SEAL_PAGE];
	struct page_sealer *s;
	struct err e = { 0 };
	uint64_t pg = 77, v = 5;

	if (page_sealer_new(&k, &s, &e) < 0)
		die("page sealer", &e);
	for (unsigned i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)(i * 7);
	memcpy(buf, &pg, 8);
	memcpy(buf + 8, &v, 8);
	if (page_seal(s, pg, v, PAGE_MODE_SEALED, page, buf + 16, &e) < 0)
		die("seal", &e);
	write_file("fuzz_pageseal", "sealed", buf, sizeof(buf));
	if (page_seal(s, pg, v, PAGE_MODE_PLAIN, page, buf + 16, &e) < 0)
		die("seal", &e);
	write_file("fuzz_pageseal", "plain", buf, sizeof(buf));
	v = 6; /* the same blob, expected one version later: stale */
	memcpy(buf + 8, &v, 8);
	write_file("fuzz_pageseal", "stale", buf, sizeof(buf));
	page_sealer_free(s);
}

static void pubmem_seeds(void)
{
	struct pubmem p;
	struct pubmem_state st;
	struct err e = { 0 };
	uint8_t buf[1 + sizeof(st)];
	static const char list[] = "\x01" "16M-32M,0x100000-0x200000,60M-61M";
	/* guest: FIRST=0x1000, COUNT=0x100, PUBLIC; FIRST=0x1080, COUNT=0x10, PRIVATE; TOTALS; QUERY 1 */
	static const uint8_t port[] = {
		2,
		4, 0x80, 0x00, 0x10, 0, 0,  8, 0x80, 0x00, 0x01, 0, 0,  0, 0x80, 1, 0, 0, 0,
		4, 0x80, 0x80, 0x10, 0, 0,  8, 0x80, 0x10, 0, 0, 0,     0, 0x80, 2, 0, 0, 0,
		0, 0x80, 5, 0, 0, 0,        12, 0x02, 0, 0, 0, 0,       4, 0x80, 1, 0, 0, 0,
		0, 0x80, 4, 0, 0, 0,        4, 0x02, 0, 0, 0, 0,
	};

	pubmem_init(&p, 64ull << 20);
	if (pubmem_declare_list(&p, list + 1, &e) < 0)
		die("pubmem", &e);
	pubmem_save(&p, &st);
	buf[0] = 0;
	memcpy(buf + 1, &st, sizeof(st));
	write_file("fuzz_pubmem", "state", buf, sizeof(buf));
	write_file("fuzz_pubmem", "list", list, sizeof(list) - 1);
	write_file("fuzz_pubmem", "port", port, sizeof(port));
	pubmem_destroy(&p);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds DIR\n");
		return 2;
	}
	root = argv[1];
	if (mkdir(root, 0755) < 0 && errno != EEXIST)
		die(root, NULL);
	stream_seed("full-raw", 0, PART_STATE);
	stream_seed("full-fix", 1, PART_STATE);
	stream_seed("migration-fix", 1, PART_ROUND | PART_STATE | PART_MANY_PAGES);
	stream_seed("pages-raw", 0, PART_MANY_PAGES);
	stream_seed("small-fix", 1, 0);
	stream_seed("abort-fix", 1, PART_ROUND | PART_ABORT);
	stream_seed("two-vcpus-fix", 1, PART_STATE | PART_TWO_VCPUS);
	state_seeds();
	multiboot_seeds();
	control_seeds();
	sealed_seed("small", 3);
	sealed_seed("empty", 0);
	outcome_seeds();
	console_seeds();
	memserver_seeds();
	pageseal_seeds();
	pubmem_seeds();
	return 0;
}
