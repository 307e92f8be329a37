#include "console/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "console/keymap.h"
#include "console/proto.h"
#include "console/scrollback.h"
#include "console/tls.h"
#include "console/vnc.h"
#include "vmm/machine.h"

#define MAX_SESSIONS 8
#define MAX_RFB 4
#define OUT_CAP (1u << 20)        /* a slow client stalls its own streams, nobody else */
#define HELLO_TIMEOUT_MS 10000
#define INQ_CAP (2 * CPROTO_INPUT_MAX)

struct buf {
	uint8_t *p;
	size_t off, len, cap;     /* data is p[off .. off+len) */
};

struct rfb_stream {
	bool used;
	uint32_t id;
	int fd;                   /* our end of the socketpair libvncserver serves */
	struct buf to_vnc;
};

enum sess_state { SS_HANDSHAKE, SS_HELLO, SS_OPEN, SS_CLOSING };

struct session {
	bool used;
	int fd;
	SSL *ssl;
	enum sess_state st;
	int mode;                 /* CP_MODE_RW / CP_MODE_RO once open */
	uint64_t next;            /* next serial offset to send */
	uint64_t deadline_ns;
	uint8_t in[CPROTO_HDR + CPROTO_MAX];
	size_t inlen;
	struct buf out;
	uint8_t inq[INQ_CAP];     /* typed input the UART FIFO could not take yet */
	size_t inq_len;
	struct rfb_stream rfb[MAX_RFB];
	uint8_t fp[32];
};

