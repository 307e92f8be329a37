#include "dev/pubmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/size.h"

#define PG 4096ull
#define LOW_LIMIT (3ull << 30)       /* as vm.h: RAM above 3 GiB is mapped from 4 GiB */
#define HIGH_FRAME ((4ull << 30) / PG)

static uint64_t low_frames(uint64_t ram)
{
	return (ram < LOW_LIMIT ? ram : LOW_LIMIT) / PG;
}

static uint64_t high_frames(uint64_t ram)
{
	return ram > LOW_LIMIT ? (ram - LOW_LIMIT) / PG : 0;
}

/* [first, first+count) is guest RAM, within one of its two regions. */
static bool in_ram(uint64_t ram, uint64_t first, uint64_t count)
{
	uint64_t lo = low_frames(ram), hi = high_frames(ram);

	if (count == 0 || first + count < first)
		return false;
	if (first + count <= lo)
		return true;
	return first >= HIGH_FRAME && first - HIGH_FRAME + count <= hi;
}

void pubmem_init(struct pubmem *p, uint64_t ram_size)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->ram_size = ram_size;
	p->s.version = PUBMEM_STATE_VERSION;
}

void pubmem_destroy(struct pubmem *p)
{
	pthread_mutex_destroy(&p->lock);
}

int pubmem_attach(struct pubmem *p, struct pio_bus *bus)
{
	return pio_bus_register(bus, PUBMEM_PORT, PUBMEM_PORTS, pubmem_pio, p);
}

/* Under lock: the table with [a, b) added or taken out; PUBMEM_EFULL leaves it as it was. */
static int change(struct pubmem *p, uint64_t a, uint64_t b, bool add)
{
	struct pubmem_range out[PUBMEM_MAX_RANGES + 2];
	uint32_t n = 0, i;

	for (i = 0; i < p->s.nranges; i++) {
		uint64_t s = p->s.r[i].first, t = s + p->s.r[i].count;
		if (add) {
			if (t < a || s > b) {         /* apart (not even touching) */
				if (s > b && a < b) { /* the new range goes before this one */
					out[n++] = (struct pubmem_range){ a, b - a };
					a = b = 0;
				}
				out[n++] = p->s.r[i];
			} else {                      /* overlapping or adjacent: merge into [a, b) */
				a = s < a ? s : a;
				b = t > b ? t : b;
			}
		} else {
			if (t <= a || s >= b) {
				out[n++] = p->s.r[i];
				continue;
			}
			if (s < a)
				out[n++] = (struct pubmem_range){ s, a - s };
			if (t > b)
				out[n++] = (struct pubmem_range){ b, t - b };
		}
		if (n > PUBMEM_MAX_RANGES)
			return PUBMEM_EFULL;
	}
	if (add && a < b)
		out[n++] = (struct pubmem_range){ a, b - a };
	if (n > PUBMEM_MAX_RANGES)
		return PUBMEM_EFULL;
	memcpy(p->s.r, out, n * sizeof(out[0]));
	memset(p->s.r + n, 0, (PUBMEM_MAX_RANGES - n) * sizeof(out[0]));
	p->s.nranges = n;
	p->generation++;
	return PUBMEM_OK;
}

int pubmem_declare(struct pubmem *p, uint64_t first, uint64_t count, bool public_)
{
	int r;

	if (!in_ram(p->ram_size, first, count))
		return PUBMEM_ERANGE;
	pthread_mutex_lock(&p->lock);
	r = change(p, first, first + count, public_);
	p->used = true;
	pthread_mutex_unlock(&p->lock);
	return r;
}

static int parse_addr(const char *s, uint64_t *out, struct err *e)
{
	char *end;

	if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2)) {
		errno = 0;
		*out = strtoull(s + 2, &end, 16);
		if (errno || end == s + 2 || *end)
			return err_set(e, -EINVAL, "'%s' is not an address", s);
		return 0;
	}
	return parse_size(s, 0, out, e);
}

