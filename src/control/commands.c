#include "control/commands.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "migrate/attest_phase.h"
#include "migrate/proto.h"
#include "trust/decide.h"
#include "util/hex.h"
#include "util/secret_file.h"
#include "vmm/snapshot.h"

void vmm_ctx_init(struct vmm_ctx *c, struct machine *m, const char *tls_dir, const struct state_dir *sd)
{
	memset(c, 0, sizeof(*c));
	c->m = m;
	c->tls_dir = tls_dir;
	c->sd = sd;
	pthread_mutex_init(&c->op_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	migrate_ctl_init(&c->mctl);
}

void vmm_ctx_set_incoming(struct vmm_ctx *c, struct incoming *in)
{
	pthread_mutex_lock(&c->lock);
	c->incoming = in;
	pthread_mutex_unlock(&c->lock);
}

void vmm_ctx_vm_ready(struct vmm_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	c->have_vm = true;
	pthread_mutex_unlock(&c->lock);
}

void vmm_ctx_fini(struct vmm_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	c->resolver_stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->resolver_started)
		pthread_join(c->resolver, NULL);
	json_decref(c->last_migration);
	json_decref(c->progress);
	migrate_ctl_fini(&c->mctl);
	pthread_mutex_destroy(&c->op_lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
}

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0.0; /* bytes per ns == GB/s */
}

static bool want_force(json_t *req)
{
	return json_is_true(json_object_get(req, "force"));
}

/* The local principal the policy judges: the control socket's peer. */
static struct principal peer_principal(const struct ctl_peer *peer)
{
	return (struct principal){ .is_host = false, .uid = peer->uid };
}

/* An operator's override of a safety rule, in the audit log. */
static void audit_forced(struct vmm_ctx *c, const struct ctl_peer *peer, const char *cmd, const char *why)
{
	struct principal who = peer_principal(peer);
	char w[96];

	principal_format(&who, w, sizeof(w));
	trust_audit_note(c->trust, "operator-force",
			 json_pack("{s:s, s:s, s:b, s:s}", "cmd", cmd, "principal", w, "principal_known", peer->known,
				   "why", why));
}

/* The VM here is an orphaned incoming copy (dest.c). Under c->lock. */
static bool orphaned(struct vmm_ctx *c)
{
	return c->have_vm && c->incoming && incoming_orphaned(c->incoming);
}

static const char orphan_why[] = "a complete copy whose source went silent before COMMIT, held paused here (the migration is settled as aborted; if the source is alive it runs the VM): `resume --force` runs this copy, only if the source host is known dead; `quit --force` discards it";

/* Why a command that runs or changes the VM must wait, or NULL. Under c->lock. */
static const char *busy_reason(struct vmm_ctx *c, char *buf, size_t n)
{
	if (!c->have_vm) {
		snprintf(buf, n, c->incoming ? "no VM here yet: waiting for an incoming migration"
					     : "the VM is not started yet");
		return buf;
	}
	if (c->phase) {
		snprintf(buf, n, "a migration is in progress (phase: %s)", c->phase);
		return buf;
	}
	if (orphaned(c)) {
		snprintf(buf, n, "%s", orphan_why);
		return buf;
	}
	if (c->uncertain) {
		snprintf(buf, n, "the last migration's outcome is UNCERTAIN and the VM is held paused until the destination answers: %s",
			 c->uncertain_why);
		return buf;
	}
	return NULL;
}

/* True (with e set) when cmd must not run now. */
static bool refused(struct vmm_ctx *c, const char *cmd, struct err *e)
{
	char buf[700];
	const char *why;

	pthread_mutex_lock(&c->lock);
	why = busy_reason(c, buf, sizeof(buf));
	if (why)
		err_set(e, -EBUSY, "%s refused: %s", cmd, why);
	pthread_mutex_unlock(&c->lock);
	return why != NULL;
}

