/* Auto-converge: when pre-copy rounds stop shrinking, take a growing share of
 * the vCPU's time so the guest dirties memory more slowly than it is sent. */
#ifndef SEALVM_MIGRATE_THROTTLE_H
#define SEALVM_MIGRATE_THROTTLE_H

#include <pthread.h>
#include <stdbool.h>

#include "vmm/machine.h"

struct throttle {
	struct machine *m;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pct;          /* share of each 10 ms slice the vCPU is held, 0..99 */
	bool running, stop;
};

void throttle_init(struct throttle *t, struct machine *m);
/* Sets the share (0 stops holding the vCPU); starts the thread on first use. */
int throttle_set(struct throttle *t, int pct);
/* Stops the thread with the vCPU running; call before the final pause. */
void throttle_fini(struct throttle *t);

#endif
