/* `sealvm console tls://HOST:PORT --tls-dir OWNERDIR [options]`
 *
 * Terminal mode (default): the serial console. stdin goes to the guest's UART, its
 * output to stdout; a terminal is put in raw mode, pipes work as they are. The escape
 * character (default Ctrl-], --escape none to disable) detaches.
 * --screen: prints the text screen once and exits.
 * --vnc ADDR:PORT: a local VNC port (loopback only) for any VNC viewer; the screen is
 * rendered here, from the text screen the console server sends (console/vnc.h).
 * --web ADDR:PORT: the same, plus noVNC served there by websockify (Debian's novnc and
 * websockify).
 *
 * Following the VM: when it is migrated, the server sends REDIRECT (inside this TLS
 * session, so only the host holding the VM can send it) naming the new host's console.
 * The client connects there (its certificate must name that host, from the same CA),
 * asks for the serial output from its own offset (each byte exactly once), sends again
 * the input frames the old host had not taken, and carries on; local VNC viewers stay
 * connected throughout. A restored VM's console arrives LOCKED: the client unwraps its
 * key with the owner's private key (console/wrap.h) and sends it back. */
#include "console/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "console/proto.h"
#include "console/tls.h"
#include "console/vnc.h"
#include "console/wrap.h"
#include "dev/vga.h"

#define NOVNC_DIR "/usr/share/novnc"
#define LOG_CAP (1u << 20)          /* input frames kept for resending after a redirect */
#define FOLLOW_MS 30000             /* how long the new host may take to answer */
#define KEYQ 256

struct cli {
	SSL_CTX *ctx;
	SSL *ssl;
	char uri[CPROTO_URI_MAX + 1];
	uint8_t in[CPROTO_HDR + CPROTO_MAX];
	size_t inlen;
	uint32_t flags;             /* HELLO flags */
	uint64_t next;              /* serial offset expected next */
	bool out_serial;            /* write serial output to stdout */
	/* input frames sent in this session, oldest first, for a redirect */
	uint8_t *log;
	size_t log_len;
	uint64_t log_first;         /* session frame number of log[0] */
	/* the screen, for the local VNC server */
	pthread_mutex_t lock;
	struct vga_screen scr;
	bool have_scr;
	struct { uint32_t sym; bool down; } keyq[KEYQ];
	int nkeys;
	int wake[2];
	/* following */
	SSL *standby;               /* connected ahead to where the VM is about to move */
	char standby_uri[CPROTO_URI_MAX + 1];
	double t_last_out;          /* last serial bytes arrived (ms) */
	double t_redirect;
	bool gap_pending;
};

static volatile sig_atomic_t quit_sig;
static struct termios saved_tio;
static int tio_saved;

static void on_signal(int sig)
{
	quit_sig = sig;
}

static void restore_tty(void)
{
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	tio_saved = 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Messages go to stderr; in raw terminal mode a line needs its \r. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%ssealvm console: %s%s", tio_saved ? "\r\n" : "", buf, tio_saved ? "\r\n" : "\n");
}

