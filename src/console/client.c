/* `sealvm console tls://HOST:PORT --tls-dir OWNERDIR [options]`
 *
 * Terminal mode (default): the serial console. stdin goes to the guest's UART, its
 * output to stdout; a terminal is put in raw mode, pipes work as they are. The escape
 * character (default Ctrl-], --escape none to disable) detaches.
 * --screen: prints the text screen once and exits.
 * --vnc ADDR:PORT: a local VNC port (loopback only) for any VNC viewer, carried through
 * this TLS session to the VM's console server. --web ADDR:PORT: the same, plus noVNC
 * served there by websockify (Debian's novnc and websockify). */
#include "console/client.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "console/proto.h"
#include "console/tls.h"
#include "dev/vga.h"

#define NOVNC_DIR "/usr/share/novnc"
#define MAX_VIEWERS 4

struct cli {
	SSL *ssl;
	uint8_t in[CPROTO_HDR + CPROTO_MAX];
	size_t inlen;
	uint64_t next;            /* serial offset expected next */
	int viewer_fd[MAX_VIEWERS];
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

static int send_frame(struct cli *c, uint8_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	uint8_t hdr[CPROTO_HDR];

	cproto_header(hdr, type, (uint32_t)(alen + blen));
	if (send_all(c, hdr, sizeof(hdr)) || (alen && send_all(c, a, alen)) || (blen && send_all(c, b, blen)))
		return -EPIPE;
	return 0;
}

/* Reads one frame (blocking). 0 ok, <0 with a message in e. */
static int read_frame(struct cli *c, struct cproto_frame *f, size_t *used, struct err *e)
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

	if (o->offset > c->next)
		fprintf(stderr, "\r\nsealvm console: %llu bytes of output were lost (scrollback overrun)\r\n",
			(unsigned long long)(o->offset - c->next));
	else if (o->offset < c->next) {
		uint64_t skip = c->next - o->offset;
		if (skip >= n)
			return;
		p += skip;
		n -= skip;
	}
	write_out(STDOUT_FILENO, p, n);
	c->next = o->offset + o->len;
}

static void print_screen(const struct cp_screen *s)
{
	int r, col;

	for (r = 0; r < s->rows; r++) {
		char line[260];
		int n = 0;
		for (col = 0; col < s->cols; col++) {
			uint8_t ch = s->cells[2 * (r * s->cols + col)];
			line[n++] = (char)(ch >= 0x20 && ch < 0x7f ? ch : ' ');
		}
		line[n++] = '\n';
		write_out(STDOUT_FILENO, (const uint8_t *)line, (size_t)n);
	}
}

static int terminal_loop(struct cli *c, int escape)
{
	struct err e = { 0 };
	int fd = SSL_get_fd(c->ssl);
	bool in_open = true;
	size_t used = 0;

	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
		struct termios raw = saved_tio;
		cfmakeraw(&raw);
		tio_saved = 1;
		atexit(restore_tty);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	while (!quit_sig) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = STDIN_FILENO, .events = POLLIN } };
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
				if (len && send_frame(c, CP_INPUT, buf, len, NULL, 0) < 0)
					return err_set(&e, -EPIPE, "console session lost"), 1;
				explicit_bzero(buf, sizeof(buf));
				if (esc) {
					restore_tty();
					fprintf(stderr, "\r\nsealvm console: detached\r\n");
					return 0;
				}
			}
		}
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) || SSL_pending(c->ssl) || c->inlen >= CPROTO_HDR) {
			struct cproto_frame f;
			struct cp_output o;
			char msg[512];

			if (read_frame(c, &f, &used, &e) < 0) {
				restore_tty();
				fprintf(stderr, "\r\nsealvm console: %s\r\n", e.msg);
				return 1;
			}
			if (f.type == CP_OUTPUT && cp_decode_output(&f, &o, &e) == 0) {
				on_output(c, &o);
			} else if (f.type == CP_ERROR) {
				restore_tty();
				cp_decode_error(&f, msg, sizeof(msg));
				fprintf(stderr, "\r\nsealvm console: server: %s\r\n", msg);
				return 1;
			}
			/* consume the frame now so poll() sees what is left */
			memmove(c->in, c->in + used, c->inlen - used);
			c->inlen -= used;
			used = 0;
		}
	}
	restore_tty();
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

