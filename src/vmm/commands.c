#include "vmm/commands.h"

#include <string.h>
#include <unistd.h>

#include "migrate/migrate.h"
#include "migrate/proto.h"
#include "vmm/snapshot.h"

void vmm_ctx_init(struct vmm_ctx *c, struct machine *m, const char *tls_dir)
{
	memset(c, 0, sizeof(*c));
	c->m = m;
	c->tls_dir = tls_dir;
	pthread_mutex_init(&c->op_lock, NULL);
	pthread_mutex_init(&c->progress_lock, NULL);
}

void vmm_ctx_fini(struct vmm_ctx *c)
{
	json_decref(c->last_migration);
	json_decref(c->progress);
	pthread_mutex_destroy(&c->op_lock);
	pthread_mutex_destroy(&c->progress_lock);
}

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0.0; /* bytes per ns == GB/s */
}

static json_t *cmd_status(struct machine *m)
{
	return json_pack("{s:s, s:I, s:i, s:I}", "state", machine_state_name(machine_state(m)),
			 "ram_bytes", (json_int_t)m->vm.ram_size, "vcpus", m->nr_vcpus,
			 "uptime_ms", (json_int_t)((now_ns() - m->started_ns) / 1000000));
}

static json_t *cmd_stats(struct vmm_ctx *c)
{
	struct machine *m = c->m;
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "state", machine_state_name(machine_state(m)),
			      "vcpu_exits", (json_int_t)m->exits, "io_exits", (json_int_t)m->io_exits,
			      "serial_tx_bytes", (json_int_t)m->serial.tx_bytes,
			      "unhandled_port_accesses", (json_int_t)m->bus.unhandled);

	pthread_mutex_lock(&c->progress_lock);
	if (c->progress)
		json_object_set(o, "migration", c->progress);
	else if (c->last_migration)
		json_object_set(o, "migration", c->last_migration);
	pthread_mutex_unlock(&c->progress_lock);
	return o;
}

static json_t *cmd_snapshot(struct vmm_ctx *c, json_t *req, struct err *e)
{
	struct machine *m = c->m;
	struct snapshot_stats st;
	const char *file = json_string_value(json_object_get(req, "file"));
	enum machine_run_state s;
	uint64_t t0;
	int r;

	if (!file || !*file) {
		err_set(e, -EINVAL, "snapshot needs a \"file\"");
		return NULL;
	}
	pthread_mutex_lock(&c->op_lock);
	s = machine_state(m);
	if (s != MACHINE_RUNNING && s != MACHINE_PAUSED) {
		pthread_mutex_unlock(&c->op_lock);
		err_set(e, -EINVAL, "cannot snapshot a machine that is %s", machine_state_name(s));
		return NULL;
	}
	t0 = now_ns();
	machine_pause(m, PAUSE_SNAPSHOT);
	r = snapshot_save(m, file, &st, e);
	machine_resume(m, PAUSE_SNAPSHOT);
	pthread_mutex_unlock(&c->op_lock);
	if (r < 0)
		return NULL;
	return json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:f}", "file", file, "bytes", (json_int_t)st.bytes,
			 "data_pages", (json_int_t)st.pages.data_pages, "zero_pages",
			 (json_int_t)st.pages.zero_pages, "write_ms", (double)st.ns / 1e6,
			 "paused_ms", (double)(now_ns() - t0) / 1e6, "gb_per_s",
			 gbps(m->vm.ram_size, st.ns));
}

static void on_progress(void *opaque, const struct migrate_progress *p)
{
	struct vmm_ctx *c = opaque;
	json_t *o = json_pack("{s:s, s:i, s:I, s:f, s:i}", "phase", p->phase, "round", (int)p->round,
			      "remaining_pages", (json_int_t)p->remaining_pages, "rate_mb_s", p->rate_mbps,
			      "throttle_pct", (int)p->throttle_pct);

	pthread_mutex_lock(&c->progress_lock);
	json_decref(c->progress);
	c->progress = o;
	pthread_mutex_unlock(&c->progress_lock);
}

static const char *result_name(enum migrate_result r)
{
	return r == MIGRATE_COMMITTED ? "committed" : r == MIGRATE_UNCERTAIN ? "uncertain" : "aborted";
}

