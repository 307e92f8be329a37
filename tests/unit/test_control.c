/* Control socket: request parsing, the server (raw clients), and the ctl
 * client. Runs in a temp dir; takes a couple of seconds. */
#include "control/control.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static int handler_calls;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *handler(void *opaque, const struct ctl_peer *peer, const char *cmd, json_t *req, struct err *e)
{
	__atomic_add_fetch(&handler_calls, 1, __ATOMIC_RELAXED);
	CHECK(opaque == (void *)dir);
	CHECK(peer != NULL);
	if (!strcmp(cmd, "whoami"))
		return json_pack("{s:b, s:I, s:I, s:I}", "known", peer->known, "uid", (json_int_t)peer->uid, "gid",
				 (json_int_t)peer->gid, "pid", (json_int_t)peer->pid);
	if (!strcmp(cmd, "fail")) {
		err_set(e, -EIO, "it failed on purpose");
		return NULL;
	}
	if (!strcmp(cmd, "slow"))
		usleep(300 * 1000);
	if (!strcmp(cmd, "notobject"))
		return json_integer(1);
	/* "ok" in the result must be ignored by the server. */
	return json_pack("{s:s, s:O, s:b}", "cmd", cmd, "req", req, "ok", 0);
}

/* ---- raw client helpers ---- */

static void sock_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
}

static void set_sun_path(struct sockaddr_un *a, const char *path)
{
	size_t n = strlen(path);

	CHECK(n < sizeof(a->sun_path));
	if (n >= sizeof(a->sun_path))
		n = sizeof(a->sun_path) - 1;
	memcpy(a->sun_path, path, n);
	a->sun_path[n] = '\0';
}

static int raw_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	set_sun_path(&a, path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends everything it can; a server that closes early is not an error here. */
static void raw_send(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void raw_sends(int fd, const char *s)
{
	raw_send(fd, s, strlen(s));
}

/* Reads one line byte by byte (slow but exact, so pipelined responses stay
 * in the socket). Returns NULL on EOF/error/5 s timeout. */
static char *raw_line(int fd)
{
	size_t have = 0, cap = 256;
	char *buf = malloc(cap);

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char ch;
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0)
			break;
		n = recv(fd, &ch, 1, 0);
		if (n <= 0)
			break;
		if (ch == '\n') {
			buf[have] = '\0';
			return buf;
		}
		if (have + 2 > cap)
			buf = realloc(buf, cap *= 2);
		buf[have++] = ch;
	}
	free(buf);
	return NULL;
}

/* Reads a response line and parses it. */
static json_t *raw_resp(int fd)
{
	char *line = raw_line(fd);
	json_t *j = line ? json_loads(line, 0, NULL) : NULL;

	CHECKF(j != NULL, "response line: %s", line ? line : "(none)");
	free(line);
	return j;
}

static json_t *roundtrip(int fd, const char *line)
{
	raw_sends(fd, line);
	return raw_resp(fd);
}

static int resp_ok(json_t *r)
{
	return json_is_true(json_object_get(r, "ok"));
}

static const char *resp_error(json_t *r)
{
	const char *s = json_string_value(json_object_get(r, "error"));

	return s ? s : "";
}

/* True once fd is at EOF (or reset) within 5 s. */
static int raw_eof(int fd)
{
	char ch;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 5000) <= 0)
		return 0;
	return recv(fd, &ch, 1, 0) <= 0;
}

/* ---- parse tests ---- */

static void check_parse_error(const char *text, size_t len, const char *want)
{
	struct err e = { 0 };
	json_t *j = ctl_parse_request(text, len, &e);

	CHECKF(j == NULL, "parse of \"%.40s\" should fail", text ? text : "(null)");
	json_decref(j);
	CHECKF(e.code < 0, "code %d", e.code);
	CHECKF(strstr(e.msg, want) != NULL, "\"%s\" does not contain \"%s\"", e.msg, want);
}

