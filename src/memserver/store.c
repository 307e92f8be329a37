#include "memserver/store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/hex.h"

struct ms_ent {
	uint64_t key;
	uint32_t slot;
	uint32_t len;            /* 0: empty */
};

struct ms_store {
	uint8_t id[MS_STORE_ID_LEN];
	uint8_t owner[MS_FP_LEN];
	char owner_name[64];
	bool ephemeral;          /* freed with its creator's connection (unless granted) */
	bool creator_gone;       /* ...which has ended */
	uint64_t session;        /* the creating connection */
	bool granted;
	uint8_t grantee[MS_FP_LEN];
	uint64_t grant_deadline;
	uint64_t quota, blobs, bytes;
	uint32_t adoptions;
	uint64_t puts, gets;
	struct ms_ent *tab;
	uint64_t mask;           /* table size - 1 (a power of two, at least twice the quota) */
};

struct ms_stores {
	pthread_mutex_t lock;
	uint8_t *mem;
	uint64_t nslots, promised;
	uint32_t *free_slots;    /* a stack */
	uint64_t nfree;
	struct ms_store *st[MS_MAX_STORES];
	int n;
};

static uint64_t hash_key(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

static const char *short_id(const uint8_t id[MS_STORE_ID_LEN], char out[17])
{
	hex_encode(id, 8, out);
	return out;
}

int ms_stores_new(uint8_t *mem, uint64_t nslots, struct ms_stores **out, struct err *e)
{
	struct ms_stores *s = calloc(1, sizeof(*s));

	if (!s || nslots > UINT32_MAX)
		goto nomem;
	s->free_slots = malloc((nslots ? nslots : 1) * sizeof(uint32_t));
	if (!s->free_slots)
		goto nomem;
	for (uint64_t i = 0; i < nslots; i++)
		s->free_slots[i] = (uint32_t)(nslots - 1 - i); /* slot 0 on top */
	s->nfree = nslots;
	s->nslots = nslots;
	s->mem = mem;
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
nomem:
	free(s);
	return err_set(e, -ENOMEM, "cannot index %llu blob slots", (unsigned long long)nslots);
}

static void release(struct ms_stores *s, int i)
{
	struct ms_store *t = s->st[i];

	for (uint64_t k = 0; k <= t->mask; k++)
		if (t->tab[k].len) {
			explicit_bzero(s->mem + (uint64_t)t->tab[k].slot * MS_BLOB_MAX, t->tab[k].len);
			s->free_slots[s->nfree++] = t->tab[k].slot;
		}
	s->promised -= t->quota;
	free(t->tab);
	free(t);
	s->st[i] = s->st[--s->n];
	s->st[s->n] = NULL;
}

void ms_stores_free(struct ms_stores *s)
{
	if (!s)
		return;
	while (s->n)
		release(s, s->n - 1);
	pthread_mutex_destroy(&s->lock);
	free(s->free_slots);
	free(s);
}

static int find(struct ms_stores *s, const uint8_t id[MS_STORE_ID_LEN])
{
	for (int i = 0; i < s->n; i++)
		if (!memcmp(s->st[i]->id, id, MS_STORE_ID_LEN))
			return i;
	return -1;
}

enum access { OWNER_ONLY, OWNER_OR_GRANTEE, GRANTEE_ONLY };

/* The store id names, if w may act on it this way; else an error saying why. */
static int lookup(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN], enum access a,
		  struct ms_store **out, struct err *e)
{
	char h[17];
	int i = find(s, id);
	struct ms_store *t;
	bool owner, grantee;

	if (i < 0)
		return err_set(e, -ENOENT, "store %s does not exist here", short_id(id, h));
	t = s->st[i];
	owner = !memcmp(t->owner, w->fp, MS_FP_LEN);
	grantee = t->granted && !memcmp(t->grantee, w->fp, MS_FP_LEN);
	if ((a == OWNER_ONLY && !owner) || (a == OWNER_OR_GRANTEE && !owner && !grantee) ||
	    (a == GRANTEE_ONLY && !grantee)) {
		if (a == GRANTEE_ONLY && owner)
			return err_set(e, -EPERM, "store %s is not granted to %s (its owner)", short_id(id, h), w->name);
		return err_set(e, -EACCES, "store %s belongs to another host: %s may not %s it", short_id(id, h),
			       w->name[0] ? w->name : "this client",
			       a == GRANTEE_ONLY ? "adopt" : "use");
	}
	*out = t;
	return i;
}

