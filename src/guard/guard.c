#include "guard/guard.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control/control.h"
#include "guard/guard_impl.h"
#include "guard/text.h"
#include "trust/audit.h"
#include "trust/host.h"
#include "util/hex.h"

extern char **environ;

static atomic_bool *signal_stop;
static int signal_wakefd = -1;

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int64_t guard_realtime_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void wake(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* the counter is full: the loop is awake anyway */
	}
}

static void on_signal(int sig)
{
	(void)sig;
	if (signal_stop)
		atomic_store(signal_stop, true);
	wake(signal_wakefd);
}

/* ---- the audit log ---- */

static void audit(struct guard *g, const char *event, json_t *fields)
{
	struct err e;

	if (!g->tc || !g->tc->audit) {
		json_decref(fields);
		return;
	}
	if (audit_append(g->tc->audit, event, fields, &e) < 0)
		fprintf(stderr, "sealvm guard: audit log: %s\n", e.msg);
	json_decref(fields);
}

static json_t *jstr(const char *s)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", s);
	text_sanitize(buf);
	return json_string(buf);
}

static const char *target_of(const struct watched *w, char *buf, size_t n)
{
	if (w->self)
		snprintf(buf, n, "guard (pid %d)", (int)w->pid);
	else
		snprintf(buf, n, "%s (pid %d)", w->sock, (int)w->pid);
	return buf;
}

/* ---- the alarm ---- */

static void reap_alarms(struct guard *g)
{
	for (size_t i = 0; i < sizeof(g->alarm_pids) / sizeof(g->alarm_pids[0]); i++)
		if (g->alarm_pids[i] > 0 && waitpid(g->alarm_pids[i], NULL, WNOHANG) == g->alarm_pids[i])
			g->alarm_pids[i] = 0;
}

/* --alarm-cmd PROG CHECK TARGET REASON: no shell, so the reason cannot inject one. */
static void run_alarm_cmd(struct guard *g, const struct guard_mark *m)
{
	char *argv[] = { (char *)g->o.alarm_cmd, (char *)m->check, (char *)m->target, (char *)m->reason, NULL };
	pid_t pid;

	if (!g->o.alarm_cmd)
		return;
	if (posix_spawn(&pid, g->o.alarm_cmd, NULL, NULL, argv, environ) != 0) {
		fprintf(stderr, "sealvm guard: cannot run --alarm-cmd %s\n", g->o.alarm_cmd);
		return;
	}
	for (size_t i = 0; i < sizeof(g->alarm_pids) / sizeof(g->alarm_pids[0]); i++)
		if (g->alarm_pids[i] <= 0) {
			g->alarm_pids[i] = pid;
			return;
		}
	waitpid(pid, NULL, 0);
}

static void untrust(struct guard *g, const char *target, const char *check, const char *reason)
{
	struct guard_mark m = { 0 };
	bool extended = false;
	struct err e;
	json_t *o;

	mark_now(m.time, sizeof(m.time));
	snprintf(m.check, sizeof(m.check), "%s", check);
	snprintf(m.target, sizeof(m.target), "%s", target);
	snprintf(m.reason, sizeof(m.reason), "%s", reason);
	text_sanitize(m.target);
	text_sanitize(m.reason);
	pthread_mutex_lock(&g->lock);
	g->untrusted = true;
	g->mark = m;
	g->untrusted_at_ms = guard_realtime_ms();
	g->untrusted_round = g->rounds;
	g->untrusted_round_start_ms = g->cur_round_start_ms;
	g->untrusted_prev_round_start_ms = g->prev_round_start_ms;
	pthread_mutex_unlock(&g->lock);
	fprintf(stderr, "sealvm guard: ALARM: this host is now UNTRUSTED: %s: %s: %s\n", target, check, m.reason);
	o = json_pack("{s:o, s:s, s:o}", "target", jstr(target), "check", check, "reason", jstr(m.reason));
	if (mark_set(g->hm->state_dir, g->hm->host.tpm, &m, &extended, &e) < 0) {
		fprintf(stderr, "sealvm guard: could not mark the host untrusted in its TPM: %s\n", e.msg);
		json_object_set_new(o, "mark_error", jstr(e.msg));
	}
	json_object_set_new(o, "pcr_extended", json_boolean(extended));
	audit(g, "guard-untrusted", o);
	run_alarm_cmd(g, &m);
}