static int send_all(struct cli *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		int r = SSL_write(c->ssl, b, (int)(n > 65536 ? 65536 : n));
		if (r <= 0)
			return -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int send_frame(struct cli *c, uint8_t type, const void *a, size_t alen)
{
	uint8_t hdr[CPROTO_HDR];

	cproto_header(hdr, type, (uint32_t)alen);
	if (send_all(c, hdr, sizeof(hdr)) || (alen && send_all(c, a, alen)))
		return -EPIPE;
	return 0;
}

/* ---- input frames: sent, and kept until a redirect says which the old host took ---- */

static void log_trim(struct cli *c)
{
	while (c->log_len > LOG_CAP) {
		struct cproto_frame f;
		struct err e = { 0 };
		size_t used = 0;
		if (cproto_parse(c->log, c->log_len, &f, &used, &e) != 1)
			break;
		explicit_bzero(c->log, used);
		memmove(c->log, c->log + used, c->log_len - used);
		c->log_len -= used;
		c->log_first++;
	}
}

static int send_input(struct cli *c, uint8_t type, const void *p, size_t len)
{
	uint8_t *nl = realloc(c->log, c->log_len + CPROTO_HDR + len);

	if (send_frame(c, type, p, len) < 0)
		return -EPIPE;
	if (!nl)
		return 0; /* not kept: a redirect right now could lose it, and says so */
	c->log = nl;
	cproto_header(c->log + c->log_len, type, (uint32_t)len);
	memcpy(c->log + c->log_len + CPROTO_HDR, p, len);
	c->log_len += CPROTO_HDR + len;
	log_trim(c);
	return 0;
}

/* After a redirect: the frames the old host had not taken go to the new one. */
static int resend_input(struct cli *c, uint64_t taken)
{
	uint8_t *old = c->log;
	size_t len = c->log_len, off = 0;
	uint64_t k = c->log_first;
	int r = 0;

	if (taken < c->log_first)
		say("%llu keystroke frames may have been lost in the move",
		    (unsigned long long)(c->log_first - taken));
	c->log = NULL;
	c->log_len = 0;
	c->log_first = 0;
	while (off < len) {
		struct cproto_frame f;
		struct err e = { 0 };
		size_t used = 0;
		if (cproto_parse(old + off, len - off, &f, &used, &e) != 1)
			break;
		if (k++ >= taken && r == 0)
			r = send_input(c, f.type, f.payload, f.len);
		off += used;
	}
	if (old)
		explicit_bzero(old, len);
	free(old);
	return r;
}

/* ---- frames from the server ---- */

/* Reads one frame; timeout_ms < 0 blocks. 0 ok, 1 timeout, <0 with a message in e. */
static int read_frame(struct cli *c, struct cproto_frame *f, size_t *used, int timeout_ms, struct err *e)
{
	char why[160];

	for (;;) {
		int r;
		if (*used) {
			memmove(c->in, c->in + *used, c->inlen - *used);
			c->inlen -= *used;
			*used = 0;
		}
		r = cproto_parse(c->in, c->inlen, f, used, e);
		if (r < 0)
			return r;
		if (r == 1)
			return 0;
		if (timeout_ms >= 0 && !SSL_pending(c->ssl)) {
			struct pollfd p = { .fd = SSL_get_fd(c->ssl), .events = POLLIN };
			if (poll(&p, 1, timeout_ms) == 0)
				return 1;
		}
		ERR_clear_error();
		r = SSL_read(c->ssl, c->in + c->inlen, (int)(sizeof(c->in) - c->inlen));
		if (r <= 0) {
			int err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_ZERO_RETURN)
				return err_set(e, -ENODATA, "console server closed the session");
			return err_set(e, -EACCES, "console session ended: %s", ctls_reason(why, sizeof(why)));
		}
		c->inlen += (size_t)r;
	}
}

static void consume(struct cli *c, size_t *used)
{
	memmove(c->in, c->in + *used, c->inlen - *used);
	c->inlen -= *used;
	*used = 0;
}

static void write_out(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Serial output: each offset once, in order. */
static void on_output(struct cli *c, const struct cp_output *o)
{
	const uint8_t *p = o->data;
	size_t n = o->len;
	double t = now_ms();

	if (o->offset > c->next)
		say("%llu bytes of output were lost (scrollback overrun)", (unsigned long long)(o->offset - c->next));
	else if (o->offset < c->next) {
		uint64_t skip = c->next - o->offset;
		if (skip >= n)
			return;
		p += skip;
		n -= skip;
	}
	if (c->out_serial)
		write_out(STDOUT_FILENO, p, n);
	c->next = o->offset + o->len;
	if (c->gap_pending) {
		c->gap_pending = false;
		say("console gap %.1f ms (last serial byte from the old host to the first from the new)",
		    t - c->t_last_out);
	}
	c->t_last_out = t;
}

static void on_screen(struct cli *c, const struct cp_screen *s)
{
	int i;

	if (s->rows != VGA_ROWS || s->cols != VGA_COLS)
		return;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < VGA_ROWS * VGA_COLS; i++)
		c->scr.cells[i] = (uint16_t)(s->cells[2 * i] | s->cells[2 * i + 1] << 8);
	c->scr.cursor_row = s->cursor_row;
	c->scr.cursor_col = s->cursor_col;
	c->scr.cursor_on = s->cursor_on;
	c->have_scr = true;
	pthread_mutex_unlock(&c->lock);
}

