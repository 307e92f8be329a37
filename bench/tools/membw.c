/* membw: single-thread memcpy bandwidth, the ceiling for any path that copies
 * guest RAM once (snapshot write, restore, a migration's page staging).
 * Usage: membw [MiB per buffer (256)] [seconds (1.5)]
 * Prints one JSON object: bytes copied per second. Both buffers are written
 * before timing, so first-touch faults (slow on this machine) are not counted. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256, len = mib << 20;
	double secs = argc > 2 ? atof(argv[2]) : 1.5, t0, t;
	char *a = malloc(len), *b = malloc(len);
	unsigned long long copied = 0;

	if (!a || !b || !len) {
		fprintf(stderr, "membw: cannot allocate 2 x %zu MiB\n", mib);
		return 1;
	}
	memset(a, 1, len);
	memset(b, 2, len);
	t0 = now_s();
	do {
		/* alternate directions so neither buffer stays cache-hot */
		if (copied / len % 2)
			memcpy(a, b, len);
		else
			memcpy(b, a, len);
		copied += len;
		t = now_s() - t0;
	} while (t < secs);
	printf("{\"buffer_mib\": %zu, \"seconds\": %.3f, \"gb_s\": %.3f, \"check\": %d}\n", mib, t,
	       copied / t / 1e9, a[len / 2] + b[len / 3]);
	free(a);
	free(b);
	return 0;
}
