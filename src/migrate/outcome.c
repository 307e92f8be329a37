#include "migrate/outcome.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/fsync.h"

#define REC_MAX 1024

const char *outcome_name(uint32_t kind)
{
	return kind == OUTCOME_COMMITTED ? "committed" : kind == OUTCOME_ABORTED ? "aborted" : "unknown";
}

int outcome_store_open(struct outcome_store *s, const struct state_dir *sd, struct err *e)
{
	return state_dir_sub(sd, "outcomes", s->dir, sizeof(s->dir), e);
}

static void id_path(struct outcome_store *s, const uint8_t id[16], char *out, size_t len)
{
	char hex[33];

	hex_encode(id, 16, hex);
	snprintf(out, len, "%s/%s", s->dir, hex);
}

static int render(const struct outcome_rec *r, char *buf, size_t len)
{
	json_t *o = json_pack("{s:i, s:s, s:I, s:s, s:s}", "version", 1, "outcome", outcome_name(r->kind),
			      "time", (json_int_t)r->time_s, "peer", r->peer, "ended", r->ended);

	if (o && r->forced[0])
		json_object_set_new(o, "forced", json_string(r->forced));
	char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int n = t ? snprintf(buf, len, "%s\n", t) : -1;

	free(t);
	json_decref(o);
	return n < 0 || (size_t)n >= len ? -1 : n;
}

/* Writes r to a new file at path (exclusive, synced). */
static int write_file(const char *path, const struct outcome_rec *r, struct err *e)
{
	char buf[REC_MAX];
	int n = render(r, buf, sizeof(buf)), fd, rc = 0;

	if (n < 0)
		return err_set(e, -EINVAL, "outcome record too large");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, -errno, "cannot create %s", path);
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
		rc = err_sys(e, -EIO, "cannot write %s", path);
	close(fd);
	if (rc < 0)
		unlink(path);
	return rc;
}

static bool too_many(struct outcome_store *s)
{
	DIR *d = opendir(s->dir);
	size_t n = 0;

	if (!d)
		return false;
	while (readdir(d) && n <= OUTCOME_MAX_RECORDS)
		n++;
	closedir(d);
	return n > OUTCOME_MAX_RECORDS;
}

int outcome_prepare(struct outcome_store *s, const uint8_t id[16], enum outcome_kind kind,
		    const char *peer, struct outcome_prep *p, struct err *e)
{
	struct outcome_rec r = { .kind = kind, .time_s = (uint64_t)time(NULL) };
	static unsigned seq;
	int rc;

	memset(p, 0, sizeof(*p));
	snprintf(r.peer, sizeof(r.peer), "%s", peer ? peer : "");
	id_path(s, id, p->final, sizeof(p->final));
	snprintf(p->tmp, sizeof(p->tmp), "%s.%s.%d.%u.tmp", p->final, outcome_name(kind), (int)getpid(),
		 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	rc = write_file(p->tmp, &r, e);
	p->ready = rc == 0;
	return rc;
}

int outcome_decide(struct outcome_store *s, struct outcome_prep *p, struct outcome_rec *existing,
		   struct err *e)
{
	struct outcome_rec tmp;

	if (!p->ready)
		return err_set(e, -EINVAL, "no prepared outcome");
	if (link(p->tmp, p->final) < 0) {
		char buf[REC_MAX];
		ssize_t n = -1;
		int fd;

		if (errno != EEXIST)
			return err_sys(e, -errno, "cannot record the migration outcome at %s", p->final);
		/* decided before us: report that decision */
		fd = open(p->final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf));
			close(fd);
		}
		if (n < 0 || outcome_parse(buf, (size_t)n, existing ? existing : &tmp, e) < 0)
			return err_set(e, -EIO, "an outcome is recorded at %s but cannot be read", p->final);
		return -EEXIST;
	}
	/* The link made the decision: from here it is the one queries read and no
	 * other can be made, so it stands even if the directory cannot be synced
	 * (saying "failed" would leave a COMMITTED record for a VM that never ran). */
	if (fsync_parent(p->final, e) < 0)
		fprintf(stderr, "sealvm: warning: the outcome recorded at %s may not survive a crash: %s\n",
			p->final, e->msg);
	return 0;
}

void outcome_discard(struct outcome_prep *p)
{
	if (p->ready)
		unlink(p->tmp);
	p->ready = false;
}

