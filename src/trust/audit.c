#include "trust/audit.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trust/jsonx.h"
#include "trust/tpm.h"
#include "trust/tpm_attest.h"
#include "util/hex.h"

static const char head_domain[] = "sealvm-audit-head-v1\n";

struct audit_log {
	pthread_mutex_t mu;
	int fd;
	char path[4096];
	EVP_PKEY *key;
	char key_fpr[FPR_HEX_LEN + 1];
	char *tpm_spec;
	unsigned head_every;
	/* what we know about the end of the file (another process may have appended) */
	off_t known_size;
	uint8_t last_hash[32];
	uint64_t next_seq;
	bool last_is_head;
};

size_t audit_head_message(const uint8_t prev[32], uint64_t seq, const char *time, uint8_t *out, size_t n)
{
	size_t tl = strlen(time), need = sizeof(head_domain) - 1 + 32 + 8 + tl;

	if (n < need)
		return 0;
	memcpy(out + need - tl, time, tl);
	memcpy(out, head_domain, sizeof(head_domain) - 1);
	memcpy(out + sizeof(head_domain) - 1, prev, 32);
	for (int i = 0; i < 8; i++)
		out[sizeof(head_domain) - 1 + 32 + i] = (uint8_t)(seq >> (56 - 8 * i));
	return need;
}

static void now_iso(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, n, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

/* ---- the end of the file ---- */

static int pread_full(int fd, void *buf, size_t n, off_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

/* Re-reads the last record if the file changed; cuts a torn last line (*torn = bytes cut). */
static int sync_tail(struct audit_log *l, size_t *torn, struct err *e)
{
	char buf[AUDIT_RECORD_MAX + 2];
	struct stat st;
	size_t win, start;
	off_t size;
	json_t *o, *seq, *ev;
	char *nl;

	*torn = 0;
	if (fstat(l->fd, &st) < 0)
		return err_sys(e, -errno, "%s", l->path);
	size = st.st_size;
	if (size == l->known_size)
		return 0;
	if (size == 0) {
		memset(l->last_hash, 0, 32);
		l->next_seq = 0;
		l->last_is_head = false;
		l->known_size = 0;
		return 0;
	}
	win = (size_t)(size < (off_t)sizeof(buf) - 1 ? size : (off_t)sizeof(buf) - 1);
	if (pread_full(l->fd, buf, win, size - (off_t)win) < 0)
		return err_sys(e, -errno, "reading the end of %s", l->path);
	buf[win] = 0;
	if (buf[win - 1] != '\n') {
		/* a crash mid-write: cut back to the last complete line */
		nl = memrchr(buf, '\n', win);
		if (!nl && (off_t)win < size)
			return err_set(e, -EINVAL, "%s: the last line is longer than %d bytes", l->path, AUDIT_RECORD_MAX);
		*torn = nl ? win - (size_t)(nl + 1 - buf) : win;
		if (ftruncate(l->fd, size - (off_t)*torn) < 0)
			return err_sys(e, -errno, "cutting the torn last line of %s", l->path);
		l->known_size = -1;
		{
			size_t again;
			return sync_tail(l, &again, e);
		}
	}
	/* the last line is buf[start .. win-1) */
	nl = win >= 2 ? memrchr(buf, '\n', win - 1) : NULL;
	if (!nl && (off_t)win < size)
		return err_set(e, -EINVAL, "%s: the last line is longer than %d bytes", l->path, AUDIT_RECORD_MAX);
	start = nl ? (size_t)(nl + 1 - buf) : 0;
	sha256_buf(buf + start, win - 1 - start, l->last_hash);
	o = json_loadb(buf + start, win - 1 - start, 0, NULL);
	seq = json_object_get(o, "seq");
	ev = json_object_get(o, "event");
	if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
		json_decref(o);
		return err_set(e, -EINVAL, "%s: the last record has no valid \"seq\" (run sealvm audit verify)", l->path);
	}
	l->next_seq = (uint64_t)json_integer_value(seq) + 1;
	l->last_is_head = json_is_string(ev) && !strcmp(json_string_value(ev), "head");
	json_decref(o);
	l->known_size = size;
	return 0;
}

static int write_line(struct audit_log *l, json_t *o, struct err *e)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	size_t n;
	struct stat st;

	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	n = strlen(s);
	if (n > AUDIT_RECORD_MAX) {
		free(s);
		return err_set(e, -E2BIG, "audit record of %zu bytes is larger than %d", n, AUDIT_RECORD_MAX);
	}
	sha256_buf(s, n, l->last_hash);
	s[n] = '\n';
	/* one write() with O_APPEND: the line lands whole or (crash) torn at the end */
	if (write(l->fd, s, n + 1) != (ssize_t)(n + 1) || fdatasync(l->fd) < 0) {
		int rc = err_sys(e, errno ? -errno : -EIO, "appending to %s", l->path);
		free(s);
		l->known_size = -1;
		return rc;
	}
	free(s);
	if (fstat(l->fd, &st) == 0)
		l->known_size = st.st_size;
	else
		l->known_size = -1;
	l->next_seq++;
	return 0;
}