/* ---- connecting: HELLO, an unlock if the console is sealed for us, WELCOME ---- */

static int unlock(struct cli *c, const struct cproto_frame *f, struct err *e)
{
	struct console_key key;
	int r = console_unwrap(f->payload, f->len, SSL_CTX_get0_privatekey(c->ctx), &key, e);

	if (r < 0)
		return err_wrap(e, "the restored console stays locked");
	say("the VM was restored from a snapshot; unlocking its console with this owner's key");
	r = send_frame(c, CP_UNLOCK, key.k, sizeof(key.k));
	console_key_wipe(&key);
	return r < 0 ? err_set(e, -EPIPE, "console session lost") : 0;
}

static int connect_to(struct cli *c, const char *uri, int timeout_ms, SSL **out, struct err *e)
{
	char host[256], port[16];
	int r = ctls_parse_uri(uri, host, sizeof(host), port, sizeof(port), e);

	return r < 0 ? r : ctls_connect(c->ctx, host, port, timeout_ms, out, e);
}

/* HELLO on c->ssl, an unlock if the console is sealed for us, WELCOME. */
static int session_hello(struct cli *c, int *mode, struct err *e)
{
	struct cp_hello h = { CPROTO_VERSION, c->flags, c->next };
	uint8_t fr[CPROTO_HDR + 16];
	char why[160], msg[512];
	struct cproto_frame f;
	struct cp_welcome w;
	size_t used = 0;
	int r;

	c->inlen = 0;
	ERR_clear_error();
	if (send_all(c, fr, cp_encode_hello(fr, &h)))
		return err_set(e, -EPIPE, "console session ended: %s", ctls_reason(why, sizeof(why)));
	for (;;) {
		r = read_frame(c, &f, &used, -1, e);
		if (r < 0) {
			/* TLS 1.3: a refused client certificate shows up as an alert on the first read. */
			if (strstr(e->msg, "alert")) {
				char m[sizeof(e->msg)];
				snprintf(m, sizeof(m), "%s", e->msg);
				err_set(e, r, "%s (the server accepts only certificates from the VM owner's CA)", m);
			}
			return r;
		}
		if (f.type == CP_LOCKED) {
			r = unlock(c, &f, e);
			if (r < 0)
				return r;
		} else if (f.type == CP_ERROR) {
			cp_decode_error(&f, msg, sizeof(msg));
			return err_set(e, -EACCES, "server: %s", msg);
		} else if (f.type == CP_WELCOME && cp_decode_welcome(&f, &w, e) == 0) {
			break;
		} else {
			return err_set(e, -EPROTO, "unexpected answer to HELLO (frame 0x%02x) %s", f.type, e->msg);
		}
		consume(c, &used);
	}
	consume(c, &used);
	if (c->next != UINT64_MAX && w.from > c->next)
		say("%llu bytes of output were lost (the scrollback no longer holds them)",
		    (unsigned long long)(w.from - c->next));
	c->next = w.from;
	*mode = (int)w.mode;
	return 0;
}

static int session_open(struct cli *c, const char *uri, int *mode, struct err *e)
{
	int r = connect_to(c, uri, 10000, &c->ssl, e);

	if (r < 0)
		return r;
	snprintf(c->uri, sizeof(c->uri), "%s", uri);
	return session_hello(c, mode, e);
}

