/* Control socket server: JSON lines over a UNIX stream socket.
 * One accept thread, one thread per connection; ctl_server_stop wakes every
 * thread through an eventfd that stays readable once written. */
#include "control/control.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Buffer for one line: content, an optional '\r' and the '\n'. */
#define LINE_CAP (CTL_MAX_LINE + 2)

struct ctl_conn {
	struct ctl_server *srv;
	int fd;
	struct ctl_peer peer;    /* SO_PEERCRED at accept */
	pthread_t thread;
	bool done;               /* thread finished; under srv->lock */
	struct ctl_conn *next;
};

struct ctl_server {
	char *path;
	int lfd;
	int stopfd;              /* eventfd; readable once stopping */
	dev_t dev;               /* identity of our socket file, so stop */
	ino_t ino;               /* never unlinks someone else's */
	ctl_handler_fn fn;
	void *opaque;
	pthread_t acceptor;
	pthread_mutex_t lock;
	struct ctl_conn *conns;  /* all connection threads not yet joined */
	int nconns;              /* of which still running */
};

/* ---- request parsing ---- */

json_t *ctl_parse_request(const char *line, size_t len, struct err *e)
{
	json_error_t je;
	json_t *req, *cmd;

	if (!line)
		len = 0;
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	if (len > CTL_MAX_LINE) {
		err_set(e, -EMSGSIZE, "request too long (more than %d bytes)", CTL_MAX_LINE);
		return NULL;
	}
	req = json_loadb(line ? line : "", len, JSON_REJECT_DUPLICATES, &je);
	if (!req) {
		/* je.text can quote raw request bytes: keep the message printable ASCII, or
		 * the error response (a JSON string) cannot be built */
		char *p;
		for (p = je.text; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
		err_set(e, -EINVAL, "request is not valid JSON at line %d column %d: %s",
			je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(req)) {
		json_decref(req);
		err_set(e, -EINVAL, "request is not a JSON object");
		return NULL;
	}
	cmd = json_object_get(req, "cmd");
	if (!json_is_string(cmd) || json_string_length(cmd) == 0) {
		json_decref(req);
		err_set(e, -EINVAL, "request has no \"cmd\" string");
		return NULL;
	}
	return req;
}

/* ---- socket helpers ---- */

static bool stopping(const struct ctl_server *s)
{
	struct pollfd p = { .fd = s->stopfd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* Waits until fd has events or the server stops. Returns 1 when fd is ready,
 * 0 when stopping, -errno on error. */
static int wait_fd(const struct ctl_server *s, int fd, short events)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fd, .events = events },
			{ .fd = s->stopfd, .events = POLLIN },
		};
		int r = poll(p, 2, -1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents)
			return 1;
		if (p[1].revents)
			return 0;
	}
}

/* Sends everything; tries without waiting first so a response still goes out
 * while the server is stopping (e.g. the answer to "quit"), but never blocks
 * a stop on a client that does not read. */
static int send_all(const struct ctl_server *s, int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		n = wait_fd(s, fd, POLLOUT);
		if (n <= 0)
			return n ? (int)n : -ESHUTDOWN;
	}
	return 0;
}

/* Sends resp (consumed) as one compact line. */
static int send_json(const struct ctl_server *s, int fd, json_t *resp)
{
	static const char oom[] = "{\"ok\":false,\"error\":\"out of memory\"}\n";
	char *text = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	size_t n;
	int r;

	json_decref(resp);
	if (!text)
		return send_all(s, fd, oom, sizeof(oom) - 1);
	n = strlen(text);
	text[n] = '\n';   /* replaces the NUL; length passed explicitly */
	r = send_all(s, fd, text, n + 1);
	free(text);
	return r;
}

