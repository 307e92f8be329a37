/* i8042 keyboard controller, only as far as the guest needs it: the 0xFE
 * command on port 0x64 pulses the CPU reset line, which ends the VM. */
#ifndef SEALVM_DEV_I8042_H
#define SEALVM_DEV_I8042_H

#include "dev/bus.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define I8042_CMD_RESET 0xfe

struct i8042 {
	void (*reset)(void *opaque);
	void *opaque;
};

int i8042_attach(struct i8042 *k, struct pio_bus *bus, void (*reset)(void *), void *opaque);

#endif
