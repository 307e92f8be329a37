#include "dev/bus.h"

#include <errno.h>
#include <string.h>

int pio_bus_register(struct pio_bus *bus, uint16_t base, uint16_t len, pio_fn fn, void *opaque)
{
	if (bus->n >= PIO_MAX_RANGES)
		return -ENOSPC;
	bus->ranges[bus->n++] = (struct pio_range){ base, len, fn, opaque };
	return 0;
}

void pio_bus_access(struct pio_bus *bus, uint16_t port, uint8_t *data, uint32_t len, bool is_write)
{
	int i;

	for (i = 0; i < bus->n; i++) {
		struct pio_range *r = &bus->ranges[i];
		if (port >= r->base && port < r->base + r->len) {
			r->fn(r->opaque, port, data, len, is_write);
			return;
		}
	}
	/* vCPU threads dispatch concurrently; the handlers lock what they share */
	__atomic_fetch_add(&bus->unhandled, 1, __ATOMIC_RELAXED);
	if (!is_write)
		memset(data, 0xff, len);
}
