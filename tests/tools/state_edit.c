/* state_edit: rewrites a snapshot the way a hostile source could have written it,
 * with every section checksum and the END transcript recomputed, so that only
 * sealvm's own checks of the contents can refuse it.
 *
 * usage: state_edit IN OUT EDIT...
 *   vmx            set VMX (CPUID.1:ECX[5]) in every vCPU's CPUID
 *   leaf:HEX       add CPUID leaf HEX (all registers set) to every vCPU
 *   msr:HEX=HEX    add MSR index=value to every vCPU's MSR list
 * Prints one line per vCPU edited; exits 1 on any error. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/section.h"
#include "vm/vcpu.h"
#include "vmm/snapshot.h"

static int edit_vcpu(struct vcpu_state *s, int argc, char **argv, struct err *e)
{
	int i;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		unsigned long long x, y;
		uint32_t k;

		if (!strcmp(a, "vmx")) {
			for (k = 0; k < s->ncpuid; k++)
				if (s->cpuid[k].function == 1)
					s->cpuid[k].ecx |= 1u << 5;
		} else if (sscanf(a, "leaf:%llx", &x) == 1) {
			if (s->ncpuid >= VCPU_MAX_CPUID)
				return err_set(e, -E2BIG, "no room for a CPUID leaf");
			s->cpuid[s->ncpuid++] = (struct kvm_cpuid_entry2){ .function = (uint32_t)x, .eax = ~0u,
									   .ebx = ~0u, .ecx = ~0u, .edx = ~0u };
		} else if (sscanf(a, "msr:%llx=%llx", &x, &y) == 2) {
			if (s->nmsrs >= VCPU_MAX_MSRS)
				return err_set(e, -E2BIG, "no room for an MSR");
			s->msrs[s->nmsrs++] = (struct kvm_msr_entry){ .index = (uint32_t)x, .data = y };
		} else {
			return err_set(e, -EINVAL, "unknown edit '%s'", a);
		}
	}
	printf("state_edit: vCPU %u edited\n", s->id);
	return 0;
}

static int run(const char *in, const char *out, int argc, char **argv, struct err *e)
{
	struct snapshot_file_header fh;
	struct fd_bstream ib, ob;
	struct sec_reader r;
	struct sec_writer w;
	struct sec_hdr h;
	uint8_t *buf = malloc(sec_max_len(SEC_PAGES));
	int ifd = open(in, O_RDONLY), ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), rc;
	bool done = false;

	if (!buf || ifd < 0 || ofd < 0)
		return err_sys(e, -errno, "open %s / %s", in, out);
	fd_bstream_init(&ib, ifd);
	fd_bstream_init(&ob, ofd);
	rc = sec_reader_init(&r, &ib.bs, e);
	if (rc == 0)
		rc = sec_writer_init(&w, &ob.bs, e);
	if (rc == 0)
		rc = ib.bs.read_full(&ib.bs, &fh, sizeof(fh), e);
	if (rc == 0)
		rc = bstream_write(&ob.bs, &fh, sizeof(fh), e);
	while (rc == 0 && !done) {
		rc = sec_read_hdr(&r, &h, e);
		if (rc < 0)
			break;
		if (h.id == SEC_END) {
			struct sec_end_payload end;
			rc = sec_read(&r, &end, sizeof(end), e);
			if (rc == 0)
				rc = sec_write_end(&w, end.pages, e); /* the new sections' transcript */
			done = true;
			break;
		}
		rc = sec_read(&r, buf, h.len, e);
		if (rc == 0)
			rc = sec_read_end(&r, e);
		if (rc == 0 && h.id == SEC_VCPU && h.len == sizeof(struct vcpu_state))
			rc = edit_vcpu((struct vcpu_state *)buf, argc, argv, e);
		if (rc == 0) {
			struct iovec iov = { buf, h.len };
			rc = sec_write(&w, h.id, h.version, &iov, 1, e);
		}
	}
	sec_reader_fini(&r);
	sec_writer_fini(&w);
	free(buf);
	close(ifd);
	if (close(ofd) < 0 && rc == 0)
		rc = err_sys(e, -errno, "close %s", out);
	return rc;
}

int main(int argc, char **argv)
{
	struct err e = { 0 };

	if (argc < 4) {
		fprintf(stderr, "usage: state_edit IN OUT vmx|leaf:HEX|msr:HEX=HEX...\n");
		return 2;
	}
	if (run(argv[1], argv[2], argc - 3, argv + 3, &e) < 0) {
		fprintf(stderr, "state_edit: %s\n", e.msg);
		return 1;
	}
	return 0;
}
