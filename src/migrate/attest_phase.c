#include "migrate/attest_phase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/proto.h"
#include "trust/decide.h"
#include "trust/jsonx.h"
#include "util/hex.h"
#include "vmm/machine.h"

static const char binding_tls[] = "tls-exporter";
static const char binding_none[] = "none (tcp://, INSECURE)";

/* ---- records ---- */

static int nonce_field(json_t *o, const char *where, bool *have, uint8_t nonce[ATTEST_NONCE_LEN], struct err *e)
{
	json_t *v = json_object_get(o, "nonce");

	*have = v != NULL;
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) != 2 * ATTEST_NONCE_LEN ||
	    hex_decode(json_string_value(v), nonce, ATTEST_NONCE_LEN) < 0)
		return err_set(e, -EINVAL, "%s.nonce must be %d hex digits", where, 2 * ATTEST_NONCE_LEN);
	return 0;
}

int mig_attest_req_parse(const void *buf, size_t len, struct mig_attest_req *out, struct err *e)
{
	static const char *const keys[] = { "mode", "nonce", "labels", NULL };
	char mode[16];
	bool have = false;
	json_t *o;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > MIG_ATTEST_REQ_MAX)
		return err_set(e, -EMSGSIZE, "ATTEST_REQ of %zu bytes (at most %d)", len, MIG_ATTEST_REQ_MAX);
	o = jx_parse(buf, len, "ATTEST_REQ", e);
	if (!o)
		return -EINVAL;
	rc = jx_only(o, "ATTEST_REQ", keys, e);
	if (rc == 0)
		rc = jx_str(o, "ATTEST_REQ", "mode", true, mode, sizeof(mode), e);
	if (rc == 0 && strcmp(mode, "trusted") && strcmp(mode, "open"))
		rc = err_set(e, -EINVAL, "ATTEST_REQ.mode must be \"trusted\" or \"open\"");
	if (rc == 0)
		rc = nonce_field(o, "ATTEST_REQ", &have, out->nonce, e);
	if (rc == 0) {
		out->trusted = !strcmp(mode, "trusted");
		if (out->trusted != have)
			rc = err_set(e, -EINVAL, "ATTEST_REQ: a nonce goes with mode \"trusted\", and only with it");
	}
	if (rc == 0 && !json_object_get(o, "labels"))
		rc = err_set(e, -EINVAL, "ATTEST_REQ: missing \"labels\"");
	if (rc == 0 && (rc = labels_from_json(json_object_get(o, "labels"), &out->labels, e)) < 0)
		err_wrap(e, "ATTEST_REQ.labels");
	json_decref(o);
	return rc;
}

void mig_attest_msg_free(struct mig_attest_msg *m)
{
	free(m->evidence);
	memset(m, 0, sizeof(*m));
}

int mig_attest_msg_parse(const void *buf, size_t len, struct mig_attest_msg *out, struct err *e)
{
	static const char *const keys[] = { "nonce", "evidence", NULL };
	json_t *o, *ev;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > ATTEST_EVIDENCE_MAX + 4096)
		return err_set(e, -EMSGSIZE, "ATTEST of %zu bytes is too large", len);
	o = jx_parse(buf, len, "ATTEST", e);
	if (!o)
		return -EINVAL;
	rc = jx_only(o, "ATTEST", keys, e);
	if (rc == 0)
		rc = nonce_field(o, "ATTEST", &out->has_nonce, out->nonce, e);
	ev = json_object_get(o, "evidence");
	if (rc == 0 && !json_is_object(ev))
		rc = err_set(e, -EINVAL, "ATTEST.evidence is not a JSON object");
	if (rc == 0) {
		out->evidence = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!out->evidence)
			rc = err_set(e, -ENOMEM, "out of memory");
		else
			out->evidence_len = strlen(out->evidence);
	}
	json_decref(o);
	if (rc < 0)
		mig_attest_msg_free(out);
	return rc;
}

/* ---- the wire ---- */

static int send_json(struct sec_writer *w, struct chan *c, uint32_t id, json_t *o, struct err *e)
{
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	struct iovec iov;
	int rc;

	json_decref(o);
	if (!text)
		return err_set(e, -ENOMEM, "out of memory");
	iov = (struct iovec){ text, strlen(text) };
	rc = sec_write(w, id, 1, &iov, 1, e);
	if (rc == 0)
		rc = chan_flush(c, e);
	free(text);
	return rc;
}