/* A failed measurement: recorded (once while it stays the same), then the host is
 * marked untrusted if it is not yet. w: the process (NULL: the host or the guard's
 * files); target names it. */
static void failure(struct guard *g, struct watched *w, const char *target, const char *check, const char *reason)
{
	char *last_check = w ? w->fail_check : g->host_fail_check;
	char *last_reason = w ? w->fail_reason : g->host_fail_reason;

	pthread_mutex_lock(&g->lock);
	g->failures++;
	g->sum_failures++;
	if (w)
		w->failures++;
	if (!strcmp(last_check, check) && !strcmp(last_reason, reason)) {
		if (w)
			w->repeats++;
		pthread_mutex_unlock(&g->lock);
		return;
	}
	snprintf(last_check, sizeof(g->host_fail_check), "%s", check);
	snprintf(last_reason, sizeof(g->host_fail_reason), "%s", reason);
	pthread_mutex_unlock(&g->lock);
	fprintf(stderr, "sealvm guard: measurement failed: %s: %s: %s\n", target, check, reason);
	audit(g, "guard-fail",
	      json_pack("{s:o, s:i, s:s, s:o, s:I}", "target", jstr(target), "pid", w ? (int)w->pid : 0, "check", check,
			"reason", jstr(reason), "round", (json_int_t)g->rounds));
	if (!g->untrusted)
		untrust(g, target, check, reason);
}

static void host_failure(struct guard *g, const char *check, const char *reason)
{
	char target[128];

	snprintf(target, sizeof(target), "host %s", g->hm->host.name);
	failure(g, NULL, target, check, reason);
}

static void proc_failure(struct guard *g, struct watched *w, const char *check, const char *reason)
{
	char target[256];

	failure(g, w, target_of(w, target, sizeof(target)), check, reason);
}

/* ---- finding the VMM processes ---- */

/* The pid of the process listening on a control socket: SO_PEERCRED of a connection
 * gives the credentials the listener had when it called listen(). */
static pid_t socket_pid(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd;
	pid_t pid = -1;

	if (strlen(path) >= sizeof(a.sun_path))
		return -1;
	memcpy(a.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 &&
	    cr.pid > 0)
		pid = cr.pid;
	close(fd);
	return pid;
}

static void add_watched(struct guard *g, struct watched *w)
{
	pthread_mutex_lock(&g->lock);
	w->next = g->w;
	g->w = w;
	pthread_mutex_unlock(&g->lock);
}