static int send_error(const struct ctl_server *s, int fd, const char *msg)
{
	return send_json(s, fd, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

/* ---- connections ---- */

static json_t *run_request(struct ctl_server *s, const struct ctl_peer *peer, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	struct err he = { 0 };
	json_t *res, *resp, *v;
	const char *key;

	res = s->fn(s->opaque, peer, cmd, req, &he);
	if (!res)
		return json_pack("{s:b, s:s}", "ok", 0, "error",
				 he.msg[0] ? he.msg : "command failed");
	if (!json_is_object(res)) {
		json_decref(res);
		snprintf(he.msg, sizeof(he.msg),
			 "internal error: command %s returned a non-object result", cmd);
		return json_pack("{s:b, s:s}", "ok", 0, "error", he.msg);
	}
	resp = json_pack("{s:b}", "ok", 1);
	if (resp) {
		json_object_foreach(res, key, v) {
			if (strcmp(key, "ok") != 0 && json_object_set(resp, key, v) < 0) {
				json_decref(resp);
				resp = NULL;
				break;
			}
		}
	}
	json_decref(res);
	return resp;
}

/* Handles one line (newline removed). Returns 0 to keep the connection,
 * negative to close it. */
static int handle_line(struct ctl_conn *c, const char *line, size_t len)
{
	struct ctl_server *s = c->srv;
	struct err e = { 0 };
	json_t *req, *resp;
	size_t i;

	if (len && line[len - 1] == '\r')
		len--;
	if (len > CTL_MAX_LINE) {
		ctl_parse_request(line, len, &e);
		send_error(s, c->fd, e.msg);
		return -EMSGSIZE;
	}
	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			break;
	if (i == len)
		return 0;   /* blank line */
	req = ctl_parse_request(line, len, &e);
	if (!req)
		return send_error(s, c->fd, e.msg);
	resp = run_request(s, &c->peer, req);
	json_decref(req);
	return send_json(s, c->fd, resp);
}

static void *conn_main(void *arg)
{
	struct ctl_conn *c = arg;
	struct ctl_server *s = c->srv;
	size_t start = 0, have = 0, scanned = 0;
	char *buf = malloc(LINE_CAP);

	while (buf) {
		char *nl = memchr(buf + scanned, '\n', have - scanned);
		ssize_t n;
		int r;

		if (nl) {
			if (stopping(s))
				break;
			if (handle_line(c, buf + start, (size_t)(nl - buf) - start) < 0)
				break;
			start = scanned = (size_t)(nl - buf) + 1;
			continue;
		}
		/* No complete line left: compact, then read more. */
		if (start) {
			memmove(buf, buf + start, have - start);
			have -= start;
			start = 0;
		}
		scanned = have;
		if (have == LINE_CAP) {
			char msg[64];

			snprintf(msg, sizeof(msg), "request too long (more than %d bytes)",
				 CTL_MAX_LINE);
			send_error(s, c->fd, msg);
			break;
		}
		r = wait_fd(s, c->fd, POLLIN);
		if (r <= 0)
			break;
		n = recv(c->fd, buf + have, LINE_CAP - have, MSG_DONTWAIT);
		if (n == 0)
			break;   /* EOF; an unterminated last line is dropped */
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			break;
		}
		have += (size_t)n;
	}
	free(buf);
	close(c->fd);
	pthread_mutex_lock(&s->lock);
	c->fd = -1;
	c->done = true;
	s->nconns--;
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Joins connection threads that have finished (all of them with all=true). */
static void reap(struct ctl_server *s, bool all)
{
	struct ctl_conn *dead = NULL, **pp, *c;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->conns; (c = *pp);) {
		if (all || c->done) {
			*pp = c->next;
			c->next = dead;
			dead = c;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&s->lock);
	while ((c = dead)) {
		dead = c->next;
		pthread_join(c->thread, NULL);
		free(c);
	}
}

/* Control threads take no asynchronous signals; the VMM keeps those for its
 * main and vCPU threads. */
static int create_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
}

static void start_conn(struct ctl_server *s, int fd)
{
	struct ctl_conn *c;
	char msg[96];
	int r;

	reap(s, false);
	pthread_mutex_lock(&s->lock);
	if (s->nconns >= CTL_MAX_CONNS) {
		pthread_mutex_unlock(&s->lock);
		snprintf(msg, sizeof(msg), "too many control connections (at most %d)",
			 CTL_MAX_CONNS);
		goto refuse;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		pthread_mutex_unlock(&s->lock);
		snprintf(msg, sizeof(msg), "out of memory");
		goto refuse;
	}
	c->srv = s;
	c->fd = fd;
	{
		struct ucred cr;
		socklen_t n = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &n) == 0 && n == sizeof(cr))
			c->peer = (struct ctl_peer){ .known = true, .pid = cr.pid, .uid = cr.uid, .gid = cr.gid };
	}
	r = create_thread(&c->thread, conn_main, c);
	if (r < 0) {
		pthread_mutex_unlock(&s->lock);
		free(c);
		snprintf(msg, sizeof(msg), "cannot start a connection thread: %s",
			 strerror(-r));
		goto refuse;
	}
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
	pthread_mutex_unlock(&s->lock);
	return;

refuse:
	send_error(s, fd, msg);
	close(fd);
}

/* Waits up to ms for the stop signal. */
static void pause_ms(const struct ctl_server *s, int ms)
{
	struct pollfd p = { .fd = s->stopfd, .events = POLLIN };

	poll(&p, 1, ms);
}