static void fill_stat(const struct ms_store *t, const struct ms_who *w, uint64_t now, struct ms_stat_reply *o)
{
	memset(o, 0, sizeof(*o));
	o->blobs = t->blobs;
	o->quota = t->quota;
	o->bytes = t->bytes;
	o->state = t->granted ? MS_STATE_GRANTED : t->ephemeral ? MS_STATE_FILLING : MS_STATE_OWNED;
	o->role = !memcmp(t->owner, w->fp, MS_FP_LEN) ? MS_ROLE_OWNER : MS_ROLE_GRANTEE;
	o->grant_ttl = t->granted && t->grant_deadline > now ? (uint32_t)(t->grant_deadline - now) : 0;
	o->adoptions = t->adoptions;
}

int ms_store_create(struct ms_stores *s, const struct ms_who *w, const struct ms_create *c,
		    struct ms_create_reply *out, struct err *e)
{
	struct ms_store *t;
	uint64_t cap = 2;
	char h[17];
	int r = 0;

	if (c->quota < 1 || c->flags & ~MS_CREATE_EPHEMERAL)
		return err_set(e, -EINVAL, "CREATE needs a quota of at least one blob and no unknown flags");
	pthread_mutex_lock(&s->lock);
	if (find(s, c->store) >= 0)
		r = err_set(e, -EEXIST, "store %s exists already", short_id(c->store, h));
	else if (s->n >= MS_MAX_STORES)
		r = err_set(e, -ENOSPC, "this memory server holds %d stores already (its limit)", MS_MAX_STORES);
	else if (c->quota > s->nslots - s->promised)
		r = err_set(e, -ENOSPC, "not enough capacity: %llu blobs (%llu MiB) asked, %llu (%llu MiB) free of %llu",
			    (unsigned long long)c->quota, (unsigned long long)(c->quota * MS_BLOB_MAX >> 20),
			    (unsigned long long)(s->nslots - s->promised),
			    (unsigned long long)((s->nslots - s->promised) * MS_BLOB_MAX >> 20),
			    (unsigned long long)s->nslots);
	if (r < 0) {
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	while (cap < 2 * c->quota)
		cap <<= 1;
	t = calloc(1, sizeof(*t));
	if (t)
		t->tab = calloc(cap, sizeof(*t->tab));
	if (!t || !t->tab) {
		free(t);
		pthread_mutex_unlock(&s->lock);
		return err_set(e, -ENOMEM, "cannot index a store of %llu blobs", (unsigned long long)c->quota);
	}
	memcpy(t->id, c->store, MS_STORE_ID_LEN);
	memcpy(t->owner, w->fp, MS_FP_LEN);
	snprintf(t->owner_name, sizeof(t->owner_name), "%s", w->name);
	t->ephemeral = c->flags & MS_CREATE_EPHEMERAL;
	t->session = w->session;
	t->quota = c->quota;
	t->mask = cap - 1;
	s->promised += c->quota;
	s->st[s->n++] = t;
	out->quota = c->quota;
	out->free = s->nslots - s->promised;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The table entry for key: its own, or the empty one where it would go. */
static struct ms_ent *slot_of(struct ms_store *t, uint64_t key)
{
	uint64_t i = hash_key(key) & t->mask;

	while (t->tab[i].len && t->tab[i].key != key)
		i = (i + 1) & t->mask;
	return &t->tab[i];
}

int ms_store_put(struct ms_stores *s, const struct ms_who *w, const struct ms_put_view *v, struct ms_put_reply *out,
		 struct err *e)
{
	uint32_t n = v->head->count, fresh = 0, i;
	struct ms_store *t;
	int r;

	pthread_mutex_lock(&s->lock);
	r = lookup(s, w, v->head->store, OWNER_ONLY, &t, e);
	if (r < 0)
		goto out;
	for (i = 0; i < n; i++)
		fresh += slot_of(t, v->ents[i].key)->len == 0;
	if (t->blobs + fresh > t->quota) {
		r = err_set(e, -ENOSPC, "store full: %llu of %llu blobs held, %u more asked",
			    (unsigned long long)t->blobs, (unsigned long long)t->quota, fresh);
		goto out;
	}
	/* all or nothing: checked above; a slot is there for every fresh key (quota) */
	for (i = 0; i < n; i++) {
		struct ms_ent *en = slot_of(t, v->ents[i].key);
		uint32_t len = v->ents[i].len;
		if (!en->len) {
			en->key = v->ents[i].key;
			en->slot = s->free_slots[--s->nfree];
			t->blobs++;
		} else {
			t->bytes -= en->len;
			if (len < en->len) /* no tail of an older blob stays behind */
				explicit_bzero(s->mem + (uint64_t)en->slot * MS_BLOB_MAX + len, en->len - len);
		}
		memcpy(s->mem + (uint64_t)en->slot * MS_BLOB_MAX, v->blob[i], len);
		en->len = len;
		t->bytes += len;
	}
	t->puts += n;
	out->count = n;
	out->pad = 0;
	out->blobs = t->blobs;
	r = 0;
out:
	pthread_mutex_unlock(&s->lock);
	return r < 0 ? r : 0;
}

int ms_store_get(struct ms_stores *s, const struct ms_who *w, const struct ms_key_req *q, uint8_t *blob,
		 uint32_t *len, struct err *e)
{
	struct ms_store *t;
	struct ms_ent *en;
	char h[17];
	int r;

	pthread_mutex_lock(&s->lock);
	r = lookup(s, w, q->store, OWNER_ONLY, &t, e);
	if (r >= 0) {
		en = slot_of(t, q->key);
		if (!en->len) {
			r = err_set(e, -ENOENT, "store %s holds no blob %llu", short_id(q->store, h),
				    (unsigned long long)q->key);
		} else {
			memcpy(blob, s->mem + (uint64_t)en->slot * MS_BLOB_MAX, en->len);
			*len = en->len;
			t->gets++;
			r = 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r < 0 ? r : 0;
}

int ms_store_drop(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN],
		  struct ms_free_reply *out, struct err *e)
{
	struct ms_store *t;
	int r;

	pthread_mutex_lock(&s->lock);
	r = lookup(s, w, id, OWNER_ONLY, &t, e);
	if (r >= 0) {
		out->blobs = t->blobs;
		release(s, r);
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int ms_store_stat(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN], uint64_t now,
		  struct ms_stat_reply *out, struct err *e)
{
	struct ms_store *t;
	int r;

	pthread_mutex_lock(&s->lock);
	r = lookup(s, w, id, OWNER_OR_GRANTEE, &t, e);
	if (r >= 0) {
		fill_stat(t, w, now, out);
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int ms_store_grant(struct ms_stores *s, const struct ms_who *w, const struct ms_grant *g, uint64_t now,
		   struct ms_stat_reply *out, struct err *e)
{
	uint32_t ttl = g->ttl_s ? g->ttl_s : MS_GRANT_TTL_DEFAULT;
	static const uint8_t zero[MS_FP_LEN];
	struct ms_store *t;
	int r;

	if (ttl > MS_GRANT_TTL_MAX)
		return err_set(e, -EINVAL, "a grant lasts at most %d s, not %u", MS_GRANT_TTL_MAX, ttl);
	if (!memcmp(g->grantee, zero, MS_FP_LEN) && memcmp(w->fp, zero, MS_FP_LEN))
		return err_set(e, -EINVAL, "GRANT names no grantee");
	pthread_mutex_lock(&s->lock);
	r = lookup(s, w, g->store, OWNER_ONLY, &t, e);
	if (r >= 0) {
		t->granted = true;
		memcpy(t->grantee, g->grantee, MS_FP_LEN);
		t->grant_deadline = now + ttl;
		fill_stat(t, w, now, out);
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int ms_store_adopt(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN], uint64_t now,
		   struct ms_stat_reply *out, struct err *e)
{
	struct ms_store *t;
	int r;

	pthread_mutex_lock(&s->lock);
	r = lookup(s, w, id, GRANTEE_ONLY, &t, e);
	if (r >= 0) {
		/* the sole owner from now on, bound to no connection */
		memcpy(t->owner, w->fp, MS_FP_LEN);
		snprintf(t->owner_name, sizeof(t->owner_name), "%s", w->name);
		t->granted = false;
		memset(t->grantee, 0, MS_FP_LEN);
		t->ephemeral = false;
		t->creator_gone = false;
		t->adoptions++;
		fill_stat(t, w, now, out);
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* A grant ended without adoption: an ephemeral store whose creator is gone goes too. */
static bool ungrant(struct ms_stores *s, int i)
{
	struct ms_store *t = s->st[i];

	t->granted = false;
	memset(t->grantee, 0, MS_FP_LEN);
	if (t->ephemeral && t->creator_gone) {
		release(s, i);
		return true;
	}
	return false;
}

int ms_store_decline(struct ms_stores *s, const struct ms_who *w, const uint8_t id[MS_STORE_ID_LEN],
		     struct err *e)
{
	struct ms_store *t;
	int r;

	pthread_mutex_lock(&s->lock);
	r = lookup(s, w, id, GRANTEE_ONLY, &t, e);
	if (r >= 0) {
		ungrant(s, r);
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int ms_stores_session_end(struct ms_stores *s, uint64_t session)
{
	int i, freed = 0;

	pthread_mutex_lock(&s->lock);
	for (i = s->n - 1; i >= 0; i--) {
		struct ms_store *t = s->st[i];
		if (!t->ephemeral || t->session != session)
			continue;
		t->creator_gone = true;
		if (!t->granted) {
			release(s, i);
			freed++;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return freed;
}

int ms_stores_expire(struct ms_stores *s, uint64_t now)
{
	int i, freed = 0;

	pthread_mutex_lock(&s->lock);
	for (i = s->n - 1; i >= 0; i--)
		if (s->st[i]->granted && now >= s->st[i]->grant_deadline)
			freed += ungrant(s, i);
	pthread_mutex_unlock(&s->lock);
	return freed;
}

void ms_stores_totals(struct ms_stores *s, struct ms_totals *t)
{
	pthread_mutex_lock(&s->lock);
	t->slots = s->nslots;
	t->promised = s->promised;
	t->used = s->nslots - s->nfree;
	t->stores = (uint64_t)s->n;
	t->bytes = 0;
	for (int i = 0; i < s->n; i++)
		t->bytes += s->st[i]->bytes;
	pthread_mutex_unlock(&s->lock);
}

json_t *ms_stores_json(struct ms_stores *s, uint64_t now)
{
	json_t *a = json_array();

	pthread_mutex_lock(&s->lock);
	for (int i = 0; a && i < s->n; i++) {
		struct ms_store *t = s->st[i];
		char id[33], fp[17];
		json_t *o;
		ms_store_hex(t->id, id);
		hex_encode(t->owner, 8, fp);
		o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:i}", "id", id, "owner", t->owner_name,
			      "owner_fp", fp, "state",
			      t->granted ? "granted" : t->ephemeral ? "filling" : "owned", "blobs", (json_int_t)t->blobs,
			      "quota", (json_int_t)t->quota, "bytes", (json_int_t)t->bytes, "puts", (json_int_t)t->puts,
			      "gets", (json_int_t)t->gets, "adoptions", (int)t->adoptions);
		if (o && t->granted) {
			hex_encode(t->grantee, 8, fp);
			json_object_set_new(o, "grantee_fp", json_string(fp));
			json_object_set_new(o, "grant_ttl_s",
					    json_integer(t->grant_deadline > now ? (json_int_t)(t->grant_deadline - now) : 0));
		}
		if (o && t->ephemeral)
			json_object_set_new(o, "creator_connected", json_boolean(!t->creator_gone));
		json_array_append_new(a, o);
	}
	pthread_mutex_unlock(&s->lock);
	return a;
}