static void drop_watched(struct guard *g, struct watched *w, const char *why)
{
	char target[256];

	pthread_mutex_lock(&g->lock);
	for (struct watched **pp = &g->w; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	pthread_mutex_unlock(&g->lock);
	audit(g, "guard-unwatch",
	      json_pack("{s:o, s:i, s:s, s:I, s:I}", "target", jstr(target_of(w, target, sizeof(target))), "pid",
			(int)w->pid, "why", why, "measurements", (json_int_t)w->measured, "failures",
			(json_int_t)w->failures));
	procmeas_close(w->p);
	free(w);
}

static struct watched *watch(struct guard *g, const char *sock, const struct stat *st, pid_t pid, bool self)
{
	struct watched *w = calloc(1, sizeof(*w));
	struct err e;

	if (!w)
		return NULL;
	if (procmeas_open(pid, &w->p, &e) < 0) {
		bool raced = e.code == -ESRCH || e.code == -ENOENT;
		free(w);
		if (!raced) {
			/* a VMM the guard cannot measure is a measurement that failed */
			char target[256];
			snprintf(target, sizeof(target), "%s (pid %d)", self ? "guard" : sock, (int)pid);
			failure(g, NULL, target, "open", e.msg);
		}
		return NULL;
	}
	snprintf(w->sock, sizeof(w->sock), "%s", sock);
	w->sock_dev = st ? st->st_dev : 0;
	w->sock_ino = st ? st->st_ino : 0;
	w->pid = pid;
	w->self = self;
	w->seen = true;
	w->first_ms = guard_realtime_ms();
	add_watched(g, w);
	return w;
}

static void discover(struct guard *g)
{
	DIR *d = opendir(g->o.vms_dir);
	struct dirent *de;

	for (struct watched *w = g->w; w; w = w->next)
		w->seen = w->self;
	if (!d) {
		fprintf(stderr, "sealvm guard: cannot read --vms %s: %s\n", g->o.vms_dir, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
		struct watched *w;
		struct stat st;
		pid_t pid;

		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", g->o.vms_dir, de->d_name) >= (int)sizeof(path))
			continue;
		if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
			continue;
		for (w = g->w; w; w = w->next)
			if (!w->self && !strcmp(w->sock, path))
				break;
		if (w && w->sock_dev == st.st_dev && w->sock_ino == st.st_ino) {
			w->seen = true;
			w->socket_gone = false;
			continue;
		}
		pid = socket_pid(path);
		if (pid <= 0)
			continue;       /* nothing listening (yet, or any more) */
		if (w && w->pid == pid) {
			/* the same process re-created its socket */
			w->sock_dev = st.st_dev;
			w->sock_ino = st.st_ino;
			w->seen = true;
			continue;
		}
		watch(g, path, &st, pid, false);
	}
	closedir(d);
	/* a removed socket does not end the watch: the process is measured while it lives */
	for (struct watched *w = g->w; w; w = w->next)
		if (!w->seen)
			w->socket_gone = true;
}

/* ---- one round ---- */

static void announce(struct guard *g, struct watched *w)
{
	char target[256], hex[65];

	hex_encode(w->last.exe_sha256, 32, hex);
	audit(g, "guard-watch",
	      json_pack("{s:o, s:i, s:o, s:s, s:I, s:I, s:I, s:f}", "target", jstr(target_of(w, target, sizeof(target))),
			"pid", (int)w->pid, "exe", jstr(w->p->exe_path), "exe_sha256", hex, "modules",
			(json_int_t)w->last.modules, "mappings", (json_int_t)w->last.mappings, "bytes_compared",
			(json_int_t)w->last.bytes_compared, "ms", (double)w->last.ns / 1e6));
	w->announced = true;
}

static void measure_host(struct guard *g)
{
	struct host_result r;
	bool quote = g->o.tpm_every <= 1 || g->rounds % g->o.tpm_every == 0;

	hostmeas_run(g->hm, quote, &r);
	if (r.config_changed) {
		audit(g, "guard-config-update", json_pack("{s:o, s:I, s:I}", "note", jstr(r.note), "table_serial",
							  (json_int_t)g->hm->table->serial, "policy_serial",
							  (json_int_t)policy_serial(g->hm->policy)));
	}
	g->ref.table = g->hm->table;
	g->ref.host = hostmeas_self(g->hm);
	pthread_mutex_lock(&g->lock);
	if (!r.tpm_checked) {
		/* keep the last quote's figures */
		r.tpm_ns = g->host.tpm_ns;
		r.trust_level = g->host.trust_level;
		r.guard_alarm = g->host.guard_alarm;
	}
	g->host = r;
	if (r.note[0])
		snprintf(g->note, sizeof(g->note), "%s", r.note);
	if (r.ok)
		g->host_fail_check[0] = g->host_fail_reason[0] = 0;
	pthread_mutex_unlock(&g->lock);
	if (!r.ok)
		host_failure(g, r.check, r.reason);
}

static void summary(struct guard *g, bool final)
{
	size_t n = 0;
	json_t *o;

	pthread_mutex_lock(&g->lock);
	for (struct watched *w = g->w; w; w = w->next)
		n++;
	o = json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:b, s:b, s:b}", "rounds", (json_int_t)g->sum_rounds, "measurements",
		      (json_int_t)g->sum_measurements, "failures", (json_int_t)g->sum_failures, "processes",
		      (json_int_t)n, "round_ms_mean", g->sum_rounds ? (double)g->sum_ns / (double)g->sum_rounds / 1e6 : 0.0,
		      "round_ms_max", (double)g->sum_max_ns / 1e6, "host_ok", g->host.ok, "untrusted", g->untrusted,
		      "final", final);
	g->sum_rounds = g->sum_measurements = g->sum_failures = g->sum_max_ns = g->sum_ns = 0;
	g->sum_since_ms = guard_realtime_ms();
	pthread_mutex_unlock(&g->lock);
	audit(g, "guard-summary", o);
}

