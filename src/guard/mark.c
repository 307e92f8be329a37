#include "guard/mark.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trust/eventlog.h"
#include "trust/jsonx.h"
#include "trust/keys.h"
#include "trust/signed_file.h"
#include "util/file.h"

void mark_now(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, n, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

static json_t *mark_json(const struct guard_mark *m, size_t reason_max)
{
	char reason[sizeof(m->reason)];
	size_t n = strnlen(m->reason, sizeof(reason) - 1);

	if (n > reason_max) {
		/* cut on a character boundary: the JSON must stay valid UTF-8 */
		n = reason_max;
		while (n && ((unsigned char)m->reason[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(reason, m->reason, n);
	reason[n] = 0;
	return json_pack("{s:s, s:s, s:s, s:s}", "time", m->time, "check", m->check, "target", m->target, "reason",
			 reason);
}

char *mark_event_data(const struct guard_mark *m)
{
	json_t *o = mark_json(m, 400);
	char *s = o ? signed_canonical(o) : NULL;

	json_decref(o);
	if (s && strlen(s) >= EVENT_DATA_MAX) {
		free(s);
		return NULL;
	}
	return s;
}

static char *path_of(const char *state_dir)
{
	char *p;

	return asprintf(&p, "%s/%s", state_dir, MARK_FILE) < 0 ? NULL : p;
}

int mark_set(const char *state_dir, const char *tpm_spec, const struct guard_mark *m, bool *extended, struct err *e)
{
	char *data = mark_event_data(m), *path = path_of(state_dir), *text = NULL;
	uint8_t d[32];
	json_t *o;
	int rc, ext = 0;

	*extended = false;
	if (!data || !path) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	/* the file first: if the TPM cannot be reached, the mark still survives a restart */
	o = mark_json(m, sizeof(m->reason));
	text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!text) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = file_write_atomic(path, text, strlen(text), 0644, e)) < 0)
		goto out;
	sha256_buf(data, strlen(data), d);
	rc = eventlog_measure(state_dir, tpm_spec, EVENT_TYPE_GUARD_ALARM, d, data, &ext, e);
	*extended = ext;
out:
	free(data);
	free(path);
	free(text);
	return rc;
}

int mark_load(const char *state_dir, struct guard_mark *m, struct err *e)
{
	static const char *const keys[] = { "time", "check", "target", "reason", NULL };
	char *path = path_of(state_dir), *text = NULL;
	size_t len;
	json_t *o = NULL;
	int rc;

	memset(m, 0, sizeof(*m));
	if (!path)
		return err_set(e, -ENOMEM, "out of memory");
	if ((rc = file_read_all(path, 65536, &text, &len, e)) < 0)
		goto out;
	if (!(o = jx_parse(text, len, path, e))) {
		rc = -EINVAL;
		goto out;
	}
	if ((rc = jx_only(o, path, keys, e)) < 0 || (rc = jx_str(o, path, "time", true, m->time, sizeof(m->time), e)) < 0 ||
	    (rc = jx_str(o, path, "check", true, m->check, sizeof(m->check), e)) < 0 ||
	    (rc = jx_str(o, path, "target", true, m->target, sizeof(m->target), e)) < 0 ||
	    (rc = jx_str(o, path, "reason", true, m->reason, sizeof(m->reason), e)) < 0)
		goto out;
out:
	json_decref(o);
	free(text);
	free(path);
	return rc;
}

struct find {
	bool present;
	struct guard_mark *m;
};

static int find_alarm(void *opaque, const struct eventlog *l, struct err *e)
{
	struct find *f = opaque;

	for (size_t i = 0; i < l->n; i++) {
		json_t *o;
		if (strcmp(l->ev[i].type, EVENT_TYPE_GUARD_ALARM))
			continue;
		f->present = true;
		if (!f->m)
			continue;
		/* the latest alarm's fields, as far as they can be read */
		o = jx_parse(l->ev[i].data, strlen(l->ev[i].data), "guard alarm", NULL);
		memset(f->m, 0, sizeof(*f->m));
		snprintf(f->m->time, sizeof(f->m->time), "%s", json_string_value(json_object_get(o, "time")) ?: "?");
		snprintf(f->m->check, sizeof(f->m->check), "%s", json_string_value(json_object_get(o, "check")) ?: "?");
		snprintf(f->m->target, sizeof(f->m->target), "%s", json_string_value(json_object_get(o, "target")) ?: "?");
		snprintf(f->m->reason, sizeof(f->m->reason), "%s", json_string_value(json_object_get(o, "reason")) ?: "?");
		json_decref(o);
	}
	return 0;
}

int mark_in_log(const char *state_dir, bool *present, struct err *e)
{
	return mark_from_log(state_dir, NULL, present, e);
}

int mark_from_log(const char *state_dir, struct guard_mark *m, bool *present, struct err *e)
{
	struct find f = { .m = m };
	int rc = eventlog_with_log(state_dir, find_alarm, &f, e);

	*present = f.present;
	return rc;
}

int mark_clear(const char *state_dir, struct err *e)
{
	char *path = path_of(state_dir);
	int rc = 0;

	if (!path)
		return err_set(e, -ENOMEM, "out of memory");
	if (unlink(path) < 0)
		rc = errno == ENOENT ? err_set(e, -ENOENT, "this host is not marked untrusted (%s does not exist)", path)
				     : err_sys(e, -errno, "removing %s", path);
	free(path);
	return rc;
}