static void drop_standby(struct cli *c)
{
	if (!c->standby)
		return;
	close(SSL_get_fd(c->standby));
	SSL_free(c->standby);
	c->standby = NULL;
}

/* PREPARE: the VM is about to move; connect there now, so following costs no handshake. */
static void prepare(struct cli *c, const char *uri)
{
	struct err e = { 0 };

	if (c->standby && !strcmp(c->standby_uri, uri))
		return;
	drop_standby(c);
	if (connect_to(c, uri, 5000, &c->standby, &e) == 0)
		snprintf(c->standby_uri, sizeof(c->standby_uri), "%s", uri);
	else
		c->standby = NULL; /* only a hint: the redirect connects anew */
}

static void session_close(struct cli *c)
{
	if (!c->ssl)
		return;
	SSL_shutdown(c->ssl);
	close(SSL_get_fd(c->ssl));
	SSL_free(c->ssl);
	c->ssl = NULL;
}

/* The VM moved: connect to its new host (retrying while it comes up), send again what
 * the old host had not taken. */
static int follow(struct cli *c, const struct cp_redirect *rd, struct err *e)
{
	double t0 = now_ms();
	int mode, r;

	say("the VM moved to %s; following", rd->uri);
	session_close(c);
	c->t_redirect = t0;
	if (c->standby && !strcmp(c->standby_uri, rd->uri)) {
		struct err ce = { 0 };
		c->ssl = c->standby;
		c->standby = NULL;
		snprintf(c->uri, sizeof(c->uri), "%s", rd->uri);
		if (session_hello(c, &mode, &ce) < 0)
			session_close(c); /* it went stale: connect anew */
	}
	drop_standby(c);
	while (!c->ssl) {
		struct err ce = { 0 };
		r = session_open(c, rd->uri, &mode, &ce);
		if (r == 0)
			break;
		session_close(c);
		if (quit_sig || now_ms() - t0 > FOLLOW_MS || r == -EACCES) {
			*e = ce;
			return err_wrap(e, "cannot follow the VM to %s", rd->uri);
		}
		usleep(20000);
	}
	say("reconnected to %s %s in %.1f ms", rd->uri, mode == CP_MODE_RW ? "read-write" : "read-only",
	    now_ms() - t0);
	c->gap_pending = c->t_last_out > 0;
	r = resend_input(c, rd->input_frames);
	return r < 0 ? err_set(e, -EPIPE, "console session lost while sending input again") : 0;
}

/* One frame during a session. 1: the session ended well (detach), 0: go on, <0: error. */
static int dispatch(struct cli *c, struct cproto_frame *f, size_t *used, struct err *e)
{
	struct cp_output o;
	struct cp_screen s;
	struct cp_redirect rd;
	char msg[512];
	int r = 0;

	switch (f->type) {
	case CP_OUTPUT:
		if (cp_decode_output(f, &o, e) == 0)
			on_output(c, &o);
		break;
	case CP_SCREEN:
		if (cp_decode_screen(f, &s, e) == 0)
			on_screen(c, &s);
		break;
	case CP_ERROR:
		cp_decode_error(f, msg, sizeof(msg));
		return err_set(e, -EACCES, "server: %s", msg);
	case CP_REDIRECT:
		r = cp_decode_redirect(f, &rd, e);
		consume(c, used);
		return r < 0 ? r : follow(c, &rd, e);
	case CP_PREPARE:
		if (cp_decode_prepare(f, rd.uri, e) == 0)
			prepare(c, rd.uri);
		break;
	default:
		break;
	}
	consume(c, used);
	return 0;
}

/* Everything the server has sent that is ready, without blocking. */
static int drain_server(struct cli *c, struct err *e)
{
	for (;;) {
		struct cproto_frame f;
		size_t used = 0;
		int r = read_frame(c, &f, &used, 0, e);
		if (r == 1)
			return 0;
		if (r < 0)
			return r;
		r = dispatch(c, &f, &used, e);
		if (r < 0)
			return r;
	}
}