struct console_server {
	struct machine *m;
	struct console_opts o;
	SSL_CTX *ctx;
	int lfd, port, evfd;
	pthread_t thread;
	volatile int stop;
	struct scrollback sb;
	struct console_key key;
	struct console_vnc *vnc;
	pthread_mutex_t lock;     /* sessions' mode/counters for stats and save */
	struct session sess[MAX_SESSIONS];
	uint64_t accepted, refused;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ buffers */

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->off + b->len + n > b->cap) {
		if (b->off) {
			memmove(b->p, b->p + b->off, b->len);
			b->off = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap : 16384;
			uint8_t *np;
			while (cap < b->len + n)
				cap *= 2;
			np = realloc(b->p, cap);
			if (!np)
				return -ENOMEM;
			b->p = np;
			b->cap = cap;
		}
	}
	memcpy(b->p + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_drop(struct buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (!b->len)
		b->off = 0;
}

static void buf_free(struct buf *b)
{
	if (b->p)
		explicit_bzero(b->p, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int send_frame(struct session *s, uint8_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	uint8_t hdr[CPROTO_HDR];

	cproto_header(hdr, type, (uint32_t)(alen + blen));
	if (buf_add(&s->out, hdr, sizeof(hdr)) || (alen && buf_add(&s->out, a, alen)) ||
	    (blen && buf_add(&s->out, b, blen)))
		return -ENOMEM;
	return 0;
}

/* ------------------------------------------------------------------ sessions */

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_msg(const char *fmt, ...)
{
	va_list ap;
	/* Operator-visible: says who and what happened, never console contents. */
	fprintf(stderr, "sealvm: console: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void rfb_close(struct rfb_stream *r)
{
	if (!r->used)
		return;
	close(r->fd);
	buf_free(&r->to_vnc);
	memset(r, 0, sizeof(*r));
}

static void session_free(struct console_server *cs, struct session *s)
{
	int i;

	for (i = 0; i < MAX_RFB; i++)
		rfb_close(&s->rfb[i]);
	if (s->ssl)
		SSL_free(s->ssl);
	close(s->fd);
	buf_free(&s->out);
	pthread_mutex_lock(&cs->lock);
	explicit_bzero(s, sizeof(*s));
	s->used = false;
	pthread_mutex_unlock(&cs->lock);
}

/* Sends ERROR and closes once it is flushed. */
static void session_refuse(struct session *s, const char *why)
{
	send_frame(s, CP_ERROR, why, strlen(why), NULL, 0);
	s->st = SS_CLOSING;
}

static bool rw_taken(struct console_server *cs)
{
	int i;
	for (i = 0; i < MAX_SESSIONS; i++)
		if (cs->sess[i].used && cs->sess[i].st == SS_OPEN && cs->sess[i].mode == CP_MODE_RW)
			return true;
	return false;
}

static void handle_hello(struct console_server *cs, struct session *s, const struct cproto_frame *f)
{
	struct cp_hello h;
	struct cp_welcome w;
	struct err e = { 0 };
	uint8_t frame[CPROTO_HDR + 24];
	bool rw;
	char why[200] = "";

	if (cp_decode_hello(f, &h, &e) < 0) {
		session_refuse(s, e.msg);
		return;
	}
	rw = (h.flags & CP_HELLO_RW) && !rw_taken(cs);
	if (!rw && rw_taken(cs) && cs->o.others == CONSOLE_OTHERS_REFUSE) {
		cs->refused++;
		log_msg("refused a further session: the read-write session is attached and the owner "
			"refuses others");
		session_refuse(s, "console is in use by the owner's read-write session; further sessions are refused");
		return;
	}
	if (cs->o.policy && !cs->o.policy(cs->o.policy_ctx, SSL_get0_peer_certificate(s->ssl), rw, why, sizeof(why))) {
		cs->refused++;
		log_msg("policy refused a session: %s", why);
		session_refuse(s, why[0] ? why : "refused by policy");
		return;
	}
	pthread_mutex_lock(&cs->lock);
	s->mode = rw ? CP_MODE_RW : CP_MODE_RO;
	s->st = SS_OPEN;
	pthread_mutex_unlock(&cs->lock);
	cs->accepted++;
	s->next = h.from;
	w = (struct cp_welcome){ CPROTO_VERSION, (uint32_t)s->mode, 0, 0 };
	{
		uint8_t dummy;
		/* Clamp the start to what the scrollback still holds. */
		scrollback_read(&cs->sb, &s->next, &dummy, 0);
	}
	w.from = s->next;
	w.total = scrollback_total(&cs->sb);
	buf_add(&s->out, frame, cp_encode_welcome(frame, &w));
	log_msg("owner session attached %s", rw ? "read-write" : "read-only");
}

static void flush_input(struct console_server *cs, struct session *s)
{
	size_t n;

	if (!s->inq_len)
		return;
	n = serial_input(&cs->m->serial, s->inq, s->inq_len);
	memmove(s->inq, s->inq + n, s->inq_len - n);
	s->inq_len -= n;
	if (n)
		explicit_bzero(s->inq + s->inq_len, n);
}

static void send_screen(struct console_server *cs, struct session *s)
{
	static struct vga_screen scr;   /* only the server thread uses it */
	uint8_t p[12 + 2 * VGA_ROWS * VGA_COLS];
	int i;

	vga_read_screen(&cs->m->vga, &scr);
	memset(p, 0, 12);
	p[1] = VGA_ROWS, p[3] = VGA_COLS;
	p[5] = (uint8_t)scr.cursor_row, p[7] = (uint8_t)scr.cursor_col;
	p[8] = scr.cursor_on;
	for (i = 0; i < VGA_ROWS * VGA_COLS; i++) {
		p[12 + 2 * i] = (uint8_t)scr.cells[i];
		p[13 + 2 * i] = (uint8_t)(scr.cells[i] >> 8);
	}
	send_frame(s, CP_SCREEN, p, sizeof(p), NULL, 0);
	explicit_bzero(p, sizeof(p));
	explicit_bzero(&scr, sizeof(scr));
}

static void rfb_open(struct console_server *cs, struct session *s, uint32_t id)
{
	int sv[2], i, slot = -1;

	for (i = 0; i < MAX_RFB; i++) {
		if (s->rfb[i].used && s->rfb[i].id == id) {
			session_refuse(s, "RFB stream id already open");
			return;
		}
		if (!s->rfb[i].used && slot < 0)
			slot = i;
	}
	if (slot < 0 || !cs->vnc) {
		uint8_t idb[4];
		put_be32(idb, id);
		send_frame(s, CP_RFB_CLOSE_S, idb, 4, NULL, 0);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	if (console_vnc_add_client(cs->vnc, sv[1], s->mode != CP_MODE_RW) < 0) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	s->rfb[slot] = (struct rfb_stream){ .used = true, .id = id, .fd = sv[0] };
}

static struct rfb_stream *rfb_find(struct session *s, uint32_t id)
{
	int i;
	for (i = 0; i < MAX_RFB; i++)
		if (s->rfb[i].used && s->rfb[i].id == id)
			return &s->rfb[i];
	return NULL;
}

/* One frame from an attached client. Returns <0 to drop the session. */
static int handle_frame(struct console_server *cs, struct session *s, const struct cproto_frame *f)
{
	struct err e = { 0 };
	struct cp_rfb r;
	struct cp_key k;
	struct rfb_stream *st;
	uint8_t codes[4];
	size_t n;

	if (s->st == SS_HELLO) {
		if (f->type != CP_HELLO) {
			session_refuse(s, "expected HELLO");
			return 0;
		}
		handle_hello(cs, s, f);
		return 0;
	}
	switch (f->type) {
	case CP_INPUT:
		if (cp_decode_input(f, &e) < 0)
			break;
		if (s->mode != CP_MODE_RW)
			return 0; /* a read-only session's typing goes nowhere */
		n = f->len < INQ_CAP - s->inq_len ? f->len : INQ_CAP - s->inq_len;
		memcpy(s->inq + s->inq_len, f->payload, n);
		s->inq_len += n;
		flush_input(cs, s);
		return 0;
	case CP_KEY:
		if (cp_decode_key(f, &k, &e) < 0)
			break;
		if (s->mode == CP_MODE_RW && (n = keymap_scancodes(k.keysym, k.down, codes)))
			i8042_key_input(&cs->m->kbd, codes, n);
		return 0;
	case CP_SCREEN_REQ:
		if (f->len)
			break;
		send_screen(cs, s);
		return 0;
	case CP_RFB_OPEN:
		if (cp_decode_rfb(f, false, &r, &e) < 0)
			break;
		rfb_open(cs, s, r.id);
		return 0;
	case CP_RFB_DATA:
		if (cp_decode_rfb(f, true, &r, &e) < 0)
			break;
		if ((st = rfb_find(s, r.id)) && buf_add(&st->to_vnc, r.data, r.len))
			return -ENOMEM;
		return 0;
	case CP_RFB_CLOSE:
		if (cp_decode_rfb(f, false, &r, &e) < 0)
			break;
		if ((st = rfb_find(s, r.id)))
			rfb_close(st);
		return 0;
	default:
		err_set(&e, -EPROTO, "unknown console frame type 0x%02x", f->type);
		break;
	}
	log_msg("dropping a session: %s", e.msg);
	session_refuse(s, e.msg);
	return 0;
}

static bool session_verify(struct console_server *cs, struct session *s)
{
	X509 *peer = SSL_get0_peer_certificate(s->ssl);
	unsigned int n = 0;

	if (!peer || SSL_get_verify_result(s->ssl) != X509_V_OK)
		return false;
	X509_digest(peer, EVP_sha256(), s->fp, &n);
	return true;
}

/* Drives TLS for one session: handshake, reads, frames, writes. <0: close it. */
static int session_io(struct console_server *cs, struct session *s, short revents)
{
	char why[160];
	int r, err;

	if (s->st == SS_HANDSHAKE) {
		ERR_clear_error();
		r = SSL_accept(s->ssl);
		if (r == 1) {
			if (!session_verify(cs, s))
				return -EACCES;
			s->st = SS_HELLO;
		} else {
			err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
				return 0;
			cs->refused++;
			long vr = SSL_get_verify_result(s->ssl);
			log_msg("refused a client: %s", vr != X509_V_OK ? X509_verify_cert_error_string(vr)
								      : ctls_reason(why, sizeof(why)));
			return -EACCES;
		}
	}
	/* Reads: everything OpenSSL has, frame by frame. */
	while (s->st != SS_CLOSING) {
		struct cproto_frame f;
		struct err e = { 0 };
		size_t used = 0;

		r = cproto_parse(s->in, s->inlen, &f, &used, &e);
		if (r < 0) {
			log_msg("dropping a session: %s", e.msg);
			session_refuse(s, e.msg);
			break;
		}
		if (r == 1) {
			if (handle_frame(cs, s, &f) < 0)
				return -ENOMEM;
			memmove(s->in, s->in + used, s->inlen - used);
			s->inlen -= used;
			explicit_bzero(s->in + s->inlen, used);
			continue;
		}
		if (s->inq_len) /* stop reading while typed input is still queued */
			break;
		ERR_clear_error();
		r = SSL_read(s->ssl, s->in + s->inlen, (int)(sizeof(s->in) - s->inlen));
		if (r > 0) {
			s->inlen += (size_t)r;
			continue;
		}
		err = SSL_get_error(s->ssl, r);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			break;
		return -ENODATA; /* closed or broken */
	}
	(void)revents;
	return 0;
}

static int session_flush(struct session *s)
{
	while (s->out.len) {
		int r, err;
		ERR_clear_error();
		r = SSL_write(s->ssl, s->out.p + s->out.off, (int)(s->out.len > 65536 ? 65536 : s->out.len));
		if (r > 0) {
			buf_drop(&s->out, (size_t)r);
			continue;
		}
		err = SSL_get_error(s->ssl, r);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return 0;
		return -EPIPE;
	}
	return 0;
}

/* Serial output the client has not had yet, as OUTPUT frames. */
static void pump_serial(struct console_server *cs, struct session *s)
{
	uint8_t data[8 + 16384];

	while (s->st == SS_OPEN && s->out.len < OUT_CAP) {
		uint64_t from = s->next;
		size_t n = scrollback_read(&cs->sb, &from, data + 8, sizeof(data) - 8);
		if (!n)
			break;
		put_be64(data, from);
		send_frame(s, CP_OUTPUT, data, 8 + n, NULL, 0);
		s->next = from + n;
	}
	explicit_bzero(data, sizeof(data));
}

static void pump_rfb(struct session *s, struct rfb_stream *r, short revents)
{
	uint8_t data[4 + 16384];
	ssize_t n;

	if (r->to_vnc.len && (revents & POLLOUT)) {
		n = write(r->fd, r->to_vnc.p + r->to_vnc.off, r->to_vnc.len);
		if (n > 0)
			buf_drop(&r->to_vnc, (size_t)n);
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)) || s->out.len >= OUT_CAP)
		return;
	n = read(r->fd, data + 4, sizeof(data) - 4);
	put_be32(data, r->id);
	if (n > 0) {
		send_frame(s, CP_RFB_DATA_S, data, 4 + (size_t)n, NULL, 0);
	} else if (n == 0 || errno != EAGAIN) {
		send_frame(s, CP_RFB_CLOSE_S, data, 4, NULL, 0);
		rfb_close(r);
	}
}

static void accept_client(struct console_server *cs)
{
	int fd = accept4(cs->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;
	struct session *s = NULL;

	if (fd < 0)
		return;
	for (i = 0; i < MAX_SESSIONS; i++)
		if (!cs->sess[i].used) {
			s = &cs->sess[i];
			break;
		}
	if (!s) {
		close(fd);
		cs->refused++;
		return;
	}
	memset(s, 0, sizeof(*s));
	s->ssl = SSL_new(cs->ctx);
	if (!s->ssl || !SSL_set_fd(s->ssl, fd)) {
		SSL_free(s->ssl);
		close(fd);
		return;
	}
	SSL_set_accept_state(s->ssl);
	s->fd = fd;
	s->st = SS_HANDSHAKE;
	s->deadline_ns = mono_ns() + HELLO_TIMEOUT_MS * 1000000ull;
	pthread_mutex_lock(&cs->lock);
	s->used = true;
	pthread_mutex_unlock(&cs->lock);
}

static void *server_thread(void *arg)
{
	struct console_server *cs = arg;
	struct pollfd p[2 + MAX_SESSIONS * (1 + MAX_RFB)];
	struct { int sess, rfb; } who[sizeof(p) / sizeof(p[0])];

	while (!cs->stop) {
		int n = 0, i, j, timeout = 200;

		p[n++] = (struct pollfd){ .fd = cs->lfd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = cs->evfd, .events = POLLIN };
		for (i = 0; i < MAX_SESSIONS; i++) {
			struct session *s = &cs->sess[i];
			if (!s->used)
				continue;
			if (s->inq_len)
				timeout = 2; /* the guest drains its FIFO soon */
			who[n].sess = i, who[n].rfb = -1;
			p[n++] = (struct pollfd){ .fd = s->fd,
						  .events = (short)(POLLIN | (s->out.len ? POLLOUT : 0)) };
			for (j = 0; j < MAX_RFB; j++) {
				struct rfb_stream *r = &s->rfb[j];
				if (!r->used)
					continue;
				who[n].sess = i, who[n].rfb = j;
				p[n++] = (struct pollfd){ .fd = r->fd,
							  .events = (short)((s->out.len < OUT_CAP ? POLLIN : 0) |
									    (r->to_vnc.len ? POLLOUT : 0)) };
			}
		}
		if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN)
			accept_client(cs);
		if (p[1].revents & POLLIN) {
			uint64_t v;
			if (read(cs->evfd, &v, sizeof(v)) < 0) {
				/* nothing: it only wakes us */
			}
		}
		for (i = 2; i < n; i++) {
			struct session *s = &cs->sess[who[i].sess];
			if (!s->used || who[i].rfb < 0 || !s->rfb[who[i].rfb].used)
				continue;
			pump_rfb(s, &s->rfb[who[i].rfb], p[i].revents);
		}
		for (i = 0; i < MAX_SESSIONS; i++) {
			struct session *s = &cs->sess[i];
			int r;

			if (!s->used)
				continue;
			flush_input(cs, s);
			r = session_io(cs, s, 0);
			if (r == 0) {
				pump_serial(cs, s);
				r = session_flush(s);
			}
			if (r == 0 && s->st == SS_CLOSING && !s->out.len) {
				SSL_shutdown(s->ssl);
				r = -ECONNRESET;
			}
			if (r == 0 && s->st != SS_OPEN && mono_ns() > s->deadline_ns) {
				log_msg("dropping a client that did not complete its hello in time");
				r = -ETIMEDOUT;
			}
			if (r < 0) {
				if (s->st == SS_OPEN)
					log_msg("owner session detached");
				session_free(cs, s);
			}
		}
	}
	return NULL;
}

/* The UART's sink: runs in the vCPU thread with the UART lock held. */
static void serial_sink(void *opaque, uint8_t c)
{
	struct console_server *cs = opaque;
	uint64_t one = 1;

	scrollback_append(&cs->sb, &c, 1);
	if (write(cs->evfd, &one, sizeof(one)) < 0) {
		/* the counter saturates only if nobody reads for 2^64 bytes */
	}
}

static int listen_on(const char *uri, int *fd_out, int *port_out, struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[16];
	int fd, one = 1, r;

	r = ctls_parse_uri(uri, host, sizeof(host), port, sizeof(port), e);
	if (r < 0)
		return r;
	if (getaddrinfo(host, port, &hints, &ai) || !ai)
		return err_set(e, -EINVAL, "cannot resolve console address %s", host);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return err_sys(e, -errno, "socket");
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 8) < 0) {
		r = err_sys(e, -errno, "cannot listen on %s", uri);
		freeaddrinfo(ai);
		close(fd);
		return r;
	}
	freeaddrinfo(ai);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return 0;
}

int console_server_start(struct machine *m, const struct console_opts *o, struct console_server **out,
			 struct err *e)
{
	struct console_server *cs;
	int r;

	if (!o->host_dir || !o->owner_ca)
		return err_set(e, -EINVAL, "the console needs --tls-dir (this host's certificate) and --owner-ca");
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return err_set(e, -ENOMEM, "console server");
	cs->m = m;
	cs->o = *o;
	cs->lfd = cs->evfd = -1;
	pthread_mutex_init(&cs->lock, NULL);
	scrollback_init(&cs->sb);
	r = console_key_generate(&cs->key, e);
	if (r < 0)
		goto fail;
	cs->ctx = ctls_server_ctx(o->host_dir, o->owner_ca, e);
	if (!cs->ctx) {
		r = e->code ? e->code : -EINVAL;
		goto fail;
	}
	r = listen_on(o->uri, &cs->lfd, &cs->port, e);
	if (r < 0)
		goto fail;
	cs->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cs->evfd < 0) {
		r = err_sys(e, -errno, "eventfd");
		goto fail;
	}
	r = console_vnc_start(m, &cs->vnc, e);
	if (r < 0)
		goto fail;
	serial_set_sink(&m->serial, serial_sink, cs);
	r = pthread_create(&cs->thread, NULL, server_thread, cs);
	if (r) {
		serial_set_sink(&m->serial, NULL, NULL);
		r = err_set(e, -r, "cannot start the console thread");
		goto fail;
	}
	*out = cs;
	return 0;
fail:
	console_vnc_stop(cs->vnc);
	if (cs->lfd >= 0)
		close(cs->lfd);
	if (cs->evfd >= 0)
		close(cs->evfd);
	SSL_CTX_free(cs->ctx);
	console_key_wipe(&cs->key);
	scrollback_destroy(&cs->sb);
	free(cs);
	return r;
}

int console_server_port(struct console_server *s)
{
	return s->port;
}

void console_server_stats(struct console_server *cs, struct console_stats *st)
{
	int i;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&cs->lock);
	for (i = 0; i < MAX_SESSIONS; i++)
		if (cs->sess[i].used && cs->sess[i].st == SS_OPEN)
			cs->sess[i].mode == CP_MODE_RW ? st->rw++ : st->ro++;
	pthread_mutex_unlock(&cs->lock);
	st->accepted = cs->accepted;
	st->refused = cs->refused;
	st->serial_bytes = scrollback_total(&cs->sb);
}