static void test_parse(void)
{
	struct err e = { 0 };
	json_t *j;
	char *big;
	size_t n;

	j = ctl_parse_request("{\"cmd\":\"status\",\"x\":1}", 22, &e);
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(j, "cmd")), "status");
	CHECK_INT(json_integer_value(json_object_get(j, "x")), 1);
	json_decref(j);

	j = ctl_parse_request("{\"cmd\":\"a\"}\r\n", 13, &e);
	CHECK(j != NULL);
	json_decref(j);
	/* Length is honoured: no NUL terminator needed, trailing bytes ignored. */
	j = ctl_parse_request("{\"cmd\":\"a\"}garbage", 11, &e);
	CHECK(j != NULL);
	json_decref(j);

	check_parse_error("{\"cmd\":", 7, "request is not valid JSON at line 1 column");
	check_parse_error("{\"cmd\":\"a\"} x", 13, "not valid JSON");
	check_parse_error("", 0, "not valid JSON");
	check_parse_error(NULL, 0, "not valid JSON");
	check_parse_error("{\"cmd\":\"a\0\"}", 12, "not valid JSON");
	check_parse_error("{\"cmd\":\"a\\u0000\"}", 17, "not valid JSON");
	check_parse_error("{\"cmd\":\"a\",\"cmd\":\"b\"}", 21, "not valid JSON");
	check_parse_error("\xff", 1, "not valid JSON");
	check_parse_error("[1]", 3, "request is not a JSON object");
	check_parse_error("\"cmd\"", 5, "not valid JSON");
	check_parse_error("{}", 2, "request has no \"cmd\" string");
	check_parse_error("{\"cmd\":1}", 9, "request has no \"cmd\" string");
	check_parse_error("{\"cmd\":\"\"}", 10, "request has no \"cmd\" string");
	check_parse_error("{\"cmd\":null}", 12, "request has no \"cmd\" string");

	/* Exactly CTL_MAX_LINE bytes is fine, one more is too long. */
	big = malloc(CTL_MAX_LINE + 2);
	n = CTL_MAX_LINE;
	memset(big, ' ', n);
	memcpy(big, "{\"cmd\":\"a\"", 10);
	big[n - 1] = '}';
	j = ctl_parse_request(big, n, &e);
	CHECK(j != NULL);
	json_decref(j);
	memset(big, ' ', n + 1);
	memcpy(big, "{\"cmd\":\"a\"", 10);
	big[n] = '}';
	check_parse_error(big, n + 1, "request too long");
	/* Deep nesting is an error, not a stack overflow. */
	memset(big, '[', CTL_MAX_LINE);
	check_parse_error(big, CTL_MAX_LINE, "not valid JSON");
	free(big);
}

/* ---- server tests ---- */

static void test_basic(const char *path)
{
	int fd = raw_connect(path);
	json_t *r, *req;
	const char *key;
	void *it;

	CHECK(fd >= 0);
	r = roundtrip(fd, "{\"cmd\":\"status\",\"arg\":[1,2]}\n");
	CHECK(resp_ok(r));
	it = json_object_iter(r);
	key = it ? json_object_iter_key(it) : "";
	CHECK_STR(key, "ok");   /* ok comes first */
	CHECK_STR(json_string_value(json_object_get(r, "cmd")), "status");
	req = json_object_get(r, "req");
	CHECK_INT(json_array_size(json_object_get(req, "arg")), 2);
	json_decref(r);

	/* Malformed line: error, connection stays usable. */
	r = roundtrip(fd, "{\"cmd\": nope}\n");
	CHECK(!resp_ok(r));
	CHECKF(strstr(resp_error(r), "request is not valid JSON at line 1 column"),
	       "%s", resp_error(r));
	json_decref(r);
	r = roundtrip(fd, "{\"nocmd\":1}\n");
	CHECK(!resp_ok(r));
	CHECK_STR(resp_error(r), "request has no \"cmd\" string");
	json_decref(r);
	r = roundtrip(fd, "{\"cmd\":\"fail\"}\n");
	CHECK(!resp_ok(r));
	CHECK_STR(resp_error(r), "it failed on purpose");
	CHECK_INT(json_object_size(r), 2);
	json_decref(r);
	r = roundtrip(fd, "{\"cmd\":\"notobject\"}\n");
	CHECK(!resp_ok(r));
	CHECK(strstr(resp_error(r), "non-object") != NULL);
	json_decref(r);

	/* Pipelined lines, a blank line and CRLF. */
	raw_sends(fd, "{\"cmd\":\"a\"}\n\n  \r\n{\"cmd\":\"b\"}\r\n");
	r = raw_resp(fd);
	CHECK_STR(json_string_value(json_object_get(r, "cmd")), "a");
	json_decref(r);
	r = raw_resp(fd);
	CHECK_STR(json_string_value(json_object_get(r, "cmd")), "b");
	json_decref(r);
	r = roundtrip(fd, "{\"cmd\":\"status\"}\n");
	CHECK(resp_ok(r));
	json_decref(r);
	/* the handler learns who is connected from the kernel, never from the request */
	r = roundtrip(fd, "{\"cmd\":\"whoami\",\"uid\":12345}\n");
	CHECK(json_is_true(json_object_get(r, "known")));
	CHECK_INT(json_integer_value(json_object_get(r, "uid")), (long long)getuid());
	CHECK_INT(json_integer_value(json_object_get(r, "gid")), (long long)getgid());
	CHECK_INT(json_integer_value(json_object_get(r, "pid")), (long long)getpid());
	json_decref(r);
	close(fd);
}

