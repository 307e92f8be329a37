#include "trust/eventlog.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "trust/jsonx.h"
#include "trust/keys.h"
#include "trust/tpm.h"
#include "util/file.h"
#include "util/hex.h"

#define EVENTLOG_FILE_MAX (EVENTLOG_MAX_EVENTS * (EVENT_DATA_MAX + 256))

static int event_from_json(json_t *o, size_t i, struct event *ev, struct err *e)
{
	static const char *const keys[] = { "pcr", "type", "digest", "data", NULL };
	char where[32], hex[65];
	json_t *d;
	int64_t pcr;
	int rc;

	snprintf(where, sizeof(where), "event %zu", i);
	if ((rc = jx_only(o, where, keys, e)) < 0 || (rc = jx_int(o, where, "pcr", true, 0, 23, 0, &pcr, e)) < 0 ||
	    (rc = jx_str(o, where, "type", true, ev->type, sizeof(ev->type), e)) < 0 ||
	    (rc = jx_str(o, where, "digest", true, hex, sizeof(hex), e)) < 0)
		return rc;
	ev->pcr = (int)pcr;
	if (hex_decode(hex, ev->digest, 32) < 0)
		return err_set(e, -EINVAL, "%s: digest is not 64 hex digits", where);
	d = json_object_get(o, "data");
	ev->data[0] = 0;
	if (d) {
		if (!json_is_string(d) || json_string_length(d) >= sizeof(ev->data) ||
		    strlen(json_string_value(d)) != json_string_length(d))
			return err_set(e, -EINVAL, "%s: data is not a string under %d bytes", where, EVENT_DATA_MAX);
		memcpy(ev->data, json_string_value(d), json_string_length(d) + 1);
	}
	return 0;
}

int eventlog_from_json(json_t *a, struct eventlog *out, struct err *e)
{
	json_t *o;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_array(a))
		return err_set(e, -EINVAL, "event log is not a list");
	if (json_array_size(a) > EVENTLOG_MAX_EVENTS)
		return err_set(e, -E2BIG, "event log has more than %d events", EVENTLOG_MAX_EVENTS);
	out->ev = calloc(json_array_size(a) + 1, sizeof(*out->ev));
	if (!out->ev)
		return err_set(e, -ENOMEM, "out of memory");
	json_array_foreach(a, i, o) {
		if ((rc = event_from_json(o, i, &out->ev[i], e)) < 0) {
			eventlog_free(out);
			return rc;
		}
		out->n = i + 1;
	}
	return 0;
}

int eventlog_parse(const char *text, size_t len, struct eventlog *out, struct err *e)
{
	json_t *a = json_array();
	size_t off = 0, line = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!a)
		return err_set(e, -ENOMEM, "out of memory");
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		char what[32];
		json_t *o;

		line++;
		if (!nl) {
			json_decref(a);
			return err_set(e, -EINVAL, "event log line %zu is incomplete (no newline)", line);
		}
		snprintf(what, sizeof(what), "event log line %zu", line);
		o = jx_parse(text + off, n, what, e);
		if (!o || json_array_size(a) >= EVENTLOG_MAX_EVENTS) {
			json_decref(o);
			json_decref(a);
			return o ? err_set(e, -E2BIG, "event log has more than %d events", EVENTLOG_MAX_EVENTS) : -EINVAL;
		}
		json_array_append_new(a, o);
		off += n + 1;
	}
	rc = eventlog_from_json(a, out, e);
	json_decref(a);
	return rc;
}

json_t *eventlog_to_json(const struct eventlog *l)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n; i++) {
		char hex[65];
		hex_encode(l->ev[i].digest, 32, hex);
		json_array_append_new(a, json_pack("{s:i, s:s, s:s, s:s}", "pcr", l->ev[i].pcr, "type", l->ev[i].type,
						   "digest", hex, "data", l->ev[i].data));
	}
	return a;
}

void eventlog_free(struct eventlog *l)
{
	free(l->ev);
	memset(l, 0, sizeof(*l));
}

static void extend(uint8_t pcr[32], const uint8_t d[32])
{
	uint8_t buf[64];

	memcpy(buf, pcr, 32);
	memcpy(buf + 32, d, 32);
	sha256_buf(buf, 64, pcr);
}

void eventlog_replay(const struct eventlog *l, int pcr, uint8_t out[32])
{
	memset(out, 0, 32);
	for (size_t i = 0; i < l->n; i++)
		if (l->ev[i].pcr == pcr)
			extend(out, l->ev[i].digest);
}

/* ---- the log file ---- */

static int open_locked(const char *state_dir, int op, char *path, size_t pn, int *fd, struct err *e)
{
	snprintf(path, pn, "%s/eventlog.jsonl", state_dir);
	*fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (*fd < 0)
		return err_sys(e, -errno, "%s", path);
	while (flock(*fd, op) < 0) {
		if (errno != EINTR) {
			int rc = err_sys(e, -errno, "locking %s", path);
			close(*fd);
			return rc;
		}
	}
	return 0;
}

static int read_log(const char *path, struct eventlog *l, struct err *e)
{
	char *text;
	size_t len;
	int rc = file_read_all(path, EVENTLOG_FILE_MAX, &text, &len, e);

	if (rc < 0)
		return rc;
	rc = eventlog_parse(text, len, l, e);
	free(text);
	return rc < 0 ? err_wrap(e, "%s", path) : 0;
}