void console_server_stop(struct console_server *cs)
{
	int i;

	if (!cs)
		return;
	serial_set_sink(&cs->m->serial, NULL, NULL);
	cs->stop = 1;
	{
		uint64_t one = 1;
		if (write(cs->evfd, &one, sizeof(one)) < 0) {
			/* the thread also wakes within 200 ms by itself */
		}
	}
	pthread_join(cs->thread, NULL);
	for (i = 0; i < MAX_SESSIONS; i++)
		if (cs->sess[i].used)
			session_free(cs, &cs->sess[i]);
	console_vnc_stop(cs->vnc);
	close(cs->lfd);
	close(cs->evfd);
	SSL_CTX_free(cs->ctx);
	console_key_wipe(&cs->key);
	scrollback_destroy(&cs->sb);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}

void console_server_save(struct console_server *cs, struct console_state *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	out->version = CONSOLE_STATE_VERSION;
	out->scroll_len = (uint32_t)scrollback_export(&cs->sb, out->scrollback, &out->serial_total);
	vga_save(&cs->m->vga, &out->vga);
	i8042_save(&cs->m->kbd, &out->kbd);
	serial_save(&cs->m->serial, &out->uart);
	pthread_mutex_lock(&cs->lock);
	for (i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &cs->sess[i];
		if (!s->used || s->st != SS_OPEN)
			continue;
		if (s->mode == CP_MODE_RW) {
			out->attach.rw_attached = 1;
			out->attach.rw_delivered = s->next < out->serial_total ? s->next : out->serial_total;
			memcpy(out->attach.rw_peer_sha256, s->fp, 32);
		} else {
			out->attach.ro_sessions++;
		}
	}
	pthread_mutex_unlock(&cs->lock);
}

