#include "vm/reserve.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64ull << 20)

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Faults [p, p+len) in writable: the kernel's populate, or a write per page. */
static int populate(uint8_t *p, uint64_t len)
{
	uint64_t off;

	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	for (off = 0; off < len; off += 4096)
		((volatile uint8_t *)p)[off] = 0; /* older kernels */
	return 0;
}

static void *populate_thread(void *arg)
{
	struct ram_reserve *r = arg;
	uint64_t t0 = mono_ns();

	while (!atomic_load(&r->stop)) {
		uint64_t at = atomic_load(&r->ready), lim = atomic_load(&r->limit), len;
		if (at >= lim)
			break;
		len = lim - at < CHUNK ? lim - at : CHUNK;
		r->error = populate(r->base + at, len);
		if (r->error)
			break;
		atomic_store(&r->ready, at + len);
	}
	r->populate_ns = mono_ns() - t0;
	return NULL;
}

int ram_reserve_start(struct ram_reserve *r, uint64_t size, struct err *e)
{
	memset(r, 0, sizeof(*r));
	if (size < 2ull << 20 || size % 4096)
		return err_set(e, -EINVAL, "--reserve: at least 2M, whole pages");
	r->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->base == MAP_FAILED) {
		r->base = NULL;
		return err_sys(e, -errno, "cannot map %llu MiB to reserve", (unsigned long long)(size >> 20));
	}
	madvise(r->base, size, MADV_HUGEPAGE);
	madvise(r->base, size, MADV_DONTDUMP);
	r->size = size;
	atomic_store(&r->limit, size);
	if (pthread_create(&r->thread, NULL, populate_thread, r)) {
		munmap(r->base, size);
		r->base = NULL;
		return err_set(e, -ENOMEM, "cannot start populating the reservation");
	}
	r->started = true;
	return 0;
}

uint8_t *ram_reserve_take(struct ram_reserve *r, uint64_t size)
{
	uint64_t keep = (size + (2ull << 20) - 1) & ~((2ull << 20) - 1); /* a huge page boundary */

	if (!r->base || r->taken || size > r->size)
		return NULL;
	if (keep > r->size)
		keep = r->size;
	/* stop populating (at most a chunk is in flight), give the tail back, then
	 * finish the VM's part in the background */
	atomic_store(&r->stop, true);
	if (r->started)
		pthread_join(r->thread, NULL);
	r->started = false;
	if (keep < r->size)
		munmap(r->base + keep, r->size - keep);
	r->size = keep;
	r->taken = true;
	atomic_store(&r->limit, size);
	atomic_store(&r->stop, false);
	if (atomic_load(&r->ready) < size && !r->error && pthread_create(&r->thread, NULL, populate_thread, r) == 0)
		r->started = true;
	return r->base;
}

int ram_reserve_wait(struct ram_reserve *r, struct err *e)
{
	if (r->started) {
		pthread_join(r->thread, NULL);
		r->started = false;
	}
	if (atomic_load(&r->ready) < atomic_load(&r->limit))
		return err_set(e, r->error ? r->error : -ENOMEM,
			       "the reserved memory could not be populated (%llu of %llu MiB)",
			       (unsigned long long)(atomic_load(&r->ready) >> 20),
			       (unsigned long long)(atomic_load(&r->limit) >> 20));
	return 0;
}

void ram_reserve_stop(struct ram_reserve *r)
{
	atomic_store(&r->stop, true);
	if (r->started)
		pthread_join(r->thread, NULL);
	r->started = false;
	if (r->base && !r->taken)
		munmap(r->base, r->size);
	r->base = NULL;
}