/* The next record, which must be want (malloc'd, NUL-terminated). A peer's ABORT is
 * its reason (abort_prefix before it); a HELLO_ACK here is the destination refusing. */
static int read_record(struct sec_reader *r, uint32_t want, const char *abort_prefix, char **buf, size_t *len,
		       struct err *e)
{
	struct sec_hdr h;
	int rc = sec_read_hdr(r, &h, e);

	*buf = NULL;
	*len = 0;
	if (rc < 0)
		return rc;
	if (h.id == SEC_ABORT) {
		struct mig_abort a;
		if ((rc = sec_read_exact(r, &h, &a, sizeof(a), e)) < 0)
			return rc;
		a.reason[sizeof(a.reason) - 1] = 0;
		return err_set(e, -ECONNABORTED, "%s%s", abort_prefix, a.reason);
	}
	if (h.id == SEC_HELLO_ACK) {
		struct mig_hello_ack a;
		if ((rc = sec_read_exact(r, &h, &a, sizeof(a), e)) < 0)
			return rc;
		a.reason[sizeof(a.reason) - 1] = 0;
		if (a.status != MIG_ACCEPT)
			return err_set(e, -EREMOTEIO, "destination refused: %s", a.reason);
		return err_set(e, -EPROTO, "destination admitted the VM before the trust phase ended");
	}
	if (h.id != want)
		return err_set(e, -EPROTO, "peer sent %s, expected %s", sec_name(h.id), sec_name(want));
	*buf = malloc(h.len + 1);
	if (!*buf)
		return err_set(e, -ENOMEM, "out of memory");
	rc = sec_read(r, *buf, h.len, e);
	if (rc == 0)
		rc = sec_read_end(r, e);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
		return rc;
	}
	(*buf)[h.len] = 0;
	*len = h.len;
	return 0;
}

/* bound = the nonce bound to this TLS session, or (tcp://) to nothing else. */
static int bind_nonce(struct chan *c, const uint8_t nonce[ATTEST_NONCE_LEN], uint8_t bound[ATTEST_BOUND_LEN],
		      struct err *e)
{
	if (chan_kind(c) == CHAN_TLS)
		return attest_bind_chan(c, nonce, bound, e);
	attest_bind(nonce, NULL, 0, bound);
	return 0;
}

/* ATTEST {"evidence": our quote for the peer's nonce[, "nonce": our challenge]}. */
static int send_evidence(struct trust_ctx *tc, struct chan *c, struct sec_writer *w,
			 const uint8_t peer_nonce[ATTEST_NONCE_LEN], const uint8_t *our_nonce, struct err *e)
{
	uint8_t bound[ATTEST_BOUND_LEN];
	char *blob = NULL, hex[2 * ATTEST_NONCE_LEN + 1];
	size_t len = 0;
	json_t *ev, *o;
	int rc;

	if ((rc = bind_nonce(c, peer_nonce, bound, e)) < 0 ||
	    (rc = attest_make_evidence(tc->state_dir, tc->host.tpm, tc->host.name, bound, &blob, &len, e)) < 0)
		return rc;
	ev = json_loadb(blob, len, 0, NULL);
	free(blob);
	if (!ev)
		return err_set(e, -EINVAL, "our own evidence is not JSON");
	o = json_pack("{s:o}", "evidence", ev);
	if (o && our_nonce) {
		hex_encode(our_nonce, ATTEST_NONCE_LEN, hex);
		json_object_set_new(o, "nonce", json_string(hex));
	}
	return send_json(w, c, SEC_ATTEST, o, e);
}

static json_t *id_record(const uint8_t id[16], const char *role)
{
	char hex[33];

	hex_encode(id, 16, hex);
	return json_pack("{s:s, s:s}", "id", hex, "role", role);
}

/* Verifies the peer's evidence against our table and records the verdict. */
static void verify_peer(struct trust_ctx *tc, struct chan *c, const char *peer, const struct mig_attest_msg *m,
			const uint8_t nonce[ATTEST_NONCE_LEN], const uint8_t id[16], const char *role,
			struct attest_verdict *v)
{
	bool tls = chan_kind(c) == CHAN_TLS;
	struct attest_expect x = { .peer_name = tls ? peer : NULL, .unbound = !tls,
				   .policy_serial = policy_serial(tc->policy) };
	uint8_t bound[ATTEST_BOUND_LEN];
	struct err e = { 0 };
	json_t *o;