static void one_round(struct guard *g)
{
	uint64_t t0 = mono_ns(), c0 = thread_cpu_ns(), hashed = 0, measured = 0;
	int64_t start_ms = guard_realtime_ms();
	struct watched *next;
	struct err e;

	pthread_mutex_lock(&g->lock);
	g->prev_round_start_ms = g->cur_round_start_ms;
	g->cur_round_start_ms = start_ms;
	pthread_mutex_unlock(&g->lock);
	reap_alarms(g);
	measure_host(g);
	discover(g);
	for (struct watched *w = g->w; w; w = next) {
		struct proc_result r;
		next = w->next;
		procmeas_run(w->p, &g->mods, &g->ref, g->rounds, &r);
		pthread_mutex_lock(&g->lock);
		w->last = r;
		w->measured++;
		w->sweeps = w->p->sweeps;
		if (r.ok && !r.gone)
			w->fail_check[0] = w->fail_reason[0] = 0;
		pthread_mutex_unlock(&g->lock);
		measured++;
		if (r.gone)
			drop_watched(g, w, "the process ended");
		else if (!r.ok)
			proc_failure(g, w, r.check, r.reason);
		else if (!w->announced)
			announce(g, w);
	}
	if (module_set_rehash(&g->mods, g->o.rehash_bytes, &hashed, &e) < 0)
		host_failure(g, "library", e.msg);
	module_set_prune(&g->mods, g->rounds);
	pthread_mutex_lock(&g->lock);
	g->rounds++;
	g->last_round_ns = mono_ns() - t0;
	g->last_round_start_ms = start_ms;
	g->sum_round_ns += g->last_round_ns;
	if (g->last_round_ns > g->max_round_ns)
		g->max_round_ns = g->last_round_ns;
	g->cpu_ns += thread_cpu_ns() - c0;
	if (g->rounds == 1) {
		g->first_round_ns = g->last_round_ns;
		g->first_cpu_ns = g->cpu_ns;
	}
	g->rehashed_bytes += hashed;
	g->quotes = g->hm->quotes;
	g->nmodules = g->mods.n;
	g->sum_rounds++;
	g->sum_measurements += measured;
	g->sum_ns += g->last_round_ns;
	if (g->last_round_ns > g->sum_max_ns)
		g->sum_max_ns = g->last_round_ns;
	pthread_mutex_unlock(&g->lock);
	if (guard_realtime_ms() - g->sum_since_ms >= (int64_t)g->o.audit_every_ms)
		summary(g, false);
}

/* Sleeps until the deadline (absolute, CLOCK_MONOTONIC ns), a stop, or a wake-up. */
static void sleep_until(struct guard *g, uint64_t deadline)
{
	for (;;) {
		uint64_t now = mono_ns();
		struct pollfd p = { .fd = g->wakefd, .events = POLLIN };
		struct timespec ts;
		uint64_t left;

		if (atomic_load(&g->stop) || now >= deadline)
			return;
		left = deadline - now;
		ts.tv_sec = (time_t)(left / 1000000000ull);
		ts.tv_nsec = (long)(left % 1000000000ull);
		if (ppoll(&p, 1, &ts, NULL) > 0) {
			uint64_t v;
			if (read(g->wakefd, &v, sizeof(v)) < 0) {
				/* nothing to drain */
			}
		}
	}
}

/* ---- start and stop ---- */

static int copy_vdso(struct guard *g, struct err *e)
{
	unsigned long base = getauxval(AT_SYSINFO_EHDR);
	char *text;
	size_t len;
	struct maps m;
	int rc;

	if (!base)
		return 0;
	if ((rc = proc_read("/proc/self/maps", 64u << 20, &text, &len, e)) < 0)
		return rc;
	rc = maps_parse(text, len, &m, e);
	free(text);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < m.n; i++)
		if (m.ent[i].start == base && !strcmp(m.ent[i].path, "[vdso]")) {
			g->ref.vdso_len = m.ent[i].end - m.ent[i].start;
			g->vdso = malloc(g->ref.vdso_len);
			if (!g->vdso) {
				maps_free(&m);
				return err_set(e, -ENOMEM, "out of memory");
			}
			memcpy(g->vdso, (const void *)base, g->ref.vdso_len);
			g->ref.vdso = g->vdso;
		}
	maps_free(&m);
	return 0;
}

