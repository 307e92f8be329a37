/* The serial console's history, kept in sealvm memory only: the last
 * SCROLLBACK_SIZE bytes the guest wrote, numbered from the first byte since boot. */
#ifndef SEALVM_CONSOLE_SCROLLBACK_H
#define SEALVM_CONSOLE_SCROLLBACK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SCROLLBACK_SIZE (64 * 1024)

struct scrollback {
	pthread_mutex_t lock;
	uint64_t total;         /* bytes ever appended: the next byte's offset */
	uint64_t start;         /* no byte before this one is kept (after an import) */
	uint8_t buf[SCROLLBACK_SIZE];
};

void scrollback_init(struct scrollback *s);
void scrollback_destroy(struct scrollback *s);
void scrollback_append(struct scrollback *s, const uint8_t *p, size_t n);
/* Copies up to max bytes starting at *from (moved up to the oldest byte kept if
 * older); returns the count and leaves *from at the first byte copied. */
size_t scrollback_read(struct scrollback *s, uint64_t *from, uint8_t *out, size_t max);
uint64_t scrollback_total(struct scrollback *s);
/* The bytes kept, oldest first, into out[SCROLLBACK_SIZE]; returns their count. */
size_t scrollback_export(struct scrollback *s, uint8_t *out, uint64_t *total);
/* Replaces the history (a restored or migrated console); n <= SCROLLBACK_SIZE, n <= total. */
void scrollback_import(struct scrollback *s, const uint8_t *p, size_t n, uint64_t total);

#endif
