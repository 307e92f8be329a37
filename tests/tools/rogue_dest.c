/* rogue_dest: a destination built from sealvm's own library that holds a valid
 * cluster certificate and answers the source's attestation challenge with evidence
 * recorded earlier (a real quote from the host's TPM, made for another nonce):
 * a replayed quote. It serves one connection and prints what it saw.
 *
 * usage: rogue_dest PORT TLS_DIR EVIDENCE_FILE
 * Prints "rogue: listening", then each record the source sends ("rogue: got NAME"),
 * and the source's ABORT reason as "rogue: source said: ...". */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel/channel.h"
#include "migrate/proto.h"
#include "state/section.h"
#include "util/file.h"
#include "util/hex.h"

int main(int argc, char **argv)
{
	struct chan_listener *l = NULL;
	struct chan *c = NULL;
	struct sec_writer w;
	struct sec_reader r;
	struct err e = { 0 };
	char uri[64], *ev = NULL, *msg, hex[65];
	uint8_t nonce[32], buf[4096];
	size_t evlen;
	int i;

	if (argc != 4) {
		fprintf(stderr, "usage: rogue_dest PORT TLS_DIR EVIDENCE_FILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%s", argv[1]);
	if (file_read_all(argv[3], 1 << 20, &ev, &evlen, &e) < 0 || chan_listen(uri, argv[2], &l, &e) < 0) {
		fprintf(stderr, "rogue: %s\n", e.msg);
		return 1;
	}
	printf("rogue: listening\n");
	if (chan_accept(l, 60000, &c, &e) < 0 || sec_writer_init(&w, chan_bstream(c), &e) < 0 ||
	    sec_reader_init(&r, chan_bstream(c), &e) < 0) {
		fprintf(stderr, "rogue: %s\n", e.msg);
		return 1;
	}
	chan_set_timeout(c, 20000);
	for (i = 0; i < 8; i++) {
		struct sec_hdr h;
		size_t n;
		if (sec_read_hdr(&r, &h, &e) < 0)
			break;
		printf("rogue: got %s\n", sec_name(h.id));
		n = h.len < sizeof(buf) ? h.len : sizeof(buf);
		if (h.len > sizeof(buf) || sec_read(&r, buf, n, &e) < 0 || sec_read_end(&r, &e) < 0)
			break;
		if (h.id == SEC_ABORT) {
			struct mig_abort *a = (struct mig_abort *)buf;
			a->reason[sizeof(a->reason) - 1] = 0;
			printf("rogue: source said: %s\n", a->reason);
			break;
		}
		if (h.id == SEC_ATTEST_REQ) {
			/* the recorded quote, with a challenge of our own */
			struct iovec iov;
			RAND_bytes(nonce, sizeof(nonce));
			hex_encode(nonce, sizeof(nonce), hex);
			if (asprintf(&msg, "{\"evidence\":%.*s,\"nonce\":\"%s\"}", (int)evlen, ev, hex) < 0)
				return 1;
			iov = (struct iovec){ msg, strlen(msg) };
			if (sec_write(&w, SEC_ATTEST, 1, &iov, 1, &e) < 0 || chan_flush(c, &e) < 0)
				break;
			free(msg);
			printf("rogue: sent the recorded evidence\n");
		}
	}
	if (e.msg[0])
		printf("rogue: ended: %s\n", e.msg);
	sec_writer_fini(&w);
	sec_reader_fini(&r);
	chan_close(c);
	chan_listener_close(l);
	free(ev);
	return 0;
}