static json_t *cmd_status(struct vmm_ctx *c)
{
	struct machine *m = c->m;
	char names[64];
	json_t *o;

	pthread_mutex_lock(&c->lock);
	if (!c->have_vm) {
		struct incoming *in = c->incoming;
		pthread_mutex_unlock(&c->lock);
		o = json_pack("{s:s}", "state", in ? "incoming" : "starting");
		if (in) {
			struct incoming_progress p;
			incoming_get_progress(in, &p);
			json_object_set_new(o, "incoming",
					    json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "phase", p.phase,
						      "source", p.source, "channels", (int)p.channels, "pages_received",
						      (json_int_t)p.pages_received, "bytes_received",
						      (json_int_t)p.bytes_received, "connections",
						      (json_int_t)p.connections, "connections_dropped",
						      (json_int_t)p.dropped, "reserved_bytes", (json_int_t)p.reserved,
						      "reserve_ready_bytes", (json_int_t)p.reserve_ready));
		}
		return o;
	}
	o = json_pack("{s:s, s:s, s:I, s:i, s:I}", "state", machine_state_name(machine_state(m)), "paused_by",
		      pause_holder_names(machine_held(m), names, sizeof(names)), "ram_bytes",
		      (json_int_t)m->vm.ram_size, "vcpus", m->nr_vcpus,
		      "uptime_ms", (json_int_t)((now_ns() - m->started_ns) / 1000000));
	if (c->phase)
		json_object_set_new(o, "migration_phase", json_string(c->phase));
	if (c->uncertain)
		json_object_set_new(o, "migration_uncertain", json_string(c->uncertain_why));
	if (orphaned(c))
		json_object_set_new(o, "orphaned", json_string(orphan_why));
	json_object_set_new(o, "labels", labels_to_json(&c->labels));
	pthread_mutex_unlock(&c->lock);
	if (pubmem_in_use(&m->pubmem))
		json_object_set_new(o, "public", pubmem_json(&m->pubmem));
	return o;
}

static json_t *cmd_stats(struct vmm_ctx *c)
{
	struct machine *m = c->m;
	json_t *o;

	pthread_mutex_lock(&c->lock);
	if (!c->have_vm) {
		pthread_mutex_unlock(&c->lock);
		return cmd_status(c);
	}
	o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "state", machine_state_name(machine_state(m)),
		      "vcpu_exits", (json_int_t)m->exits, "io_exits", (json_int_t)m->io_exits,
		      "serial_tx_bytes", (json_int_t)m->serial.tx_bytes,
		      "unhandled_port_accesses", (json_int_t)m->bus.unhandled);
	if (c->progress)
		json_object_set(o, "migration", c->progress);
	else if (c->last_migration)
		json_object_set(o, "migration", c->last_migration);
	pthread_mutex_unlock(&c->lock);
	return o;
}