static int vnc_loop(struct cli *c, int lfd, pid_t child)
{
	struct err e = { 0 };
	int fd = SSL_get_fd(c->ssl), i;
	size_t used = 0;

	for (i = 0; i < MAX_VIEWERS; i++)
		c->viewer_fd[i] = -1;
	while (!quit_sig) {
		struct pollfd p[2 + MAX_VIEWERS];
		int n = 0;

		if (child > 0 && waitpid(child, NULL, WNOHANG) == child) {
			fprintf(stderr, "sealvm console: websockify exited\n");
			return 1;
		}
		p[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (i = 0; i < MAX_VIEWERS; i++)
			p[n++] = (struct pollfd){ .fd = c->viewer_fd[i], .events = POLLIN };
		if (!SSL_pending(c->ssl) && c->inlen < CPROTO_HDR && poll(p, (nfds_t)n, 500) <= 0)
			continue;
		if (p[1].revents & POLLIN) {
			int v = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			for (i = 0; v >= 0 && i < MAX_VIEWERS && c->viewer_fd[i] >= 0; i++)
				;
			if (v >= 0 && i == MAX_VIEWERS) {
				close(v);
			} else if (v >= 0) {
				uint8_t fr[CPROTO_HDR + 4];
				c->viewer_fd[i] = v;
				if (send_all(c, fr, cp_encode_u32(fr, CP_RFB_OPEN, (uint32_t)i)))
					return 1;
			}
		}
		for (i = 0; i < MAX_VIEWERS; i++) {
			uint8_t buf[4 + 16384];
			ssize_t r;
			if (c->viewer_fd[i] < 0 || !(p[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(c->viewer_fd[i], buf + 4, sizeof(buf) - 4);
			put_be32(buf, (uint32_t)i);
			if (r > 0) {
				if (send_frame(c, CP_RFB_DATA, buf, 4 + (size_t)r, NULL, 0))
					return 1;
			} else {
				send_frame(c, CP_RFB_CLOSE, buf, 4, NULL, 0);
				close(c->viewer_fd[i]);
				c->viewer_fd[i] = -1;
			}
		}
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) || SSL_pending(c->ssl) || c->inlen >= CPROTO_HDR) {
			struct cproto_frame f;
			struct cp_rfb r;
			char msg[512];

			if (read_frame(c, &f, &used, &e) < 0) {
				fprintf(stderr, "sealvm console: %s\n", e.msg);
				return 1;
			}
			if ((f.type == CP_RFB_DATA_S && cp_decode_rfb(&f, true, &r, &e) == 0) ||
			    (f.type == CP_RFB_CLOSE_S && cp_decode_rfb(&f, false, &r, &e) == 0)) {
				if (r.id < MAX_VIEWERS && c->viewer_fd[r.id] >= 0) {
					if (f.type == CP_RFB_DATA_S) {
						write_out(c->viewer_fd[r.id], r.data, r.len);
					} else {
						close(c->viewer_fd[r.id]);
						c->viewer_fd[r.id] = -1;
					}
				}
			} else if (f.type == CP_ERROR) {
				cp_decode_error(&f, msg, sizeof(msg));
				fprintf(stderr, "sealvm console: server: %s\n", msg);
				return 1;
			}
			memmove(c->in, c->in + used, c->inlen - used);
			c->inlen -= used;
			used = 0;
		}
	}
	return 0;
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

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm console tls://HOST:PORT --tls-dir OWNERDIR [--read-only] [--escape C|none]\n"
		   "                      [--from OFFSET] [--screen | --vnc 127.0.0.1:PORT | --web 127.0.0.1:PORT]\n"
		   "  OWNERDIR: cert.pem + key.pem (the owner's certificate, from the owner's CA) and ca.pem\n"
		   "            (the CA that signed the hosts' certificates, to check the server).\n"
		   "  Terminal mode: Ctrl-] (or --escape C) detaches.\n");
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
	int escape = 0x1d, opt, rc = 1, lfd = -1, vport = 0;
	uint64_t from = 0;
	char host[256], port[16];
	struct err e = { 0 };
	struct cli *c;
	SSL_CTX *ctx;
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
	ctx = ctls_client_ctx(dir, &e);
	c = calloc(1, sizeof(*c));
	if (!ctx || !c || ctls_connect(ctx, host, port, 10000, &c->ssl, &e) < 0) {
		fprintf(stderr, "sealvm console: %s\n", e.msg);
		goto out;
	}
	{
		struct cp_hello h = { CPROTO_VERSION, ro || screen ? 0 : CP_HELLO_RW,
				      vnc || web || screen ? UINT64_MAX : from };
		uint8_t fr[CPROTO_HDR + 16];
		struct cproto_frame f;
		struct cp_welcome w;
		size_t used = 0;
		char msg[512];

		char why[160];

		ERR_clear_error();
		if (send_all(c, fr, cp_encode_hello(fr, &h)))
			err_set(&e, -EPIPE, "console session ended: %s", ctls_reason(why, sizeof(why)));
		if (e.code || read_frame(c, &f, &used, &e) < 0) {
			/* TLS 1.3: a refused client certificate shows up as an alert on the first read. */
			fprintf(stderr, "sealvm console: %s%s\n", e.msg[0] ? e.msg : "session lost",
				strstr(e.msg, "alert") ? " (the server accepts only certificates from the VM "
							 "owner's CA)" : "");
			goto out;
		}
		if (f.type == CP_ERROR) {
			cp_decode_error(&f, msg, sizeof(msg));
			fprintf(stderr, "sealvm console: server: %s\n", msg);
			goto out;
		}
		if (f.type != CP_WELCOME || cp_decode_welcome(&f, &w, &e) < 0) {
			fprintf(stderr, "sealvm console: unexpected answer: %s\n", e.msg);
			goto out;
		}
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		c->next = w.from;
		if (!screen && !vnc && !web)
			fprintf(stderr, "sealvm console: attached %s to %s (escape: %s)\r\n",
				w.mode == CP_MODE_RW ? "read-write" : "read-only", argv[optind],
				escape < 0 ? "none" : escape == 0x1d ? "Ctrl-]" : "set");
	}
	if (screen) {
		struct cproto_frame f;
		struct cp_screen s;
		uint8_t fr[CPROTO_HDR];
		size_t used = 0;

		cproto_header(fr, CP_SCREEN_REQ, 0);
		if (send_all(c, fr, sizeof(fr)))
			goto out;
		for (;;) {
			if (read_frame(c, &f, &used, &e) < 0) {
				fprintf(stderr, "sealvm console: %s\n", e.msg);
				goto out;
			}
			if (f.type == CP_SCREEN)
				break;
		}
		if (cp_decode_screen(&f, &s, &e) < 0) {
			fprintf(stderr, "sealvm console: %s\n", e.msg);
			goto out;
		}
		print_screen(&s);
		printf("cursor %u,%u %s\n", s.cursor_row, s.cursor_col, s.cursor_on ? "on" : "off");
		rc = 0;
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
		rc = vnc_loop(c, lfd, child);
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
	if (c && c->ssl) {
		SSL_shutdown(c->ssl);
		close(SSL_get_fd(c->ssl));
		SSL_free(c->ssl);
	}
	free(c);
	SSL_CTX_free(ctx);
	return rc;
}
