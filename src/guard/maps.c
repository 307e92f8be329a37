#include "guard/maps.h"

#include <stdlib.h>
#include <string.h>

static const char *hex_u64(const char *p, const char *end, uint64_t *out)
{
	uint64_t v = 0;
	int n = 0;

	for (; p < end; p++, n++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			break;
		if (n == 16)
			return NULL;
		v = v << 4 | (uint64_t)d;
	}
	if (!n)
		return NULL;
	*out = v;
	return p;
}

static const char *dec_u64(const char *p, const char *end, uint64_t *out)
{
	uint64_t v = 0;
	int n = 0;

	for (; p < end && *p >= '0' && *p <= '9'; p++, n++) {
		if (v > (UINT64_MAX - 9) / 10)
			return NULL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (!n)
		return NULL;
	*out = v;
	return p;
}

static const char *expect(const char *p, const char *end, char c)
{
	return p < end && *p == c ? p + 1 : NULL;
}

static int parse_line(const char *p, const char *end, struct map_ent *m)
{
	static const char deleted[] = " (deleted)";
	uint64_t maj, min;
	size_t n;

	memset(m, 0, sizeof(*m));
	if (!(p = hex_u64(p, end, &m->start)) || !(p = expect(p, end, '-')) || !(p = hex_u64(p, end, &m->end)) ||
	    !(p = expect(p, end, ' ')))
		return -1;
	if (end - p < 5 || (p[0] != 'r' && p[0] != '-') || (p[1] != 'w' && p[1] != '-') || (p[2] != 'x' && p[2] != '-') ||
	    (p[3] != 'p' && p[3] != 's') || p[4] != ' ')
		return -1;
	m->r = p[0] == 'r';
	m->w = p[1] == 'w';
	m->x = p[2] == 'x';
	m->shared = p[3] == 's';
	p += 5;
	if (!(p = hex_u64(p, end, &m->offset)) || !(p = expect(p, end, ' ')) || !(p = hex_u64(p, end, &maj)) ||
	    !(p = expect(p, end, ':')) || !(p = hex_u64(p, end, &min)) || !(p = expect(p, end, ' ')) ||
	    !(p = dec_u64(p, end, &m->ino)))
		return -1;
	if (maj > UINT32_MAX || min > UINT32_MAX || m->end <= m->start)
		return -1;
	m->dev_major = (uint32_t)maj;
	m->dev_minor = (uint32_t)min;
	while (p < end && *p == ' ')
		p++;
	n = (size_t)(end - p);
	if (n >= sizeof(deleted) - 1 && !memcmp(end - (sizeof(deleted) - 1), deleted, sizeof(deleted) - 1)) {
		m->deleted = true;
		n -= sizeof(deleted) - 1;
	}
	if (memchr(p, 0, n))
		return -1;
	if (n >= sizeof(m->path)) {
		/* longer than any path the guard opens by name: keep it for messages only */
		m->path_truncated = true;
		n = sizeof(m->path) - 1;
	}
	memcpy(m->path, p, n);
	m->path[n] = 0;
	return 0;
}

int maps_parse(const char *text, size_t len, struct maps *out, struct err *e)
{
	const char *p = text, *end = text + len;
	size_t line = 0;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		struct map_ent m;

		line++;
		if (le == p) {
			p = le + 1;
			continue;
		}
		if (parse_line(p, le, &m) < 0) {
			maps_free(out);
			return err_set(e, -EINVAL, "memory map line %zu is malformed", line);
		}
		if (out->n && m.start < out->ent[out->n - 1].end) {
			maps_free(out);
			return err_set(e, -EINVAL, "memory map line %zu overlaps or precedes the line before it", line);
		}
		if (out->n == out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 128;
			struct map_ent *n;
			if (cap > MAPS_MAX_ENTRIES) {
				maps_free(out);
				return err_set(e, -E2BIG, "memory map has more than %d mappings", MAPS_MAX_ENTRIES);
			}
			n = realloc(out->ent, cap * sizeof(*n));
			if (!n) {
				maps_free(out);
				return err_set(e, -ENOMEM, "out of memory");
			}
			out->ent = n;
			out->cap = cap;
		}
		out->ent[out->n++] = m;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

void maps_free(struct maps *m)
{
	free(m->ent);
	memset(m, 0, sizeof(*m));
}

bool map_is_file(const struct map_ent *m)
{
	return m->ino != 0 && m->path[0] == '/';
}
