/* The port-I/O bus: devices register a port range and a handler. */
#ifndef SEALVM_DEV_BUS_H
#define SEALVM_DEV_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* Handles one access of len bytes at port; data is read into or written from. */
typedef void (*pio_fn)(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write);

#define PIO_MAX_RANGES 16

struct pio_range {
	uint16_t base, len;
	pio_fn fn;
	void *opaque;
};

struct pio_bus {
	int n;
	struct pio_range ranges[PIO_MAX_RANGES];
	uint64_t unhandled;   /* accesses to ports no device claims */
};

int pio_bus_register(struct pio_bus *bus, uint16_t base, uint16_t len, pio_fn fn, void *opaque);
/* Dispatches an access; unclaimed reads return all-ones, unclaimed writes are dropped. */
void pio_bus_access(struct pio_bus *bus, uint16_t port, uint8_t *data, uint32_t len, bool is_write);

#endif
