#include "migrate/receive.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool mig_fault(const char *name)
{
	const char *f = getenv("SEALVM_TEST_FAULT");
	return f && !strcmp(f, name);
}

void rx_init(struct rx *x, struct machine *m)
{
	memset(x, 0, sizeof(*x));
	x->m = m;
	x->n = 1;
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->cond, NULL);
}

void rx_fini(struct rx *x)
{
	int i;

	for (i = 0; i < MIG_MAX_CHANNELS; i++) {
		pool_conn_close(x->lanes[i].c);
		x->lanes[i].c = NULL;
	}
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->cond);
}

void rx_interrupt(struct rx *x)
{
	int i;

	pthread_mutex_lock(&x->lock);
	x->failed = true;
	for (i = 0; i < x->n; i++)
		if (x->lanes[i].c)
			chan_shutdown(x->lanes[i].c->ch);
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

uint64_t rx_pages(struct rx *x)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < x->n; i++)
		n += __atomic_load_n(&x->lanes[i].ps.data_pages, __ATOMIC_RELAXED) +
		     __atomic_load_n(&x->lanes[i].ps.markers, __ATOMIC_RELAXED);
	return n;
}

uint64_t rx_bytes(struct rx *x)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < x->n; i++)
		if (x->lanes[i].c)
			n += chan_bytes_received(x->lanes[i].c->ch);
	return n;
}

/* Round k+1 data may overwrite a page sent in round k on another lane, so a
 * lane enters a round only when every lane has finished the previous one. */
static int barrier(struct rx *x, int lane, struct err *e)
{
	int i;
	bool all;

	pthread_mutex_lock(&x->lock);
	x->reached[lane]++;
	pthread_cond_broadcast(&x->cond);
	for (;;) {
		for (all = true, i = 0; i < x->n; i++)
			if (x->reached[i] < x->reached[lane])
				all = false;
		if (all || x->failed)
			break;
		pthread_cond_wait(&x->cond, &x->lock);
	}
	all = !x->failed;
	pthread_mutex_unlock(&x->lock);
	return all ? 0 : err_set(e, -ECANCELED, "another channel failed");
}

/* First failure: remember it and wake every lane (blocked readers included). */
static void fail_all(struct rx *x)
{
	int i;

	pthread_mutex_lock(&x->lock);
	if (!x->failed) {
		x->failed = true;
		for (i = 1; i < x->n; i++)
			if (x->lanes[i].c)
				chan_shutdown(x->lanes[i].c->ch);
	}
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

static void lane_done(struct rx *x, int lane)
{
	pthread_mutex_lock(&x->lock);
	x->reached[lane] = UINT32_MAX; /* finished: never holds the others back */
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

/* Receives one lane up to its END. Lane 0 also carries SYNC and the state sections. */
static int lane_receive(struct rx_lane *d, struct machine_loader *ld, struct err *e)
{
	struct machine *m = d->rx->m;
	struct sec_reader *rd = &d->c->r;
	struct sec_hdr h;
	int r;

	rd->bind = &d->bind;
	for (;;) {
		r = sec_read_hdr(rd, &h, e);
		if (r < 0)
			break;
		if (h.id == SEC_PAGES) {
			r = pages_recv(rd, &h, m->vm.ram, m->vm.ram_pages, &d->ps, e);
			if (r == 0 && mig_fault("die-during-pages") && d->ps.data_pages > 500)
				_exit(99);
		} else if (h.id == SEC_ROUND) {
			struct mig_round rd0;
			r = sec_read_exact(rd, &h, &rd0, sizeof(rd0), e);
			if (r == 0)
				r = barrier(d->rx, d->index, e);
		} else if (h.id == SEC_ABORT) {
			struct mig_abort a;
			r = sec_read_exact(rd, &h, &a, sizeof(a), e);
			a.reason[sizeof(a.reason) - 1] = 0;
			if (r == 0)
				r = err_set(e, -ECONNABORTED, "%s", a.reason);
		} else if (h.id == SEC_SYNC && ld) {
			/* the ROUND before it held every lane until all had caught up */
			struct mig_sync sy;
			r = sec_read_exact(rd, &h, &sy, sizeof(sy), e);
			if (r == 0)
				r = pool_conn_send(d->c, SEC_SYNC_ACK, &sy, sizeof(sy), e);
		} else if (h.id == SEC_END) {
			r = sec_check_end(rd, &h, d->ps.data_pages + d->ps.markers, e);
			if (r == 0)
				lane_done(d->rx, d->index);
			break;
		} else if (ld) {
			r = machine_load_section(ld, rd, &h, e);
		} else {
			r = err_set(e, -EPROTO, "unexpected %s section on channel %d", sec_name(h.id), d->index);
		}
		if (r < 0)
			break;
	}
	if (r < 0)
		fail_all(d->rx);
	return r;
}

static void *lane_thread(void *arg)
{
	struct rx_lane *d = arg;

	d->rc = lane_receive(d, NULL, &d->e);
	return NULL;
}

int rx_receive(struct rx *x, struct machine_loader *ld, struct err *e)
{
	int r, i;

	bool all = true;

	for (i = 1; i < x->n; i++)
		if (pthread_create(&x->lanes[i].thread, NULL, lane_thread, &x->lanes[i]) == 0)
			x->lanes[i].started = true;
		else
			all = false;
	if (all) {
		r = lane_receive(&x->lanes[0], ld, e);
	} else {
		/* a lane nobody reads would hold every ROUND barrier forever */
		fail_all(x);
		r = err_set(e, -EAGAIN, "cannot start a thread for every channel");
	}
	for (i = 1; i < x->n; i++) {
		struct rx_lane *d = &x->lanes[i];
		if (d->started)
			pthread_join(d->thread, NULL);
		d->started = false;
		/* a lane's own failure says more than "another channel failed" */
		if (d->rc < 0 && (r == 0 || r == -ECANCELED)) {
			*e = d->e;
			r = err_wrap(e, "channel %d", i);
		}
	}
	return r;
}