int console_server_load(struct console_server *cs, const struct console_state *in, struct err *e)
{
	int r = console_state_validate(in, e);

	if (r == 0)
		r = vga_load(&cs->m->vga, &in->vga, e);
	if (r == 0)
		r = i8042_load(&cs->m->kbd, &in->kbd, e);
	if (r == 0)
		r = serial_load(&cs->m->serial, &in->uart, e);
	if (r == 0)
		scrollback_import(&cs->sb, in->scrollback, in->scroll_len, in->serial_total);
	return r;
}

int console_server_seal(struct console_server *cs, uint8_t *sealed, size_t *len, struct err *e)
{
	struct console_state *st = malloc(sizeof(*st));
	int r;

	if (!st)
		return err_set(e, -ENOMEM, "console state");
	console_server_save(cs, st);
	r = console_seal(&cs->key, CONSOLE_STATE_VERSION, st, sizeof(*st), sealed, len, e);
	explicit_bzero(st, sizeof(*st));
	free(st);
	return r;
}

int console_server_unseal(struct console_server *cs, const uint8_t *sealed, size_t len, struct err *e)
{
	struct console_state *st = malloc(sizeof(*st));
	uint32_t version;
	size_t n;
	int r;

	if (!st)
		return err_set(e, -ENOMEM, "console state");
	r = console_unseal(&cs->key, sealed, len, st, sizeof(*st), &version, &n, e);
	if (r == 0 && (version != CONSOLE_STATE_VERSION || n != sizeof(*st)))
		r = err_set(e, -EPROTO, "sealed console state version %u, %zu bytes: not supported", version, n);
	if (r == 0)
		r = console_server_load(cs, st, e);
	explicit_bzero(st, sizeof(*st));
	free(st);
	return r;
}