int eventlog_with_log(const char *state_dir, int (*fn)(void *opaque, const struct eventlog *l, struct err *e),
		      void *opaque, struct err *e)
{
	char path[4096];
	struct eventlog l;
	int fd, rc = open_locked(state_dir, LOCK_SH, path, sizeof(path), &fd, e);

	if (rc < 0)
		return rc;
	rc = read_log(path, &l, e);
	if (rc == 0) {
		rc = fn(opaque, &l, e);
		eventlog_free(&l);
	}
	close(fd);
	return rc;
}

static int copy_file(const char *from, const char *to, struct err *e)
{
	char *text;
	size_t len;
	int rc = file_read_all(from, EVENTLOG_FILE_MAX, &text, &len, e);

	if (rc < 0)
		return rc;
	rc = file_write_atomic(to, text, len, 0644, e);
	free(text);
	return rc;
}

int eventlog_measure(const char *state_dir, const char *tpm_spec, const char *type, const uint8_t digest[32],
		     const char *data, int *extended, struct err *e)
{
	static const uint8_t zero[32];
	char path[4096], old[4200], hex[65], want_hex[65], have_hex[65];
	uint8_t pcr[32], replay[32];
	struct eventlog l = { 0 };
	struct tpm *t = NULL;
	struct event ev = { .pcr = TPM_PCR };
	char *line = NULL;
	int fd, rc;

	*extended = 0;
	if (strlen(type) >= sizeof(ev.type) || strlen(data) >= sizeof(ev.data))
		return err_set(e, -EINVAL, "measurement type or data too long");
	snprintf(ev.type, sizeof(ev.type), "%s", type);
	memcpy(ev.digest, digest, 32);
	snprintf(ev.data, sizeof(ev.data), "%s", data);
	if ((rc = open_locked(state_dir, LOCK_EX, path, sizeof(path), &fd, e)) < 0)
		return rc;
	if ((rc = tpm_connect(tpm_spec, &t, e)) < 0 || (rc = tpm_pcr_read(t, TPM_PCR, pcr, e)) < 0 ||
	    (rc = read_log(path, &l, e)) < 0)
		goto out;
	eventlog_replay(&l, TPM_PCR, replay);
	if (memcmp(replay, pcr, 32) && l.n > 0) {
		/* a crash between appending an event and extending the PCR: finish the extend */
		uint8_t partial[32];
		l.n--;
		eventlog_replay(&l, TPM_PCR, partial);
		l.n++;
		if (!memcmp(partial, pcr, 32) && l.ev[l.n - 1].pcr == TPM_PCR) {
			if ((rc = tpm_pcr_extend(t, TPM_PCR, l.ev[l.n - 1].digest, e)) < 0)
				goto out;
			memcpy(pcr, replay, 32);
		}
	}
	if (memcmp(replay, pcr, 32)) {
		if (memcmp(pcr, zero, 32)) {
			hex_encode(replay, 32, want_hex);
			hex_encode(pcr, 32, have_hex);
			rc = err_set(e, -EBADMSG,
				     "%s does not match PCR %d: the log replays to %.16s… but the TPM holds %.16s… (the log "
				     "was altered, or something else extended the PCR)",
				     path, TPM_PCR, want_hex, have_hex);
			goto out;
		}
		/* the TPM restarted: its PCRs are zero again; keep the old log, begin a new one */
		snprintf(old, sizeof(old), "%s.old", path);
		if ((rc = copy_file(path, old, e)) < 0)
			goto out;
		if (ftruncate(fd, 0) < 0) {
			rc = err_sys(e, -errno, "starting a new %s", path);
			goto out;
		}
		eventlog_free(&l);
	}
	/* already measured? An executable once measured stays in the log (it ran since the
	 * TPM started); a configuration counts as measured only if it is the latest one, so
	 * going back to an older table or policy is measured again and shows as stale */
	for (size_t i = l.n; i-- > 0;) {
		const struct event *x = &l.ev[i];
		if (x->pcr != ev.pcr || strcmp(x->type, ev.type))
			continue;
		if (!memcmp(x->digest, ev.digest, 32) && !strcmp(x->data, ev.data))
			goto out;
		if (!strcmp(ev.type, EVENT_TYPE_CONFIG))
			break;
	}
	/* log first, then extend: a crash in between leaves an event the PCR lacks, which the
	 * next start reports as a mismatch instead of silently losing a measurement */
	hex_encode(digest, 32, hex);
	{
		json_t *o = json_pack("{s:i, s:s, s:s, s:s}", "pcr", ev.pcr, "type", ev.type, "digest", hex, "data", ev.data);
		line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		json_decref(o);
	}
	if (!line) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	{
		size_t n = strlen(line);
		line[n] = '\n';
		if (write(fd, line, n + 1) != (ssize_t)(n + 1) || fsync(fd) < 0) {
			rc = err_sys(e, -errno, "appending to %s", path);
			goto out;
		}
	}
	if ((rc = tpm_pcr_extend(t, TPM_PCR, digest, e)) < 0)
		goto out;
	*extended = 1;
out:
	free(line);
	eventlog_free(&l);
	tpm_disconnect(t);
	if (fd >= 0)
		close(fd);
	return rc;
}
