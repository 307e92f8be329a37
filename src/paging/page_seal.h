/* Sealed pages for memory servers (split migration, DESIGN.md §3): a 4 KiB guest page
 * that is kept on a sub-host travels and rests there as one blob that only the hosts
 * holding the VM's page key can open, and that no sub-host can alter, swap, roll back
 * or pass off as another VM's page unnoticed.
 *
 *   blob   = header[48] | body[4096] | tag[16]                       (PAGE_BLOB_SIZE)
 *   header = "SVPG" | u8 format (1) | u8 mode | u16 0 | u32 epoch | u32 0 | vm_id[16]
 *            | u64 page | u64 version                                 (little-endian)
 *   nonce  = u32 epoch | u64 version                                  (big-endian, 96 bits)
 *
 * mode SEALED: body = AES-256-GCM ciphertext of the page under the page key; the header
 *              is the associated data. One cipher pass per page.
 * mode PLAIN:  a page of a range the guest or operator declared non-sensitive: body =
 *              the page in the clear, tag = GMAC (AES-256-GCM without plaintext) over the
 *              header and the body as associated data. Same key, same nonce rule: the
 *              integrity guarantee is the same as for a sealed page.
 *
 * The page key (32 bytes) is drawn at the source for one VM and key epoch, and is given
 * only to the host that runs the VM, inside its authenticated channel; sub-hosts never
 * see it. The version is what makes a copy fresh: versions come from one counter per
 * key epoch (page_vtab.h), so no (epoch, version) pair, and no nonce, is ever used twice
 * under a key, and the main host's version table says which version of each page it
 * expects back.
 *
 * Opening checks the blob against what the caller expects — this VM, this epoch, this
 * page, this version — using the expected values, never the header's, in the nonce and
 * associated data. The header is in the clear only so that a refusal can say what was
 * returned instead (a page of another VM, another page, an older version...): a header
 * rewritten to look right fails the tag. Every refusal has its own verdict.
 *
 * A sealer holds two EVP contexts keyed once; it is for one thread at a time (make one
 * per thread). Zero pages are never stored (the caller keeps them as version 0;
 * state/pages.h page_is_zero finds them). */
#ifndef SEALVM_PAGING_PAGE_SEAL_H
#define SEALVM_PAGING_PAGE_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define PAGE_SEAL_PAGE 4096u
#define PAGE_SEAL_HDR 48u
#define PAGE_SEAL_TAG 16u
#define PAGE_BLOB_SIZE (PAGE_SEAL_HDR + PAGE_SEAL_PAGE + PAGE_SEAL_TAG)   /* 4160 */
#define PAGE_KEY_LEN 32u
#define PAGE_VM_ID_LEN 16u
#define PAGE_SEAL_FORMAT 1u
/* Versions are 48 bits (the version table keeps 16 more bits per page); 0 means
 * "no stored copy". A key epoch that runs out of versions needs a new key. */
#define PAGE_VERSION_MAX ((1ull << 48) - 1)

enum page_mode {
	PAGE_MODE_SEALED = 1,
	PAGE_MODE_PLAIN = 2,
};

/* Why a blob was refused. */
enum page_verdict {
	PAGE_OK = 0,
	PAGE_BAD_FORMAT,   /* not a blob of this format (length, magic, format, mode) */
	PAGE_FOREIGN_VM,   /* a page of another VM */
	PAGE_WRONG_EPOCH,  /* sealed under another key epoch */
	PAGE_WRONG_PAGE,   /* another page of this VM */
	PAGE_STALE,        /* an older version of this page: a rollback */
	PAGE_FUTURE,       /* a version newer than the one stored last: never issued for it */
	PAGE_ALTERED,      /* the header claims what was expected, but the tag fails */
};

struct page_key {
	uint8_t key[PAGE_KEY_LEN];
	uint8_t vm_id[PAGE_VM_ID_LEN];  /* random per VM: links nothing beyond its stores */
	uint32_t epoch;
};

/* A fresh random key (and, if vm_id is NULL, a fresh random VM id) for epoch. */
int page_key_generate(struct page_key *k, const uint8_t *vm_id, uint32_t epoch, struct err *e);
void page_key_wipe(struct page_key *k);

struct page_sealer;

int page_sealer_new(const struct page_key *k, struct page_sealer **out, struct err *e);
/* Wipes the key copy and frees. NULL ok. */
void page_sealer_free(struct page_sealer *s);

/* Seals one page (PAGE_SEAL_PAGE bytes at data) as version (1..PAGE_VERSION_MAX) of
 * page into blob (PAGE_BLOB_SIZE bytes). */
int page_seal(struct page_sealer *s, uint64_t page, uint64_t version, enum page_mode mode, const void *data,
	      uint8_t *blob, struct err *e);

/* Opens blob[len] expected to be version `version` of page `page` into out
 * (PAGE_SEAL_PAGE bytes). 0 and *why = PAGE_OK, or -EBADMSG with *why saying which
 * check failed (and e naming what came instead); out is zeroed on any failure. *mode
 * (if not NULL) gets the blob's mode. */
int page_open(struct page_sealer *s, uint64_t page, uint64_t version, const uint8_t *blob, size_t len,
	      void *out, enum page_mode *mode, enum page_verdict *why, struct err *e);

const char *page_verdict_name(enum page_verdict v);

#endif