static void test_long_line(const char *path)
{
	size_t n = 100 * 1024;
	char *big = malloc(n + 1);
	int fd = raw_connect(path);
	json_t *r;

	CHECK(fd >= 0);
	memset(big, 'x', n);
	memcpy(big, "{\"cmd\":\"a\",\"pad\":\"", 18);
	big[n - 2] = '"';
	big[n - 1] = '}';
	big[n] = '\n';
	raw_send(fd, big, n + 1);
	r = raw_resp(fd);
	CHECK(!resp_ok(r));
	CHECKF(strstr(resp_error(r), "request too long") != NULL, "%s", resp_error(r));
	json_decref(r);
	CHECK(raw_eof(fd));
	close(fd);

	/* A line of exactly CTL_MAX_LINE bytes plus CRLF is accepted. */
	fd = raw_connect(path);
	memset(big, ' ', CTL_MAX_LINE);
	memcpy(big, "{\"cmd\":\"a\"", 10);
	big[CTL_MAX_LINE - 1] = '}';
	memcpy(big + CTL_MAX_LINE, "\r\n", 2);
	raw_send(fd, big, CTL_MAX_LINE + 2);
	r = raw_resp(fd);
	CHECK(resp_ok(r));
	json_decref(r);
	close(fd);
	free(big);
}

static void test_midline_disconnect(const char *path)
{
	int before = __atomic_load_n(&handler_calls, __ATOMIC_RELAXED);
	int fd = raw_connect(path);
	json_t *r;

	raw_sends(fd, "{\"cmd\":\"quit\"}");   /* no newline: never executed */
	close(fd);
	fd = raw_connect(path);
	r = roundtrip(fd, "{\"cmd\":\"status\"}\n");
	CHECK(resp_ok(r));
	json_decref(r);
	close(fd);
	CHECK_INT(__atomic_load_n(&handler_calls, __ATOMIC_RELAXED), before + 1);
}

/* Connects and checks with a round trip that the server took the connection;
 * connections closed by earlier tests are released asynchronously, so a
 * refusal is retried for a while. */
static int connect_ready(const char *path)
{
	long long t0 = now_ms();

	for (;;) {
		int fd = raw_connect(path);
		json_t *r = roundtrip(fd, "{\"cmd\":\"status\"}\n");
		int ok = resp_ok(r);

		json_decref(r);
		if (ok)
			return fd;
		close(fd);
		if (now_ms() - t0 > 3000) {
			CHECKF(0, "server keeps refusing connections");
			return -1;
		}
		usleep(10 * 1000);
	}
}

static void test_conn_limit(const char *path)
{
	int fds[CTL_MAX_CONNS], fd, i;
	long long t0;
	json_t *r;

	for (i = 0; i < CTL_MAX_CONNS; i++)
		fds[i] = connect_ready(path);
	fd = raw_connect(path);
	CHECK(fd >= 0);
	r = raw_resp(fd);
	CHECK(!resp_ok(r));
	CHECKF(strstr(resp_error(r), "too many control connections") != NULL, "%s",
	       resp_error(r));
	json_decref(r);
	CHECK(raw_eof(fd));
	close(fd);

	/* Closing one frees a slot (the server notices asynchronously). */
	close(fds[0]);
	t0 = now_ms();
	for (;;) {
		fd = raw_connect(path);
		r = roundtrip(fd, "{\"cmd\":\"status\"}\n");
		close(fd);
		if (resp_ok(r) || now_ms() - t0 > 3000)
			break;
		json_decref(r);
		usleep(10 * 1000);
	}
	CHECK(resp_ok(r));
	json_decref(r);
	for (i = 1; i < CTL_MAX_CONNS; i++)
		close(fds[i]);
}

