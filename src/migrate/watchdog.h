/* An overall deadline for a phase of a migration: per-read timeouts do not stop
 * a peer that sends one byte a second. When the deadline passes, fire(opaque, why)
 * runs once on the watchdog's thread (it interrupts the blocked channels). */
#ifndef SEALVM_MIGRATE_WATCHDOG_H
#define SEALVM_MIGRATE_WATCHDOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct watchdog {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t deadline_ns;      /* CLOCK_MONOTONIC; 0: disarmed */
	char why[200];
	bool stop, started;
	void (*fire)(void *opaque, const char *why);
	void *opaque;
};

int watchdog_start(struct watchdog *w, void (*fire)(void *opaque, const char *why), void *opaque);
/* Arms (or re-arms) for ms from now. */
void watchdog_arm(struct watchdog *w, uint32_t ms, const char *why);
void watchdog_disarm(struct watchdog *w);
void watchdog_stop(struct watchdog *w);

#endif