int outcome_decide_now(struct outcome_store *s, const uint8_t id[16], enum outcome_kind kind,
		       const char *peer, struct outcome_rec *existing, struct err *e)
{
	struct outcome_prep p;
	int rc;

	if (kind == OUTCOME_ABORTED && too_many(s) && outcome_read(s, id, existing, e) == -ENOENT)
		return err_set(e, -ENOSPC, "%s holds more than %d outcome records: clean it up", s->dir,
			       OUTCOME_MAX_RECORDS);
	rc = outcome_prepare(s, id, kind, peer, &p, e);
	if (rc == 0)
		rc = outcome_decide(s, &p, existing, e);
	outcome_discard(&p);
	return rc;
}

int outcome_read(struct outcome_store *s, const uint8_t id[16], struct outcome_rec *r, struct err *e)
{
	char path[PATH_MAX + 64], buf[REC_MAX];
	ssize_t n;
	int fd;

	if (!id)
		return -ENOENT;
	id_path(s, id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : err_sys(e, -errno, "cannot read %s", path);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return err_sys(e, -errno, "cannot read %s", path);
	return outcome_parse(buf, (size_t)n, r, e);
}

/* Rewrites id's record with one field changed (renamed over it, synced). */
static int update(struct outcome_store *s, const uint8_t id[16], char *(*field)(struct outcome_rec *),
		  const char *val, struct err *e)
{
	char path[PATH_MAX + 64], tmp[PATH_MAX + 96];
	struct outcome_rec r;
	int rc = outcome_read(s, id, &r, e);

	if (rc < 0)
		return rc;
	snprintf(field(&r), sizeof(r.ended), "%s", val);
	id_path(s, id, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.upd.%d.tmp", path, (int)getpid());
	unlink(tmp);
	rc = write_file(tmp, &r, e);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = err_sys(e, -errno, "cannot update %s", path);
	if (rc == 0)
		rc = fsync_parent(path, e);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

_Static_assert(sizeof(((struct outcome_rec *)0)->ended) == sizeof(((struct outcome_rec *)0)->forced),
	       "update() writes either field with one size");
static char *ended_field(struct outcome_rec *r) { return r->ended; }
static char *forced_field(struct outcome_rec *r) { return r->forced; }

int outcome_set_ended(struct outcome_store *s, const uint8_t id[16], const char *why, struct err *e)
{
	return update(s, id, ended_field, why && *why ? why : "stopped", e);
}

int outcome_set_forced(struct outcome_store *s, const uint8_t id[16], const char *why, struct err *e)
{
	return update(s, id, forced_field, why && *why ? why : "forced", e);
}

int outcome_parse(const char *buf, size_t len, struct outcome_rec *r, struct err *e)
{
	json_error_t je;
	json_t *o, *v;
	const char *k;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (len == 0 || len >= REC_MAX)
		return err_set(e, -EINVAL, "outcome record: bad size %zu", len);
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return err_set(e, -EINVAL, "outcome record is not a JSON object");
	}
	v = json_object_get(o, "version");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		rc = err_set(e, -EINVAL, "outcome record: unsupported version");
	k = json_string_value(json_object_get(o, "outcome"));
	if (rc == 0 && k && !strcmp(k, "committed"))
		r->kind = OUTCOME_COMMITTED;
	else if (rc == 0 && k && !strcmp(k, "aborted"))
		r->kind = OUTCOME_ABORTED;
	else if (rc == 0)
		rc = err_set(e, -EINVAL, "outcome record: unknown outcome");
	v = json_object_get(o, "time");
	if (rc == 0 && (!json_is_integer(v) || json_integer_value(v) < 0))
		rc = err_set(e, -EINVAL, "outcome record: bad time");
	if (rc == 0)
		r->time_s = (uint64_t)json_integer_value(v);
	k = json_string_value(json_object_get(o, "peer"));
	if (rc == 0 && (!k || strlen(k) >= sizeof(r->peer)))
		rc = err_set(e, -EINVAL, "outcome record: bad peer");
	if (rc == 0)
		snprintf(r->peer, sizeof(r->peer), "%s", k);
	k = json_string_value(json_object_get(o, "ended"));
	if (rc == 0 && (!k || strlen(k) >= sizeof(r->ended)))
		rc = err_set(e, -EINVAL, "outcome record: bad ended");
	if (rc == 0)
		snprintf(r->ended, sizeof(r->ended), "%s", k);
	v = json_object_get(o, "forced");   /* optional */
	k = json_string_value(v);
	if (rc == 0 && v && (!k || strlen(k) >= sizeof(r->forced)))
		rc = err_set(e, -EINVAL, "outcome record: bad forced");
	if (rc == 0 && k)
		snprintf(r->forced, sizeof(r->forced), "%s", k);
	json_decref(o);
	return rc;
}