static json_t *new_record(struct audit_log *l, const char *event)
{
	char t[40], prev[65];

	now_iso(t, sizeof(t));
	hex_encode(l->last_hash, 32, prev);
	return json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)l->next_seq, "time", t, "prev", prev, "event", event);
}

static int head_locked(struct audit_log *l, struct err *e)
{
	uint8_t msg[160], *sig = NULL, q[32];
	size_t mlen, slen;
	json_t *o = new_record(l, "head");
	char *b64;
	int rc;

	if (!o)
		return err_set(e, -ENOMEM, "out of memory");
	mlen = audit_head_message(l->last_hash, l->next_seq, json_string_value(json_object_get(o, "time")), msg,
				  sizeof(msg));
	if ((rc = key_sign(l->key, msg, mlen, &sig, &slen, e)) < 0)
		goto out;
	b64 = b64_encode(sig, slen);
	json_object_set_new(o, "key", json_string(l->key_fpr));
	json_object_set_new(o, "sig", json_string(b64 ? b64 : ""));
	free(b64);
	if (l->tpm_spec) {
		struct tpm *t;
		struct tpm_signed c = { 0 };
		uint64_t counter = 0;

		sha256_buf(msg, mlen, q);
		if ((rc = tpm_connect(l->tpm_spec, &t, e)) < 0)
			goto out;
		rc = tpm_counter_increment(t, &counter, e);
		if (rc == 0)
			rc = tpm_counter_certify(t, q, sizeof(q), &c, e);
		tpm_disconnect(t);
		if (rc < 0)
			goto out;
		char *a = b64_encode(c.attest, c.attest_len), *s = b64_encode(c.sig, c.sig_len);
		json_object_set_new(o, "tpm", json_pack("{s:I, s:s, s:s}", "counter", (json_int_t)counter, "attest",
							 a ? a : "", "sig", s ? s : ""));
		free(a);
		free(s);
		tpm_signed_free(&c);
	}
	rc = write_line(l, o, e);
	if (rc == 0)
		l->last_is_head = true;
out:
	free(sig);
	json_decref(o);
	return rc < 0 ? err_wrap(e, "signing the audit log head") : 0;
}

