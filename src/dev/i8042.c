#include "dev/i8042.h"

#include <string.h>

#define STATUS_SYSFLAG 0x04 /* self-test passed: what a guest sees after a BIOS */

static void i8042_pio(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	if (!is_write) {
		memset(data, 0, len);
		if (port == I8042_CMD)
			data[0] = STATUS_SYSFLAG; /* no data, input buffer empty */
		return;
	}
	if (port == I8042_CMD && data[0] == I8042_CMD_RESET && k->reset)
		k->reset(k->opaque);
}

int i8042_attach(struct i8042 *k, struct pio_bus *bus, void (*reset)(void *), void *opaque)
{
	int r;

	k->reset = reset;
	k->opaque = opaque;
	r = pio_bus_register(bus, I8042_DATA, 1, i8042_pio, k);
	return r ? r : pio_bus_register(bus, I8042_CMD, 1, i8042_pio, k);
}
