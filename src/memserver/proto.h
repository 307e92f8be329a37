/* The memory server protocol, version 1 (split migration, DESIGN.md §3): how a VM's
 * hosts keep opaque blobs — sealed pages (paging/page_seal.h) — on a sub-host.
 *
 * Transport: one mutually authenticated TLS 1.3 channel per connection (channel.h; the
 * memory server presents a server certificate, its clients client certificates of the
 * cluster CA). A client is known by the SHA-256 of its certificate (its identity), as
 * outcome queries are at a destination. tcp:// exists only with --insecure, for
 * measurement: every client is then the same, all-zero identity.
 *
 * Framing: every record is a 16-byte header {u16 op, u16 flags (0), u32 len, u64 tag}
 * and len bytes of payload (host byte order, x86). The client's first record is HELLO;
 * the server answers HELLO | REPLY (or ERROR, then closes). Then the client sends
 * requests with tags of its choosing, as many as it likes without waiting (pipelined);
 * the server handles them in order and answers each, in order, with the request's tag:
 * op | MS_REPLY and the op's answer, or MS_ERROR {status, message}. Every length and
 * count is bounded per op (ms_req_len_ok / ms_reply_len_ok); a record that breaks the
 * rules gets an ERROR and the connection is closed. The client keeps the bytes of the
 * answers it has not read yet below MS_WINDOW_BYTES, so the server never blocks writing
 * answers while the client blocks writing requests.
 *
 * Stores. A store holds the blobs of one VM on this server, keyed by u64 (the guest page
 * number), at most `quota` of them, each at most MS_BLOB_MAX bytes. Its id (16 bytes) is
 * chosen by its creator (random: it names nothing). CREATE reserves the quota out of the
 * server's capacity at once, or is refused: capacity is never promised twice. Only the
 * store's owner (the identity that created or adopted it) may PUT, GET, FREE or GRANT;
 * any other identity is refused ("belongs to another host") and learns nothing else.
 * The server never receives a key and cannot open what it keeps.
 *
 * Ownership hand-over (a split migration's transactional hand-over, proto.h of migrate):
 *   1. The source CREATEs each store EPHEMERAL and PUTs the sealed pages; every PUT is
 *      acknowledged once the blobs are stored. An ephemeral store lives only as long as
 *      the connection that created it: if the source dies or drops it before step 2,
 *      the store is freed at once (nothing else could ever use it).
 *   2. Before the main host may answer READY, the source GRANTs the store to the main
 *      host's certificate identity (its SHA-256, from the source's own TLS channel to
 *      the main host) with a time to live. The grantee may now STAT it (count, quota —
 *      not read it), which the main host does before READY to check that every store it
 *      was told of is there, granted to it, and holds the expected number of pages.
 *      A granted store survives its creator's connection until the grant is taken,
 *      declined, or expires.
 *   3. The main host ADOPTs each store only after it decided COMMITTED durably, before
 *      its vCPUs run: it becomes the sole owner; the source loses every right to the
 *      store, and the store no longer depends on any connection (it lives until its
 *      owner FREEs it). The source, past COMMIT, never touches the store again.
 *   4. Any failure before COMMIT: the source FREEs the store (it is still the owner).
 *      A main host that decided ABORTED (or fenced the migration) DECLINEs instead of
 *      adopting, which ends the grant; an ephemeral store whose creator is gone is then
 *      freed. If both are gone, the grant's time to live frees it. So a store whose
 *      migration aborted is freed by whichever side learns of it first, and a COMMIT and
 *      an abort can never both act on a store: the destination's durable decision
 *      (outcome.h) already makes them exclusive.
 *   The same steps hand a split VM on from one main host to the next (the owner grants).
 *
 * What a sub-host learns: the identities of the creator and the grantee (so which host
 * a VM moves to), the sizes of stores, the page numbers stored, when each is written or
 * read (an access pattern), the clear headers of blobs (VM id — random per VM —, page,
 * version, key epoch), the contents of pages declared non-sensitive, and whether a
 * migration committed (ADOPT) or aborted (FREE/DECLINE). Never a key, never the
 * contents of a sealed page, never the version table; what it returns is checked
 * against that table at page-in. */
#ifndef SEALVM_MEMSERVER_PROTO_H
#define SEALVM_MEMSERVER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define MS_PROTO_VERSION 1
#define MS_STORE_ID_LEN 16
#define MS_FP_LEN 32
#define MS_BLOB_MAX 4224u        /* one blob: a sealed page (4160) and headroom */
#define MS_PUT_MAX 32u           /* blobs in one PUT */
#define MS_MSG_MAX 200           /* an ERROR's message, NUL included */
#define MS_GRANT_TTL_DEFAULT 300 /* seconds a grant waits for its grantee */
#define MS_GRANT_TTL_MAX 3600
#define MS_WINDOW_BYTES (128u << 10) /* answer bytes a client may have outstanding */

enum ms_op {
	MS_HELLO = 1,
	MS_CREATE = 2,
	MS_PUT = 3,
	MS_GET = 4,
	MS_FREE = 5,
	MS_STAT = 6,
	MS_GRANT = 7,
	MS_ADOPT = 8,
	MS_DECLINE = 9,
	MS_PING = 10,
	MS_OP_MAX = 10,
	MS_ERROR = 0x7fff,       /* answer: the request failed */
	MS_REPLY = 0x8000,       /* answer bit: op | MS_REPLY is the op's answer */
};

