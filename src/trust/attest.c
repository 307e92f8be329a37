#include "trust/attest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <openssl/x509.h>

#include "channel/channel.h"
#include "trust/eventlog.h"
#include "trust/jsonx.h"
#include "trust/measure.h"
#include "trust/tpm.h"
#include "trust/tpm_attest.h"
#include "util/hex.h"

static const char bind_domain[] = "sealvm-attest-v1";

int attest_nonce(uint8_t nonce[ATTEST_NONCE_LEN], struct err *e)
{
	return RAND_bytes(nonce, ATTEST_NONCE_LEN) == 1 ? 0 : err_set(e, -EIO, "no random bytes for a nonce");
}

void attest_bind(const uint8_t nonce[ATTEST_NONCE_LEN], const uint8_t *ekm, size_t ekm_len,
		 uint8_t bound[ATTEST_BOUND_LEN])
{
	uint8_t buf[sizeof(bind_domain) - 1 + ATTEST_NONCE_LEN + 64];
	size_t n = 0;

	if (ekm_len > 64)
		ekm_len = 64;
	memcpy(buf, bind_domain, sizeof(bind_domain) - 1);
	n += sizeof(bind_domain) - 1;
	memcpy(buf + n, nonce, ATTEST_NONCE_LEN);
	n += ATTEST_NONCE_LEN;
	if (ekm_len)
		memcpy(buf + n, ekm, ekm_len);
	n += ekm_len;
	sha256_buf(buf, n, bound);
}

int attest_bind_chan(struct chan *c, const uint8_t nonce[ATTEST_NONCE_LEN], uint8_t bound[ATTEST_BOUND_LEN],
		     struct err *e)
{
	uint8_t ekm[32];
	int rc = chan_export_keying_material(c, ATTEST_EKM_LABEL, nonce, ATTEST_NONCE_LEN, ekm, sizeof(ekm), e);

	if (rc < 0)
		return err_wrap(e, "binding the attestation nonce to the TLS session");
	attest_bind(nonce, ekm, sizeof(ekm), bound);
	return 0;
}

/* ---- the attester ---- */

struct make_ctx {
	const char *tpm_spec, *host;
	const uint8_t *bound;
	char *out;
};

static int make_locked(void *opaque, const struct eventlog *l, struct err *e)
{
	struct make_ctx *m = opaque;
	struct tpm_signed q = { 0 };
	struct tpm *t;
	char *qb, *sb;
	json_t *o;
	int rc;

	if ((rc = tpm_connect(m->tpm_spec, &t, e)) < 0)
		return rc;
	rc = tpm_quote(t, TPM_PCR, m->bound, ATTEST_BOUND_LEN, &q, e);
	tpm_disconnect(t);
	if (rc < 0)
		return rc;
	qb = b64_encode(q.attest, q.attest_len);
	sb = b64_encode(q.sig, q.sig_len);
	tpm_signed_free(&q);
	o = qb && sb ? json_pack("{s:i, s:s, s:i, s:s, s:s, s:o}", "version", 1, "host", m->host, "pcr", TPM_PCR,
				 "quote", qb, "sig", sb, "events", eventlog_to_json(l))
		     : NULL;
	free(qb);
	free(sb);
	m->out = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	return m->out ? 0 : err_set(e, -ENOMEM, "out of memory");
}

int attest_make_evidence(const char *state_dir, const char *tpm_spec, const char *host_name,
			 const uint8_t bound[ATTEST_BOUND_LEN], char **blob, size_t *len, struct err *e)
{
	struct make_ctx m = { .tpm_spec = tpm_spec, .host = host_name, .bound = bound };
	int rc = eventlog_with_log(state_dir, make_locked, &m, e);

	*blob = NULL;
	*len = 0;
	if (rc < 0)
		return err_wrap(e, "making attestation evidence");
	*blob = m.out;
	*len = strlen(m.out);
	return 0;
}

/* ---- the verifier ---- */

__attribute__((format(printf, 3, 4))) static void refuse(struct attest_verdict *v, const char *check,
							  const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	v->ok = false;
	snprintf(v->check, sizeof(v->check), "%s", check);
	snprintf(v->reason, sizeof(v->reason), "attestation of %s failed (%s): %s", v->host[0] ? v->host : "peer",
		 check, msg);
}

