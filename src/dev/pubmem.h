/* Non-sensitive memory (split migration, DESIGN.md §3): which guest RAM holds nothing
 * secret, so that its pages may be kept on memory servers in the clear — still
 * authenticated (paging/page_seal.h, PAGE_MODE_PLAIN) — and cost no cipher pass.
 * Everything not declared is sensitive: the default, and what a snapshot or stream
 * without this device's state means.
 *
 * Declared by the operator at boot (`sealvm run --public START-END,...`, guest-physical
 * byte addresses, page-aligned) and by the guest through a paravirtual port. Either may
 * declare a range public or private again; a private declaration always wins over what
 * was there (a guest can always take back what it or the operator exposed).
 *
 * The port (version 1): four 32-bit registers at PUBMEM_PORT, read and written with
 * 32-bit IN/OUT (other widths read all-ones, writes are dropped); pages are guest page
 * frames (guest-physical address / 4096).
 *   +0   read: PUBMEM_SIGNATURE ("SPBM": the device is there); write: a command
 *   +4   FIRST  (read/write)
 *   +8   COUNT  (read/write)
 *   +12  read: STATUS of the last command | PUBMEM_IF_VERSION << 16
 * Commands:
 *   1 PUBLIC   pages [FIRST, FIRST+COUNT) hold nothing secret
 *   2 PRIVATE  pages [FIRST, FIRST+COUNT) are sensitive (again)
 *   3 RESET    every page sensitive
 *   4 QUERY    FIRST, COUNT := the public range number FIRST (0-based, in address order)
 *   5 TOTALS   COUNT := the number of public ranges, FIRST := the number of public pages
 * STATUS: 0 done; 1 out of range (COUNT 0, a range beyond guest RAM or across the hole
 * below 4 GiB, no such range number); 2 table full (PUBMEM_MAX_RANGES ranges, nothing
 * changed); 3 unknown command. On a machine without the device (QEMU) the signature
 * reads all-ones, so a guest knows it is not there.
 *
 * The table (at most PUBMEM_MAX_RANGES disjoint, merged ranges) travels in snapshots
 * and migrations as its own section (SEC_PUBMEM), a plain versioned struct, only when
 * something was ever declared. Thread-safe: vCPUs write the port concurrently. */
#ifndef SEALVM_DEV_PUBMEM_H
#define SEALVM_DEV_PUBMEM_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dev/bus.h"
#include "util/err.h"

#define PUBMEM_PORT 0x0520
#define PUBMEM_PORTS 16
#define PUBMEM_SIGNATURE 0x4d425053u  /* "SPBM" little-endian */
#define PUBMEM_IF_VERSION 1u
#define PUBMEM_MAX_RANGES 64
#define PUBMEM_STATE_VERSION 1

enum pubmem_cmd {
	PUBMEM_CMD_PUBLIC = 1,
	PUBMEM_CMD_PRIVATE = 2,
	PUBMEM_CMD_RESET = 3,
	PUBMEM_CMD_QUERY = 4,
	PUBMEM_CMD_TOTALS = 5,
};

enum pubmem_status {
	PUBMEM_OK = 0,
	PUBMEM_ERANGE = 1,
	PUBMEM_EFULL = 2,
	PUBMEM_EINVAL = 3,
};

struct pubmem_range {
	uint64_t first, count;       /* guest page frames */
};

/* The saved state: plain, pointer-free. */
struct pubmem_state {
	uint32_t version;            /* PUBMEM_STATE_VERSION */
	uint32_t nranges;
	uint32_t reg_first, reg_count, status;
	uint32_t pad;
	struct pubmem_range r[PUBMEM_MAX_RANGES];   /* sorted, disjoint, not adjacent */
};

struct pubmem {
	pthread_mutex_t lock;
	uint64_t ram_size;           /* guest RAM: frames [0, low) and [4 GiB, 4 GiB + high) */
	struct pubmem_state s;
	uint64_t generation;         /* changes with every change of the table */
	bool used;                   /* something was declared at some point: save the state */
};

void pubmem_init(struct pubmem *p, uint64_t ram_size);
void pubmem_destroy(struct pubmem *p);
int pubmem_attach(struct pubmem *p, struct pio_bus *bus);

/* Declares [first, first+count) (guest page frames) public or private; a pubmem_status. */
int pubmem_declare(struct pubmem *p, uint64_t first, uint64_t count, bool public_);
/* Parses "START-END,..." (guest-physical byte addresses, K/M/G suffixes, END exclusive,
 * both page-aligned) and declares each range public; 0 or an error naming the range. */
int pubmem_declare_list(struct pubmem *p, const char *list, struct err *e);

/* Is RAM page `ram_page` (an index into the host mapping of guest RAM, as migration
 * streams name pages) in a public range? */
bool pubmem_ram_page_public(struct pubmem *p, uint64_t ram_page);
/* A copy of the table and its generation. */
void pubmem_get(struct pubmem *p, struct pubmem_state *out, uint64_t *generation);
uint64_t pubmem_public_pages(struct pubmem *p);
/* For ctl status: {"ranges": [{"start": "0x..", "end": "0x.."}...], "pages": N} (bytes, end exclusive). */
json_t *pubmem_json(struct pubmem *p);

/* Saved state: whether there is any to save, the state, and loading one (checked). */
bool pubmem_in_use(struct pubmem *p);
void pubmem_save(struct pubmem *p, struct pubmem_state *out);
int pubmem_state_validate(const struct pubmem_state *s, uint64_t ram_size, struct err *e);
int pubmem_load(struct pubmem *p, const struct pubmem_state *s, struct err *e);

/* One port access (exposed for tests and fuzzing). */
void pubmem_pio(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write);

#endif
