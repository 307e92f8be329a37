/* 8250/16550A UART at 0x3f8, IRQ 4: output to a file descriptor, input from the host. */
#ifndef SEALVM_DEV_SERIAL_H
#define SEALVM_DEV_SERIAL_H

#include <pthread.h>
#include <stdint.h>

#include "dev/bus.h"
#include "util/err.h"

#define SERIAL_BASE 0x3f8
#define SERIAL_IRQ 4
#define SERIAL_FIFO 64
#define SERIAL_STATE_VERSION 1

/* Guest-visible state: what a snapshot or a migration carries. */
struct serial_state {
	uint32_t version;
	uint8_t dll, dlm, ier, fcr, lcr, mcr, lsr, msr, scr;
	uint8_t thri_pending;   /* THR-empty interrupt waiting to be seen in IIR */
	uint8_t rx_head, rx_count;
	uint8_t rx[SERIAL_FIFO];
	uint8_t pad[4];
};

/* Raises or lowers the UART's interrupt line. */
typedef void (*serial_irq_fn)(void *opaque, int level);
/* Takes guest output instead of out_fd (the owner's console). Called with the UART
 * lock held: must not block for long and must not call back into the UART. */
typedef void (*serial_sink_fn)(void *opaque, uint8_t c);

struct serial {
	struct serial_state s;
	pthread_mutex_t lock;
	int out_fd;             /* where guest output goes; -1 drops it */
	int irq_level;          /* last level driven, to avoid repeating ioctls */
	serial_irq_fn irq;
	void *irq_opaque;
	serial_sink_fn sink;
	void *sink_opaque;
	uint64_t tx_bytes;
};

void serial_init(struct serial *u, int out_fd, serial_irq_fn irq, void *opaque);
void serial_destroy(struct serial *u);
int serial_attach(struct serial *u, struct pio_bus *bus);
/* Sends guest output to sink instead of out_fd from now on (NULL: back to out_fd). */
void serial_set_sink(struct serial *u, serial_sink_fn sink, void *opaque);
/* Host input for the guest; returns bytes accepted (the FIFO may be full). */
size_t serial_input(struct serial *u, const uint8_t *buf, size_t len);

void serial_save(struct serial *u, struct serial_state *out);
/* Drops the bytes waiting in the receive FIFO (typed input) from a saved state, for
 * a copy that must not carry console plaintext: registers stay, the FIFO is empty. */
void serial_state_scrub(struct serial_state *s);
/* Checks a saved state: version, FIFO indices, line status. */
int serial_state_validate(const struct serial_state *in, struct err *e);
/* Validates and loads a saved state; drives the IRQ line to match it. */
int serial_load(struct serial *u, const struct serial_state *in, struct err *e);

#endif