static json_t *cmd_snapshot(struct vmm_ctx *c, const struct ctl_peer *peer, json_t *req, struct err *e)
{
	struct principal who = peer_principal(peer);
	struct machine *m = c->m;
	struct snapshot_stats st;
	const char *file = json_string_value(json_object_get(req, "file"));
	enum machine_run_state s;
	uint8_t key[32];
	uint64_t t0;
	int r;

	if (!file || !*file) {
		err_set(e, -EINVAL, "snapshot needs a \"file\"");
		return NULL;
	}
	if (refused(c, "snapshot", e))
		return NULL;
	if (pthread_mutex_trylock(&c->op_lock)) {
		err_set(e, -EBUSY, "snapshot refused: another snapshot is in progress");
		return NULL;
	}
	if (refused(c, "snapshot", e)) {
		pthread_mutex_unlock(&c->op_lock);
		return NULL;
	}
	s = machine_state(m);
	if (s != MACHINE_RUNNING && s != MACHINE_PAUSED) {
		pthread_mutex_unlock(&c->op_lock);
		err_set(e, -EINVAL, "cannot snapshot a machine that is %s", machine_state_name(s));
		return NULL;
	}
	{
		const char *kf = json_string_value(json_object_get(req, "key_file"));
		if (!kf)
			kf = c->key_file;
		r = kf ? key_file_load(kf, key, e) : host_key_load(c->sd->path, "snapshot.key", key, e);
	}
	/* who may take this VM's state out of sealvm, into a file */
	if (r == 0 && trust_is_trusted(c->trust) && !peer->known)
		r = err_set(e, -EACCES, "snapshot refused: the kernel did not say who is on the control socket");
	if (r == 0)
		r = trust_decide(c->trust, &who, OP_SNAPSHOT, &c->labels,
				 *trust_host_name(c->trust) ? trust_host_name(c->trust) : NULL, NULL,
				 json_pack("{s:s}", "file", file), NULL, e);
	if (r < 0) {
		OPENSSL_cleanse(key, sizeof(key));
		pthread_mutex_unlock(&c->op_lock);
		return NULL;
	}
	t0 = now_ns();
	machine_pause(m, PAUSE_SNAPSHOT);
	r = snapshot_save(m, file, key, &c->labels, &st, e);
	machine_resume(m, PAUSE_SNAPSHOT);
	OPENSSL_cleanse(key, sizeof(key));
	pthread_mutex_unlock(&c->op_lock);
	trust_audit_note(c->trust, "snapshot",
			 json_pack("{s:s, s:b, s:s}", "file", file, "ok", r == 0, "result", r == 0 ? "written" : e->msg));
	if (r < 0)
		return NULL;
	return json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:f}", "file", file, "bytes", (json_int_t)st.bytes,
			 "data_pages", (json_int_t)st.pages.data_pages, "zero_pages",
			 (json_int_t)st.pages.zero_pages, "write_ms", (double)st.ns / 1e6,
			 "paused_ms", (double)(now_ns() - t0) / 1e6, "gb_per_s", gbps(st.bytes, st.ns));
}

static void on_progress(void *opaque, const struct migrate_progress *p)
{
	struct vmm_ctx *c = opaque;
	json_t *o = json_pack("{s:s, s:i, s:I, s:f, s:i}", "phase", p->phase, "round", (int)p->round,
			      "remaining_pages", (json_int_t)p->remaining_pages, "rate_mb_s", p->rate_mbps,
			      "throttle_pct", (int)p->throttle_pct);

	bool admitted;

	pthread_mutex_lock(&c->lock);
	/* the first round begins once the destination admitted the VM: the migration's start */
	admitted = !strcmp(p->phase, "precopy") && p->round == 0 && (!c->phase || strcmp(c->phase, "precopy"));
	json_decref(c->progress);
	c->progress = o;
	c->phase = p->phase;
	pthread_mutex_unlock(&c->lock);
	if (admitted) {
		struct migrate_query q;
		pthread_mutex_lock(&c->mctl.lock);
		q = c->mctl.q;
		pthread_mutex_unlock(&c->mctl.lock);
		mig_audit(c->trust, "migrate-start", q.id, "source", q.uri, "admitted by the destination");
	}
}

static const char *result_name(enum migrate_result r)
{
	return r == MIGRATE_COMMITTED ? "committed" : r == MIGRATE_UNCERTAIN ? "uncertain" : "aborted";
}

/* DESIGN.md §4: what every migration reports. */
static json_t *report_json(const struct migrate_report *r, const struct migrate_params *p)
{
	double secs = (double)r->total_ns / 1e9;

	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:b, s:i, s:i, s:i, "
			 "s:b, s:f, s:f, s:f}",
			 "result", result_name(r->result), "id", r->id, "transport", r->transport ? r->transport : "none",
			 "cipher", r->cipher, "ram_bytes", (json_int_t)r->ram_bytes,
			 "total_ms", (double)r->total_ns / 1e6, "downtime_ms", (double)r->downtime_ns / 1e6,
			 "dest_load_ms", (double)r->dest_load_ns / 1e6, "dest_resume_ms", (double)r->dest_resume_ns / 1e6,
			 "bytes", (json_int_t)r->bytes_sent, "bytes_received", (json_int_t)r->bytes_received,
			 "payload_bytes", (json_int_t)r->payload_bytes, "pages_sent", (json_int_t)r->data_pages,
			 "zero_pages", (json_int_t)r->zero_pages, "zero_markers", (json_int_t)r->zero_markers,
			 "rounds", (int)r->rounds, "final_pages", (json_int_t)r->final_pages,
			 "converged", r->converged, "throttle_pct", (int)r->throttle_pct, "channels", (int)r->channels,
			 "downtime_target_ms", (int)p->downtime_ms, "paused_vm", r->paused_vm,
			 "src_cpu_s", r->src_cpu_s, "dest_cpu_s", r->dest_cpu_s,
			 "throughput_mb_s", secs > 0 ? (double)r->bytes_sent / 1e6 / secs : 0.0);
}

