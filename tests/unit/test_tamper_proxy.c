/* tamper_proxy (tests/tools): runs the built binary between a test client and a
 * test server and checks each action's exact effect on synthetic streams of
 * sealvm sections and of TLS-like records. Needs build/tools/tamper_proxy (run
 * from the repo root, as tests/run.sh does); takes a few seconds. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROXY "build/tools/tamper_proxy"
#define MAX_REC 64
#define IO_TIMEOUT_MS 10000

static char dir[64];

/* ---- synthetic streams ---- */

struct stream {
	uint8_t *p;
	size_t len;
	size_t nrec;
	size_t off[MAX_REC + 1];   /* record i is [off[i], off[i+1]) */
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd() >> 24);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static size_t total(const size_t *sizes, size_t n, size_t per_rec)
{
	size_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += sizes[i] + per_rec;
	return t;
}

/* sealvm sections: header {id, version, seq, len}, payload, 8-byte trailer. */
static void sec_stream(struct stream *s, const size_t *sizes, size_t n)
{
	size_t o = 0;

	s->len = total(sizes, n, 32);
	s->p = malloc(s->len);
	s->nrec = n;
	for (size_t i = 0; i < n; i++) {
		s->off[i] = o;
		put_le(s->p + o, i == 0 ? 16 : 2, 4);    /* HELLO first, then PAGES */
		put_le(s->p + o + 4, 1, 4);
		put_le(s->p + o + 8, i, 8);
		put_le(s->p + o + 16, sizes[i], 8);
		fill(s->p + o + 24, sizes[i] + 8);
		o += 32 + sizes[i];
	}
	s->off[n] = o;
}

/* TLS-like records: a handshake record first, then application data. */
static void tls_stream(struct stream *s, const size_t *sizes, size_t n)
{
	size_t o = 0;

	s->len = total(sizes, n, 5);
	s->p = malloc(s->len);
	s->nrec = n;
	for (size_t i = 0; i < n; i++) {
		s->off[i] = o;
		s->p[o] = i == 0 ? 0x16 : 0x17;
		s->p[o + 1] = 3;
		s->p[o + 2] = 3;
		s->p[o + 3] = (uint8_t)(sizes[i] >> 8);
		s->p[o + 4] = (uint8_t)sizes[i];
		fill(s->p + o + 5, sizes[i]);
		o += 5 + sizes[i];
	}
	s->off[n] = o;
}

static size_t rec_len(const struct stream *s, size_t i)
{
	return s->off[i + 1] - s->off[i];
}

/* The stream with its records in the given order (indexes may repeat or be left out). */
static uint8_t *reorder(const struct stream *s, const size_t *order, size_t n, size_t *len)
{
	uint8_t *p = malloc(s->len * 2);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		memcpy(p + o, s->p + s->off[order[i]], rec_len(s, order[i]));
		o += rec_len(s, order[i]);
	}
	*len = o;
	return p;
}

enum rec_op { OP_DROP, OP_DUP, OP_SWAP };

static uint8_t *expect_records(const struct stream *s, enum rec_op op, size_t k, size_t *len)
{
	size_t order[MAX_REC * 2], n = 0;

	for (size_t i = 0; i < s->nrec; i++) {
		if (op == OP_DROP && i == k)
			continue;
		if (op == OP_SWAP && i == k) {
			order[n++] = k + 1;
			order[n++] = k;
			i++;
			continue;
		}
		order[n++] = i;
		if (op == OP_DUP && i == k)
			order[n++] = i;
	}
	return reorder(s, order, n, len);
}

/* ---- sockets ---- */

static int listen_any(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(fd, 8) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	int r = connect(fd, (struct sockaddr *)&a, sizeof(a));

	CHECKF(r == 0, "connect to the proxy on port %d: %s", port, strerror(errno));
	/* small chunks go out as they are written, so records split across reads */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static bool wait_fd(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };

	return poll(&p, 1, IO_TIMEOUT_MS) > 0;
}