/* A host marked untrusted earlier stays so; after a TPM restart the alarm is extended
 * into the fresh PCR again. */
static void restore_mark(struct guard *g)
{
	struct guard_mark m, logged;
	bool in_log = false, extended = false, have_file = true;
	struct err e;

	if (mark_from_log(g->hm->state_dir, &logged, &in_log, &e) < 0)
		fprintf(stderr, "sealvm guard: reading the event log: %s\n", e.msg);
	if (mark_load(g->hm->state_dir, &m, &e) < 0) {
		have_file = false;
		if (e.code == -ENOENT && !in_log)
			return;
		if (e.code == -ENOENT) {
			/* cleared by the operator, but this TPM power cycle still carries it */
			m = logged;
			snprintf(m.reason, sizeof(m.reason), "the TPM still holds a guard alarm of this power cycle (%s: %s); "
				 "the mark was cleared: restart the TPM (reboot) to trust this host again", logged.check,
				 logged.reason);
		} else {
			fprintf(stderr, "sealvm guard: %s: treating the host as marked untrusted\n", e.msg);
			snprintf(m.check, sizeof(m.check), "mark");
			snprintf(m.target, sizeof(m.target), "host %s", g->hm->host.name);
			snprintf(m.reason, sizeof(m.reason), "the guard's mark file is unreadable: %s", e.msg);
			mark_now(m.time, sizeof(m.time));
		}
	}
	text_sanitize(m.target);
	text_sanitize(m.reason);
	if (!in_log && mark_set(g->hm->state_dir, g->hm->host.tpm, &m, &extended, &e) < 0)
		fprintf(stderr, "sealvm guard: could not extend the alarm into the TPM again: %s\n", e.msg);
	g->untrusted = g->untrusted_restored = true;
	g->mark = m;
	g->untrusted_at_ms = guard_realtime_ms();
	fprintf(stderr, "sealvm guard: this host was marked UNTRUSTED at %s (%s: %s)%s\n", m.time, m.check, m.reason,
		have_file ? "; `sealvm guard clear` after repairing it, then restart the TPM (reboot)" : "");
	audit(g, "guard-untrusted", json_pack("{s:o, s:s, s:o, s:b, s:b, s:b}", "target", jstr(m.target), "check", m.check,
					      "reason", jstr(m.reason), "restored", 1, "pcr_extended", extended,
					      "cleared", !have_file));
}

