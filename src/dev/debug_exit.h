/* Debug-exit port 0xf4 (the port QEMU's isa-debug-exit uses): a byte written there
 * ends the VM and becomes the exit status of `sealvm run`. */
#ifndef SEALVM_DEV_DEBUG_EXIT_H
#define SEALVM_DEV_DEBUG_EXIT_H

#include <stdint.h>

#include "dev/bus.h"

#define DEBUG_EXIT_PORT 0xf4

struct debug_exit {
	void (*exit)(void *opaque, uint8_t status);
	void *opaque;
};

int debug_exit_attach(struct debug_exit *d, struct pio_bus *bus, void (*fn)(void *, uint8_t), void *opaque);

#endif