static void *accept_main(void *arg)
{
	struct ctl_server *s = arg;

	for (;;) {
		int fd, r = wait_fd(s, s->lfd, POLLIN);

		if (r == 0)
			break;
		if (r < 0) {
			pause_ms(s, 100);
			continue;
		}
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				pause_ms(s, 100);   /* EMFILE and friends: do not spin */
			continue;
		}
		start_conn(s, fd);
	}
	return NULL;
}

/* ---- start / stop ---- */

static int fill_addr(struct sockaddr_un *a, const char *path, struct err *e)
{
	size_t n = strlen(path);

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (n == 0)
		return err_set(e, -EINVAL, "control socket path is empty");
	if (n >= sizeof(a->sun_path))
		return err_set(e, -ENAMETOOLONG,
			       "control socket path %s is too long (%zu bytes, at most %zu)",
			       path, n, sizeof(a->sun_path) - 1);
	memcpy(a->sun_path, path, n);
	return 0;
}

/* Removes a stale socket at path; fails if something listens there or path
 * is not a socket. */
static int clear_stale(const struct sockaddr_un *a, const char *path, struct err *e)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_sys(e, -errno, "cannot check control socket %s", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return err_set(e, -EEXIST, "%s exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_sys(e, -errno, "cannot create socket");
	r = connect(fd, (const struct sockaddr *)a, sizeof(*a));
	r = r < 0 ? errno : 0;
	close(fd);
	if (r == 0 || r == EAGAIN)   /* EAGAIN: alive, backlog full */
		return err_set(e, -EADDRINUSE, "control socket %s is in use", path);
	if (r != ECONNREFUSED)
		return err_sys(e, -r, "cannot check control socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return err_sys(e, -errno, "cannot remove stale control socket %s", path);
	return 0;
}

int ctl_server_start(const char *path, ctl_handler_fn fn, void *opaque,
		     struct ctl_server **out, struct err *e)
{
	struct ctl_server *s;
	struct sockaddr_un a;
	struct stat st;
	int r;

	*out = NULL;
	if (!fn)
		return err_set(e, -EINVAL, "control socket needs a handler");
	r = fill_addr(&a, path, e);
	if (r < 0)
		return r;
	json_object_seed(0);   /* seed hashing once, before any threads */
	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return err_set(e, -ENOMEM, "out of memory");
	}
	s->fn = fn;
	s->opaque = opaque;
	s->stopfd = -1;
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->lfd < 0) {
		r = err_sys(e, -errno, "cannot create control socket");
		goto fail;
	}
	/* Linux takes the socket file's mode from the socket inode at bind, so
	 * the file never exists with a wider mode. */
	if (fchmod(s->lfd, 0600) < 0) {
		r = err_sys(e, -errno, "cannot set mode of control socket %s", path);
		goto fail;
	}
	r = clear_stale(&a, path, e);
	if (r < 0)
		goto fail;
	if (bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (errno == EADDRINUSE)
			r = err_set(e, -EADDRINUSE, "control socket %s is in use", path);
		else
			r = err_sys(e, -errno, "cannot bind control socket %s", path);
		goto fail;
	}
	if (stat(path, &st) < 0 ||
	    ((st.st_mode & 07777) != 0600 && chmod(path, 0600) < 0)) {
		r = err_sys(e, -errno, "cannot set mode of control socket %s", path);
		unlink(path);
		goto fail;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	if (listen(s->lfd, 16) < 0) {
		r = err_sys(e, -errno, "cannot listen on control socket %s", path);
		unlink(path);
		goto fail;
	}
	s->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stopfd < 0) {
		r = err_sys(e, -errno, "cannot create eventfd");
		unlink(path);
		goto fail;
	}
	pthread_mutex_init(&s->lock, NULL);
	r = create_thread(&s->acceptor, accept_main, s);
	if (r < 0) {
		err_sys(e, r, "cannot start control socket thread");
		pthread_mutex_destroy(&s->lock);
		unlink(path);
		goto fail;
	}
	*out = s;
	return 0;

fail:
	if (s->stopfd >= 0)
		close(s->stopfd);
	if (s->lfd >= 0)
		close(s->lfd);
	free(s->path);
	free(s);
	return r;
}

void ctl_server_stop(struct ctl_server *s)
{
	uint64_t one = 1;
	struct stat st;

	if (!s)
		return;
	while (write(s->stopfd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(s->acceptor, NULL);
	close(s->lfd);
	if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	reap(s, true);
	close(s->stopfd);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}