static void test_concurrent_slow(const char *path)
{
	int a = connect_ready(path), b = connect_ready(path);
	long long t0;
	json_t *r;

	raw_sends(a, "{\"cmd\":\"slow\"}\n");
	usleep(20 * 1000);
	t0 = now_ms();
	r = roundtrip(b, "{\"cmd\":\"status\"}\n");
	CHECK(resp_ok(r));
	CHECKF(now_ms() - t0 < 200, "status took %lld ms while slow ran", now_ms() - t0);
	json_decref(r);
	r = raw_resp(a);
	CHECK_STR(json_string_value(json_object_get(r, "cmd")), "slow");
	json_decref(r);
	close(a);
	close(b);
}

/* ---- ctl client ---- */

struct captured {
	int rc;
	char out[8192];
	char err[8192];
};

static void slurp(int fd, char *buf, size_t cap)
{
	ssize_t n = pread(fd, buf, cap - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
}

/* Runs ctl_client_main with stdout and stderr going to temp files. */
static void run_ctl(struct captured *c, ...)
{
	char *argv[32];
	int argc = 0, out, errf, save1, save2;
	char tmpl1[PATH_MAX], tmpl2[PATH_MAX];
	va_list ap;

	va_start(ap, c);
	argv[argc++] = "ctl";
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);

	snprintf(tmpl1, sizeof(tmpl1), "%s/out.XXXXXX", dir);
	snprintf(tmpl2, sizeof(tmpl2), "%s/err.XXXXXX", dir);
	out = mkstemp(tmpl1);
	errf = mkstemp(tmpl2);
	unlink(tmpl1);
	unlink(tmpl2);
	fflush(stdout);
	fflush(stderr);
	save1 = dup(1);
	save2 = dup(2);
	dup2(out, 1);
	dup2(errf, 2);
	c->rc = ctl_client_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(save1, 1);
	dup2(save2, 2);
	close(save1);
	close(save2);
	slurp(out, c->out, sizeof(c->out));
	slurp(errf, c->err, sizeof(c->err));
	close(out);
	close(errf);
}

/* The "req" the test handler echoed back in the client's output. */
static json_t *echoed_req(struct captured *c)
{
	json_t *j = json_loads(c->out, 0, NULL);
	json_t *req = json_incref(json_object_get(j, "req"));

	CHECKF(req != NULL, "output: %s", c->out);
	json_decref(j);
	return req;
}