static int terminal_loop(struct cli *c, int escape)
{
	struct err e = { 0 };
	bool in_open = true;

	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
		struct termios raw = saved_tio;
		cfmakeraw(&raw);
		tio_saved = 1;
		atexit(restore_tty);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	while (!quit_sig) {
		struct pollfd p[2] = { { .fd = SSL_get_fd(c->ssl), .events = POLLIN },
				       { .fd = STDIN_FILENO, .events = POLLIN } };
		if (!SSL_pending(c->ssl) && c->inlen < CPROTO_HDR && poll(p, in_open ? 2 : 1, 500) <= 0)
			continue;
		if (in_open && (p[1].revents & (POLLIN | POLLHUP))) {
			uint8_t buf[CPROTO_INPUT_MAX];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0) {
				in_open = false; /* keep showing output; the escape or a signal ends us */
			} else {
				uint8_t *esc = escape >= 0 ? memchr(buf, escape, (size_t)n) : NULL;
				size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
				if (len && send_input(c, CP_INPUT, buf, len) < 0) {
					restore_tty();
					say("console session lost");
					return 1;
				}
				explicit_bzero(buf, sizeof(buf));
				if (esc) {
					restore_tty();
					say("detached");
					return 0;
				}
			}
		}
		if (drain_server(c, &e) < 0) {
			restore_tty();
			say("%s", e.msg);
			return 1;
		}
	}
	restore_tty();
	return 0;
}

/* ---- the local VNC side ---- */

static bool vnc_screen(void *opaque, struct vga_screen *out)
{
	struct cli *c = opaque;
	bool have;

	pthread_mutex_lock(&c->lock);
	have = c->have_scr;
	if (have)
		*out = c->scr;
	pthread_mutex_unlock(&c->lock);
	return have;
}

static void vnc_key(void *opaque, uint32_t sym, bool down)
{
	struct cli *c = opaque;
	char b = 1;

	pthread_mutex_lock(&c->lock);
	if (c->nkeys < KEYQ) {
		c->keyq[c->nkeys].sym = sym;
		c->keyq[c->nkeys].down = down;
		c->nkeys++;
	}
	pthread_mutex_unlock(&c->lock);
	if (write(c->wake[1], &b, 1) < 0) {
		/* the pipe is full: the main loop is awake anyway */
	}
}

static int send_keys(struct cli *c)
{
	struct { uint32_t sym; bool down; } q[KEYQ];
	char drain[64];
	int n, i;

	while (read(c->wake[0], drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&c->lock);
	n = c->nkeys;
	memcpy(q, c->keyq, sizeof(q[0]) * (size_t)n);
	c->nkeys = 0;
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < n; i++) {
		uint8_t fr[CPROTO_HDR + 5];
		struct cp_key k = { q[i].sym, q[i].down };
		cp_encode_key(fr, &k);
		if (send_input(c, CP_KEY, fr + CPROTO_HDR, 5) < 0)
			return -EPIPE;
	}
	return 0;
}

static int listen_local(const char *spec, int *port_out, struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char host[128], *colon;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd, one = 1;

	snprintf(host, sizeof(host), "%s", spec);
	colon = strrchr(host, ':');
	if (!colon)
		return err_set(e, -EINVAL, "local address must be ADDR:PORT (got '%s')", spec);
	*colon = 0;
	/* The owner's screen and keyboard: never offered beyond this machine. */
	if (strncmp(host, "127.", 4) && strcmp(host, "localhost"))
		return err_set(e, -EINVAL, "local VNC/web port must be on loopback (127.x), not '%s'", host);
	if (getaddrinfo(host, colon + 1, &hints, &ai) || !ai || ai->ai_family != AF_INET) {
		if (ai)
			freeaddrinfo(ai);
		return err_set(e, -EINVAL, "cannot resolve %s", spec);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4) < 0) {
		int r = err_sys(e, -errno, "cannot listen on %s", spec);
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return r;
	}
	freeaddrinfo(ai);
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	*port_out = ntohs(sin.sin_port);
	return fd;
}