int pubmem_declare_list(struct pubmem *p, const char *list, struct err *e)
{
	char buf[1024], *tok, *save = NULL;

	if (!list || !*list || strlen(list) >= sizeof(buf))
		return err_set(e, -EINVAL, "--public needs START-END[,START-END...] (at most %zu characters)",
			       sizeof(buf) - 1);
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		uint64_t a, b;
		int r;
		if (!dash)
			return err_set(e, -EINVAL, "--public: '%s' is not START-END", tok);
		*dash = 0;
		if (parse_addr(tok, &a, e) < 0 || parse_addr(dash + 1, &b, e) < 0)
			return err_wrap(e, "--public");
		if (a % PG || b % PG || b <= a)
			return err_set(e, -EINVAL, "--public %s-%s: START and END must be page-aligned, END above START", tok,
				       dash + 1);
		r = pubmem_declare(p, a / PG, (b - a) / PG, true);
		if (r == PUBMEM_ERANGE)
			return err_set(e, -ERANGE, "--public %s-%s is not guest RAM (%llu MiB: below 3 GiB, then from 4 GiB)",
				       tok, dash + 1, (unsigned long long)(p->ram_size >> 20));
		if (r == PUBMEM_EFULL)
			return err_set(e, -ENOSPC, "--public: more than %d separate ranges", PUBMEM_MAX_RANGES);
	}
	return 0;
}

bool pubmem_ram_page_public(struct pubmem *p, uint64_t ram_page)
{
	uint64_t lo = low_frames(p->ram_size), f = ram_page < lo ? ram_page : ram_page - lo + HIGH_FRAME;
	uint32_t a = 0, b;
	bool yes = false;

	pthread_mutex_lock(&p->lock);
	b = p->s.nranges;
	while (a < b) {
		uint32_t m = (a + b) / 2;
		if (f < p->s.r[m].first) {
			b = m;
		} else if (f >= p->s.r[m].first + p->s.r[m].count) {
			a = m + 1;
		} else {
			yes = true;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return yes;
}

void pubmem_get(struct pubmem *p, struct pubmem_state *out, uint64_t *generation)
{
	pthread_mutex_lock(&p->lock);
	*out = p->s;
	if (generation)
		*generation = p->generation;
	pthread_mutex_unlock(&p->lock);
}

static uint64_t pages_locked(const struct pubmem *p)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < p->s.nranges; i++)
		n += p->s.r[i].count;
	return n;
}

uint64_t pubmem_public_pages(struct pubmem *p)
{
	uint64_t n;

	pthread_mutex_lock(&p->lock);
	n = pages_locked(p);
	pthread_mutex_unlock(&p->lock);
	return n;
}

json_t *pubmem_json(struct pubmem *p)
{
	struct pubmem_state s;
	json_t *a = json_array();
	char lo[24], hi[24];

	pubmem_get(p, &s, NULL);
	for (uint32_t i = 0; a && i < s.nranges; i++) {
		snprintf(lo, sizeof(lo), "0x%llx", (unsigned long long)(s.r[i].first * PG));
		snprintf(hi, sizeof(hi), "0x%llx", (unsigned long long)((s.r[i].first + s.r[i].count) * PG));
		json_array_append_new(a, json_pack("{s:s, s:s}", "start", lo, "end", hi));
	}
	return json_pack("{s:o, s:I}", "ranges", a ? a : json_null(), "pages", (json_int_t)pubmem_public_pages(p));
}