static int accept_one(int lfd)
{
	int fd;

	CHECKF(wait_fd(lfd, POLLIN), "no connection reached the server");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

/* Reads until EOF or an error; returns 0 for EOF, else the errno. */
static int read_all(int fd, uint8_t **buf, size_t *len)
{
	size_t cap = 1 << 20;

	*buf = malloc(cap);
	*len = 0;
	for (;;) {
		ssize_t n;

		if (!wait_fd(fd, POLLIN))
			return ETIMEDOUT;
		if (*len == cap)
			*buf = realloc(*buf, cap *= 2);
		n = recv(fd, *buf + *len, cap - *len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : 0;
		*len += n;
	}
}

/* ---- the client: writes the stream in uneven chunks, then reads the reply ---- */

struct client {
	int fd;
	const uint8_t *p;
	size_t len;
	int werr;                  /* errno of a failed write, 0 if all were sent */
	int rerr;                  /* errno of a failed read of the reply */
	uint8_t *reply;
	size_t reply_len;
};

static size_t chunk_size(unsigned int i)
{
	switch (rnd() % 4) {
	case 0:
		return 1 + rnd() % 30;     /* splits headers */
	case 1:
		return 1 + rnd() % 5000;
	default:
		return 1 + rnd() % 100000;
	}
}

static void *client_run(void *arg)
{
	struct client *c = arg;
	size_t o = 0;
	unsigned int i = 0;

	while (o < c->len) {
		size_t n = chunk_size(i);
		ssize_t w;

		if (n > c->len - o)
			n = c->len - o;
		w = send(c->fd, c->p + o, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			c->werr = errno;
			break;
		}
		o += w;
		if (++i % 16 == 0)
			usleep(300);           /* let the proxy see partial records */
	}
	shutdown(c->fd, SHUT_WR);
	c->rerr = read_all(c->fd, &c->reply, &c->reply_len);
	return NULL;
}

/* ---- running the proxy ---- */

struct proxy {
	pid_t pid;
	int port;
	char log_path[128];
};

static bool start_proxy(struct proxy *px, int target_port, const char *action)
{
	char pf[128], target[32], line[32] = "";

	snprintf(pf, sizeof(pf), "%s/port", dir);
	snprintf(px->log_path, sizeof(px->log_path), "%s/log", dir);
	snprintf(target, sizeof(target), "127.0.0.1:%d", target_port);
	unlink(pf);
	px->pid = fork();
	if (px->pid == 0) {
		int fd = open(px->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		execl(PROXY, PROXY, "--port-file", pf, "0", target, action, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		FILE *f = fopen(pf, "r");
		if (f) {
			bool ok = fgets(line, sizeof(line), f) != NULL;
			fclose(f);
			px->port = ok ? atoi(line) : 0;
			return px->port > 0;
		}
		usleep(5000);
	}
	return false;
}

static bool log_has(const struct proxy *px, const char *want)
{
	char buf[1 << 16];
	FILE *f = fopen(px->log_path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = 0;
	return strstr(buf, want) != NULL;
}

/* The proxy logs a connection's end a moment after the peers see it. */
static void wait_log(const struct proxy *px, const char *want)
{
	for (int i = 0; i < 400 && !log_has(px, want); i++)
		usleep(5000);
}

/* Stops the proxy and returns its stderr (caller frees). */
static char *stop_proxy(struct proxy *px)
{
	static char log[1 << 16];
	int st;
	FILE *f;
	size_t n = 0;

	kill(px->pid, SIGTERM);
	waitpid(px->pid, &st, 0);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "proxy exit status 0x%x", st);
	f = fopen(px->log_path, "r");
	if (f) {
		n = fread(log, 1, sizeof(log) - 1, f);
		fclose(f);
	}
	log[n] = 0;
	return strdup(log);
}

struct outcome {
	uint8_t *got;              /* what the server received */
	size_t got_len;
	int server_err;            /* 0: clean EOF, else the errno of its read */
	struct client cl;
	char *log;
};

/* One connection client -> proxy -> server; the server answers "OK" after EOF. */
static void one_connection(int proxy_port, int lfd, const struct stream *s, struct outcome *o)
{
	pthread_t t;
	int sfd;

	memset(o, 0, sizeof(*o));
	o->cl.fd = connect_to(proxy_port);
	o->cl.p = s->p;
	o->cl.len = s->len;
	pthread_create(&t, NULL, client_run, &o->cl);
	sfd = accept_one(lfd);
	o->server_err = read_all(sfd, &o->got, &o->got_len);
	send(sfd, "OK", 2, MSG_NOSIGNAL);
	close(sfd);
	pthread_join(t, NULL);
	close(o->cl.fd);
}

/* A later connection must pass through untouched, both ways. */
static void check_later_connection(int proxy_port, int lfd)
{
	uint8_t data[70000];
	struct stream s = { .p = data, .len = sizeof(data) };
	struct outcome o;

	fill(data, sizeof(data));
	one_connection(proxy_port, lfd, &s, &o);
	CHECK_INT(o.got_len, sizeof(data));
	CHECK(o.got_len == sizeof(data) && !memcmp(o.got, data, sizeof(data)));
	CHECK_INT(o.cl.reply_len, 2);
	CHECK(o.cl.reply_len == 2 && !memcmp(o.cl.reply, "OK", 2));
	free(o.got);
	free(o.cl.reply);
}

/* Runs the first connection through a fresh proxy with `action`, then a later one. */
static void run(const char *action, const struct stream *s, struct outcome *o)
{
	struct proxy px;
	int port, lfd = listen_any(&port);

	if (!start_proxy(&px, port, action)) {
		CHECKF(0, "%s: proxy did not start", action);
		memset(o, 0, sizeof(*o));
		o->log = strdup("");
		close(lfd);
		return;
	}
	one_connection(px.port, lfd, s, o);
	check_later_connection(px.port, lfd);
	wait_log(&px, "first connection closed");
	o->log = stop_proxy(&px);
	close(lfd);
}

static void free_outcome(struct outcome *o)
{
	free(o->got);
	free(o->cl.reply);
	free(o->log);
}

static bool has(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool has(const char *log, const char *fmt, ...)
{
	char want[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	return strstr(log, want) != NULL;
}

/* The server got exactly `want` and a clean EOF; the client got the reply. */
static void check_exact(const char *what, const struct outcome *o, const uint8_t *want, size_t len)
{
	size_t i = 0;

	while (i < len && i < o->got_len && o->got[i] == want[i])
		i++;
	CHECKF(o->got_len == len && i == len, "%s: server got %zu bytes, want %zu, first difference at %zu",
	       what, o->got_len, len, i);
	CHECKF(o->server_err == 0, "%s: server read error %d", what, o->server_err);
	CHECKF(o->cl.werr == 0 && o->cl.rerr == 0, "%s: client errors %d/%d", what, o->cl.werr, o->cl.rerr);
	CHECKF(o->cl.reply_len == 2 && !memcmp(o->cl.reply, "OK", 2), "%s: client reply (%zu bytes)", what,
	       o->cl.reply_len);
	CHECKF(has(o->log, "first connection closed after %zu bytes client->server", o->cl.len),
	       "%s: closing line: %s", what, o->log);
}

static void check_applied(const char *what, const struct outcome *o, bool applied)
{
	CHECKF(!strstr(o->log, "action not applied") == applied, "%s: applied=%d, log:\n%s", what,
	       applied, o->log);
}

/* ---- cases ---- */

static void test_none(const struct stream *s)
{
	struct outcome o;

	run("none", s, &o);
	check_exact("none", &o, s->p, s->len);
	check_applied("none", &o, true);
	free_outcome(&o);
}

static void test_flip(const struct stream *s, size_t off)
{
	uint8_t *want = malloc(s->len);
	char act[64];
	struct outcome o;

	memcpy(want, s->p, s->len);
	want[off] ^= 1;
	snprintf(act, sizeof(act), "flip:%zu", off);
	run(act, s, &o);
	check_exact(act, &o, want, s->len);
	check_applied(act, &o, true);
	CHECKF(has(o.log, "flip byte at offset %zu (0x%02x -> 0x%02x)", off, s->p[off], want[off]),
	       "%s: %s", act, o.log);
	free(want);
	free_outcome(&o);
}

static void test_inject(const struct stream *s, size_t off)
{
	static const uint8_t bytes[] = { 0xde, 0xad, 0xbe, 0xef, 0x00 };
	uint8_t *want = malloc(s->len + sizeof(bytes));
	char act[64];
	struct outcome o;

	memcpy(want, s->p, off);
	memcpy(want + off, bytes, sizeof(bytes));
	memcpy(want + off + sizeof(bytes), s->p + off, s->len - off);
	snprintf(act, sizeof(act), "inject:%zu:deADbeef00", off);
	run(act, s, &o);
	check_exact(act, &o, want, s->len + sizeof(bytes));
	check_applied(act, &o, true);
	CHECKF(has(o.log, "inject 5 bytes at offset %zu", off), "%s: %s", act, o.log);
	free(want);
	free_outcome(&o);
}

/* Out of reach: the stream passes untouched and the proxy says so. */
static void test_not_applied(const struct stream *s, const char *act)
{
	struct outcome o;

	run(act, s, &o);
	check_exact(act, &o, s->p, s->len);
	check_applied(act, &o, false);
	free_outcome(&o);
}

static void test_cut(const struct stream *s, size_t off)
{
	char act[64];
	struct outcome o;

	snprintf(act, sizeof(act), "cut:%zu", off);
	run(act, s, &o);
	CHECKF(o.got_len == off && !memcmp(o.got, s->p, off), "%s: server got %zu bytes", act, o.got_len);
	CHECKF(o.server_err == ECONNRESET, "%s: server saw %d, want a reset", act, o.server_err);
	CHECKF(o.cl.werr || o.cl.rerr == ECONNRESET, "%s: client saw no reset (%d/%d)", act, o.cl.werr,
	       o.cl.rerr);
	CHECK(o.cl.reply_len == 0);
	check_applied(act, &o, true);
	CHECKF(has(o.log, "cut at offset %zu", off), "%s: %s", act, o.log);
	free_outcome(&o);
}

static void test_truncate(const struct stream *s, size_t off)
{
	char act[64];
	struct outcome o;

	snprintf(act, sizeof(act), "truncate:%zu", off);
	run(act, s, &o);
	/* server: the prefix, then EOF; client: everything accepted, the reply relayed */
	check_exact(act, &o, s->p, off);
	check_applied(act, &o, true);
	CHECKF(has(o.log, "truncate at offset %zu", off), "%s: %s", act, o.log);
	free_outcome(&o);
}

static void test_record(const struct stream *s, enum rec_op op, size_t k)
{
	static const char *const names[] = { "drop", "dup", "swap" };
	size_t len;
	uint8_t *want = expect_records(s, op, k, &len);
	char act[64];
	struct outcome o;

	snprintf(act, sizeof(act), "%s:%zu", names[op], k);
	run(act, s, &o);
	check_exact(act, &o, want, len);
	check_applied(act, &o, true);
	if (op == OP_SWAP)
		CHECKF(has(o.log, "swap records %zu and %zu (%zu and %zu bytes) at offset %zu", k, k + 1,
			   rec_len(s, k), rec_len(s, k + 1), s->off[k]), "%s: %s", act, o.log);
	else
		CHECKF(has(o.log, "%s record %zu (%zu bytes) at offset %zu", names[op], k, rec_len(s, k),
			   s->off[k]), "%s: %s", act, o.log);
	free(want);
	free_outcome(&o);
}

static void test_sections(void)
{
	size_t sizes[40];
	struct stream s;
	char act[64];

	sizes[0] = 48;
	for (size_t i = 1; i < 40; i++)
		sizes[i] = i % 7 == 0 ? rnd() % 20 : rnd() % 60000;
	sizes[5] = 0;
	sec_stream(&s, sizes, 40);

	test_none(&s);
	test_flip(&s, 0);
	test_flip(&s, 123457);
	test_flip(&s, s.len - 1);
	test_inject(&s, 0);
	test_inject(&s, 77777);
	test_inject(&s, s.len);
	test_cut(&s, 0);
	test_cut(&s, 300001);
	test_truncate(&s, 0);
	test_truncate(&s, 500003);
	test_record(&s, OP_DROP, 0);
	test_record(&s, OP_DROP, 5);
	test_record(&s, OP_DUP, 17);
	test_record(&s, OP_SWAP, 21);
	test_record(&s, OP_SWAP, 38);
	test_record(&s, OP_DROP, 39);
	snprintf(act, sizeof(act), "flip:%zu", s.len);
	test_not_applied(&s, act);
	test_not_applied(&s, "dup:40");
	test_not_applied(&s, "swap:39");     /* no record 40 to swap with */
	free(s.p);
}

/* A full PAGES section (~4.2 MiB) is held whole; one over the bound is refused. */
static void test_big_sections(void)
{
	size_t sizes[] = { 48, 100, 8 + 1024 * (8 + 4096), 5000, (9u << 20), 64 };
	struct stream s;
	struct outcome o;

	sec_stream(&s, sizes, 6);
	test_record(&s, OP_DUP, 2);
	test_record(&s, OP_SWAP, 2);
	run("dup:4", &s, &o);
	check_exact("dup:4", &o, s.p, s.len);
	check_applied("dup:4", &o, false);
	CHECKF(has(o.log, "error: record 4 at offset %zu", s.off[4]), "dup:4: %s", o.log);
	free_outcome(&o);
	free(s.p);
}

static void test_tls(void)
{
	size_t sizes[30];
	struct stream s;

	sizes[0] = 512;
	for (size_t i = 1; i < 30; i++)
		sizes[i] = i % 5 == 0 ? 16384 + 256 : rnd() % 16000;
	sizes[9] = 0;
	tls_stream(&s, sizes, 30);
	test_none(&s);
	test_record(&s, OP_DROP, 9);
	test_record(&s, OP_DUP, 10);
	test_record(&s, OP_SWAP, 14);
	test_record(&s, OP_DUP, 0);
	test_flip(&s, 40000);
	test_not_applied(&s, "drop:30");
	free(s.p);
}

static void test_bad_usage(void)
{
	const char *bad[] = { "flip", "flip:", "flip:12x", "inject:5", "inject:5:abc", "inject:5:zz",
			      "dup:1:2", "mangle:3" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY);
			dup2(fd, 2);
			execl(PROXY, PROXY, "0", "127.0.0.1:1", bad[i], (char *)NULL);
			_exit(127);
		}
		waitpid(pid, &st, 0);
		CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 2, "action \"%s\": status 0x%x", bad[i], st);
	}
}

static void cleanup_dir(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/log", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/port", dir);
	unlink(p);
	rmdir(dir);
}

int main(void)
{
	if (access(PROXY, X_OK) != 0) {
		fprintf(stderr, "%s is missing: run `make %s` first (from the repo root)\n", PROXY, PROXY);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/sealvm-tamper-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_bad_usage();
	test_sections();
	test_big_sections();
	test_tls();
	cleanup_dir();
	return unit_done();
}