#define MS_CREATE_EPHEMERAL 1u   /* freed with the creating connection unless granted or adopted */

struct ms_hdr {
	uint16_t op;
	uint16_t flags;
	uint32_t len;
	uint64_t tag;
};
#define MS_HDR_SIZE 16

struct ms_hello {
	uint32_t proto;          /* MS_PROTO_VERSION */
	uint32_t flags;          /* 0 */
};

struct ms_hello_reply {
	uint32_t proto;
	uint32_t blob_max;       /* MS_BLOB_MAX */
	uint8_t host_id[16];     /* the server's state directory */
	uint8_t boot_id[16];     /* random per server process: a restart lost every store */
	uint64_t capacity;       /* blobs the server holds at most */
	uint64_t free;           /* blobs not promised to any store */
	uint32_t put_max;        /* MS_PUT_MAX */
	uint32_t window;         /* MS_WINDOW_BYTES */
};

struct ms_error {
	int32_t status;          /* negative errno */
	uint32_t pad;
	char msg[MS_MSG_MAX];    /* NUL-terminated */
};

struct ms_create {
	uint8_t store[MS_STORE_ID_LEN];
	uint64_t quota;          /* blobs, >= 1 */
	uint32_t flags;          /* MS_CREATE_EPHEMERAL */
	uint32_t pad;
};

struct ms_create_reply {
	uint64_t quota;
	uint64_t free;           /* blobs still free on the server */
};

/* PUT: this head, count entries, then the blobs one after another. All or nothing. */
struct ms_put_head {
	uint8_t store[MS_STORE_ID_LEN];
	uint32_t count;          /* 1..MS_PUT_MAX */
	uint32_t pad;
};
struct ms_put_ent {
	uint64_t key;
	uint32_t len;            /* 1..MS_BLOB_MAX */
	uint32_t pad;
};
struct ms_put_reply {
	uint32_t count;          /* blobs stored (replacing any under the same key) */
	uint32_t pad;
	uint64_t blobs;          /* in the store now */
};

/* GET: one blob; the answer carries it after the head. */
struct ms_key_req {
	uint8_t store[MS_STORE_ID_LEN];
	uint64_t key;
};
struct ms_get_reply {
	uint64_t key;
	uint32_t len;
	uint32_t pad;
};

/* FREE, STAT, ADOPT, DECLINE name a store. */
struct ms_store_req {
	uint8_t store[MS_STORE_ID_LEN];
};

enum ms_store_state {
	MS_STATE_FILLING = 1,    /* ephemeral: lives with its creator's connection */
	MS_STATE_GRANTED = 2,    /* waiting for its grantee to adopt it */
	MS_STATE_OWNED = 3,      /* adopted or created persistent: lives until freed */
};
enum ms_role {
	MS_ROLE_OWNER = 1,
	MS_ROLE_GRANTEE = 2,
};

struct ms_stat_reply {
	uint64_t blobs, quota, bytes;
	uint32_t state;          /* enum ms_store_state */
	uint32_t role;           /* the asker's enum ms_role */
	uint32_t grant_ttl;      /* seconds left to adopt (GRANTED) */
	uint32_t adoptions;      /* how often it changed owner */
};

struct ms_grant {
	uint8_t store[MS_STORE_ID_LEN];
	uint8_t grantee[MS_FP_LEN];   /* SHA-256 of the grantee's certificate */
	uint32_t ttl_s;               /* 0: MS_GRANT_TTL_DEFAULT; at most MS_GRANT_TTL_MAX */
	uint32_t pad;
};

struct ms_free_reply {
	uint64_t blobs;          /* freed */
};

struct ms_ping {
	uint64_t ns;
};

/* Largest payloads: a full PUT, a GET answer. */
#define MS_PUT_LEN_MAX (sizeof(struct ms_put_head) + MS_PUT_MAX * (sizeof(struct ms_put_ent) + MS_BLOB_MAX))
#define MS_GET_REPLY_MAX (sizeof(struct ms_get_reply) + MS_BLOB_MAX)
#define MS_FRAME_MAX MS_PUT_LEN_MAX

const char *ms_op_name(uint32_t op);
/* Is len a possible payload length of a request with this op? (PUT: bounds only;
 * ms_parse_put checks it exactly.) */
bool ms_req_len_ok(uint16_t op, uint32_t len);
/* ...of the answer `op` (op | MS_REPLY or MS_ERROR) to a request `req`? */
bool ms_reply_len_ok(uint16_t req, uint16_t op, uint32_t len);

/* A parsed PUT: entries and blobs point into the payload. */
struct ms_put_view {
	const struct ms_put_head *head;
	const struct ms_put_ent *ents;
	const uint8_t *blob[MS_PUT_MAX];
};
/* Checks a PUT payload exactly (count, every length, total). */
int ms_parse_put(const uint8_t *p, uint32_t len, struct ms_put_view *v, struct err *e);
/* Encodes a PUT of n blobs into buf (room for MS_PUT_LEN_MAX); returns its length. */
size_t ms_encode_put(uint8_t *buf, const uint8_t store[MS_STORE_ID_LEN], uint32_t n, const uint64_t *keys,
		     const uint8_t *const *blobs, const uint32_t *lens);
/* An ERROR payload's message, terminated within bounds ("" if absent). */
void ms_error_fix(struct ms_error *er);

/* Lower-case hex of a store id (33 bytes). */
void ms_store_hex(const uint8_t id[MS_STORE_ID_LEN], char out[33]);

#endif
