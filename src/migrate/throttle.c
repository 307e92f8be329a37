#include "migrate/throttle.h"

#include <errno.h>
#include <time.h>

#define SLICE_NS 10000000ull /* 10 ms, as QEMU's CPU throttle */

static void wait_ns(struct throttle *t, uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec += (long)(ns % 1000000000ull);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!t->stop && pthread_cond_timedwait(&t->cond, &t->lock, &ts) != ETIMEDOUT)
		;
}

static void *throttle_thread(void *arg)
{
	struct throttle *t = arg;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		uint64_t held = SLICE_NS * (uint64_t)t->pct / 100;
		if (!held) {
			wait_ns(t, SLICE_NS);
			continue;
		}
		pthread_mutex_unlock(&t->lock);
		machine_pause(t->m, PAUSE_THROTTLE);
		pthread_mutex_lock(&t->lock);
		wait_ns(t, held);
		pthread_mutex_unlock(&t->lock);
		machine_resume(t->m, PAUSE_THROTTLE);
		pthread_mutex_lock(&t->lock);
		wait_ns(t, SLICE_NS - held);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

void throttle_init(struct throttle *t, struct machine *m)
{
	t->m = m;
	t->pct = 0;
	t->running = t->stop = false;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
}

int throttle_set(struct throttle *t, int pct)
{
	int r = 0;

	pthread_mutex_lock(&t->lock);
	t->pct = pct < 0 ? 0 : pct > 99 ? 99 : pct;
	if (!t->running && t->pct > 0) {
		r = -pthread_create(&t->thread, NULL, throttle_thread, t);
		t->running = r == 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void throttle_fini(struct throttle *t)
{
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (t->running)
		pthread_join(t->thread, NULL);
	t->running = false;
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}
