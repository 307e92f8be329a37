/* libFuzzer target: a snapshot file as restore reads it, before anything else
 * trusts it — the clear header, then the sealed chunks (framing, lengths, the
 * final flag), then the section stream inside and its END binding, under a fixed
 * master key (gen_seeds seals its seeds with the same key, so a seed opens).
 * Mutations almost always fail authentication: that is the point, the reader
 * must refuse them cleanly, whatever the chunk framing claims. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "state/sealed.h"
#include "state/section.h"
#include "vmm/snapshot.h"

static const uint8_t fixed_key[32] = { 0x5e, 0xa1, 0x7d, 0x00, 0xf0, 0x22, 0x11, 0x33 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot_file_header fh;
	struct sealed_keys k;
	struct sealed_stream ss;
	struct sec_reader rd;
	struct sec_bind bind;
	struct sec_hdr h;
	struct err e = { 0 };
	uint8_t key_id[4], scratch[8192];
	int fd = memfd_create("snap", 0), r;

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
		goto out;
	{
		uint8_t hb[sizeof(fh)];
		ssize_t n = read(fd, hb, sizeof(hb));
		if (snapshot_check_header(hb, n < 0 ? 0 : (size_t)n, "input", &fh, &e) < 0) {
			if (e.code >= 0 || !e.msg[0])
				__builtin_trap();
			goto out;
		}
	}
	if (snapshot_file_keys(&fh, fixed_key, &k, key_id, &e) < 0 ||
	    sealed_reader_init(&ss, fd, k.data, &fh, sizeof(fh), fh.nonce_prefix, &e) < 0)
		goto out;
	r = sec_reader_init(&rd, &ss.bs, &e);
	snapshot_end_bind(&k, &fh, &bind);
	rd.bind = &bind;
	while (r == 0) {
		r = sec_read_hdr(&rd, &h, &e);
		if (r < 0)
			break;
		if (h.id == SEC_END) {
			r = sec_check_end(&rd, &h, 0, &e);
			if (r == 0)
				r = sealed_reader_check_end(&ss, &e);
			break;
		}
		for (uint64_t left = h.len; r == 0 && left;) {
			size_t n = left < sizeof(scratch) ? (size_t)left : sizeof(scratch);
			r = sec_read(&rd, scratch, n, &e);
			left -= n;
		}
		if (r == 0)
			r = sec_read_end(&rd, &e);
	}
	if (r < 0 && (e.code >= 0 || !e.msg[0]))
		__builtin_trap();
	sec_reader_fini(&rd);
	sealed_fini(&ss);
out:
	close(fd);
	return 0;
}