static int vnc_loop(struct cli *c, int lfd, pid_t child, bool view_only)
{
	struct console_vnc_src src = { vnc_screen, vnc_key, c };
	struct console_vnc *v = NULL;
	struct err e = { 0 };
	int rc = 1;

	if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) < 0 || console_vnc_start(&src, &v, &e) < 0) {
		say("%s", e.msg[0] ? e.msg : "cannot start the local VNC server");
		return 1;
	}
	while (!quit_sig) {
		struct pollfd p[3] = { { .fd = SSL_get_fd(c->ssl), .events = POLLIN },
				       { .fd = lfd, .events = POLLIN },
				       { .fd = c->wake[0], .events = POLLIN } };

		if (child > 0 && waitpid(child, NULL, WNOHANG) == child) {
			say("websockify exited");
			goto out;
		}
		if (!SSL_pending(c->ssl) && c->inlen < CPROTO_HDR && poll(p, 3, 500) <= 0)
			continue;
		if (p[1].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0 && console_vnc_add_client(v, fd, view_only) < 0)
				close(fd);
		}
		if ((p[2].revents & POLLIN) && send_keys(c) < 0) {
			say("console session lost");
			goto out;
		}
		if (drain_server(c, &e) < 0) {
			say("%s", e.msg);
			goto out;
		}
	}
	rc = 0;
out:
	console_vnc_stop(v);
	return rc;
}

static pid_t start_websockify(const char *web, int vnc_port)
{
	char target[64];
	pid_t pid;

	snprintf(target, sizeof(target), "127.0.0.1:%d", vnc_port);
	pid = fork();
	if (pid == 0) {
		execlp("websockify", "websockify", "--web", NOVNC_DIR, web, target, (char *)NULL);
		fprintf(stderr, "sealvm console: cannot run websockify (Debian package websockify): %s\n",
			strerror(errno));
		_exit(127);
	}
	return pid;
}

/* --screen: the text screen once (following the VM if it is just moving). */
static int screen_once(struct cli *c)
{
	struct err e = { 0 };
	uint8_t fr[CPROTO_HDR];
	int r, row, col;

	cproto_header(fr, CP_SCREEN_REQ, 0);
	if (send_all(c, fr, sizeof(fr)))
		return 1;
	for (;;) {
		struct cproto_frame f;
		size_t used = 0;
		struct cp_screen s;

		if (read_frame(c, &f, &used, -1, &e) < 0) {
			say("%s", e.msg);
			return 1;
		}
		if (f.type == CP_SCREEN) {
			if (cp_decode_screen(&f, &s, &e) < 0) {
				say("%s", e.msg);
				return 1;
			}
			for (row = 0; row < s.rows; row++) {
				char line[260];
				int n = 0;
				for (col = 0; col < s.cols; col++) {
					uint8_t ch = s.cells[2 * (row * s.cols + col)];
					line[n++] = (char)(ch >= 0x20 && ch < 0x7f ? ch : ' ');
				}
				line[n++] = '\n';
				write_out(STDOUT_FILENO, (const uint8_t *)line, (size_t)n);
			}
			printf("cursor %u,%u %s\n", s.cursor_row, s.cursor_col, s.cursor_on ? "on" : "off");
			return 0;
		}
		r = dispatch(c, &f, &used, &e);
		if (r < 0) {
			say("%s", e.msg);
			return 1;
		}
		if (f.type == CP_REDIRECT && send_all(c, fr, sizeof(fr)))
			return 1;
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm console tls://HOST:PORT --tls-dir OWNERDIR [--read-only] [--escape C|none]\n"
		   "                      [--from OFFSET] [--screen | --vnc 127.0.0.1:PORT | --web 127.0.0.1:PORT]\n"
		   "  OWNERDIR: cert.pem + key.pem (the owner's certificate, from the owner's CA) and ca.pem\n"
		   "            (the CA that signed the hosts' certificates, to check the server).\n"
		   "  Terminal mode: Ctrl-] (or --escape C) detaches. The client follows the VM when it is\n"
		   "  migrated, and unlocks a console restored from a snapshot with the owner's key.\n");
}

