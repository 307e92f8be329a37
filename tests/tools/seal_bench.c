/* seal_bench: what sealing pages for memory servers costs one core (paging/page_seal.h).
 *
 *   seal_bench [--seconds S] [--pages N]
 *
 * Seals and opens N distinct 4 KiB pages (a working set larger than the caches, default
 * 16384 = 64 MiB) round after round for S seconds per case (default 2), in both modes
 * (sealed: AES-256-GCM; plain: GMAC over the page), single-threaded, and prints one JSON
 * object: pages/s, GB/s of page data and µs per page for each case, plus memcpy of the
 * same pages as the machine's yardstick. Run it niced on a shared machine (make bench
 * BENCH=split-seal does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "paging/page_seal.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum op { OP_SEAL, OP_OPEN, OP_COPY };

/* Runs op over all pages until secs passed; returns pages per second. */
static double run(struct page_sealer *s, enum op op, enum page_mode mode, uint8_t *pages, uint8_t *blobs,
		  uint64_t n, double secs)
{
	double t0 = now_s(), t;
	uint64_t done = 0, round = 0;
	struct err e = { 0 };

	do {
		round++;
		for (uint64_t i = 0; i < n; i++) {
			uint8_t *pg = pages + i * PAGE_SEAL_PAGE, *bl = blobs + i * PAGE_BLOB_SIZE;
			enum page_verdict why;
			int r = 0;
			if (op == OP_SEAL)
				r = page_seal(s, i, round, mode, pg, bl, &e);
			else if (op == OP_OPEN)
				r = page_open(s, i, 1, bl, PAGE_BLOB_SIZE, pg, NULL, &why, &e);
			else
				memcpy(bl + PAGE_SEAL_HDR, pg, PAGE_SEAL_PAGE);
			if (r < 0) {
				fprintf(stderr, "seal_bench: %s\n", e.msg);
				exit(1);
			}
		}
		done += n;
		t = now_s() - t0;
	} while (t < secs);
	return (double)done / t;
}

static void emit(const char *name, double pps, int last)
{
	printf("  \"%s\": {\"pages_per_s\": %.0f, \"gb_per_s\": %.3f, \"us_per_page\": %.3f}%s\n", name, pps,
	       pps * PAGE_SEAL_PAGE / 1e9, 1e6 / pps, last ? "" : ",");
}

int main(int argc, char **argv)
{
	double secs = 2;
	uint64_t n = 16384;
	struct page_sealer *s;
	struct page_key k;
	struct err e = { 0 };
	uint8_t *pages, *blobs;
	double r[5];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--pages") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: seal_bench [--seconds S] [--pages N]\n");
			return 2;
		}
	}
	if (n == 0 || secs <= 0) {
		fprintf(stderr, "seal_bench: need pages > 0 and seconds > 0\n");
		return 2;
	}
	pages = malloc(n * PAGE_SEAL_PAGE);
	blobs = malloc(n * PAGE_BLOB_SIZE);
	if (!pages || !blobs || page_key_generate(&k, NULL, 1, &e) < 0 || page_sealer_new(&k, &s, &e) < 0) {
		fprintf(stderr, "seal_bench: %s\n", e.msg[0] ? e.msg : "out of memory");
		return 1;
	}
	for (uint64_t i = 0; i < n * PAGE_SEAL_PAGE; i++)
		pages[i] = (uint8_t)(i * 2654435761u >> 13);
	r[0] = run(s, OP_COPY, PAGE_MODE_SEALED, pages, blobs, n, secs);
	r[1] = run(s, OP_SEAL, PAGE_MODE_SEALED, pages, blobs, n, secs);
	/* blobs of version 1 to open */
	run(s, OP_SEAL, PAGE_MODE_SEALED, pages, blobs, n, 1e-9);
	r[2] = run(s, OP_OPEN, PAGE_MODE_SEALED, pages, blobs, n, secs);
	r[3] = run(s, OP_SEAL, PAGE_MODE_PLAIN, pages, blobs, n, secs);
	run(s, OP_SEAL, PAGE_MODE_PLAIN, pages, blobs, n, 1e-9);
	r[4] = run(s, OP_OPEN, PAGE_MODE_PLAIN, pages, blobs, n, secs);
	printf("{\n  \"pages\": %llu,\n  \"seconds_per_case\": %.1f,\n", (unsigned long long)n, secs);
	emit("memcpy", r[0], 0);
	emit("seal_aes256gcm", r[1], 0);
	emit("open_aes256gcm", r[2], 0);
	emit("seal_plain_gmac", r[3], 0);
	emit("open_plain_gmac", r[4], 1);
	printf("}\n");
	page_sealer_free(s);
	page_key_wipe(&k);
	free(pages);
	free(blobs);
	return 0;
}