	if (bind_nonce(c, nonce, bound, &e) < 0) {
		memset(v, 0, sizeof(*v));
		snprintf(v->check, sizeof(v->check), "nonce");
		snprintf(v->reason, sizeof(v->reason), "attestation of %s failed (nonce): %s", peer, e.msg);
	} else {
		attest_verify(m->evidence, m->evidence_len, bound, tc->table, &x, v);
	}
	o = id_record(id, role);
	json_object_set_new(o, "peer", json_string(v->host[0] ? v->host : peer));
	json_object_set_new(o, "ok", json_boolean(v->ok));
	json_object_set_new(o, "check", json_string(v->check));
	json_object_set_new(o, "reason", json_string(v->reason));
	json_object_set_new(o, "binding", json_string(tls ? binding_tls : binding_none));
	trust_audit_note(tc, "attest", o);
}

/* ---- source ---- */

int mig_trust_src_transport(struct mig_trust *t, const char *uri, struct err *e)
{
	if (!t || strncmp(uri, "tcp://", 6))
		return 0;
	return trust_check_transport(t->tc, &t->labels, false, "tcp://",
				     json_pack("{s:s, s:s}", "role", "source", "uri", uri), e);
}

static int src_decide(struct mig_trust *t, const uint8_t id[16], const char *dst, struct err *e)
{
	const char *me = trust_host_name(t->tc);

	if (trust_is_trusted(t->tc) && !t->who_known)
		return err_set(e, -EACCES, "migrate refused: the kernel did not say who is on the control socket");
	return trust_decide(t->tc, &t->who, OP_MIGRATE, &t->labels, *me ? me : NULL, dst, id_record(id, "source"), NULL,
			    e);
}

int mig_trust_src_policy(struct mig_trust *t, struct chan *c, const uint8_t id[16], struct err *e)
{
	bool tls = chan_kind(c) == CHAN_TLS;

	if (!t)
		return 0;
	if (tls)
		snprintf(t->peer, sizeof(t->peer), "%s", chan_peer_name(c));
	if (trust_is_trusted(t->tc) && !tls)
		return 0; /* decided once the attested name is known (mig_trust_src_exchange) */
	return src_decide(t, id, tls ? t->peer : NULL, e);
}

int mig_trust_src_exchange(struct mig_trust *t, struct chan *c, struct sec_writer *w, struct sec_reader *r,
			   const uint8_t id[16], struct err *e)
{
	static const struct labels none;
	bool trusted = t && trust_is_trusted(t->tc);
	uint8_t ns[ATTEST_NONCE_LEN];
	char hex[2 * ATTEST_NONCE_LEN + 1], *buf = NULL;
	struct mig_attest_msg m = { 0 };
	struct attest_verdict v;
	uint64_t t0 = now_ns();
	size_t len;
	json_t *req;
	int rc;

	if (trusted && (rc = attest_nonce(ns, e)) < 0)
		return rc;
	req = json_pack("{s:s, s:o}", "mode", trusted ? "trusted" : "open", "labels", labels_to_json(t ? &t->labels : &none));
	if (req && trusted) {
		hex_encode(ns, ATTEST_NONCE_LEN, hex);
		json_object_set_new(req, "nonce", json_string(hex));
	}
	if ((rc = send_json(w, c, SEC_ATTEST_REQ, req, e)) < 0 || !trusted)
		return rc;
	/* the destination proves what it runs, for our nonce on this session */
	rc = read_record(r, SEC_ATTEST, "destination aborted: ", &buf, &len, e);
	if (rc == 0)
		rc = mig_attest_msg_parse(buf, len, &m, e);
	free(buf);
	if (rc == 0 && !m.has_nonce)
		rc = err_set(e, -EPROTO, "the destination's ATTEST has no challenge for us");
	if (rc < 0) {
		mig_attest_msg_free(&m);
		return rc;
	}
	verify_peer(t->tc, c, t->peer[0] ? t->peer : "destination", &m, ns, id, "source", &v);
	if (!v.ok) {
		mig_attest_msg_free(&m);
		return err_set(e, -EACCES, "%s", v.reason);
	}
	t->attested = true;
	snprintf(t->peer, sizeof(t->peer), "%s", v.host);
	if (chan_kind(c) != CHAN_TLS && (rc = src_decide(t, id, t->peer, e)) < 0) {
		mig_attest_msg_free(&m);
		return rc;
	}
	/* and we prove what we run, for its nonce */
	rc = send_evidence(t->tc, c, w, m.nonce, NULL, e);
	mig_attest_msg_free(&m);
	t->attest_ns = now_ns() - t0;
	return rc < 0 ? err_wrap(e, "attesting this host to the destination") : 0;
}

