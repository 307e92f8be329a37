/* i8042 keyboard controller with a PS/2 keyboard on its first port: scan codes
 * (set 1, as the controller's default translation delivers them) on port 0x60,
 * status and controller commands on port 0x64, IRQ 1 while output is waiting.
 * The 0xFE command pulses the CPU reset line, which ends the VM. No mouse. */
#ifndef SEALVM_DEV_I8042_H
#define SEALVM_DEV_I8042_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "dev/bus.h"
#include "util/err.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define I8042_CMD_RESET 0xfe
#define I8042_IRQ 1
#define I8042_QUEUE 32
#define I8042_STATE_VERSION 1

/* Guest-visible state: plain, pointer-free. The queue holds keystrokes (console
 * plaintext): only the queued bytes are state, the rest of the ring is zero. */
struct i8042_state {
	uint32_t version;
	uint8_t cmd_byte;       /* controller configuration byte */
	uint8_t ctl_pending;    /* controller command waiting for its data byte (0: none) */
	uint8_t kbd_pending;    /* keyboard command waiting for its argument (0: none) */
	uint8_t kbd_enabled;    /* scanning on (F4) or off (F5) */
	uint8_t leds, scanset;
	uint8_t out_head, out_count;
	uint8_t out[I8042_QUEUE];
};

struct i8042 {
	struct i8042_state s;
	pthread_mutex_t lock;
	int irq_level;
	void (*irq)(void *opaque, int level);
	void (*reset)(void *opaque);
	void *opaque;
	uint64_t dropped;       /* keystroke bytes lost to a full queue */
};

void i8042_init(struct i8042 *k, void (*irq)(void *, int), void (*reset)(void *), void *opaque);
void i8042_destroy(struct i8042 *k);
int i8042_attach(struct i8042 *k, struct pio_bus *bus);
/* Keystrokes (set-1 scan codes) for the guest; returns the bytes accepted. A
 * sequence that does not fit whole is refused whole, so no key is cut in half. */
size_t i8042_key_input(struct i8042 *k, const uint8_t *codes, size_t len);
/* The port handler, for tests and fuzzing. */
void i8042_pio(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write);

void i8042_save(struct i8042 *k, struct i8042_state *out);
int i8042_state_validate(const struct i8042_state *in, struct err *e);
int i8042_load(struct i8042 *k, const struct i8042_state *in, struct err *e);

#endif
