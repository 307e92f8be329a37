/* "sealvm ctl": sends one request line to the control socket, prints the
 * response. Exit codes: 0 ok, 1 the server answered an error, 2 usage,
 * connection or protocol errors. */
#include "control/control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>   /* isfinite (a macro; no libm needed) */
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXIT_SERVER_ERROR 1
#define EXIT_USAGE        2
#define MAX_RESPONSE      (64u << 20)

static const char usage_text[] =
	"usage: sealvm ctl [--timeout SEC] SOCKET COMMAND [ARGS...]\n"
	"commands:\n"
	"  status | pause | stats\n"
	"  resume [--force]   --force: after an UNCERTAIN migration, run the VM here anyway\n"
	"  quit [--force]     --force: quit even while a migration's outcome is unknown\n"
	"  snapshot FILE [--key-file KEY]   sealed with KEY (default: the host's snapshot key)\n"
	"  migrate URI [--tls-dir DIR] [--downtime-ms N] [--channels N] [--max-throttle PCT]\n"
	"          [--max-rounds N] [--timeout-ms N] [--hello-timeout-ms N] [--ready-timeout-ms N]\n"
	"          [--outcome-wait-ms N] [--insecure]\n"
	"  migrate-cancel     abort the migration in progress (before COMMIT); the VM runs on\n"
	"  raw JSON        send JSON unchanged as the request line\n"
	"Any other COMMAND is sent as {\"cmd\":COMMAND} (extra ARGS as \"args\").\n"
	"--timeout bounds the whole exchange; by default the client waits forever.\n";

/* ---- building the request ---- */