/* ---- destination ---- */

static void set_left(struct chan *c, uint64_t deadline)
{
	uint64_t now = now_ns();
	int ms = now >= deadline ? 1 : (int)((deadline - now) / 1000000) + 1;

	chan_set_timeout(c, ms);
}

int mig_trust_dst_exchange(struct trust_ctx *tc, struct pool_conn *c, const uint8_t id[16], uint32_t timeout_ms,
			   struct labels *labels, char *why, size_t n)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	bool trusted = trust_is_trusted(tc), tls = chan_kind(c->ch) == CHAN_TLS;
	const char *me = trust_host_name(tc), *src = c->peer[0] ? c->peer : NULL;
	struct mig_attest_req req;
	struct mig_attest_msg m = { 0 };
	struct attest_verdict v;
	struct principal who = { .is_host = true };
	uint8_t nd[ATTEST_NONCE_LEN];
	struct err e = { 0 };
	char *buf = NULL;
	size_t len;
	int rc;

	memset(labels, 0, sizeof(*labels));
	set_left(c->ch, deadline);
	rc = read_record(&c->r, SEC_ATTEST_REQ, "", &buf, &len, &e);
	if (rc == 0)
		rc = mig_attest_req_parse(buf, len, &req, &e);
	free(buf);
	if (rc < 0) {
		snprintf(why, n, "no valid trust phase from the source: %s", e.msg);
		return rc;
	}
	*labels = req.labels;
	rc = trust_check_transport(tc, labels, tls, "tcp://", id_record(id, "destination"), &e);
	if (rc < 0) {
		snprintf(why, n, "%s", e.msg);
		return rc;
	}
	if (req.trusted && !trusted) {
		snprintf(why, n, "this destination runs in open mode (no --table/--policy): it cannot be attested, and the source requires attestation");
		return -EACCES;
	}
	if (!req.trusted && trusted) {
		snprintf(why, n, "this destination runs in trusted mode and admits only attested sources; the source runs in open mode (no --table/--policy)");
		return -EACCES;
	}
	if (trusted) {
		/* prove what we run, for the source's nonce; challenge it in turn */
		rc = attest_nonce(nd, &e);
		if (rc == 0)
			rc = send_evidence(tc, c->ch, &c->w, req.nonce, nd, &e);
		if (rc < 0) {
			snprintf(why, n, "this destination cannot attest itself: %s", e.msg);
			return rc;
		}
		set_left(c->ch, deadline);
		rc = read_record(&c->r, SEC_ATTEST, "", &buf, &len, &e);
		if (rc == 0)
			rc = mig_attest_msg_parse(buf, len, &m, &e);
		free(buf);
		if (rc == 0 && m.has_nonce)
			rc = err_set(&e, -EPROTO, "the source's ATTEST carries a challenge");
		if (rc < 0) {
			mig_attest_msg_free(&m);
			snprintf(why, n, "%s", e.msg);
			return rc;
		}
		verify_peer(tc, c->ch, src ? src : "source", &m, nd, id, "destination", &v);
		mig_attest_msg_free(&m);
		if (!v.ok) {
			snprintf(why, n, "%s", v.reason);
			return -EACCES;
		}
		src = v.host;
	}
	/* may this source bring this VM here? */
	snprintf(who.host, sizeof(who.host), "%s", src ? src : "");
	rc = trust_decide(tc, &who, OP_MIGRATE, labels, src, *me ? me : NULL, id_record(id, "destination"), NULL, &e);
	if (rc < 0)
		snprintf(why, n, "%s", e.msg);
	return rc;
}

/* ---- audit ---- */

void mig_audit(struct trust_ctx *tc, const char *event, const uint8_t id[16], const char *role, const char *peer,
	       const char *reason)
{
	json_t *o;

	if (!tc)
		return;
	o = id_record(id, role ? role : "?");
	if (peer && *peer)
		json_object_set_new(o, "peer", json_string(peer));
	if (reason && *reason)
		json_object_set_new(o, "reason", json_string(reason));
	trust_audit_note(tc, event, o);
}