int attest_cert_name(struct x509_st *cert, char *out, size_t n)
{
	if (!cert || n == 0 || X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)n) <= 0)
		return -EINVAL;
	return 0;
}

static uint8_t *b64_field(json_t *o, const char *key, size_t max, size_t *n)
{
	json_t *v = json_object_get(o, key);
	uint8_t *b;

	if (!json_is_string(v) || json_string_length(v) > max * 4 / 3 + 4)
		return NULL;
	b = b64_decode(json_string_value(v), n);
	if (b && (*n == 0 || *n > max)) {
		free(b);
		return NULL;
	}
	return b;
}

/* The alarm's reason for messages (the data is the guard's canonical JSON). */
static void guard_alarm_reason(const char *data, char *out, size_t n)
{
	json_t *o = jx_parse(data, strlen(data), "guard alarm", NULL);
	const char *c = json_string_value(json_object_get(o, "check")), *r = json_string_value(json_object_get(o, "reason"));

	snprintf(out, n, "%s: %s", c ? c : "?", r ? r : "(no reason given)");
	json_decref(o);
}

void attest_verify(const void *blob, size_t len, const uint8_t bound[ATTEST_BOUND_LEN],
		   const struct trust_table *table, const struct attest_expect *x, struct attest_verdict *v)
{
	static const char *const keys[] = { "version", "host", "pcr", "quote", "sig", "events", NULL };
	struct err e = { 0 };
	struct eventlog l = { 0 };
	struct tpm_attest_info qi;
	const struct table_host *h;
	uint8_t *quote = NULL, *sig = NULL, pcr_val[32], pcr_digest[32];
	size_t qlen = 0, slen = 0, last_config = SIZE_MAX;
	int64_t now = x->now ? x->now : (int64_t)time(NULL), ver, pcr;
	json_t *o = NULL;

	memset(v, 0, sizeof(*v));
	/* format */
	if (len > ATTEST_EVIDENCE_MAX) {
		refuse(v, "format", "evidence of %zu bytes is larger than %u", len, ATTEST_EVIDENCE_MAX);
		return;
	}
	o = jx_parse(blob, len, "evidence", &e);
	if (!o || jx_only(o, "evidence", keys, &e) < 0 || jx_int(o, "evidence", "version", true, 1, 1, 1, &ver, &e) < 0 ||
	    jx_str(o, "evidence", "host", true, v->host, sizeof(v->host), &e) < 0 ||
	    jx_int(o, "evidence", "pcr", true, 0, 23, 0, &pcr, &e) < 0) {
		v->host[0] = 0;
		refuse(v, "format", "%s", e.msg);
		goto out;
	}
	if (!(quote = b64_field(o, "quote", TPM_ATTEST_MAX, &qlen)) || !(sig = b64_field(o, "sig", 256, &slen))) {
		refuse(v, "format", "evidence needs \"quote\" and \"sig\" in base64");
		goto out;
	}
	if (eventlog_from_json(json_object_get(o, "events"), &l, &e) < 0) {
		refuse(v, "format", "%s", e.msg);
		goto out;
	}
	v->events = l.n;
	if (tpm_attest_parse_quote(quote, qlen, &qi, &e) < 0) {
		refuse(v, "format", "%s", e.msg);
		goto out;
	}
	/* host: the evidence must come from the TLS peer, and the peer be trusted */
	if (!x->unbound && (!x->peer_name || strcmp(x->peer_name, v->host))) {
		refuse(v, "host", "the evidence names host %s but the TLS peer is %s", v->host,
		       x->peer_name ? x->peer_name : "(unknown)");
		goto out;
	}
	if (table->expires && now > table->expires) {
		refuse(v, "host", "our integrity validation table expired at %lld", (long long)table->expires);
		goto out;
	}
	h = table_find(table, v->host);
	if (!h) {
		refuse(v, "host", "host %s is not in the integrity validation table (serial %llu)", v->host,
		       (unsigned long long)table->serial);
		goto out;
	}
	v->trust = h->trust;
	if (h->revoked) {
		refuse(v, "host", "host %s is revoked in the integrity validation table", v->host);
		goto out;
	}
	if (h->expires && now > h->expires) {
		refuse(v, "host", "the table entry of host %s expired at %lld", v->host, (long long)h->expires);
		goto out;
	}
	if (h->trust < table->min_trust) {
		refuse(v, "host", "host %s has trust level %d, below the required %d", v->host, h->trust, table->min_trust);
		goto out;
	}
	/* signature */
	if (tpm_attest_verify(h->ak, quote, qlen, sig, slen) < 0) {
		refuse(v, "signature", "the quote is not signed by %s's attestation key %.16s… from the table", v->host,
		       h->ak_fpr);
		goto out;
	}
	/* nonce */
	if (qi.extra_len != ATTEST_BOUND_LEN || memcmp(qi.extra, bound, ATTEST_BOUND_LEN)) {
		refuse(v, "nonce",
		       "the quote answers a different challenge (a replayed or stale quote, or one made for another TLS "
		       "session)");
		goto out;
	}
	/* pcr */
	if (pcr != TPM_PCR || qi.pcr_mask != 1u << TPM_PCR) {
		refuse(v, "pcr", "the quote covers PCR mask 0x%x, not sealvm's PCR %d", qi.pcr_mask, TPM_PCR);
		goto out;
	}
	for (size_t i = 0; i < l.n; i++)
		if (l.ev[i].pcr != TPM_PCR) {
			refuse(v, "pcr", "event %zu is for PCR %d, not %d", i, l.ev[i].pcr, TPM_PCR);
			goto out;
		}
	eventlog_replay(&l, TPM_PCR, pcr_val);
	sha256_buf(pcr_val, 32, pcr_digest);
	if (memcmp(pcr_digest, qi.pcr_digest, 32)) {
		refuse(v, "pcr", "the event log (%zu events) does not replay to the quoted PCR %d value", l.n, TPM_PCR);
		goto out;
	}
	/* measurement */
	for (size_t i = 0; i < l.n; i++)
		if (!strcmp(l.ev[i].type, EVENT_TYPE_CONFIG))
			last_config = i;
	if (last_config == SIZE_MAX) {
		refuse(v, "measurement", "the event log has no trust configuration");
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct event *ev = &l.ev[i];
		char hex[65], why[256];
		uint8_t d[32];

		if (!strcmp(ev->type, EVENT_TYPE_EXE)) {
			if (!table_allows_exe(table, h, ev->digest)) {
				hex_encode(ev->digest, 32, hex);
				refuse(v, "measurement", "event %zu: sealvm executable %.16s… (%.200s) is not allowed for %s", i,
				       hex, ev->data, v->host);
				goto out;
			}
		} else if (!strcmp(ev->type, EVENT_TYPE_CONFIG)) {
			sha256_buf(ev->data, strlen(ev->data), d);
			if (memcmp(d, ev->digest, 32)) {
				refuse(v, "measurement", "event %zu: the digest does not match the trust configuration", i);
				goto out;
			}
			if (measure_config_check(ev->data, table, x->policy_serial, i == last_config, why, sizeof(why)) < 0) {
				refuse(v, "measurement", "event %zu: %s", i, why);
				goto out;
			}
		} else if (!strcmp(ev->type, EVENT_TYPE_GUARD_ALARM)) {
			sha256_buf(ev->data, strlen(ev->data), d);
			if (memcmp(d, ev->digest, 32)) {
				refuse(v, "measurement", "event %zu: the digest does not match the guard alarm", i);
				goto out;
			}
			v->guard_alarm = true;
			guard_alarm_reason(ev->data, v->guard_reason, sizeof(v->guard_reason));
		} else {
			refuse(v, "measurement", "event %zu has unknown type \"%.31s\"", i, ev->type);
			goto out;
		}
	}
	if (v->guard_alarm && !x->accept_guard_alarm) {
		refuse(v, "guard", "host %s's integrity guard marked it untrusted: %s", v->host, v->guard_reason);
		goto out;
	}
	v->ok = true;
	snprintf(v->check, sizeof(v->check), "ok");
	snprintf(v->reason, sizeof(v->reason),
		 "host %s attested: quote signed by its key, nonce fresh, %zu events replay to PCR %d, all allowed "
		 "(trust level %d)%s%s",
		 v->host, l.n, TPM_PCR, h->trust, v->guard_alarm ? "; but its integrity guard marked it untrusted: " : "",
		 v->guard_alarm ? v->guard_reason : "");
out:
	json_decref(o);
	free(quote);
	free(sig);
	eventlog_free(&l);
}
