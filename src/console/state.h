/* The console's saved state: everything the owner's console holds, as one plain,
 * versioned, pointer-free struct, so a snapshot or a migration can carry it as a
 * single sealed section (console/seal.h) and nothing of it in the clear.
 *
 * It holds the screen (VGA text memory and CRTC), the serial scrollback with its
 * byte numbering, the keyboard queue, the UART (its receive FIFO holds typed input)
 * and who is attached. */
#ifndef SEALVM_CONSOLE_STATE_H
#define SEALVM_CONSOLE_STATE_H

#include <stdint.h>

#include "console/scrollback.h"
#include "dev/i8042.h"
#include "dev/serial.h"
#include "dev/vga.h"
#include "util/err.h"

#define CONSOLE_STATE_VERSION 1

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
	uint8_t scrollback[SCROLLBACK_SIZE];
	struct vga_state vga;
	struct i8042_state kbd;
	struct serial_state uart;
	struct console_attach_state attach;
};

int console_state_validate(const struct console_state *s, struct err *e);

#endif