void pubmem_pio(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write)
{
	struct pubmem *p = opaque;
	uint32_t off = (uint32_t)(port - PUBMEM_PORT), v;

	if (len != 4 || off % 4 || off >= PUBMEM_PORTS) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (!is_write) {
		pthread_mutex_lock(&p->lock);
		v = off == 0 ? PUBMEM_SIGNATURE : off == 4 ? p->s.reg_first : off == 8 ? p->s.reg_count
											 : p->s.status | PUBMEM_IF_VERSION << 16;
		pthread_mutex_unlock(&p->lock);
		memcpy(data, &v, 4);
		return;
	}
	memcpy(&v, data, 4);
	if (off == 4 || off == 8) {
		pthread_mutex_lock(&p->lock);
		*(off == 4 ? &p->s.reg_first : &p->s.reg_count) = v;
		p->used = true;
		pthread_mutex_unlock(&p->lock);
		return;
	}
	if (off != 0)
		return;
	pthread_mutex_lock(&p->lock);
	p->used = true;
	switch (v) {
	case PUBMEM_CMD_PUBLIC:
	case PUBMEM_CMD_PRIVATE:
		p->s.status = in_ram(p->ram_size, p->s.reg_first, p->s.reg_count)
				      ? (uint32_t)change(p, p->s.reg_first, (uint64_t)p->s.reg_first + p->s.reg_count,
							 v == PUBMEM_CMD_PUBLIC)
				      : PUBMEM_ERANGE;
		break;
	case PUBMEM_CMD_RESET:
		change(p, 0, UINT64_MAX, false);
		p->s.status = PUBMEM_OK;
		break;
	case PUBMEM_CMD_QUERY:
		if (p->s.reg_first < p->s.nranges) {
			const struct pubmem_range *r = &p->s.r[p->s.reg_first];
			p->s.reg_first = (uint32_t)r->first;
			p->s.reg_count = (uint32_t)r->count;
			p->s.status = PUBMEM_OK;
		} else {
			p->s.status = PUBMEM_ERANGE;
		}
		break;
	case PUBMEM_CMD_TOTALS:
		p->s.reg_count = p->s.nranges;
		p->s.reg_first = (uint32_t)pages_locked(p);
		p->s.status = PUBMEM_OK;
		break;
	default:
		p->s.status = PUBMEM_EINVAL;
		break;
	}
	pthread_mutex_unlock(&p->lock);
}

bool pubmem_in_use(struct pubmem *p)
{
	bool u;

	pthread_mutex_lock(&p->lock);
	u = p->used;
	pthread_mutex_unlock(&p->lock);
	return u;
}

void pubmem_save(struct pubmem *p, struct pubmem_state *out)
{
	pubmem_get(p, out, NULL);
}

int pubmem_state_validate(const struct pubmem_state *s, uint64_t ram_size, struct err *e)
{
	uint32_t i;

	if (s->version != PUBMEM_STATE_VERSION)
		return err_set(e, -EPROTO, "public-memory state version %u not supported", s->version);
	if (s->nranges > PUBMEM_MAX_RANGES || s->status > PUBMEM_EINVAL || s->pad)
		return err_set(e, -EINVAL, "public-memory state: %u ranges, status %u", s->nranges, s->status);
	for (i = 0; i < s->nranges; i++) {
		const struct pubmem_range *r = &s->r[i];
		if (!in_ram(ram_size, r->first, r->count))
			return err_set(e, -EINVAL, "public-memory state: range %u (pages %llu+%llu) is not guest RAM", i,
				       (unsigned long long)r->first, (unsigned long long)r->count);
		if (i && s->r[i - 1].first + s->r[i - 1].count >= r->first)
			return err_set(e, -EINVAL, "public-memory state: ranges %u and %u overlap, touch or are out of order",
				       i - 1, i);
	}
	for (; i < PUBMEM_MAX_RANGES; i++)
		if (s->r[i].first || s->r[i].count)
			return err_set(e, -EINVAL, "public-memory state: data beyond its %u ranges", s->nranges);
	return 0;
}

int pubmem_load(struct pubmem *p, const struct pubmem_state *s, struct err *e)
{
	int r = pubmem_state_validate(s, p->ram_size, e);

	if (r < 0)
		return r;
	pthread_mutex_lock(&p->lock);
	p->s = *s;
	p->used = true;
	p->generation++;
	pthread_mutex_unlock(&p->lock);
	return 0;
}