int console_client_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tls-dir", required_argument, NULL, 't' }, { "read-only", no_argument, NULL, 'r' },
		{ "escape", required_argument, NULL, 'x' },  { "from", required_argument, NULL, 'f' },
		{ "screen", no_argument, NULL, 's' },        { "vnc", required_argument, NULL, 'v' },
		{ "web", required_argument, NULL, 'w' },     { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *vnc = NULL, *web = NULL;
	bool ro = false, screen = false;
	int escape = 0x1d, opt, rc = 1, lfd = -1, vport = 0, mode = 0;
	uint64_t from = 0;
	char host[256], port[16];
	struct err e = { 0 };
	struct cli *c;
	pid_t child = -1;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 't': dir = optarg; break;
		case 'r': ro = true; break;
		case 's': screen = true; break;
		case 'v': vnc = optarg; break;
		case 'w': web = optarg; break;
		case 'f': from = strtoull(optarg, NULL, 0); break;
		case 'x':
			if (!strcmp(optarg, "none"))
				escape = -1;
			else if (optarg[0] == '^' && optarg[1] && !optarg[2])
				escape = optarg[1] & 0x1f;
			else if (optarg[0] && !optarg[1])
				escape = (uint8_t)optarg[0];
			else {
				fprintf(stderr, "sealvm console: --escape takes one character, ^X or none\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc || !dir || !!screen + !!vnc + !!web > 1) {
		usage(stderr);
		return 2;
	}
	if (ctls_parse_uri(argv[optind], host, sizeof(host), port, sizeof(port), &e) < 0) {
		fprintf(stderr, "sealvm console: %s\n", e.msg);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	c = calloc(1, sizeof(*c));
	if (!c)
		return 1;
	pthread_mutex_init(&c->lock, NULL);
	c->wake[0] = c->wake[1] = -1;
	c->flags = (ro || screen ? 0 : CP_HELLO_RW) | (vnc || web ? CP_HELLO_SCREEN : 0);
	c->next = vnc || web || screen ? UINT64_MAX : from;
	c->out_serial = !vnc && !web && !screen;
	c->ctx = ctls_client_ctx(dir, &e);
	if (!c->ctx || session_open(c, argv[optind], &mode, &e) < 0) {
		fprintf(stderr, "sealvm console: %s\n", e.msg);
		goto out;
	}
	if (c->out_serial)
		fprintf(stderr, "sealvm console: attached %s to %s (escape: %s)\r\n",
			mode == CP_MODE_RW ? "read-write" : "read-only", argv[optind],
			escape < 0 ? "none" : escape == 0x1d ? "Ctrl-]" : "set");
	if (screen) {
		rc = screen_once(c);
	} else if (vnc || web) {
		lfd = listen_local(vnc ? vnc : "127.0.0.1:0", &vport, &e);
		if (lfd < 0) {
			fprintf(stderr, "sealvm console: %s\n", e.msg);
			goto out;
		}
		if (web) {
			child = start_websockify(web, vport);
			fprintf(stderr, "sealvm console: web console at http://%s/vnc_lite.html?host=%.*s&port=%s\n",
				web, (int)(strrchr(web, ':') - web), web, strrchr(web, ':') + 1);
		} else {
			fprintf(stderr, "sealvm console: VNC viewers may connect to %s\n", vnc);
		}
		rc = vnc_loop(c, lfd, child, mode != CP_MODE_RW);
	} else {
		rc = terminal_loop(c, escape);
	}
out:
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	if (lfd >= 0)
		close(lfd);
	session_close(c);
	drop_standby(c);
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	if (c->log)
		explicit_bzero(c->log, c->log_len);
	free(c->log);
	explicit_bzero(&c->scr, sizeof(c->scr));
	SSL_CTX_free(c->ctx);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return rc;
}