static void test_client(const char *path)
{
	struct captured c;
	char cwd[PATH_MAX], want[PATH_MAX * 2], missing[PATH_MAX];
	json_t *j, *req;
	long long t0;

	run_ctl(&c, path, "status", NULL);
	CHECK_INT(c.rc, 0);
	j = json_loads(c.out, 0, NULL);
	CHECKF(resp_ok(j), "output: %s", c.out);
	CHECK_STR(json_string_value(json_object_get(j, "cmd")), "status");
	json_decref(j);
	CHECK_STR(c.err, "");

	run_ctl(&c, path, "fail", NULL);
	CHECK_INT(c.rc, 1);
	CHECK(strstr(c.out, "it failed on purpose") != NULL);
	CHECK_STR(c.err, "sealvm: it failed on purpose\n");

	run_ctl(&c, "--timeout", "5", path, "--timeout=5", "pause", NULL);
	CHECK_INT(c.rc, 0);

	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	run_ctl(&c, path, "snapshot", "snap.img", NULL);
	CHECK_INT(c.rc, 0);
	req = echoed_req(&c);
	snprintf(want, sizeof(want), "%s/snap.img", cwd);
	CHECK_STR(json_string_value(json_object_get(req, "file")), want);
	json_decref(req);
	run_ctl(&c, path, "snapshot", "/abs/x", NULL);
	req = echoed_req(&c);
	CHECK_STR(json_string_value(json_object_get(req, "file")), "/abs/x");
	json_decref(req);

	run_ctl(&c, path, "migrate", "--tls-dir", "certs", "tcp:10.0.0.2:4444",
		"--downtime-ms=300", "--channels", "4", "--max-throttle", "99", NULL);
	CHECK_INT(c.rc, 0);
	req = echoed_req(&c);
	CHECK_STR(json_string_value(json_object_get(req, "cmd")), "migrate");
	CHECK_STR(json_string_value(json_object_get(req, "uri")), "tcp:10.0.0.2:4444");
	snprintf(want, sizeof(want), "%s/certs", cwd);
	CHECK_STR(json_string_value(json_object_get(req, "tls_dir")), want);
	CHECK(json_is_integer(json_object_get(req, "downtime_ms")));
	CHECK_INT(json_integer_value(json_object_get(req, "downtime_ms")), 300);
	CHECK_INT(json_integer_value(json_object_get(req, "channels")), 4);
	CHECK_INT(json_integer_value(json_object_get(req, "max_throttle")), 99);
	json_decref(req);
	run_ctl(&c, path, "migrate", "unix:/x", NULL);
	req = echoed_req(&c);
	CHECK_INT(json_object_size(req), 2);   /* cmd and uri only */
	json_decref(req);

	/* Usage errors: exit 2, nothing sent. */
	run_ctl(&c, path, "migrate", "u", "--channels", "-1", NULL);
	CHECK_INT(c.rc, 2);
	CHECKF(strstr(c.err, "--channels needs a non-negative integer, not \"-1\""), "%s", c.err);
	run_ctl(&c, path, "migrate", "u", "--downtime-ms", "1.5", NULL);
	CHECK_INT(c.rc, 2);
	run_ctl(&c, path, "migrate", "u", "--downtime-ms", "99999999999999999999999", NULL);
	CHECK_INT(c.rc, 2);
	run_ctl(&c, path, "migrate", "u", "--max-throttle", "101", NULL);
	CHECK_INT(c.rc, 2);
	run_ctl(&c, path, "migrate", "u", "--channels", NULL);
	CHECK_INT(c.rc, 2);
	CHECK(strstr(c.err, "--channels needs a value") != NULL);
	run_ctl(&c, path, "migrate", "u", "--bogus", "1", NULL);
	CHECK_INT(c.rc, 2);
	CHECK(strstr(c.err, "unknown migrate option --bogus") != NULL);
	run_ctl(&c, path, "migrate", NULL);
	CHECK_INT(c.rc, 2);
	run_ctl(&c, path, "status", "extra", NULL);
	CHECK_INT(c.rc, 2);
	run_ctl(&c, path, "snapshot", NULL);
	CHECK_INT(c.rc, 2);
	run_ctl(&c, "--frob", path, "status", NULL);
	CHECK_INT(c.rc, 2);
	CHECK(strstr(c.err, "unknown option --frob") != NULL);
	run_ctl(&c, path, "--timeout", "abc", "status", NULL);
	CHECK_INT(c.rc, 2);
	run_ctl(&c, path, NULL);
	CHECK_INT(c.rc, 2);

	/* Unknown commands are sent anyway, with their arguments. */
	run_ctl(&c, path, "frobnicate", "x", NULL);
	CHECK_INT(c.rc, 0);
	req = echoed_req(&c);
	CHECK_STR(json_string_value(json_array_get(json_object_get(req, "args"), 0)), "x");
	json_decref(req);

	run_ctl(&c, path, "raw", "{\"cmd\":\"status\",\"n\":7}", NULL);
	CHECK_INT(c.rc, 0);
	req = echoed_req(&c);
	CHECK_INT(json_integer_value(json_object_get(req, "n")), 7);
	json_decref(req);
	run_ctl(&c, path, "raw", " ", NULL);
	CHECK_INT(c.rc, 2);
	run_ctl(&c, path, "raw", "not json", NULL);
	CHECK_INT(c.rc, 1);
	CHECK(strstr(c.err, "sealvm: request is not valid JSON") != NULL);

	/* Connection errors name the socket. */
	sock_path(missing, sizeof(missing), "missing.sock");
	run_ctl(&c, missing, "status", NULL);
	CHECK_INT(c.rc, 2);
	snprintf(want, sizeof(want),
		 "sealvm: cannot connect to control socket %s (waited 5 s for it): No such file or directory\n",
		 missing);
	CHECK_STR(c.err, want);

	/* --timeout bounds the wait. */
	t0 = now_ms();
	run_ctl(&c, "--timeout", "0.05", path, "slow", NULL);
	CHECK_INT(c.rc, 2);
	CHECKF(now_ms() - t0 < 250, "timeout took %lld ms", now_ms() - t0);
	CHECK(strstr(c.err, "within the timeout") != NULL);
	usleep(300 * 1000);   /* let the slow handler finish */
}

/* ---- socket file handling ---- */

