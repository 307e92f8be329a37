/* Destination: receiving a migration's channels up to END, in parallel, and the
 * state into a loader. Round k+1 on any channel waits until every channel
 * finished round k (a later round may overwrite a page an earlier one sent). */
#ifndef SEALVM_MIGRATE_RECEIVE_H
#define SEALVM_MIGRATE_RECEIVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "migrate/pool.h"
#include "migrate/proto.h"
#include "state/pages.h"
#include "vmm/machine.h"

struct rx;

struct rx_lane {
	struct pool_conn *c;
	int index;
	struct rx *rx;
	struct sec_bind bind;
	struct pages_stats ps;
	pthread_t thread;
	bool started;
	struct err e;
	int rc;
};

struct rx {
	struct machine *m;
	int n;
	struct rx_lane lanes[MIG_MAX_CHANNELS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t reached[MIG_MAX_CHANNELS];   /* ROUND markers seen per lane */
	bool failed;
};

void rx_init(struct rx *x, struct machine *m);
void rx_fini(struct rx *x);          /* closes every lane */
/* Receives every lane up to its END (lane 0 also the state sections, into ld).
 * On failure the first error names its channel. */
int rx_receive(struct rx *x, struct machine_loader *ld, struct err *e);
/* Makes every lane's blocked read or write return (from any thread). */
void rx_interrupt(struct rx *x);
uint64_t rx_pages(struct rx *x);
uint64_t rx_bytes(struct rx *x);

/* Test-only fault injection (SEALVM_TEST_FAULT=name): lets the test suite make a
 * destination die or stall at an exact protocol point. */
bool mig_fault(const char *name);

#endif
