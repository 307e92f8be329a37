/* unseal: writes the decrypted section stream of a sealed snapshot, for tests that
 * must look inside one (e.g. that a console canary is absent even in plaintext).
 * usage: unseal SNAPSHOT KEYFILE OUT   (KEYFILE: e.g. STATE_DIR/snapshot.key) */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "state/sealed.h"
#include "util/secret_file.h"
#include "vmm/snapshot.h"

int main(int argc, char **argv)
{
	struct snapshot_file_header fh;
	struct sealed_keys k;
	struct sealed_stream ss;
	struct err e = { 0 };
	uint8_t key[32], buf[4096];
	int in, out;

	if (argc != 4) {
		fprintf(stderr, "usage: unseal SNAPSHOT KEYFILE OUT\n");
		return 2;
	}
	in = open(argv[1], O_RDONLY);
	out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (in < 0 || out < 0 || read(in, &fh, sizeof(fh)) != sizeof(fh) || key_file_load(argv[2], key, &e) < 0 ||
	    sealed_derive(key, fh.salt, "sealvm snapshot v2", &k, &e) < 0 ||
	    sealed_reader_init(&ss, in, k.data, &fh, sizeof(fh), fh.nonce_prefix, &e) < 0) {
		fprintf(stderr, "unseal: cannot open %s: %s\n", argv[1], e.msg);
		return 1;
	}
	for (;;) {
		int r = ss.bs.read_full(&ss.bs, buf, 1, &e);
		if (r < 0)
			break;
		/* the rest of the chunk at once */
		size_t n = ss.len - ss.pos;
		if (write(out, buf, 1) != 1 || (n && write(out, ss.buf + ss.pos, n) != (ssize_t)n))
			return 1;
		ss.pos = ss.len;
	}
	if (!ss.final_seen) {
		fprintf(stderr, "unseal: %s\n", e.msg);
		return 1;
	}
	sealed_fini(&ss);
	close(out);
	return 0;
}