/* DESIGN.md §4: what every migration reports. */
static json_t *report_json(const struct migrate_report *r, const struct migrate_params *p)
{
	double secs = (double)r->total_ns / 1e9;

	return json_pack("{s:s, s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:b, s:i, s:i, s:i, "
			 "s:f, s:f, s:f}",
			 "result", result_name(r->result), "transport", r->transport ? r->transport : "none",
			 "cipher", r->cipher, "ram_bytes", (json_int_t)r->ram_bytes,
			 "total_ms", (double)r->total_ns / 1e6, "downtime_ms", (double)r->downtime_ns / 1e6,
			 "dest_load_ms", (double)r->dest_load_ns / 1e6, "dest_resume_ms", (double)r->dest_resume_ns / 1e6,
			 "bytes", (json_int_t)r->bytes_sent, "bytes_received", (json_int_t)r->bytes_received,
			 "payload_bytes", (json_int_t)r->payload_bytes, "pages_sent", (json_int_t)r->data_pages,
			 "zero_pages", (json_int_t)r->zero_pages, "zero_markers", (json_int_t)r->zero_markers,
			 "rounds", (int)r->rounds, "final_pages", (json_int_t)r->final_pages,
			 "converged", r->converged, "throttle_pct", (int)r->throttle_pct, "channels", (int)r->channels,
			 "downtime_target_ms", (int)p->downtime_ms,
			 "src_cpu_s", r->src_cpu_s, "dest_cpu_s", r->dest_cpu_s,
			 "throughput_mb_s", secs > 0 ? (double)r->bytes_sent / 1e6 / secs : 0.0);
}

static int get_uint(json_t *req, const char *key, uint32_t def, uint32_t max, uint32_t *out, struct err *e)
{
	json_t *v = json_object_get(req, key);

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return err_set(e, -EINVAL, "\"%s\" must be an integer from 0 to %u", key, max);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

/* One channel per core, so encryption and copying use every core. */
static uint32_t default_channels(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MIG_MAX_CHANNELS ? MIG_MAX_CHANNELS : (uint32_t)n;
}

static json_t *cmd_migrate(struct vmm_ctx *c, json_t *req, struct err *e)
{
	struct migrate_params p = { 0 };
	struct migrate_report rep;
	json_t *out;
	int r;

	p.uri = json_string_value(json_object_get(req, "uri"));
	p.tls_dir = json_string_value(json_object_get(req, "tls_dir"));
	if (!p.tls_dir)
		p.tls_dir = c->tls_dir;
	if (!p.uri) {
		err_set(e, -EINVAL, "migrate needs a \"uri\" (tls://HOST:PORT)");
		return NULL;
	}
	if (json_object_get(req, "channels") && json_integer_value(json_object_get(req, "channels")) < 1) {
		err_set(e, -EINVAL, "\"channels\" must be at least 1");
		return NULL;
	}
	if (!strncmp(p.uri, "tls://", 6) && !p.tls_dir) {
		err_set(e, -EINVAL, "migrate to tls:// needs --tls-dir DIR (here or on `sealvm run`)");
		return NULL;
	}
	if (get_uint(req, "downtime_ms", 50, 60000, &p.downtime_ms, e) < 0 ||
	    get_uint(req, "max_rounds", 30, 1000, &p.max_rounds, e) < 0 ||
	    get_uint(req, "timeout_ms", 30000, 3600000, &p.timeout_ms, e) < 0 ||
	    get_uint(req, "outcome_wait_ms", 10000, 3600000, &p.outcome_wait_ms, e) < 0 ||
	    get_uint(req, "max_throttle", 99, 99, &p.max_throttle, e) < 0 ||
	    get_uint(req, "channels", default_channels(), MIG_MAX_CHANNELS, &p.channels, e) < 0)
		return NULL;
	if (pthread_mutex_trylock(&c->op_lock)) {
		err_set(e, -EBUSY, "another snapshot or migration is in progress");
		return NULL;
	}
	r = migrate_source(c->m, &p, &rep, on_progress, c, e);
	out = report_json(&rep, &p);
	pthread_mutex_lock(&c->progress_lock);
	json_decref(c->progress);
	c->progress = NULL;
	json_decref(c->last_migration);
	c->last_migration = json_incref(out);
	if (r < 0)
		json_object_set_new(c->last_migration, "error", json_string(e->msg));
	pthread_mutex_unlock(&c->progress_lock);
	pthread_mutex_unlock(&c->op_lock);
	if (r < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

json_t *vmm_handle(void *opaque, const char *cmd, json_t *req, struct err *e)
{
	struct vmm_ctx *c = opaque;
	struct machine *m = c->m;

	if (!strcmp(cmd, "status"))
		return cmd_status(m);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(c);
	if (!strcmp(cmd, "pause")) {
		if (machine_state(m) != MACHINE_RUNNING && machine_state(m) != MACHINE_PAUSED) {
			err_set(e, -EINVAL, "machine is %s", machine_state_name(machine_state(m)));
			return NULL;
		}
		machine_pause(m, PAUSE_OPERATOR);
		return cmd_status(m);
	}
	if (!strcmp(cmd, "resume")) {
		machine_resume(m, PAUSE_OPERATOR);
		return cmd_status(m);
	}
	if (!strcmp(cmd, "quit")) {
		machine_stop(m, STOP_QUIT, 0, "quit from the control socket");
		return json_object();
	}
	if (!strcmp(cmd, "snapshot"))
		return cmd_snapshot(c, req, e);
	if (!strcmp(cmd, "migrate"))
		return cmd_migrate(c, req, e);
	err_set(e, -EINVAL, "unknown command \"%s\"", cmd);
	return NULL;
}
