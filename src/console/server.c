/* The console server's sessions and I/O thread (see server.h); what a machine's
 * state and hand-over mean for it is in carry.c. */
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
#include "console/server_impl.h"
#include "console/tls.h"
#include "console/wrap.h"

#define OUT_CAP (1u << 20)        /* a slow client stalls its own stream, nobody else */
#define HELLO_TIMEOUT_MS 10000
#define WAIT_TIMEOUT_MS 120000    /* a client waiting for a VM (or for its owner's key) */
#define SCREEN_EVERY_NS 20000000ull   /* subscribers' screen compared 50 times a second */
#define DRAIN_MS 1000

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void console_log(const char *fmt, ...)
{
	va_list ap;
	/* Operator-visible: says who and what happened, never console contents. */
	fprintf(stderr, "sealvm: console: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void console_wake(struct console_server *cs)
{
	uint64_t one = 1;

	if (write(cs->evfd, &one, sizeof(one)) < 0) {
		/* the counter saturates only if nobody reads for 2^64 wakes */
	}
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
			np = malloc(cap);
			if (!np)
				return -ENOMEM;
			/* console plaintext: never left behind in freed memory */
			if (b->p) {
				memcpy(np, b->p, b->len);
				explicit_bzero(b->p, b->cap);
				free(b->p);
			}
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

int console_send_frame(struct session *s, uint8_t type, const void *a, size_t alen)
{
	uint8_t hdr[CPROTO_HDR];

	cproto_header(hdr, type, (uint32_t)alen);
	if (buf_add(&s->out, hdr, sizeof(hdr)) || (alen && buf_add(&s->out, a, alen)))
		return -ENOMEM;
	return 0;
}

/* ------------------------------------------------------------------ sessions */

static void session_free(struct console_server *cs, struct session *s)
{
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
	console_send_frame(s, CP_ERROR, why, strlen(why));
	s->st = SS_CLOSING;
}

/* The VM moved: this client is sent after it (lock held). */
static void session_redirect(struct console_server *cs, struct session *s)
{
	struct cp_redirect rd = { .total = scrollback_total(&cs->sb), .input_frames = s->in_frames };
	uint8_t fr[CPROTO_HDR + 16 + CPROTO_URI_MAX];

	if (!cs->moved_to[0]) {
		session_refuse(s, "the VM was migrated to a host whose console address is unknown");
		return;
	}
	snprintf(rd.uri, sizeof(rd.uri), "%s", cs->moved_to);
	buf_add(&s->out, fr, cp_encode_redirect(fr, &rd));
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

/* The read-write session after a migration is kept a while for the owner who had it. */
static bool rw_reserved_for_other(struct console_server *cs, const struct session *s)
{
	static const uint8_t none[32];

	if (!memcmp(cs->reserve_fp, none, 32) || mono_ns() > cs->reserve_until)
		return false;
	return memcmp(cs->reserve_fp, s->fp, 32) != 0;
}

static void send_locked(struct console_server *cs, struct session *s)
{
	if (s->locked_sent)
		return;
	console_send_frame(s, CP_LOCKED, cs->wrap.data, cs->wrap.len);
	s->locked_sent = true;
}

/* A waiting session, now that there is an unlocked VM: admitted (lock held). */
static void admit(struct console_server *cs, struct session *s)
{
	struct cp_welcome w;
	uint8_t frame[CPROTO_HDR + 24], dummy;
	bool rw, want_rw = s->hello.flags & CP_HELLO_RW;
	char why[200] = "";

	bool taken = rw_taken(cs) || rw_reserved_for_other(cs, s);

	rw = want_rw && !taken;
	if (!rw && taken && cs->o.others == CONSOLE_OTHERS_REFUSE) {
		cs->refused++;
		console_log("refused a further session: the read-write session is %s and the owner refuses others",
			    rw_taken(cs) ? "attached" : "kept for its owner after a migration");
		session_refuse(s, "console is in use by the owner's read-write session; further sessions are refused");
		return;
	}
	if (cs->o.policy && !cs->o.policy(cs->o.policy_ctx, SSL_get0_peer_certificate(s->ssl), rw, why, sizeof(why))) {
		cs->refused++;
		console_log("policy refused a session: %s", why);
		session_refuse(s, why[0] ? why : "refused by policy");
		return;
	}
	s->mode = rw ? CP_MODE_RW : CP_MODE_RO;
	s->st = SS_OPEN;
	if (rw) {
		memset(cs->reserve_fp, 0, 32); /* the owner is back (or someone took the free seat) */
		if (s->spki_len) {
			memcpy(cs->owner_spki, s->spki, s->spki_len);
			cs->owner_spki_len = (uint32_t)s->spki_len;
		}
	}
	cs->accepted++;
	s->next = s->hello.from;
	/* Clamp the start to what the scrollback still holds. */
	scrollback_read(&cs->sb, &s->next, &dummy, 0);
	w = (struct cp_welcome){ CPROTO_VERSION, (uint32_t)s->mode, s->next, scrollback_total(&cs->sb) };
	buf_add(&s->out, frame, cp_encode_welcome(frame, &w));
	s->scr_sent = 0; /* a subscriber gets the screen at once */
	console_log("owner session attached %s", rw ? "read-write" : "read-only");
}

static void handle_hello(struct console_server *cs, struct session *s, const struct cproto_frame *f)
{
	struct err e = { 0 };

	if (cp_decode_hello(f, &s->hello, &e) < 0) {
		session_refuse(s, e.msg);
		return;
	}
	pthread_mutex_lock(&cs->lock);
	s->st = SS_WAIT;
	s->deadline_ns = mono_ns() + WAIT_TIMEOUT_MS * 1000000ull;
	pthread_mutex_unlock(&cs->lock);
}

/* Typed input the UART FIFO can take now (lock held). */
static void flush_input(struct console_server *cs)
{
	size_t n;

	if (!cs->inq_len || !cs->m || cs->frozen || cs->locked)
		return;
	n = serial_input(&cs->m->serial, cs->inq, cs->inq_len);
	memmove(cs->inq, cs->inq + n, cs->inq_len - n);
	cs->inq_len -= n;
	if (n)
		explicit_bzero(cs->inq + cs->inq_len, n);
}

static void send_screen(struct console_server *cs, struct session *s, const struct vga_screen *scr)
{
	uint8_t p[12 + 2 * VGA_ROWS * VGA_COLS];
	int i;

	memset(p, 0, 12);
	p[1] = VGA_ROWS, p[3] = VGA_COLS;
	p[5] = (uint8_t)scr->cursor_row, p[7] = (uint8_t)scr->cursor_col;
	p[8] = scr->cursor_on;
	for (i = 0; i < VGA_ROWS * VGA_COLS; i++) {
		p[12 + 2 * i] = (uint8_t)scr->cells[i];
		p[13 + 2 * i] = (uint8_t)(scr->cells[i] >> 8);
	}
	console_send_frame(s, CP_SCREEN, p, sizeof(p));
	explicit_bzero(p, sizeof(p));
	(void)cs;
}

/* One frame from a waiting or attached client. Returns 1 if it must wait (input
 * the devices cannot take now), 0 when handled. */
static int handle_frame(struct console_server *cs, struct session *s, const struct cproto_frame *f)
{
	struct err e = { 0 };
	uint8_t codes[4], key[CPROTO_KEY_LEN];
	struct cp_key k;
	size_t n;
	int r = 0;

	if (s->st == SS_HELLO) {
		if (f->type != CP_HELLO)
			session_refuse(s, "expected HELLO");
		else
			handle_hello(cs, s, f);
		return 0;
	}
	if (s->st == SS_WAIT) {
		if (f->type != CP_UNLOCK) {
			session_refuse(s, "only UNLOCK before WELCOME");
			return 0;
		}
		if (cp_decode_unlock(f, key, &e) == 0 && console_unlock(cs, key, &e) == 0)
			console_log("the owner unlocked the restored console");
		else
			session_refuse(s, e.msg);
		explicit_bzero(key, sizeof(key));
		return 0;
	}
	switch (f->type) {
	case CP_INPUT:
		if (cp_decode_input(f, &e) < 0)
			break;
		pthread_mutex_lock(&cs->lock);
		if (cs->frozen || (s->mode == CP_MODE_RW && f->len > sizeof(cs->inq) - cs->inq_len)) {
			r = 1; /* taken later (or, after a hand-over, by the new host) */
		} else {
			if (s->mode == CP_MODE_RW) { /* a read-only session's typing goes nowhere */
				memcpy(cs->inq + cs->inq_len, f->payload, f->len);
				cs->inq_len += f->len;
				flush_input(cs);
			}
			s->in_frames++;
		}
		pthread_mutex_unlock(&cs->lock);
		return r;
	case CP_KEY:
		if (cp_decode_key(f, &k, &e) < 0)
			break;
		pthread_mutex_lock(&cs->lock);
		n = s->mode == CP_MODE_RW && cs->m ? keymap_scancodes(k.keysym, k.down, codes) : 0;
		if (cs->frozen || (n && i8042_key_input(&cs->m->kbd, codes, n) != n))
			r = 1; /* the guest drains its keyboard queue within milliseconds */
		else
			s->in_frames++;
		pthread_mutex_unlock(&cs->lock);
		return r;
	case CP_SCREEN_REQ:
		if (f->len)
			break;
		pthread_mutex_lock(&cs->lock);
		if (cs->m) {
			static struct vga_screen scr; /* only this thread uses it */
			vga_read_screen(&cs->m->vga, &scr);
			send_screen(cs, s, &scr);
			explicit_bzero(&scr, sizeof(scr));
		}
		pthread_mutex_unlock(&cs->lock);
		return 0;
	default:
		err_set(&e, -EPROTO, "unknown console frame type 0x%02x", f->type);
		break;
	}
	console_log("dropping a session: %s", e.msg);
	session_refuse(s, e.msg);
	return 0;
}

static bool session_verify(struct console_server *cs, struct session *s)
{
	X509 *peer = SSL_get0_peer_certificate(s->ssl);
	unsigned int n = 0;
	struct err e = { 0 };

	if (!peer || SSL_get_verify_result(s->ssl) != X509_V_OK)
		return false;
	X509_digest(peer, EVP_sha256(), s->fp, &n);
	if (console_spki(X509_get0_pubkey(peer), s->spki, sizeof(s->spki), &s->spki_len, &e) < 0)
		s->spki_len = 0; /* a key we cannot keep: snapshots just cannot be sealed for it */
	(void)cs;
	return true;
}

/* Drives TLS for one session: handshake, reads, frames. <0: close it. Sets
 * *blocked when a frame waits for the devices. */
static int session_io(struct console_server *cs, struct session *s, bool *blocked)
{
	char why[160];
	int r, err;

	*blocked = false;
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
			if (vr != X509_V_OK) {
				struct err ve = { 0 };
				tls_verify_err(vr, &s->vfy, NULL, &ve);
				console_log("refused a client: %s", ve.msg);
			} else {
				console_log("refused a client: %s", ctls_reason(why, sizeof(why)));
			}
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
			console_log("dropping a session: %s", e.msg);
			session_refuse(s, e.msg);
			break;
		}
		if (r == 1) {
			if (s->st == SS_OPEN && cs->moved)
				break; /* the new host takes it */
			if (handle_frame(cs, s, &f) == 1) {
				*blocked = true;
				break;
			}
			memmove(s->in, s->in + used, s->inlen - used);
			s->inlen -= used;
			explicit_bzero(s->in + s->inlen, used);
			continue;
		}
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
		console_send_frame(s, CP_OUTPUT, data, 8 + n);
		s->next = from + n;
	}
	explicit_bzero(data, sizeof(data));
}

/* Subscribers get the screen whenever it changed (checked every SCREEN_EVERY_NS). */
static void pump_screens(struct console_server *cs, uint64_t now)
{
	static struct vga_screen cur;   /* only this thread uses it */
	bool any = false;
	int i;

	for (i = 0; i < MAX_SESSIONS; i++)
		any |= cs->sess[i].used && cs->sess[i].st == SS_OPEN && (cs->sess[i].hello.flags & CP_HELLO_SCREEN);
	if (!any || !cs->m)
		return;
	if (now >= cs->scr_next_ns || !cs->scr_gen) {
		vga_read_screen(&cs->m->vga, &cur);
		if (!cs->scr_gen || memcmp(&cur, &cs->scr, sizeof(cur))) {
			cs->scr = cur;
			cs->scr_gen++;
		}
		cs->scr_next_ns = now + SCREEN_EVERY_NS;
		explicit_bzero(&cur, sizeof(cur));
	}
	for (i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &cs->sess[i];
		if (s->used && s->st == SS_OPEN && (s->hello.flags & CP_HELLO_SCREEN) && s->scr_sent != cs->scr_gen &&
		    s->out.len < OUT_CAP) {
			send_screen(cs, s, &cs->scr);
			s->scr_sent = cs->scr_gen;
		}
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
	ctls_nodelay(fd);
	memset(s, 0, sizeof(*s));
	s->ssl = SSL_new(cs->ctx);
	if (s->ssl)
		tls_vfy_attach(s->ssl, &s->vfy);
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

/* Waiting sessions: sent after a moved VM, told the console is locked, or admitted. */
static void serve_waiting(struct console_server *cs)
{
	int i;

	pthread_mutex_lock(&cs->lock);
	flush_input(cs);
	for (i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &cs->sess[i];
		if (!s->used)
			continue;
		if (cs->moved && (s->st == SS_WAIT || s->st == SS_OPEN)) {
			session_redirect(cs, s);
		} else if (cs->moving_to[0] && s->st == SS_OPEN && !s->prepared) {
			uint8_t fr[CPROTO_HDR + CPROTO_URI_MAX];
			buf_add(&s->out, fr, cp_encode_prepare(fr, cs->moving_to));
			s->prepared = true;
		}
		else if (s->st == SS_WAIT && cs->m && cs->locked)
			send_locked(cs, s);
		else if (s->st == SS_WAIT && cs->m)
			admit(cs, s);
	}
	pthread_mutex_unlock(&cs->lock);
}

static void *server_thread(void *arg)
{
	struct console_server *cs = arg;
	struct pollfd p[2 + MAX_SESSIONS];
	bool blocked[MAX_SESSIONS] = { false };

	while (!cs->stop) {
		int n = 0, i, timeout = 200;
		bool drained = true;
		uint64_t now;

		/* redirects, locks and admissions first: a drain must see them queued */
		serve_waiting(cs);
		p[n++] = (struct pollfd){ .fd = cs->lfd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = cs->evfd, .events = POLLIN };
		pthread_mutex_lock(&cs->lock);
		if (cs->inq_len && !cs->frozen)
			timeout = 2; /* the guest drains its FIFO soon */
		for (i = 0; i < MAX_SESSIONS; i++) {
			struct session *s = &cs->sess[i];
			if (!s->used)
				continue;
			if (blocked[i] && !cs->frozen)
				timeout = 2; /* a full keyboard queue or FIFO empties within milliseconds */
			if (s->st == SS_OPEN && (s->hello.flags & CP_HELLO_SCREEN) && timeout > 20)
				timeout = 20;
			drained &= !s->out.len;
			/* a session whose input waits for the devices is not read further */
			p[n++] = (struct pollfd){ .fd = s->fd,
						  .events = (short)((blocked[i] ? 0 : POLLIN) | (s->out.len ? POLLOUT : 0)) };
		}
		pthread_mutex_unlock(&cs->lock);
		if (cs->draining && drained)
			break;
		if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR)
			break;
		if ((p[0].revents & POLLIN) && !cs->draining)
			accept_client(cs);
		if (p[1].revents & POLLIN) {
			uint64_t v;
			if (read(cs->evfd, &v, sizeof(v)) < 0) {
				/* nothing: it only wakes us */
			}
		}
		now = mono_ns();
		for (i = 0; i < MAX_SESSIONS; i++) {
			struct session *s = &cs->sess[i];
			int r;

			if (!s->used)
				continue;
			r = session_io(cs, s, &blocked[i]);
			if (r == 0 && s->st == SS_WAIT)
				serve_waiting(cs); /* a HELLO just arrived: answer it now */
			if (r == 0) {
				pump_serial(cs, s);
				r = session_flush(s);
			}
			if (r == 0 && s->st == SS_CLOSING && !s->out.len) {
				SSL_shutdown(s->ssl);
				r = -ECONNRESET;
			}
			if (r == 0 && s->st != SS_OPEN && s->st != SS_CLOSING && now > s->deadline_ns) {
				console_log("dropping a client that %s in time",
					    s->st == SS_WAIT ? "no VM was ready for" : "did not complete its hello");
				r = -ETIMEDOUT;
			}
			if (r < 0) {
				if (s->st == SS_OPEN)
					console_log("owner session detached");
				blocked[i] = false;
				session_free(cs, s);
			}
		}
		pthread_mutex_lock(&cs->lock);
		if (cs->m && !cs->locked && !cs->moved)
			pump_screens(cs, now);
		pthread_mutex_unlock(&cs->lock);
		for (i = 0; i < MAX_SESSIONS; i++)
			if (cs->sess[i].used && cs->sess[i].out.len)
				session_flush(&cs->sess[i]);
	}
	return NULL;
}

static int listen_on(struct console_server *cs, struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[16];
	int fd, one = 1, r;
	bool wildcard;

	r = ctls_parse_uri(cs->o.uri, host, sizeof(host), port, sizeof(port), e);
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
		r = err_sys(e, -errno, "cannot listen on %s", cs->o.uri);
		freeaddrinfo(ai);
		close(fd);
		return r;
	}
	freeaddrinfo(ai);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	cs->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	cs->lfd = fd;
	/* a wildcard address names no host: whoever hands the VM over fills in the one it used */
	wildcard = !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "*");
	if (strchr(host, ':') && !wildcard)
		snprintf(cs->uri, sizeof(cs->uri), "tls://[%s]:%d", host, cs->port);
	else
		snprintf(cs->uri, sizeof(cs->uri), "tls://%s:%d", wildcard ? "" : host, cs->port);
	return 0;
}

int console_server_start(const struct console_opts *o, struct console_server **out, struct err *e)
{
	struct console_server *cs;
	int r;

	if (!o->host_dir || !o->owner_ca)
		return err_set(e, -EINVAL, "the console needs --tls-dir (this host's certificate) and --owner-ca");
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return err_set(e, -ENOMEM, "console server");
	cs->o = *o;
	cs->lfd = cs->evfd = -1;
	pthread_mutex_init(&cs->lock, NULL);
	scrollback_init(&cs->sb);
	cs->ctx = ctls_server_ctx(o->host_dir, o->owner_ca, o->owner_crl, e);
	if (!cs->ctx) {
		r = e->code ? e->code : -EINVAL;
		goto fail;
	}
	r = listen_on(cs, e);
	if (r < 0)
		goto fail;
	cs->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cs->evfd < 0) {
		r = err_sys(e, -errno, "eventfd");
		goto fail;
	}
	r = pthread_create(&cs->thread, NULL, server_thread, cs);
	if (r) {
		r = err_set(e, -r, "cannot start the console thread");
		goto fail;
	}
	*out = cs;
	return 0;
fail:
	if (cs->lfd >= 0)
		close(cs->lfd);
	if (cs->evfd >= 0)
		close(cs->evfd);
	SSL_CTX_free(cs->ctx);
	scrollback_destroy(&cs->sb);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
	return r;
}

