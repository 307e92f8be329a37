#include "console/scrollback.h"

#include <string.h>

void scrollback_init(struct scrollback *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
}

void scrollback_destroy(struct scrollback *s)
{
	explicit_bzero(s->buf, sizeof(s->buf));
	pthread_mutex_destroy(&s->lock);
}

void scrollback_append(struct scrollback *s, const uint8_t *p, size_t n)
{
	pthread_mutex_lock(&s->lock);
	while (n--) {
		s->buf[s->total % SCROLLBACK_SIZE] = *p++;
		s->total++;
	}
	pthread_mutex_unlock(&s->lock);
}

size_t scrollback_read(struct scrollback *s, uint64_t *from, uint8_t *out, size_t max)
{
	uint64_t oldest;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	oldest = s->total > SCROLLBACK_SIZE ? s->total - SCROLLBACK_SIZE : 0;
	if (oldest < s->start)
		oldest = s->start;
	if (*from < oldest)
		*from = oldest;
	if (*from > s->total)
		*from = s->total;
	while (n < max && *from + n < s->total) {
		out[n] = s->buf[(*from + n) % SCROLLBACK_SIZE];
		n++;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t scrollback_total(struct scrollback *s)
{
	uint64_t t;

	pthread_mutex_lock(&s->lock);
	t = s->total;
	pthread_mutex_unlock(&s->lock);
	return t;
}

size_t scrollback_export(struct scrollback *s, uint8_t *out, uint64_t *total)
{
	uint64_t from = 0;
	size_t n;

	n = scrollback_read(s, &from, out, SCROLLBACK_SIZE);
	*total = from + n;
	return n;
}

void scrollback_import(struct scrollback *s, const uint8_t *p, size_t n, uint64_t total)
{
	pthread_mutex_lock(&s->lock);
	memset(s->buf, 0, sizeof(s->buf));
	s->total = s->start = total - n;
	pthread_mutex_unlock(&s->lock);
	scrollback_append(s, p, n);
}