static int lock(struct audit_log *l, struct err *e)
{
	pthread_mutex_lock(&l->mu);
	while (flock(l->fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			int rc = err_sys(e, -errno, "locking %s", l->path);
			pthread_mutex_unlock(&l->mu);
			return rc;
		}
	return 0;
}

static void unlock(struct audit_log *l)
{
	flock(l->fd, LOCK_UN);
	pthread_mutex_unlock(&l->mu);
}

/* Brings our idea of the file's end up to date; a torn last line is cut and the cut
 * recorded, so it shows in the log instead of breaking it. */
static int sync_locked(struct audit_log *l, struct err *e)
{
	size_t torn;
	json_t *o;
	int rc;

	if ((rc = sync_tail(l, &torn, e)) < 0 || !torn)
		return rc;
	o = new_record(l, "audit-torn");
	if (!o)
		return err_set(e, -ENOMEM, "out of memory");
	json_object_set_new(o, "bytes", json_integer((json_int_t)torn));
	json_object_set_new(o, "note", json_string("a torn last line (crash mid-write) was cut off"));
	rc = write_line(l, o, e);
	json_decref(o);
	if (rc == 0)
		l->last_is_head = false;
	return rc;
}

static int append_locked(struct audit_log *l, const char *event, json_t *fields, struct err *e)
{
	json_t *o, *v;
	const char *k;
	int rc;

	if ((rc = sync_locked(l, e)) < 0)
		return rc;
	o = new_record(l, event);
	if (!o)
		return err_set(e, -ENOMEM, "out of memory");
	if (fields) {
		json_object_foreach(fields, k, v) {
			if (!strcmp(k, "seq") || !strcmp(k, "time") || !strcmp(k, "prev") || !strcmp(k, "event")) {
				json_decref(o);
				return err_set(e, -EINVAL, "audit record field \"%s\" is reserved", k);
			}
			json_object_set(o, k, v);
		}
	}
	rc = write_line(l, o, e);
	json_decref(o);
	if (rc < 0)
		return rc;
	l->last_is_head = false;
	if (l->next_seq % l->head_every == l->head_every - 1)
		return head_locked(l, e);
	return 0;
}

int audit_open(const struct audit_opts *o, struct audit_log **out, struct err *e)
{
	struct audit_log *l;
	int rc;

	*out = NULL;
	if (!o->path || !o->key_path)
		return err_set(e, -EINVAL, "audit log: path and key needed");
	l = calloc(1, sizeof(*l));
	if (!l)
		return err_set(e, -ENOMEM, "out of memory");
	pthread_mutex_init(&l->mu, NULL);
	l->fd = -1;
	l->known_size = -1;
	l->head_every = o->head_every ? o->head_every : AUDIT_HEAD_EVERY;
	snprintf(l->path, sizeof(l->path), "%s", o->path);
	if ((rc = key_private_from_file(o->key_path, &l->key, e)) < 0) {
		err_wrap(e, "audit key");
		goto fail;
	}
	key_fingerprint(l->key, l->key_fpr);
	if (o->tpm_spec && !(l->tpm_spec = strdup(o->tpm_spec))) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	l->fd = open(o->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (l->fd < 0) {
		rc = err_sys(e, -errno, "%s", o->path);
		goto fail;
	}
	/* repair a torn end now, so the problem is reported at start */
	if ((rc = lock(l, e)) < 0)
		goto fail;
	rc = sync_locked(l, e);
	unlock(l);
	if (rc < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	if (l->fd >= 0)
		close(l->fd);
	key_free(l->key);
	free(l->tpm_spec);
	pthread_mutex_destroy(&l->mu);
	free(l);
	return rc;
}

int audit_append(struct audit_log *l, const char *event, json_t *fields, struct err *e)
{
	int rc;

	if (!event || !*event || !strcmp(event, "head"))
		return err_set(e, -EINVAL, "audit record needs an event name other than \"head\"");
	if ((rc = lock(l, e)) < 0)
		return rc;
	rc = append_locked(l, event, fields, e);
	unlock(l);
	return rc;
}

int audit_append_json(struct audit_log *l, const char *record, struct err *e)
{
	json_t *o = jx_parse(record, strlen(record), "audit record", e), *ev;
	char name[64];
	int rc;

	if (!o)
		return -EINVAL;
	ev = json_object_get(o, "event");
	if (!json_is_string(ev) || json_string_length(ev) == 0 || json_string_length(ev) >= sizeof(name)) {
		json_decref(o);
		return err_set(e, -EINVAL, "audit record needs an \"event\" string");
	}
	snprintf(name, sizeof(name), "%s", json_string_value(ev));
	json_object_del(o, "event");
	rc = audit_append(l, name, o, e);
	json_decref(o);
	return rc;
}

int audit_sign_head(struct audit_log *l, struct err *e)
{
	int rc;

	if ((rc = lock(l, e)) < 0)
		return rc;
	rc = sync_locked(l, e);
	if (rc == 0 && !l->last_is_head)
		rc = head_locked(l, e);
	unlock(l);
	return rc;
}

void audit_close(struct audit_log *l)
{
	struct err e;

	if (!l)
		return;
	if (audit_sign_head(l, &e) < 0)
		fprintf(stderr, "sealvm: audit log: %s\n", e.msg);
	close(l->fd);
	key_free(l->key);
	free(l->tpm_spec);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* ---- verification ---- */

__attribute__((format(printf, 3, 4))) static void bad(struct audit_report *r, long long rec, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->ok = false;
	r->bad_record = rec;
	n = snprintf(r->reason, sizeof(r->reason), "record %lld: ", rec);
	va_start(ap, fmt);
	vsnprintf(r->reason + n, sizeof(r->reason) - (size_t)n, fmt, ap);
	va_end(ap);
}

static int check_head(json_t *o, long long seq, const uint8_t prev[32], const struct audit_verify_opts *vo,
		      struct audit_report *r, bool *have_counter, uint64_t *counter)
{
	uint8_t msg[160], q[32], *sig = NULL;
	const char *time = json_string_value(json_object_get(o, "time"));
	size_t mlen = audit_head_message(prev, (uint64_t)seq, time, msg, sizeof(msg)), slen = 0;
	json_t *k = json_object_get(o, "key"), *s = json_object_get(o, "sig"), *t = json_object_get(o, "tpm");
	char fpr[FPR_HEX_LEN + 1];

	r->heads++;
	if (mlen == 0) {
		bad(r, seq, "head has a malformed \"time\"");
		return -1;
	}
	if (!json_is_string(k) || !json_is_string(s) || !(sig = b64_decode(json_string_value(s), &slen))) {
		bad(r, seq, "signed head without a valid \"key\" and \"sig\"");
		return -1;
	}
	if (vo->key) {
		key_fingerprint(vo->key, fpr);
		if (strcmp(fpr, json_string_value(k))) {
			free(sig);
			bad(r, seq, "head is signed by key %.16s…, not the host's audit key %.16s…", json_string_value(k), fpr);
			return -1;
		}
		if (key_verify(vo->key, msg, mlen, sig, slen) < 0) {
			free(sig);
			bad(r, seq, "head signature does not match: a record before it was changed, or the head forged");
			return -1;
		}
	}
	free(sig);
	if (!vo->ak)
		return 0;
	if (!json_is_object(t)) {
		bad(r, seq, "head has no TPM counter certification");
		return -1;
	}
	{
		json_t *c = json_object_get(t, "counter");
		uint8_t *att = NULL, *tsig = NULL;
		size_t alen = 0, tslen = 0;
		struct tpm_attest_info info;
		struct err e;
		int ok = json_is_integer(c) && json_integer_value(c) >= 0 && json_is_string(json_object_get(t, "attest")) &&
			 json_is_string(json_object_get(t, "sig")) &&
			 (att = b64_decode(json_string_value(json_object_get(t, "attest")), &alen)) &&
			 (tsig = b64_decode(json_string_value(json_object_get(t, "sig")), &tslen));

		if (!ok) {
			free(att);
			free(tsig);
			bad(r, seq, "head has a malformed TPM part");
			return -1;
		}
		if (tpm_attest_parse_nv(att, alen, &info, &e) < 0) {
			free(att);
			free(tsig);
			bad(r, seq, "head TPM part: %s", e.msg);
			return -1;
		}
		if (tpm_attest_verify(vo->ak, att, alen, tsig, tslen) < 0) {
			free(att);
			free(tsig);
			bad(r, seq, "head TPM certification is not signed by the host's attestation key");
			return -1;
		}
		free(att);
		free(tsig);
		sha256_buf(msg, mlen, q);
		if (info.extra_len != 32 || memcmp(info.extra, q, 32)) {
			bad(r, seq, "head TPM certification is for another chain position (copied from another head)");
			return -1;
		}
		if ((uint64_t)json_integer_value(c) != info.nv_value) {
			bad(r, seq, "head claims counter %lld but the TPM certified %llu", (long long)json_integer_value(c),
			    (unsigned long long)info.nv_value);
			return -1;
		}
		if (*have_counter && info.nv_value != *counter + 1) {
			bad(r, seq, "TPM counter went from %llu to %llu: %s", (unsigned long long)*counter,
			    (unsigned long long)info.nv_value,
			    info.nv_value > *counter ? "signed heads between them were removed" : "heads were reordered or replayed");
			return -1;
		}
		*have_counter = true;
		*counter = info.nv_value;
		r->tpm_checked = true;
	}
	return 0;
}

void audit_verify(const char *text, size_t len, const struct audit_verify_opts *vo, struct audit_report *r)
{
	uint8_t prev[32] = { 0 };
	size_t off = 0;
	long long seq = 0;
	bool have_counter = false;
	uint64_t counter = 0;

	memset(r, 0, sizeof(*r));
	r->ok = true;
	r->bad_record = -1;
	r->last_head = -1;
	while (off < len) {
		const char *line = text + off, *nl = memchr(line, '\n', len - off);
		size_t n = nl ? (size_t)(nl - line) : len - off;
		json_t *o, *s, *p, *ev, *t;
		uint8_t want[32];

		if (!nl) {
			bad(r, seq, "incomplete last line (%zu bytes without a newline): the log was cut mid-record", n);
			return;
		}
		if (n > AUDIT_RECORD_MAX) {
			bad(r, seq, "line of %zu bytes is longer than %d", n, AUDIT_RECORD_MAX);
			return;
		}
		o = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);
		s = json_object_get(o, "seq");
		p = json_object_get(o, "prev");
		ev = json_object_get(o, "event");
		t = json_object_get(o, "time");
		if (!json_is_object(o) || !json_is_integer(s) || !json_is_string(p) || !json_is_string(ev) ||
		    !json_is_string(t) || hex_decode(json_string_value(p), want, 32) < 0) {
			json_decref(o);
			bad(r, seq, "not a valid audit record (needs seq, time, prev, event)");
			return;
		}
		if (json_integer_value(s) != seq) {
			long long got = json_integer_value(s);
			json_decref(o);
			if (seq == 0)
				bad(r, seq, "the log starts at record %lld, not 0: its beginning was cut off", got);
			else
				bad(r, seq, "has seq %lld: records were removed, inserted or reordered here", got);
			return;
		}
		if (memcmp(want, prev, 32)) {
			json_decref(o);
			bad(r, seq,
			    seq ? "its \"prev\" does not match the hash of record %lld: that record was changed, or records "
				  "were removed or reordered"
				: "record 0 must have a zero \"prev\"%.0lld",
			    seq - 1);
			return;
		}
		if (!strcmp(json_string_value(ev), "head")) {
			if (check_head(o, seq, prev, vo, r, &have_counter, &counter) < 0) {
				json_decref(o);
				return;
			}
			r->last_head = seq;
		}
		json_decref(o);
		sha256_buf(line, n, prev);
		seq++;
		off += n + 1;
	}
	r->records = (size_t)seq;
	r->unsigned_tail = (size_t)(seq - 1 - r->last_head);
	r->last_counter = counter;
	if (vo->tpm_spec && vo->ak) {
		struct tpm *t;
		struct err e;
		uint64_t now = 0;

		int rc = tpm_connect(vo->tpm_spec, &t, &e);

		if (rc == 0) {
			rc = tpm_counter_read(t, &now, &e);
			tpm_disconnect(t);
		}
		if (rc < 0) {
			r->ok = false;
			r->bad_record = seq;
			snprintf(r->reason, sizeof(r->reason), "cannot read the TPM's audit counter: %s", e.msg);
			return;
		}
		if (!have_counter || now != counter) {
			r->ok = false;
			r->bad_record = seq;
			if (have_counter && now > counter)
				snprintf(r->reason, sizeof(r->reason),
					 "record %lld (end of log): the TPM's audit counter is at %llu but the last signed "
					 "head carries %llu: %llu signed head(s) were cut off the end",
					 seq, (unsigned long long)now, (unsigned long long)counter,
					 (unsigned long long)(now - counter));
			else if (have_counter)
				snprintf(r->reason, sizeof(r->reason),
					 "record %lld (end of log): the last head carries counter %llu, ahead of the TPM's "
					 "%llu: this log belongs to another TPM, or the TPM was rolled back",
					 seq, (unsigned long long)counter, (unsigned long long)now);
			else
				snprintf(r->reason, sizeof(r->reason),
					 "record %lld (end of log): the log has no TPM-certified head, but the TPM's audit "
					 "counter is at %llu",
					 seq, (unsigned long long)now);
			return;
		}
	}
	snprintf(r->reason, sizeof(r->reason), "OK: %zu records, %zu signed heads%s; %zu record(s) after the last head",
		 r->records, r->heads, r->tpm_checked ? " (TPM counter certified)" : "", r->unsigned_tail);
}