/* What the trust phase added to the report. */
static void report_trust(json_t *o, const struct mig_trust *t, const struct migrate_report *r)
{
	json_object_set_new(o, "admit_ms", json_real((double)r->admit_ns / 1e6));
	json_object_set_new(o, "trust_mode", json_string(trust_is_trusted(t->tc) ? "trusted" : "open"));
	json_object_set_new(o, "attested", json_boolean(t->attested));
	json_object_set_new(o, "dest_host", json_string(t->peer));
	json_object_set_new(o, "attest_ms", json_real((double)t->attest_ns / 1e6));
}

static void audit_result(struct vmm_ctx *c, const struct migrate_report *rep, const char *peer, const char *why)
{
	static const char *const events[] = { [MIGRATE_COMMITTED] = "migrate-commit",
					      [MIGRATE_ABORTED] = "migrate-abort",
					      [MIGRATE_UNCERTAIN] = "migrate-uncertain" };
	uint8_t id[16] = { 0 };

	hex_decode(rep->id, id, sizeof(id));
	mig_audit(c->trust, events[rep->result], id, "source", peer, why);
}

static int get_uint(json_t *req, const char *key, uint32_t def, uint32_t min, uint32_t max, uint32_t *out,
		    struct err *e)
{
	json_t *v = json_object_get(req, key);

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return err_set(e, -EINVAL, "\"%s\" must be an integer from %u to %u", key, min, max);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

/* One channel per core, so encryption and copying use every core. */
static uint32_t default_channels(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MIG_MAX_CHANNELS ? MIG_MAX_CHANNELS : (uint32_t)n;
}

/* Asks the destination of an UNCERTAIN migration, with backoff, until it
 * answers or the operator decides. */
static void resolve_loop(struct vmm_ctx *c)
{
	unsigned wait_ms = 1000;

	for (;;) {
		struct migrate_query q;
		enum mig_outcome o;
		char reason[200];
		struct err e = { 0 };
		struct timespec ts;

		pthread_mutex_lock(&c->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		while (!c->resolver_stop && c->uncertain &&
		       pthread_cond_timedwait(&c->cond, &c->lock, &ts) != ETIMEDOUT)
			;
		if (c->resolver_stop || !c->uncertain) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		q = c->mctl.q;
		pthread_mutex_unlock(&c->lock);
		if (wait_ms < 10000)
			wait_ms *= 2;
		if (migrate_query_outcome(&q, 2000, &o, reason, sizeof(reason), &e) < 0)
			continue;
		pthread_mutex_lock(&c->lock);
		if (c->uncertain && !c->resolver_stop) {
			if (o == MIG_OUTCOME_RUNNING) {
				c->uncertain = false;
				mig_audit(c->trust, "migrate-resolved", q.id, "source", NULL, "committed: the destination runs the VM");
				json_object_set_new(c->last_migration, "resolved", json_string("committed: the destination runs the VM"));
				fprintf(stderr, "sealvm: the destination answered: it runs the VM; stopping this copy\n");
				machine_stop(c->m, STOP_MIGRATED, 0, "migrated to the destination (outcome resolved later)");
			} else if (o == MIG_OUTCOME_ABORTED) {
				c->uncertain = false;
				mig_audit(c->trust, "migrate-resolved", q.id, "source", NULL, "aborted: the destination never ran the VM; resumed here");
				json_object_set_new(c->last_migration, "resolved", json_string("aborted: the destination never ran the VM; resumed here"));
				fprintf(stderr, "sealvm: the destination answered: it never ran the VM; resuming it here\n");
				machine_resume(c->m, PAUSE_MIGRATION);
			} else {
				/* GONE is final: it ran there. Only the operator can decide now. */
				snprintf(c->uncertain_why, sizeof(c->uncertain_why),
					 "the destination says the VM %s; resuming here (resume --force) rolls it back to the hand-over point",
					 reason);
				mig_audit(c->trust, "migrate-resolved", q.id, "source", NULL, c->uncertain_why);
				pthread_mutex_unlock(&c->lock);
				break;
			}
		}
		pthread_mutex_unlock(&c->lock);
	}
}

static void *resolver_thread(void *arg)
{
	struct vmm_ctx *c = arg;

	resolve_loop(c);
	pthread_mutex_lock(&c->lock);
	c->resolver_running = false;
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Called with c->lock held, for a migration that just ended UNCERTAIN: a
 * resolver that ended with an earlier migration is joined and a new one started. */
static void start_resolver(struct vmm_ctx *c)
{
	if (c->resolver_started && c->resolver_running)
		return;
	if (c->resolver_started) {
		pthread_join(c->resolver, NULL);   /* it returned already: no wait */
		c->resolver_started = false;
	}
	if (pthread_create(&c->resolver, NULL, resolver_thread, c) == 0) {
		c->resolver_started = true;
		c->resolver_running = true;
	}
}

static json_t *cmd_migrate(struct vmm_ctx *c, const struct ctl_peer *peer, json_t *req, struct err *e)
{
	struct migrate_params p = { 0 };
	struct migrate_report rep;
	struct mig_trust t = { .tc = c->trust, .labels = c->labels, .who = peer_principal(peer),
			       .who_known = peer->known };
	json_t *out;
	int r;

	p.uri = json_string_value(json_object_get(req, "uri"));
	p.tls_dir = json_string_value(json_object_get(req, "tls_dir"));
	if (!p.tls_dir)
		p.tls_dir = c->tls_dir;
	p.insecure = json_is_true(json_object_get(req, "insecure"));
	if (!p.uri) {
		err_set(e, -EINVAL, "migrate needs a \"uri\" (tls://HOST:PORT)");
		return NULL;
	}
	if (!strncmp(p.uri, "tls://", 6) && !p.tls_dir) {
		err_set(e, -EINVAL, "migrate to tls:// needs --tls-dir DIR (here or on `sealvm run`)");
		return NULL;
	}
	if (get_uint(req, "downtime_ms", 50, 0, 60000, &p.downtime_ms, e) < 0 ||
	    get_uint(req, "max_rounds", 30, 1, 1000, &p.max_rounds, e) < 0 ||
	    get_uint(req, "timeout_ms", 30000, 100, 3600000, &p.timeout_ms, e) < 0 ||
	    get_uint(req, "hello_timeout_ms", 10000, 100, 3600000, &p.hello_timeout_ms, e) < 0 ||
	    get_uint(req, "ready_timeout_ms", 5000, 100, 3600000, &p.ready_timeout_ms, e) < 0 ||
	    get_uint(req, "outcome_wait_ms", 10000, 0, 3600000, &p.outcome_wait_ms, e) < 0 ||
	    get_uint(req, "max_throttle", 99, 0, 99, &p.max_throttle, e) < 0 ||
	    get_uint(req, "channels", default_channels(), 1, MIG_MAX_CHANNELS, &p.channels, e) < 0)
		return NULL;
	if (refused(c, "migrate", e))
		return NULL;
	p.trust = &t;
	if (mig_trust_src_transport(&t, p.uri, e) < 0)
		return NULL;
	if (pthread_mutex_trylock(&c->op_lock)) {
		err_set(e, -EBUSY, "migrate refused: a snapshot or another migration is in progress");
		return NULL;
	}
	if (refused(c, "migrate", e)) {
		pthread_mutex_unlock(&c->op_lock);
		return NULL;
	}
	pthread_mutex_lock(&c->lock);
	c->phase = "setup";
	pthread_mutex_unlock(&c->lock);
	r = migrate_source(c->m, &p, &c->mctl, &rep, on_progress, c, e);
	audit_result(c, &rep, t.peer, r < 0 ? e->msg : "the destination runs the VM");
	out = report_json(&rep, &p);
	if (out)
		report_trust(out, &t, &rep);
	pthread_mutex_lock(&c->lock);
	c->phase = NULL;
	json_decref(c->progress);
	c->progress = NULL;
	json_decref(c->last_migration);
	c->last_migration = json_incref(out);
	if (r < 0)
		json_object_set_new(c->last_migration, "error", json_string(e->msg));
	if (rep.result == MIGRATE_UNCERTAIN) {
		c->uncertain = true;
		snprintf(c->uncertain_why, sizeof(c->uncertain_why), "migration %s: %s", rep.id, e->msg);
		start_resolver(c);
	}
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->op_lock);
	if (r < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static json_t *cmd_migrate_cancel(struct vmm_ctx *c, struct err *e)
{
	if (migrate_cancel(&c->mctl, "cancelled by the operator (migrate-cancel)", e) < 0)
		return NULL;
	/* the migration ends (and the VM runs on) once its thread has unwound */
	pthread_mutex_lock(&c->op_lock);
	pthread_mutex_unlock(&c->op_lock);
	return json_pack("{s:s, s:s}", "cancelled", "yes", "state", machine_state_name(machine_state(c->m)));
}

static json_t *cmd_pause(struct vmm_ctx *c, struct err *e)
{
	if (refused(c, "pause", e))
		return NULL;
	if (machine_state(c->m) != MACHINE_RUNNING && machine_state(c->m) != MACHINE_PAUSED) {
		err_set(e, -EINVAL, "machine is %s", machine_state_name(machine_state(c->m)));
		return NULL;
	}
	machine_pause(c->m, PAUSE_OPERATOR);
	return cmd_status(c);
}

static json_t *cmd_resume(struct vmm_ctx *c, const struct ctl_peer *peer, json_t *req, struct err *e)
{
	pthread_mutex_lock(&c->lock);
	if (orphaned(c)) {
		json_t *o;

		if (!want_force(req)) {
			err_set(e, -EBUSY, "resume refused: %s", orphan_why);
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		struct principal who = peer_principal(peer);
		char w[96];

		principal_format(&who, w, sizeof(w));
		if (incoming_orphan_run(c->incoming, w, e) < 0) {
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		fprintf(stderr, "sealvm: OPERATOR FORCED RUN of an orphaned incoming copy: if its source runs the VM, two copies now run\n");
		audit_forced(c, peer, "resume --force", "an orphaned incoming copy (its source went silent before COMMIT)");
		pthread_mutex_unlock(&c->lock);
		o = cmd_status(c);
		json_object_set_new(o, "warning", json_string("forced by the operator: if the source runs this VM, two copies now run"));
		return o;
	}
	if (c->have_vm && !c->phase && c->uncertain) {
		if (!want_force(req)) {
			err_set(e, -EBUSY,
				"resume refused: %s. If you know the destination does not run this VM and never will, `resume --force` runs it here; if it does, two copies of the VM then run",
				c->uncertain_why);
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		c->uncertain = false;
		pthread_cond_broadcast(&c->cond);
		fprintf(stderr, "sealvm: OPERATOR FORCED RESUME of a VM whose migration outcome was uncertain (%s): if the destination runs it, two copies now run\n",
			c->uncertain_why);
		audit_forced(c, peer, "resume --force", c->uncertain_why);
		pthread_mutex_unlock(&c->lock);
		machine_resume(c->m, PAUSE_MIGRATION);
		machine_resume(c->m, PAUSE_OPERATOR);
		{
			json_t *o = cmd_status(c);
			json_object_set_new(o, "warning", json_string("forced by the operator: if the destination runs this VM, two copies now run"));
			return o;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (refused(c, "resume", e))
		return NULL;
	machine_resume(c->m, PAUSE_OPERATOR);
	return cmd_status(c);
}

/* The check that a quit loses nothing and the stop itself happen under op_lock,
 * which every migration and snapshot holds from start to end: no migration can
 * start, reach COMMIT or end UNCERTAIN between the two (model/handover.pml,
 * property "quit"). */
static json_t *cmd_quit(struct vmm_ctx *c, const struct ctl_peer *peer, json_t *req, struct err *e)
{
	const char *note = NULL, *forced = NULL;
	bool force = want_force(req), have_op = false;

	pthread_mutex_lock(&c->lock);
	if (!c->have_vm) {
		struct incoming *in = c->incoming;
		pthread_mutex_unlock(&c->lock);
		if (in && !incoming_cancel(in, "quit from the control socket")) {
			err_set(e, -EBUSY, "quit refused: the incoming VM is being started");
			return NULL;
		}
		return json_pack("{s:s}", "note", "stopped waiting for an incoming VM");
	}
	pthread_mutex_unlock(&c->lock);

	/* A migration or snapshot runs: cancel a migration still before COMMIT, then
	 * wait for it (or the snapshot) to unwind. */
	while (pthread_mutex_trylock(&c->op_lock)) {
		int r = migrate_cancel(&c->mctl, "cancelled: the operator asked the VM to quit", NULL);
		if (r == -EBUSY) {
			if (!force) {
				err_set(e, -EBUSY,
					"quit refused: COMMIT was sent and the outcome is not known; if the destination never ran the VM, quitting loses it. `quit --force` quits anyway");
				return NULL;
			}
			forced = "COMMIT was sent and the outcome was not known yet";
			break;
		}
		if (r == 0) {
			note = "the migration in progress was aborted before COMMIT (the destination discarded its copy, which never ran); the VM then quit here";
			pthread_mutex_lock(&c->op_lock);
			break;
		}
		usleep(10000);   /* starting or ending, or a snapshot: look again */
	}
	have_op = !forced;
	pthread_mutex_lock(&c->lock);
	if (orphaned(c) && !force) {
		err_set(e, -EBUSY, "quit refused (`quit --force` discards it): this may be the only copy of the VM: %s", orphan_why);
		pthread_mutex_unlock(&c->lock);
		if (have_op)
			pthread_mutex_unlock(&c->op_lock);
		return NULL;
	}
	if (orphaned(c))
		audit_forced(c, peer, "quit --force", "an orphaned incoming copy (its source went silent before COMMIT)");
	if (c->uncertain && !force) {
		err_set(e, -EBUSY,
			"quit refused (`quit --force` quits anyway): if the destination never ran the VM, quitting loses it; the outcome of the last migration is uncertain: %s",
			c->uncertain_why);
		pthread_mutex_unlock(&c->lock);
		if (have_op)
			pthread_mutex_unlock(&c->op_lock);
		return NULL;
	}
	if (c->uncertain) {
		fprintf(stderr, "sealvm: OPERATOR FORCED QUIT of a VM whose migration outcome was uncertain (%s)\n",
			c->uncertain_why);
		audit_forced(c, peer, "quit --force", c->uncertain_why);
	} else if (forced) {
		audit_forced(c, peer, "quit --force", forced);
	}
	c->uncertain = false;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	machine_stop(c->m, STOP_QUIT, 0, "quit from the control socket");
	if (have_op)
		pthread_mutex_unlock(&c->op_lock);
	return note ? json_pack("{s:s}", "note", note) : json_object();
}

json_t *vmm_handle(void *opaque, const struct ctl_peer *peer, const char *cmd, json_t *req, struct err *e)
{
	struct vmm_ctx *c = opaque;

	if (!strcmp(cmd, "status"))
		return cmd_status(c);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(c);
	if (!strcmp(cmd, "quit"))
		return cmd_quit(c, peer, req, e);
	if (!strcmp(cmd, "pause"))
		return cmd_pause(c, e);
	if (!strcmp(cmd, "resume"))
		return cmd_resume(c, peer, req, e);
	if (!strcmp(cmd, "snapshot"))
		return cmd_snapshot(c, peer, req, e);
	if (!strcmp(cmd, "migrate"))
		return cmd_migrate(c, peer, req, e);
	if (!strcmp(cmd, "migrate-cancel"))
		return cmd_migrate_cancel(c, e);
	err_set(e, -EINVAL, "unknown command \"%s\"", cmd);
	return NULL;
}
