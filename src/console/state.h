/* The console's saved state: everything the owner's console holds, as one plain,
 * versioned, pointer-free struct, so a snapshot or a migration can carry it as a
 * single sealed section (console/seal.h) and nothing of it in the clear.
 *
 * It holds the screen (VGA text memory and CRTC), the serial scrollback with its
 * byte numbering, the keyboard queue, the UART (its receive FIFO holds typed input),
 * typed input taken from the owner but not yet in the UART, who is attached, and the
 * public key of the last read-write owner (snapshots wrap the console key for it).
 * The scrollback comes last: only its scroll_len bytes are sealed. */
#ifndef SEALVM_CONSOLE_STATE_H
#define SEALVM_CONSOLE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "console/scrollback.h"
#include "dev/i8042.h"
#include "dev/serial.h"
#include "dev/vga.h"
#include "util/err.h"

#define CONSOLE_STATE_VERSION 2     /* 1 (phase 1) never left a process */
#define CONSOLE_INPUT_MAX 8192      /* typed input waiting for room in the UART FIFO */
#define CONSOLE_SPKI_MAX 800        /* a DER SubjectPublicKeyInfo (EC up to P-521) */

struct console_attach_state {
	uint32_t rw_attached;          /* 1: a read-write session is attached */
	uint32_t ro_sessions;          /* read-only sessions attached */
	uint64_t rw_delivered;         /* serial offset the read-write session has been sent up to */
	uint8_t rw_peer_sha256[32];    /* its certificate's fingerprint (all zero: none) */
};

struct console_state {
	uint32_t version;
	uint32_t scroll_len;           /* valid bytes in scrollback[], oldest first */
	uint64_t serial_total;         /* offset of the next serial byte */
	struct vga_state vga;
	struct i8042_state kbd;
	struct serial_state uart;
	struct console_attach_state attach;
	uint32_t input_len;            /* bytes in input[] */
	uint32_t owner_spki_len;       /* bytes in owner_spki[] (0: no owner attached read-write yet) */
	uint8_t input[CONSOLE_INPUT_MAX];
	uint8_t owner_spki[CONSOLE_SPKI_MAX];
	uint8_t scrollback[SCROLLBACK_SIZE];
};

/* Bytes of a state whose scrollback holds scroll_len bytes: what gets sealed. */
#define CONSOLE_STATE_FIXED offsetof(struct console_state, scrollback)
static inline size_t console_state_size(const struct console_state *s)
{
	return CONSOLE_STATE_FIXED + (s->scroll_len <= SCROLLBACK_SIZE ? s->scroll_len : SCROLLBACK_SIZE);
}

int console_state_validate(const struct console_state *s, struct err *e);

struct console_key;
/* Opens a sealed state (console/seal.h) into st and validates it: the version, and a
 * length that matches its scrollback. Untrusted input: bounded, never a crash. */
int console_state_unseal(const struct console_key *key, const uint8_t *sealed, size_t len,
			 struct console_state *st, struct err *e);

#endif
