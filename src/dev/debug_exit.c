#include "dev/debug_exit.h"

#include <string.h>

static void debug_exit_pio(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write)
{
	struct debug_exit *d = opaque;

	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	if (d->exit)
		d->exit(d->opaque, data[0]);
}

int debug_exit_attach(struct debug_exit *d, struct pio_bus *bus, void (*fn)(void *, uint8_t), void *opaque)
{
	d->exit = fn;
	d->opaque = opaque;
	/* QEMU's device spans 4 ports; accept any width written to them */
	return pio_bus_register(bus, DEBUG_EXIT_PORT, 4, debug_exit_pio, d);
}
