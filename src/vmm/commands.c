#include "vmm/commands.h"

#include <string.h>

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
	return json_pack("{s:s, s:I, s:I}", "state", machine_state_name(machine_state(m)),
			 "ram_bytes", (json_int_t)m->vm.ram_size,
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
	machine_pause(m);
	r = snapshot_save(m, file, &st, e);
	if (s == MACHINE_RUNNING)
		machine_resume(m);
	pthread_mutex_unlock(&c->op_lock);
	if (r < 0)
		return NULL;
	return json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:f}", "file", file, "bytes", (json_int_t)st.bytes,
			 "data_pages", (json_int_t)st.pages.data_pages, "zero_pages",
			 (json_int_t)st.pages.zero_pages, "write_ms", (double)st.ns / 1e6,
			 "paused_ms", (double)(now_ns() - t0) / 1e6, "gb_per_s",
			 gbps(m->vm.ram_size, st.ns));
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
		machine_pause(m);
		return cmd_status(m);
	}
	if (!strcmp(cmd, "resume")) {
		machine_resume(m);
		return cmd_status(m);
	}
	if (!strcmp(cmd, "quit")) {
		machine_stop(m, STOP_QUIT, 0, "quit from the control socket");
		return json_object();
	}
	if (!strcmp(cmd, "snapshot"))
		return cmd_snapshot(c, req, e);
	err_set(e, -EINVAL, "unknown command \"%s\"", cmd);
	return NULL;
}