int console_server_port(struct console_server *s)
{
	return s->port;
}

const char *console_server_uri(struct console_server *s)
{
	return s->uri;
}

void console_server_stats(struct console_server *cs, struct console_stats *st)
{
	int i;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&cs->lock);
	for (i = 0; i < MAX_SESSIONS; i++)
		if (cs->sess[i].used && cs->sess[i].st == SS_OPEN)
			cs->sess[i].mode == CP_MODE_RW ? st->rw++ : st->ro++;
	st->locked = cs->locked;
	st->accepted = cs->accepted;
	st->refused = cs->refused;
	pthread_mutex_unlock(&cs->lock);
	st->serial_bytes = scrollback_total(&cs->sb);
}

void console_server_stop(struct console_server *cs)
{
	int i;

	if (!cs)
		return;
	console_server_unbind(cs);
	/* what clients are owed (a redirect, an error) goes out first, briefly */
	cs->draining = true;
	console_wake(cs);
	for (i = 0; i < DRAIN_MS / 5; i++) {
		if (pthread_tryjoin_np(cs->thread, NULL) == 0)
			break;
		usleep(5000);
	}
	if (i == DRAIN_MS / 5) {
		cs->stop = 1;
		console_wake(cs);
		pthread_join(cs->thread, NULL);
	}
	for (i = 0; i < MAX_SESSIONS; i++)
		if (cs->sess[i].used)
			session_free(cs, &cs->sess[i]);
	close(cs->lfd);
	close(cs->evfd);
	SSL_CTX_free(cs->ctx);
	machine_ext_sec_free(&cs->sealed);
	machine_ext_sec_free(&cs->wrap);
	explicit_bzero(cs->inq, sizeof(cs->inq));
	explicit_bzero(&cs->scr, sizeof(cs->scr));
	scrollback_destroy(&cs->sb);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}
