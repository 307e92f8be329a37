/* Guest memory reserved ahead of a VM (issue: a destination ready before the VM
 * arrives): a mapping made at start and populated in the background with
 * MADV_POPULATE_WRITE (huge pages where the host gives them), so the first touch
 * of fresh memory — what a destination otherwise spends most of a migration
 * waiting for — is paid before the VM comes, and the capacity it promises is real.
 * A VM that fits takes the first part of it; the rest is given back. */
#ifndef SEALVM_VM_RESERVE_H
#define SEALVM_VM_RESERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct ram_reserve {
	uint8_t *base;
	uint64_t size;
	_Atomic uint64_t ready;    /* bytes populated from base */
	_Atomic uint64_t limit;    /* populate up to here (the VM's size once it came) */
	_Atomic bool stop;
	pthread_t thread;
	bool started, taken;
	int error;                 /* -errno if populating failed (ready stops there) */
	uint64_t populate_ns;
};

int ram_reserve_start(struct ram_reserve *r, uint64_t size, struct err *e);
/* Hands the first size bytes (size <= r->size) to a VM and gives the rest back. */
uint8_t *ram_reserve_take(struct ram_reserve *r, uint64_t size);
/* Waits until what was taken is populated (0), or says why it could not be. */
int ram_reserve_wait(struct ram_reserve *r, struct err *e);
/* Stops populating; unmaps what no VM took. */
void ram_reserve_stop(struct ram_reserve *r);

#endif
