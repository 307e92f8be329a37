/* A sealed file: a byte stream stored as AES-256-GCM chunks (OpenSSL EVP), so
 * that whoever can read the file learns nothing of it and any change, reordering,
 * truncation or extension is refused.
 *
 *   file  = header (the caller's, stored in clear, authenticated with every chunk)
 *           chunk* (the last one flagged final)
 *   chunk = {u32 len | SEALED_FINAL} ciphertext[len] tag[16]
 *   nonce = nonce_prefix[4] || chunk index (u64, little endian)
 *   AAD   = header || chunk index || the chunk's u32
 * The key comes from sealed_derive: HKDF-SHA256 of a master key and a random
 * per-file salt (kept in the caller's header), so nonces never repeat under a key. */
#ifndef SEALVM_STATE_SEALED_H
#define SEALVM_STATE_SEALED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bstream.h"
#include "util/err.h"

#define SEALED_CHUNK (1u << 20)
#define SEALED_FINAL 0x80000000u
#define SEALED_TAG 16
#define SEALED_HDR_MAX 128

struct sealed_keys {
	uint8_t data[32];          /* chunk encryption */
	uint8_t end[32];           /* keys the END section's MAC of the stream inside */
};

/* HKDF-SHA256(master, salt) for the purpose named by label. */
int sealed_derive(const uint8_t master[32], const uint8_t salt[32], const char *label, struct sealed_keys *k,
		  struct err *e);

struct sealed_stream {
	struct bstream bs;         /* write to it (writer) or read from it (reader) */
	int fd;
	void *ctx;                 /* EVP_CIPHER_CTX */
	uint8_t key[32];
	uint8_t hdr[SEALED_HDR_MAX];
	size_t hdr_len;
	uint8_t nonce_prefix[4];
	uint64_t index;            /* next chunk */
	uint8_t *buf;              /* plaintext of the current chunk */
	size_t len, pos;
	uint8_t *io;               /* ciphertext staging */
	bool final_seen;
	uint64_t file_bytes;       /* bytes written to or read from the file */
};

int sealed_writer_init(struct sealed_stream *s, int fd, const uint8_t key[32], const void *hdr, size_t hdr_len,
		       const uint8_t nonce_prefix[4], struct err *e);
/* Seals what is buffered as the final chunk. */
int sealed_writer_finish(struct sealed_stream *s, struct err *e);

/* The caller has read and checked hdr from fd already. */
int sealed_reader_init(struct sealed_stream *s, int fd, const uint8_t key[32], const void *hdr, size_t hdr_len,
		       const uint8_t nonce_prefix[4], struct err *e);
/* 0 once the final chunk was read to its end and nothing follows it in the file. */
int sealed_reader_check_end(struct sealed_stream *s, struct err *e);

void sealed_fini(struct sealed_stream *s);

#endif
