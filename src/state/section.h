/* Versioned state sections, shared by snapshot files and the migration stream.
 *
 * Every section is   header {id u32, version u32, seq u64, len u64}
 *                    payload (len bytes)
 *                    trailer {xxh3-64 of header and payload}
 * seq counts sections from 0, so a dropped, duplicated or reordered section is
 * caught by the reader before its payload is used. A running SHA-256 "transcript"
 * chains every header and trailer; the END section carries an HMAC of it, keyed
 * and bound by the stream's sec_bind (for a migration lane: TLS exporter keying
 * material of that very session, over the migration id and the destination's
 * fresh nonce), so the receiver can prove it saw exactly the sequence that was
 * sent, for this session: a stream prepared, recorded or stored elsewhere fails. */
#ifndef SEALVM_STATE_SECTION_H
#define SEALVM_STATE_SECTION_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <xxhash.h>

#include "util/bstream.h"
#include "util/err.h"

enum sec_id {
	SEC_CONFIG = 1,   /* VM shape: RAM size, vCPU count */
	SEC_PAGES = 2,    /* a batch of RAM pages (state/pages.h) */
	SEC_VCPU = 3,
	SEC_VM = 4,       /* irqchip, PIT, clock */
	SEC_SERIAL = 5,
	SEC_END = 6,      /* counts and transcript: the stream is complete */
	/* the owner's console (console/migrate.h): its state sealed under a console key,
	 * and that key, either raw (migration: only inside TLS) or wrapped for the owner
	 * (snapshot files) */
	SEC_CONSOLE = 7,
	SEC_CONSOLE_KEY = 8,
	SEC_CONSOLE_WRAP = 9,
	SEC_PUBMEM = 10,  /* which guest RAM is declared non-sensitive (dev/pubmem.h) */
	SEC_LABELS = 12,  /* snapshot: the VM's labels (JSON), right after CONFIG */
	/* migration control records */
	SEC_HELLO = 16,
	SEC_HELLO_ACK = 17,
	SEC_READY = 18,
	SEC_COMMIT = 19,
	SEC_COMMIT_ACK = 20,
	SEC_ABORT = 21,
	SEC_ATTEST_REQ = 22,
	SEC_ATTEST = 23,
	SEC_ROUND = 24,   /* start of a pre-copy round (progress marker) */
	SEC_SYNC = 25,    /* source: tell me when everything sent so far is applied */
	SEC_SYNC_ACK = 26,
	SEC_OUTCOME = 27, /* answer to an outcome query */
	SEC_CONSOLE_ADDR = 29, /* destination, before READY: where its owner's console listens */
	SEC_ID_MAX = 32,
};

struct sec_hdr {
	uint32_t id;
	uint32_t version;
	uint64_t seq;
	uint64_t len;
};

#define SEC_HDR_SIZE 24
#define SEC_TRAILER_SIZE 8

/* Name of a section id for messages ("PAGES"), "unknown" if none. */
const char *sec_name(uint32_t id);
/* Highest payload version this build reads, and the largest payload allowed. */
uint32_t sec_max_version(uint32_t id);
uint64_t sec_max_len(uint32_t id);

/* What END is keyed with and bound to. All zero: unbound (unit tests only). */
struct sec_bind {
	uint8_t key[32];
	uint8_t ctx[64];       /* e.g. migration id, destination nonce, lane index */
	uint32_t ctx_len;
};

struct sec_writer {
	struct bstream *bs;
	const struct sec_bind *bind;
	/* the transport authenticates every byte (TLS's AEAD): no per-section
	 * checksum (the trailer is 0; END's MAC still covers every header) */
	bool no_checksum;
	uint64_t seq;
	uint64_t bytes;        /* header + payload + trailer bytes written */
	EVP_MD_CTX *transcript;
	/* open section state */
	XXH3_state_t *xxh;
	struct sec_hdr cur;
	uint64_t cur_written;
	bool open;
};

struct sec_reader {
	struct bstream *bs;
	const struct sec_bind *bind;
	bool no_checksum;      /* as sec_writer: trailers are not checked */
	uint64_t seq;
	uint64_t bytes;
	EVP_MD_CTX *transcript;
	XXH3_state_t *xxh;
	struct sec_hdr cur;
	uint64_t cur_read;
	bool open;
	uint8_t pre_end[32];   /* transcript before the END header was read */
};

int sec_writer_init(struct sec_writer *w, struct bstream *bs, struct err *e);
void sec_writer_fini(struct sec_writer *w);
/* Writes a whole section from iovecs. */
int sec_write(struct sec_writer *w, uint32_t id, uint32_t version, const struct iovec *iov, int n,
	      struct err *e);
/* Streaming form: begin with the total length, add pieces, end. */
int sec_begin(struct sec_writer *w, uint32_t id, uint32_t version, uint64_t len, struct err *e);
int sec_add(struct sec_writer *w, const struct iovec *iov, int n, struct err *e);
int sec_end(struct sec_writer *w, struct err *e);
/* The transcript digest so far (for the END section). */
void sec_writer_digest(struct sec_writer *w, uint8_t out[32]);

int sec_reader_init(struct sec_reader *r, struct bstream *bs, struct err *e);
void sec_reader_fini(struct sec_reader *r);
/* Reads and checks the next header: known id, supported version, bounded length,
 * expected sequence number. */
int sec_read_hdr(struct sec_reader *r, struct sec_hdr *h, struct err *e);
/* Reads the next len bytes of the open section's payload. */
int sec_read(struct sec_reader *r, void *buf, size_t len, struct err *e);
/* Reads the trailer and checks the checksum; the whole payload must have been read. */
int sec_read_end(struct sec_reader *r, struct err *e);
/* Reads a whole small section into buf (exactly want bytes expected). */
int sec_read_exact(struct sec_reader *r, const struct sec_hdr *h, void *buf, size_t want, struct err *e);
void sec_reader_digest(struct sec_reader *r, uint8_t out[32]);

/* END payload. Version 1 carried the bare transcript hash (unbound: any copy of a
 * stream verified anywhere); it is refused. */
#define END_VERSION 2
struct sec_end_payload {
	uint64_t sections;     /* sections before END */
	uint64_t pages;        /* page records (data + zero) carried */
	uint8_t mac[32];       /* HMAC-SHA256(bind key, label, bind ctx, sections, pages, transcript) */
};

/* The END MAC (exposed for tests and fuzzing harnesses). */
void sec_end_mac(const struct sec_bind *b, uint64_t sections, uint64_t pages, const uint8_t transcript[32],
		 uint8_t mac[32]);
/* Writes END with the number of page entries sent and the MAC of the transcript so far. */
int sec_write_end(struct sec_writer *w, uint64_t pages, struct err *e);
/* Reads END (header already read) and checks section count, page count and MAC. */
int sec_check_end(struct sec_reader *r, const struct sec_hdr *h, uint64_t pages, struct err *e);

#endif