static void test_socket_files(const char *path)
{
	struct ctl_server *s2 = NULL;
	struct err e = { 0 };
	char p[PATH_MAX], want[PATH_MAX + 64], longp[200];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	json_t *r;
	int fd, rc;

	CHECK(stat(path, &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECKF((st.st_mode & 07777) == 0600, "mode %o", st.st_mode & 07777);

	/* A live socket is not stolen. */
	rc = ctl_server_start(path, handler, dir, &s2, &e);
	CHECK_INT(rc, -EADDRINUSE);
	CHECK(s2 == NULL);
	snprintf(want, sizeof(want), "control socket %s is in use", path);
	CHECK_STR(e.msg, want);
	fd = raw_connect(path);
	r = roundtrip(fd, "{\"cmd\":\"status\"}\n");
	CHECK(resp_ok(r));
	json_decref(r);
	close(fd);

	/* A stale socket (bound, nobody listening) is replaced. */
	sock_path(p, sizeof(p), "stale.sock");
	set_sun_path(&a, p);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	close(fd);
	CHECK(stat(p, &st) == 0);
	memset(&e, 0, sizeof(e));
	rc = ctl_server_start(p, handler, dir, &s2, &e);
	CHECKF(rc == 0, "%s", e.msg);
	fd = raw_connect(p);
	r = roundtrip(fd, "{\"cmd\":\"status\"}\n");
	CHECK(resp_ok(r));
	json_decref(r);
	close(fd);
	ctl_server_stop(s2);
	CHECK(stat(p, &st) < 0 && errno == ENOENT);

	/* A regular file is never removed. */
	sock_path(p, sizeof(p), "file");
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	close(fd);
	rc = ctl_server_start(p, handler, dir, &s2, &e);
	CHECK_INT(rc, -EEXIST);
	CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode));
	unlink(p);

	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	rc = ctl_server_start(longp, handler, dir, &s2, &e);
	CHECK_INT(rc, -ENAMETOOLONG);
	CHECK(strstr(e.msg, "too long") != NULL);
}

/* Stop is prompt with idle clients, waits for a running handler and still
 * delivers its response (how "quit" works). */
static void test_stop(void)
{
	struct ctl_server *s = NULL;
	struct err e = { 0 };
	char p[PATH_MAX];
	struct stat st;
	int idle, busy;
	long long t0;
	json_t *r;

	sock_path(p, sizeof(p), "stop.sock");
	CHECK(ctl_server_start(p, handler, dir, &s, &e) == 0);
	idle = raw_connect(p);
	r = roundtrip(idle, "{\"cmd\":\"status\"}\n");
	json_decref(r);
	raw_sends(idle, "{\"cmd\":\"half");   /* a partial line pending */
	t0 = now_ms();
	ctl_server_stop(s);
	CHECKF(now_ms() - t0 < 200, "stop took %lld ms", now_ms() - t0);
	CHECK(raw_eof(idle));
	close(idle);
	CHECK(stat(p, &st) < 0);

	CHECK(ctl_server_start(p, handler, dir, &s, &e) == 0);
	busy = raw_connect(p);
	raw_sends(busy, "{\"cmd\":\"slow\"}\n");
	usleep(50 * 1000);
	ctl_server_stop(s);
	r = raw_resp(busy);
	CHECK(resp_ok(r));
	CHECK_STR(json_string_value(json_object_get(r, "cmd")), "slow");
	json_decref(r);
	close(busy);
	ctl_server_stop(NULL);
}

int main(void)
{
	struct ctl_server *s = NULL;
	struct err e = { 0 };
	char path[PATH_MAX];
	long long t0 = now_ms();
	int rc;

	snprintf(dir, sizeof(dir), "/tmp/sealvm-ctl-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	umask(022);   /* the server must not rely on the umask for 0600 */

	test_parse();

	sock_path(path, sizeof(path), "ctl.sock");
	rc = ctl_server_start(path, handler, dir, &s, &e);
	CHECKF(rc == 0, "ctl_server_start: %s", e.msg);
	if (rc == 0) {
		test_basic(path);
		test_long_line(path);
		test_midline_disconnect(path);
		test_conn_limit(path);
		test_concurrent_slow(path);
		test_client(path);
		test_socket_files(path);
		ctl_server_stop(s);
	}
	test_stop();

	rmdir(dir);
	fprintf(stderr, "test_control: %lld ms\n", now_ms() - t0);
	return unit_done();
}