static int start(struct guard *g, const struct guard_opts *o, struct err *e)
{
	struct trust_opts to = { .state_dir = o->state_dir, .table = o->table, .policy = o->policy, .role = "guard" };
	char ca[4200];
	struct sigaction sa = { .sa_handler = on_signal };
	int rc;

	g->o = *o;
	if (!g->o.interval_ms && !g->o.back_to_back)
		g->o.interval_ms = 100;
	if (!g->o.audit_every_ms)
		g->o.audit_every_ms = 60000;
	if (!g->o.sweep_bytes)
		g->o.sweep_bytes = 64 << 10;
	if (!g->o.rehash_bytes)
		g->o.rehash_bytes = 256 << 10;
	if (!g->o.tpm_every)
		g->o.tpm_every = 10;
	if (o->control)
		rc = snprintf(g->control, sizeof(g->control), "%s", o->control);
	else
		rc = snprintf(g->control, sizeof(g->control), "%s/guard.sock", o->state_dir);
	if (rc >= (int)sizeof(g->control))
		return err_set(e, -ENAMETOOLONG, "control socket path too long");
	/* nobody of the same user may ptrace the guard or read its memory */
	prctl(PR_SET_DUMPABLE, 0);
	if ((rc = hostmeas_open(o->state_dir, o->table, o->policy, o->tls_dir, &g->hm, e)) < 0)
		return rc;
	if (o->tls_dir) {
		snprintf(ca, sizeof(ca), "%s/ca.pem", o->tls_dir);
		to.ca = ca;
	}
	/* the guard's own measurement: its executable and configuration, into the TPM */
	if ((rc = trust_start(&to, &g->tc, e)) < 0)
		return rc;
	g->ref.table = g->hm->table;
	g->ref.host = hostmeas_self(g->hm);
	g->ref.sweep_bytes = g->o.sweep_bytes;
	if ((rc = copy_vdso(g, e)) < 0)
		return rc;
	g->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->wakefd < 0)
		return err_sys(e, -errno, "eventfd");
	g->evacuations = json_array();
	g->started_ms = g->sum_since_ms = guard_realtime_ms();
	restore_mark(g);
	if ((rc = ctl_server_start(g->control, guard_handle, g, &g->ctl, e)) < 0)
		return rc;
	signal_stop = &g->stop;
	signal_wakefd = g->wakefd;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!g->o.no_self)
		watch(g, "", NULL, getpid(), true);
	audit(g, "guard-config",
	      json_pack("{s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:o}", "interval_ms", (json_int_t)g->o.interval_ms,
			"vms", jstr(o->vms_dir), "control", jstr(g->control), "table_serial",
			(json_int_t)g->hm->table->serial, "policy_serial", (json_int_t)policy_serial(g->hm->policy),
			"sweep_bytes", (json_int_t)g->o.sweep_bytes, "rehash_bytes", (json_int_t)g->o.rehash_bytes,
			"tpm_every", (json_int_t)g->o.tpm_every, "self", json_boolean(!g->o.no_self)));
	fprintf(stderr, "sealvm guard: watching %s every %u ms as host %s; control socket %s\n", o->vms_dir,
		g->o.interval_ms, g->hm->host.name, g->control);
	return 0;
}

static void stop(struct guard *g)
{
	struct watched *w, *next;

	if (g->tc)
		summary(g, true);
	ctl_server_stop(g->ctl);
	signal_stop = NULL;
	signal_wakefd = -1;
	for (w = g->w; w; w = next) {
		next = w->next;
		procmeas_close(w->p);
		free(w);
	}
	for (size_t i = 0; i < sizeof(g->alarm_pids) / sizeof(g->alarm_pids[0]); i++)
		if (g->alarm_pids[i] > 0)
			waitpid(g->alarm_pids[i], NULL, 0);
	module_set_free(&g->mods);
	trust_stop(g->tc);
	hostmeas_close(g->hm);
	json_decref(g->evacuations);
	free(g->vdso);
	if (g->wakefd >= 0)
		close(g->wakefd);
	pthread_mutex_destroy(&g->lock);
}

int guard_run(const struct guard_opts *o, struct err *e)
{
	struct guard g = { .wakefd = -1 };
	uint64_t next;
	int rc;

	pthread_mutex_init(&g.lock, NULL);
	if ((rc = start(&g, o, e)) < 0) {
		stop(&g);
		return rc;
	}
	next = mono_ns();
	while (!atomic_load(&g.stop) && (!g.o.rounds || g.rounds < g.o.rounds)) {
		uint64_t now;
		one_round(&g);
		if (g.o.back_to_back)
			continue;
		next += (uint64_t)g.o.interval_ms * 1000000ull;
		now = mono_ns();
		if (now > next) {
			/* a round longer than the interval: the next one starts now, not in a burst */
			pthread_mutex_lock(&g.lock);
			g.overruns++;
			pthread_mutex_unlock(&g.lock);
			next = now;
		}
		if (!g.o.rounds || g.rounds < g.o.rounds)
			sleep_until(&g, next);
	}
	fprintf(stderr, "sealvm guard: stopping after %llu rounds (%llu failed measurements); CPU %.3f ms a round "
			"after the first (%.3f ms)\n", (unsigned long long)g.rounds, (unsigned long long)g.failures,
		g.rounds > 1 ? (double)(g.cpu_ns - g.first_cpu_ns) / 1e6 / (double)(g.rounds - 1) : 0.0,
		(double)g.first_cpu_ns / 1e6);
	stop(&g);
	return 0;
}
