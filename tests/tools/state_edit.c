/* state_edit: rewrites a snapshot the way a hostile holder of its key could have
 * written it: opened, edited, and sealed again with every section checksum and
 * the END MAC recomputed, so that only sealvm's own checks of the contents can
 * refuse it.
 *
 * usage: state_edit IN OUT KEYFILE EDIT...
 *   vmx            set VMX (CPUID.1:ECX[5]) in every vCPU's CPUID
 *   leaf:HEX       add CPUID leaf HEX (all registers set) to every vCPU
 *   msr:HEX=HEX    add MSR index=value to every vCPU's MSR list
 * Prints one line per vCPU edited; exits 1 on any error. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "state/sealed.h"
#include "state/section.h"
#include "util/secret_file.h"
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

static int run(const char *in, const char *out, const char *keyfile, int argc, char **argv, struct err *e)
{
	struct snapshot_file_header fh, nh;
	struct sealed_keys ik, ok;
	struct sealed_stream is = { 0 }, os = { 0 };
	struct sec_bind ib, ob;
	struct sec_reader r = { 0 };
	struct sec_writer w = { 0 };
	struct sec_hdr h;
	uint8_t key[32], id[4], *buf = malloc(sec_max_len(SEC_PAGES));
	int ifd = open(in, O_RDONLY), ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), rc;
	bool done = false;

	if (!buf || ifd < 0 || ofd < 0)
		return err_sys(e, -errno, "open %s / %s", in, out);
	rc = key_file_load(keyfile, key, e);
	if (rc == 0 && read(ifd, &fh, sizeof(fh)) != sizeof(fh))
		rc = err_set(e, -EIO, "short header");
	nh = fh;
	if (rc == 0 && RAND_bytes(nh.salt, sizeof(nh.salt)) != 1)
		rc = err_set(e, -EIO, "no randomness");
	if (rc == 0)
		rc = snapshot_file_keys(&fh, key, &ik, id, e);
	if (rc == 0)
		rc = snapshot_file_keys(&nh, key, &ok, nh.key_id, e);
	if (rc == 0 && write(ofd, &nh, sizeof(nh)) != sizeof(nh))
		rc = err_set(e, -EIO, "write header");
	if (rc == 0)
		rc = sealed_reader_init(&is, ifd, ik.data, &fh, sizeof(fh), fh.nonce_prefix, e);
	if (rc == 0)
		rc = sealed_writer_init(&os, ofd, ok.data, &nh, sizeof(nh), nh.nonce_prefix, e);
	if (rc == 0)
		rc = sec_reader_init(&r, &is.bs, e);
	if (rc == 0)
		rc = sec_writer_init(&w, &os.bs, e);
	snapshot_end_bind(&ik, &fh, &ib);
	snapshot_end_bind(&ok, &nh, &ob);
	r.bind = &ib;
	w.bind = &ob;
	while (rc == 0 && !done) {
		rc = sec_read_hdr(&r, &h, e);
		if (rc < 0)
			break;
		if (h.id == SEC_END) {
			struct sec_end_payload end;
			rc = sec_read(&r, &end, sizeof(end), e);
			if (rc == 0)
				rc = sec_write_end(&w, end.pages, e); /* the new sections' MAC */
			if (rc == 0)
				rc = sealed_writer_finish(&os, e);
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
	sealed_fini(&is);
	sealed_fini(&os);
	free(buf);
	close(ifd);
	if (close(ofd) < 0 && rc == 0)
		rc = err_sys(e, -errno, "close %s", out);
	return rc;
}

int main(int argc, char **argv)
{
	struct err e = { 0 };

	if (argc < 5) {
		fprintf(stderr, "usage: state_edit IN OUT KEYFILE vmx|leaf:HEX|msr:HEX=HEX...\n");
		return 2;
	}
	if (run(argv[1], argv[2], argv[3], argc - 4, argv + 4, &e) < 0) {
		fprintf(stderr, "state_edit: %s\n", e.msg);
		return 1;
	}
	return 0;
}
