#include "migrate/watchdog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg)
{
	struct watchdog *w = arg;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		uint64_t now = mono_ns();
		if (w->deadline_ns && now >= w->deadline_ns) {
			char why[sizeof(w->why)];
			memcpy(why, w->why, sizeof(why));
			w->deadline_ns = 0;
			pthread_mutex_unlock(&w->lock);
			w->fire(w->opaque, why);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		if (w->deadline_ns) {
			struct timespec ts;
			uint64_t left = w->deadline_ns - now;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)(left / 1000000000ull);
			ts.tv_nsec += (long)(left % 1000000000ull);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&w->cond, &w->lock, &ts);
		} else {
			pthread_cond_wait(&w->cond, &w->lock);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int watchdog_start(struct watchdog *w, void (*fire)(void *opaque, const char *why), void *opaque)
{
	pthread_condattr_t ca;

	memset(w, 0, sizeof(*w));
	w->fire = fire;
	w->opaque = opaque;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&w->thread, NULL, run, w))
		return -ENOMEM;
	w->started = true;
	return 0;
}

void watchdog_arm(struct watchdog *w, uint32_t ms, const char *why)
{
	pthread_mutex_lock(&w->lock);
	w->deadline_ns = mono_ns() + (uint64_t)ms * 1000000ull;
	snprintf(w->why, sizeof(w->why), "%s", why);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void watchdog_disarm(struct watchdog *w)
{
	pthread_mutex_lock(&w->lock);
	w->deadline_ns = 0;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void watchdog_stop(struct watchdog *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	w->started = false;
}
