/* The guard's control commands (JSON lines, control/control.h), for `sealvm ctl`:
 *
 *   status        trusted or untrusted (since when, why), rounds, timings, CPU cost
 *   measurements  the last measurement of each watched process and of the host
 *   evacuations   the VMs moved away, with timings (filled by the evacuation, phase 2)
 *   quit          stop the guard */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guard/guard_impl.h"
#include "guard/text.h"
#include "trust/host.h"
#include "util/hex.h"

static json_t *jstr(const char *s)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", s);
	text_sanitize(buf);
	return json_string(buf);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static json_t *status(struct guard *g)
{
	size_t n = 0;
	json_t *o;

	for (struct watched *w = g->w; w; w = w->next)
		n += !w->self;
	o = json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "state", g->untrusted ? "untrusted" : "trusted", "host",
		      jstr(g->hm->host.name), "interval_ms", (json_int_t)g->o.interval_ms, "rounds", (json_int_t)g->rounds,
		      "overruns", (json_int_t)g->overruns, "vmms", (json_int_t)n, "failures", (json_int_t)g->failures,
		      "started_ms", (json_int_t)g->started_ms);
	if (g->untrusted)
		json_object_set_new(o, "untrusted",
				    json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:o, s:o, s:b}", "time", g->mark.time, "at_ms",
					      (json_int_t)g->untrusted_at_ms, "round", (json_int_t)g->untrusted_round,
					      "round_start_ms", (json_int_t)g->untrusted_round_start_ms,
					      "prev_round_start_ms", (json_int_t)g->untrusted_prev_round_start_ms, "check",
					      g->mark.check, "target", jstr(g->mark.target), "reason", jstr(g->mark.reason),
					      "restored", g->untrusted_restored));
	json_object_set_new(o, "round_ms",
			    json_pack("{s:f, s:f, s:f, s:I}", "last", ms(g->last_round_ns), "mean",
				      g->rounds ? ms(g->sum_round_ns) / (double)g->rounds : 0.0, "max", ms(g->max_round_ns),
				      "last_start_ms", (json_int_t)g->last_round_start_ms));
	/* steady state: the first round opens and reads every file, and is reported apart */
	{
		double steady = g->rounds > 1 ? ms(g->cpu_ns - g->first_cpu_ns) / (double)(g->rounds - 1) : 0.0;
		json_object_set_new(o, "cpu_ms_per_round", json_real(steady));
		if (g->o.interval_ms)
			json_object_set_new(o, "cpu_fraction", json_real(steady / (double)g->o.interval_ms));
		json_object_set_new(o, "first_round", json_pack("{s:f, s:f}", "ms", ms(g->first_round_ns), "cpu_ms",
								  ms(g->first_cpu_ns)));
	}
	json_object_set_new(o, "files", json_pack("{s:I, s:I, s:I}", "modules", (json_int_t)g->nmodules, "rehashed_bytes",
						  (json_int_t)g->rehashed_bytes, "quotes", (json_int_t)g->quotes));
	json_object_set_new(o, "host_ok", json_boolean(g->host.ok));
	if (g->note[0])
		json_object_set_new(o, "note", jstr(g->note));
	return o;
}

static json_t *proc_json(const struct watched *w)
{
	const struct proc_result *r = &w->last;
	char hex[65];
	json_t *o;

	hex_encode(r->exe_sha256, 32, hex);
	o = json_pack("{s:o, s:i, s:b, s:b, s:s, s:I, s:I, s:I}", "socket", jstr(w->self ? "(guard)" : w->sock), "pid",
		      (int)w->pid, "ok", r->ok, "self", w->self, "exe_sha256", hex, "measurements", (json_int_t)w->measured,
		      "failures", (json_int_t)w->failures, "sweeps", (json_int_t)w->sweeps);
	if (!r->ok) {
		json_object_set_new(o, "check", json_string(r->check));
		json_object_set_new(o, "reason", jstr(r->reason));
	}
	if (r->note[0])
		json_object_set_new(o, "note", jstr(r->note));
	if (w->socket_gone)
		json_object_set_new(o, "socket_gone", json_true());
	json_object_set_new(o, "ms", json_real(ms(r->ns)));
	json_object_set_new(o, "modules", json_integer((json_int_t)r->modules));
	json_object_set_new(o, "mappings", json_integer((json_int_t)r->mappings));
	json_object_set_new(o, "pages_scanned", json_integer((json_int_t)r->pages_scanned));
	json_object_set_new(o, "pages_copied", json_integer((json_int_t)r->pages_copied));
	json_object_set_new(o, "bytes_read", json_integer((json_int_t)r->bytes_read));
	json_object_set_new(o, "bytes_compared", json_integer((json_int_t)r->bytes_compared));
	json_object_set_new(o, "bytes_swept", json_integer((json_int_t)r->bytes_swept));
	json_object_set_new(o, "bytes_unchanged", json_integer((json_int_t)r->bytes_unchanged));
	json_object_set_new(o, "relocs", json_pack("{s:I, s:I, s:I}", "predicted", (json_int_t)r->relocs_predicted,
						   "validated", (json_int_t)r->relocs_validated, "skipped",
						   (json_int_t)r->relocs_skipped));
	return o;
}

static json_t *measurements(struct guard *g)
{
	json_t *a = json_array(), *h;

	for (struct watched *w = g->w; w; w = w->next)
		json_array_append_new(a, proc_json(w));
	h = json_pack("{s:b, s:b, s:f, s:f, s:i, s:b}", "ok", g->host.ok, "tpm_checked", g->host.tpm_checked, "ms",
		      ms(g->host.ns), "tpm_ms", ms(g->host.tpm_ns), "trust_level", g->host.trust_level, "guard_alarm",
		      g->host.guard_alarm);
	if (!g->host.ok) {
		json_object_set_new(h, "check", json_string(g->host.check));
		json_object_set_new(h, "reason", jstr(g->host.reason));
	}
	return json_pack("{s:I, s:o, s:o}", "round", (json_int_t)g->rounds, "processes", a, "host", h);
}

json_t *guard_handle(void *opaque, const struct ctl_peer *peer, const char *cmd, json_t *req, struct err *e)
{
	struct guard *g = opaque;
	json_t *o = NULL;

	(void)req;
	if (!strcmp(cmd, "quit")) {
		atomic_store(&g->stop, true);
		if (g->wakefd >= 0) {
			uint64_t one = 1;
			if (write(g->wakefd, &one, sizeof(one)) < 0) {
				/* already awake */
			}
		}
		return json_pack("{s:s}", "state", "stopping");
	}
	pthread_mutex_lock(&g->lock);
	if (!strcmp(cmd, "status"))
		o = status(g);
	else if (!strcmp(cmd, "measurements"))
		o = measurements(g);
	else if (!strcmp(cmd, "evacuations"))
		o = json_pack("{s:O}", "evacuations", g->evacuations);
	pthread_mutex_unlock(&g->lock);
	if (!o)
		err_set(e, -EINVAL, "unknown command \"%s\" (the guard knows status, measurements, evacuations, quit)", cmd);
	return o;
}