static int make_absolute(const char *p, char **out, struct err *e)
{
	char *cwd;
	int n;

	*out = NULL;
	if (p[0] == '/') {
		*out = strdup(p);
		return *out ? 0 : err_set(e, -ENOMEM, "out of memory");
	}
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return err_sys(e, -errno, "cannot get the current directory for %s", p);
	n = asprintf(out, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", p);
	free(cwd);
	if (n < 0) {
		*out = NULL;
		return err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Parses a non-negative decimal integer no larger than max. */
static int parse_count(const char *opt, const char *s, unsigned long long max,
		       json_int_t *out, struct err *e)
{
	unsigned long long v;
	char *end;
	const char *p;

	for (p = s; *p; p++)
		if (*p < '0' || *p > '9')
			break;
	if (p == s || *p)
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		goto bad;
	*out = (json_int_t)v;
	return 0;
bad:
	if (max == 100)
		return err_set(e, -EINVAL, "%s needs a percentage from 0 to 100, not \"%s\"",
			       opt, s);
	return err_set(e, -EINVAL, "%s needs a non-negative integer, not \"%s\"", opt, s);
}

/* Matches "--name VALUE" and "--name=VALUE"; advances *i past the value. */
static int opt_value(int argc, char **argv, int *i, const char *name,
		     const char **val, struct err *e)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return err_set(e, -EINVAL, "%s needs a value", name);
	*val = argv[++*i];
	return 1;
}

static int build_migrate(json_t *req, int argc, char **argv, struct err *e)
{
	static const struct {
		const char *opt, *key;
		unsigned long long max;
	} nums[] = {
		{ "--downtime-ms", "downtime_ms", LLONG_MAX },
		{ "--channels", "channels", LLONG_MAX },
		{ "--max-throttle", "max_throttle", 100 },
		{ "--max-rounds", "max_rounds", 1000 },
		{ "--timeout-ms", "timeout_ms", 3600000 },
		{ "--hello-timeout-ms", "hello_timeout_ms", 3600000 },
		{ "--ready-timeout-ms", "ready_timeout_ms", 3600000 },
		{ "--outcome-wait-ms", "outcome_wait_ms", 3600000 },
	};
	const char *uri = NULL, *val;
	int i, r;
	size_t k;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-' || a[1] == '\0') {
			if (uri)
				return err_set(e, -EINVAL, "migrate takes one URI (got \"%s\" and \"%s\")",
					       uri, a);
			uri = a;
			continue;
		}
		if (!strcmp(a, "--insecure")) {
			if (json_object_set_new(req, "insecure", json_true()) < 0)
				return err_set(e, -ENOMEM, "out of memory");
			continue;
		}
		r = opt_value(argc, argv, &i, "--tls-dir", &val, e);
		if (r < 0)
			return r;
		if (r) {
			char *dir;

			if (!*val)
				return err_set(e, -EINVAL, "--tls-dir needs a directory");
			r = make_absolute(val, &dir, e);
			if (r < 0)
				return r;
			r = json_object_set_new(req, "tls_dir", json_string(dir));
			free(dir);
			if (r < 0)
				return err_set(e, -ENOMEM, "out of memory");
			continue;
		}
		for (k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
			json_int_t v = 0;

			r = opt_value(argc, argv, &i, nums[k].opt, &val, e);
			if (r < 0)
				return r;
			if (!r)
				continue;
			r = parse_count(nums[k].opt, val, nums[k].max, &v, e);
			if (r < 0)
				return r;
			if (json_object_set_new(req, nums[k].key, json_integer(v)) < 0)
				return err_set(e, -ENOMEM, "out of memory");
			break;
		}
		if (k == sizeof(nums) / sizeof(nums[0]))
			return err_set(e, -EINVAL, "unknown migrate option %s", a);
	}
	if (!uri || !*uri)
		return err_set(e, -EINVAL, "migrate needs a URI");
	if (json_object_set_new(req, "uri", json_string(uri)) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	return 0;
}

/* Builds the request line (with its newline) for COMMAND ARGS. */
static int build_request(const char *cmd, int argc, char **argv, char **line,
			 struct err *e)
{
	static const char *const plain[] = { "status", "pause", "stats", "migrate-cancel" };
	json_t *req;
	size_t k, n;
	int r = 0;

	*line = NULL;
	if (!strcmp(cmd, "raw")) {
		if (argc != 1)
			return err_set(e, -EINVAL, "raw takes exactly one JSON argument");
		if (strchr(argv[0], '\n'))
			return err_set(e, -EINVAL, "raw JSON must be a single line");
		if (!argv[0][strspn(argv[0], " \t\r")])
			return err_set(e, -EINVAL, "raw needs a JSON request");   /* a blank line gets no answer */
		if (asprintf(line, "%s\n", argv[0]) < 0) {
			*line = NULL;
			return err_set(e, -ENOMEM, "out of memory");
		}
		return 0;
	}
	if (!*cmd)
		return err_set(e, -EINVAL, "empty COMMAND");

	/* Object with "cmd" first; the server does not care about order, but
	 * people reading logs do. */
	req = json_pack("{s:s}", "cmd", cmd);
	if (!req)
		return err_set(e, -EINVAL, "COMMAND is not valid UTF-8");
	for (k = 0; k < sizeof(plain) / sizeof(plain[0]); k++)
		if (!strcmp(cmd, plain[k]))
			break;
	if (k < sizeof(plain) / sizeof(plain[0])) {
		if (argc)
			r = err_set(e, -EINVAL, "%s takes no arguments", cmd);
	} else if (!strcmp(cmd, "resume") || !strcmp(cmd, "quit")) {
		if (argc > 1 || (argc == 1 && strcmp(argv[0], "--force")))
			r = err_set(e, -EINVAL, "%s takes only --force", cmd);
		else if (argc == 1 && json_object_set_new(req, "force", json_true()) < 0)
			r = err_set(e, -ENOMEM, "out of memory");
	} else if (!strcmp(cmd, "snapshot")) {
		char *file, *kf;

		if ((argc != 1 && argc != 3) || !*argv[0] || (argc == 3 && strcmp(argv[1], "--key-file"))) {
			r = err_set(e, -EINVAL, "snapshot takes one FILE [--key-file KEY]");
		} else if ((r = make_absolute(argv[0], &file, e)) == 0) {
			if (json_object_set_new(req, "file", json_string(file)) < 0)
				r = err_set(e, -EINVAL, "FILE is not valid UTF-8");
			free(file);
			if (r == 0 && argc == 3 && (r = make_absolute(argv[2], &kf, e)) == 0) {
				if (json_object_set_new(req, "key_file", json_string(kf)) < 0)
					r = err_set(e, -EINVAL, "KEY is not valid UTF-8");
				free(kf);
			}
		}
	} else if (!strcmp(cmd, "migrate")) {
		r = build_migrate(req, argc, argv, e);
	} else if (argc) {
		/* Unknown here; the server decides. Keep the arguments. */
		json_t *args = json_array();
		int i;

		for (i = 0; i < argc && r == 0; i++)
			if (json_array_append_new(args, json_string(argv[i])) < 0)
				r = err_set(e, -EINVAL, "argument \"%s\" is not valid UTF-8", argv[i]);
		if (json_object_set_new(req, "args", args) < 0 && r == 0)
			r = err_set(e, -ENOMEM, "out of memory");
	}
	if (r == 0) {
		*line = json_dumps(req, JSON_COMPACT);
		if (!*line) {
			r = err_set(e, -EINVAL, "arguments are not valid UTF-8");
		} else {
			char *l;

			n = strlen(*line);
			l = realloc(*line, n + 2);

			if (!l) {
				free(*line);
				*line = NULL;
				r = err_set(e, -ENOMEM, "out of memory");
			} else {
				memcpy(l + n, "\n", 2);
				*line = l;
			}
		}
	}
	json_decref(req);
	return r;
}

/* ---- talking to the server ---- */

#define CONNECT_WAIT_MS 5000  /* for a socket that does not exist (yet) */

struct conn {
	const char *path;
	long long start_ms;
	int fd;
	long long deadline_ms;   /* CLOCK_MONOTONIC; <0: none */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll timeout left before the deadline (-1: none); 0 once past it. */
static int left_ms(const struct conn *c)
{
	long long left;

	if (c->deadline_ms < 0)
		return -1;
	left = c->deadline_ms - now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int timed_out(const struct conn *c, struct err *e)
{
	return err_set(e, -ETIMEDOUT, "no response from control socket %s within the timeout",
		       c->path);
}

static int wait_io(const struct conn *c, short events, struct err *e)
{
	for (;;) {
		struct pollfd p = { .fd = c->fd, .events = events };
		int r = poll(&p, 1, left_ms(c));

		if (r > 0)
			return 0;
		if (r == 0)
			return timed_out(c, e);
		if (errno != EINTR)
			return err_sys(e, -errno, "poll on control socket %s", c->path);
	}
}

static int client_connect(struct conn *c, struct err *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t n = strlen(c->path);

	if (n == 0 || n >= sizeof(a.sun_path))
		return err_set(e, -ENAMETOOLONG, "cannot connect to control socket %s: %s",
			       c->path, n ? "path too long" : "empty path");
	memcpy(a.sun_path, c->path, n);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return err_sys(e, -errno, "cannot create socket");
	for (;;) {
		long long waited = now_ms() - c->start_ms;
		int r;

		if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		/* a sealvm started a moment ago may not have made its socket yet:
		 * wait for it, briefly, so `run ... &` then `ctl` just works */
		if ((errno == ENOENT || errno == ECONNREFUSED) && waited < CONNECT_WAIT_MS &&
		    (c->deadline_ms < 0 || left_ms(c) > 0)) {
			usleep(50000);
			continue;
		}
		if (errno != EAGAIN)
			return err_sys(e, -errno, "cannot connect to control socket %s%s", c->path,
				       errno == ENOENT || errno == ECONNREFUSED ? " (waited 5 s for it)" : "");
		/* Listener backlog full: retry until the deadline. */
		r = left_ms(c);
		if (r == 0)
			return timed_out(c, e);
		usleep(10000);
	}
}

/* Sends the line. A server that refuses the connection answers and closes
 * first, so EPIPE is not fatal: the caller still reads the answer. */
static int client_send(struct conn *c, const char *buf, size_t len, struct err *e)
{
	while (len) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		int r;

		if (n >= 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return err_sys(e, -errno, "cannot send to control socket %s", c->path);
		r = wait_io(c, POLLOUT, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Reads one response line (newline removed, NUL-terminated). */
static int client_recv(struct conn *c, char **out, size_t *outlen, struct err *e)
{
	size_t have = 0, cap = 4096;
	char *buf = malloc(cap), *nl;
	int r;

	*out = NULL;
	if (!buf)
		return err_set(e, -ENOMEM, "out of memory");
	for (;;) {
		ssize_t n;

		if (have + 1 >= cap) {
			char *b;

			if (cap >= MAX_RESPONSE) {
				r = err_set(e, -EMSGSIZE, "response from control socket %s is too long",
					    c->path);
				goto fail;
			}
			b = realloc(buf, cap * 2);
			if (!b) {
				r = err_set(e, -ENOMEM, "out of memory");
				goto fail;
			}
			buf = b;
			cap *= 2;
		}
		n = recv(c->fd, buf + have, cap - have - 1, 0);
		if (n > 0) {
			nl = memchr(buf + have, '\n', (size_t)n);
			have += (size_t)n;
			if (nl) {
				*nl = '\0';
				*out = buf;
				*outlen = (size_t)(nl - buf);
				return 0;
			}
			continue;
		}
		if (n == 0) {
			r = err_set(e, -ECONNRESET,
				    "control socket %s closed the connection without a response",
				    c->path);
			goto fail;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			r = err_sys(e, -errno, "cannot read from control socket %s", c->path);
			goto fail;
		}
		r = wait_io(c, POLLIN, e);
		if (r < 0)
			goto fail;
	}
fail:
	free(buf);
	return r;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "sealvm: %s\n%s", msg, usage_text);
	return EXIT_USAGE;
}

int ctl_client_main(int argc, char **argv)
{
	const char *sock = NULL, *cmd = NULL, *val;
	struct conn c = { .fd = -1, .deadline_ms = -1 };
	double timeout = -1;
	struct err e = { 0 };
	char *line = NULL, *resp_text = NULL;
	size_t resp_len = 0;
	json_t *resp = NULL, *ok;
	json_error_t je;
	int i, r, rc = EXIT_USAGE;

	for (i = 1; i < argc && !cmd; i++) {
		const char *a = argv[i];

		r = opt_value(argc, argv, &i, "--timeout", &val, &e);
		if (r < 0)
			return usage_error(e.msg);
		if (r) {
			char *end;

			errno = 0;
			timeout = strtod(val, &end);
			if (!*val || *end || errno || !isfinite(timeout) || timeout <= 0 ||
			    timeout > 1e9) {
				snprintf(e.msg, sizeof(e.msg),
					 "--timeout needs a positive number of seconds, not \"%s\"", val);
				return usage_error(e.msg);
			}
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			fflush(stdout);
			return 0;
		}
		if (a[0] == '-' && a[1] != '\0') {
			snprintf(e.msg, sizeof(e.msg), "unknown option %s", a);
			return usage_error(e.msg);
		}
		if (!sock)
			sock = a;
		else
			cmd = a;
	}
	if (!sock)
		return usage_error("missing SOCKET and COMMAND");
	if (!cmd)
		return usage_error("missing COMMAND");
	if (build_request(cmd, argc - i, argv + i, &line, &e) < 0)
		return usage_error(e.msg);

	c.path = sock;
	c.start_ms = now_ms();
	if (timeout > 0)
		c.deadline_ms = now_ms() + (long long)(timeout * 1000 + 0.999);
	if (client_connect(&c, &e) < 0 ||
	    client_send(&c, line, strlen(line), &e) < 0 ||
	    client_recv(&c, &resp_text, &resp_len, &e) < 0) {
		fprintf(stderr, "sealvm: %s\n", e.msg);
		goto out;
	}
	resp = json_loadb(resp_text, resp_len, 0, &je);
	ok = json_object_get(resp, "ok");
	if (!json_is_object(resp) || !json_is_boolean(ok)) {
		fprintf(stderr, "sealvm: invalid response from control socket %s: %s\n", sock,
			resp ? "not an object with a boolean \"ok\"" : je.text);
		goto out;
	}
	if (json_dumpf(resp, stdout, JSON_INDENT(2)) < 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) == EOF) {
		fprintf(stderr, "sealvm: cannot write the response to stdout: %s\n",
			strerror(errno));
		goto out;
	}
	if (json_is_true(ok)) {
		rc = 0;
	} else {
		const char *msg = json_string_value(json_object_get(resp, "error"));

		fprintf(stderr, "sealvm: %s\n", msg ? msg : "command failed");
		rc = EXIT_SERVER_ERROR;
	}
out:
	fflush(stdout);
	if (c.fd >= 0)
		close(c.fd);
	json_decref(resp);
	free(resp_text);
	free(line);
	return rc;
}
