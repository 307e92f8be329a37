/* The console protocol: frames between `sealvm console` (the owner's client) and the
 * console server inside sealvm, carried in the owner's TLS 1.3 session.
 *
 *   frame = u8 type | u8 0 | u16 0 | u32 len (big-endian) | payload[len], len <= CPROTO_MAX
 *
 * client -> server                         server -> client
 *   HELLO   u32 version, u32 flags,          WELCOME u32 version, u32 mode, u64 from, u64 total
 *           u64 from (serial offset)         OUTPUT  u64 offset, bytes (serial output)
 *   INPUT   bytes (to the serial port)       SCREEN  u16 rows, cols, cursor row, col, u8 on,
 *   KEY     u32 keysym, u8 down                      3 pad, rows*cols u16 cells (LE)
 *   SCREEN  (empty: asks for one)            LOCKED  the console key wrapped for the owner
 *   UNLOCK  the console key (32 bytes)               (console/wrap.h): a restored snapshot
 *                                            PREPARE tls://HOST:PORT (a hint: the VM is about to
 *                                                    move there; a client may connect ahead)
 *                                            REDIRECT u64 serial total, u64 input frames taken,
 *                                                    tls://HOST:PORT (the VM moved there)
 *                                            ERROR   text (then the server closes)
 *
 * Serial output is numbered: byte k of everything the guest ever wrote to the serial
 * console has offset k, so a client that reconnects asks for what it has not seen
 * (HELLO.from) and gets each byte exactly once. HELLO flag SCREEN subscribes to the
 * text screen: a SCREEN frame now and whenever it changes (the client renders it, e.g.
 * for its local VNC viewers). INPUT and KEY frames are counted; REDIRECT says how many
 * of this session's the server took, so a client following the VM to its new host sends
 * the rest there and no keystroke is lost or doubled. Every field is checked by the
 * decoders below; everything else is refused. */
#ifndef SEALVM_CONSOLE_PROTO_H
#define SEALVM_CONSOLE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define CPROTO_VERSION 2
#define CPROTO_HDR 8
#define CPROTO_MAX 65536
#define CPROTO_INPUT_MAX 4096
#define CPROTO_URI_MAX 300
#define CPROTO_KEY_LEN 32

enum cproto_type {
	CP_HELLO = 0x01,
	CP_INPUT = 0x02,
	CP_KEY = 0x03,
	CP_SCREEN_REQ = 0x04,
	CP_UNLOCK = 0x08,
	CP_WELCOME = 0x81,
	CP_OUTPUT = 0x82,
	CP_SCREEN = 0x83,
	CP_LOCKED = 0x84,
	CP_ERROR = 0x8f,
	CP_REDIRECT = 0x90,
	CP_PREPARE = 0x91,
};

#define CP_HELLO_RW 0x1u          /* HELLO.flags: asks for the read-write session */
#define CP_HELLO_SCREEN 0x2u      /* HELLO.flags: push the screen whenever it changes */
enum cproto_mode { CP_MODE_RW = 1, CP_MODE_RO = 2 };

struct cproto_frame {
	uint8_t type;
	uint32_t len;
	const uint8_t *payload;
};

/* Finds one whole frame at the start of buf. Returns 1 (frame filled, *used = its
 * size), 0 (need more bytes) or -EPROTO (malformed header; e says why). */
int cproto_parse(const uint8_t *buf, size_t len, struct cproto_frame *f, size_t *used, struct err *e);
/* Writes a frame header for type/len into hdr[CPROTO_HDR]. */
void cproto_header(uint8_t hdr[CPROTO_HDR], uint8_t type, uint32_t len);

struct cp_hello { uint32_t version, flags; uint64_t from; };
struct cp_welcome { uint32_t version, mode; uint64_t from, total; };
struct cp_key { uint32_t keysym; bool down; };
struct cp_redirect { uint64_t total, input_frames; char uri[CPROTO_URI_MAX + 1]; };
struct cp_output { uint64_t offset; const uint8_t *data; size_t len; };
struct cp_screen {
	uint16_t rows, cols, cursor_row, cursor_col;
	bool cursor_on;
	const uint8_t *cells;   /* rows*cols little-endian u16 */
};

/* Decoders: check the frame's type-specific layout, -EPROTO with a reason otherwise. */
int cp_decode_hello(const struct cproto_frame *f, struct cp_hello *h, struct err *e);
int cp_decode_input(const struct cproto_frame *f, struct err *e);
int cp_decode_key(const struct cproto_frame *f, struct cp_key *k, struct err *e);
int cp_decode_redirect(const struct cproto_frame *f, struct cp_redirect *r, struct err *e);
/* PREPARE: the address into uri[CPROTO_URI_MAX + 1]. */
int cp_decode_prepare(const struct cproto_frame *f, char *uri, struct err *e);
int cp_decode_unlock(const struct cproto_frame *f, uint8_t key[CPROTO_KEY_LEN], struct err *e);
int cp_decode_welcome(const struct cproto_frame *f, struct cp_welcome *w, struct err *e);
int cp_decode_output(const struct cproto_frame *f, struct cp_output *o, struct err *e);
int cp_decode_screen(const struct cproto_frame *f, struct cp_screen *s, struct err *e);
/* ERROR text made printable into buf. */
void cp_decode_error(const struct cproto_frame *f, char *buf, size_t len);

/* Encoders into buf (>= CPROTO_HDR + payload); return the frame's total size. */
size_t cp_encode_hello(uint8_t *buf, const struct cp_hello *h);
size_t cp_encode_welcome(uint8_t *buf, const struct cp_welcome *w);
size_t cp_encode_key(uint8_t *buf, const struct cp_key *k);
size_t cp_encode_redirect(uint8_t *buf, const struct cp_redirect *r);
size_t cp_encode_prepare(uint8_t *buf, const char *uri);

static inline void put_be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static inline void put_be64(uint8_t *p, uint64_t v) { put_be32(p, (uint32_t)(v >> 32)); put_be32(p + 4, (uint32_t)v); }
static inline uint32_t get_be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }

#endif
