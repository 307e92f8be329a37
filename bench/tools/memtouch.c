/* memtouch: puts the host's memory in a known state before a benchmark run by
 * touching GiB of fresh anonymous memory (one write per 4 KiB page) and freeing it.
 * On this machine first touch of memory the outer hypervisor never backed runs at
 * ~0.3 GB/s and of recently freed memory at ~2.8 GB/s (DESIGN.md §6), so a
 * migration's time depends on what ran before it; after this, every run starts
 * from "recently freed", the state closer to bare metal.
 * Usage: memtouch [GiB (8)]. Prints one JSON object: bytes touched and the
 * first-touch rate, which itself says what state the memory was in. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double gib = argc > 1 ? atof(argv[1]) : 8.0, t0, t;
	size_t len = (size_t)(gib * (1 << 30)) & ~(size_t)4095, off;
	volatile char *p;

	if (!len) {
		fprintf(stderr, "memtouch: nothing to touch\n");
		return 1;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		perror("memtouch: mmap");
		return 1;
	}
	t0 = now_s();
	for (off = 0; off < len; off += 4096)
		p[off] = 1;
	t = now_s() - t0;
	munmap((void *)p, len);
	printf("{\"bytes\": %zu, \"seconds\": %.3f, \"gb_s\": %.3f}\n", len, t, len / t / 1e9);
	return 0;
}
