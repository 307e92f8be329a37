/* Network channel: TLS 1.3 (mutual certificates) or plain TCP. See channel.h.
 *
 * Data path design (DESIGN.md §6: one free core, every copy and syscall counts):
 *  - TLS writes: small pieces are gathered into a 64 KiB buffer (four full 16 KiB
 *    records) and given to SSL_write in one call; pieces >= 16 KiB go to SSL_write
 *    directly in whole records (the buffer is first topped up to a record boundary
 *    from the large piece, its tail is buffered), so every record but the last before
 *    a flush is a full 16 KiB one.
 *  - TLS output: OpenSSL hands the BIO one encrypted record at a time; the BIO gathers
 *    them into 128 KiB (a cache-hot copy) so that one send() carries ~8 records.
 *    Sending each record on its own cost ~40% of the throughput here: syscalls and
 *    receiver wake-ups are expensive in this nested VM.
 *  - TCP writes: a writev of < 16 KiB in total is copied into a 256 KiB buffer;
 *    anything larger goes to sendmsg() as-is together with the buffered bytes.
 *  - TLS reads: SSL_read with read-ahead (see CHAN_TLS_RBUF). TCP reads: small reads
 *    come from a 256 KiB buffer, large ones are received straight into the caller's
 *    memory (MSG_WAITALL).
 *  - TLS runs over our own BIO (not OpenSSL's socket BIO) so that sends use
 *    MSG_NOSIGNAL (no SIGPIPE, no global signal state), the handshake honours a
 *    poll() deadline, output is gathered, and wire bytes are counted.
 *  - Timeouts after the handshake are SO_RCVTIMEO/SO_SNDTIMEO on the blocking socket:
 *    no extra syscall on the data path.
 *  - The sending key is updated (TLS 1.3 KeyUpdate) every 64 GiB, well inside the
 *    AES-GCM limit of RFC 8446 §5.5.
 */
#include "channel/channel.h"

#include "channel/chan_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Waits until fd has events or the deadline (0: none) passes: 0, -ETIMEDOUT or -errno. */
int ch_wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int ms = -1, n;

		if (deadline) {
			int64_t left = deadline - ch_now_ns();
			if (left <= 0)
				return -ETIMEDOUT;
			left = (left + 999999) / 1000000;
			ms = left > INT_MAX ? INT_MAX : (int)left;
		}
		n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---------------------------------------------------------------- BIO */

/* Sends all of p: 0, or -1 with c->io_err set. Honours the handshake deadline; never
 * blocks while closing; SO_SNDTIMEO expiry becomes ETIMEDOUT. */
static int sock_send_all(struct chan *c, const unsigned char *p, size_t len)
{
	while (len > 0) {
		int flags = MSG_NOSIGNAL;
		ssize_t n;

		if (c->closing) {
			flags |= MSG_DONTWAIT;
		} else if (c->deadline_ns) {
			int r = ch_wait_fd(c->fd, POLLOUT, c->deadline_ns);
			if (r < 0) {
				c->io_err = -r;
				return -1;
			}
		}
		n = send(c->fd, p, len, flags);
		if (n >= 0) {
			ch_add_counter(&c->wire_sent, (uint64_t)n);
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (c->closing) {
				c->io_err = EAGAIN;
				return -1;
			}
			if (c->deadline_ns)
				continue;               /* spurious wake-up: poll again */
			c->io_err = ETIMEDOUT;          /* SO_SNDTIMEO expired */
			return -1;
		}
		c->io_err = errno;
		return -1;
	}
	return 0;
}

/* Sends the encrypted records gathered in obuf. */
int ch_obuf_flush(struct chan *c)
{
	int r;

	if (c->olen == 0)
		return 0;
	r = sock_send_all(c, c->obuf, c->olen);
	c->olen = 0;
	return r;
}

/* OpenSSL hands us one record at a time; gather them so that one send() carries
 * several records (fewer syscalls and receiver wake-ups, which are costly here). */
static int sbio_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct chan *c = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (c->olen + len > CHAN_OBUF && ch_obuf_flush(c) < 0)
		return 0;
	if (len <= CHAN_OBUF) {
		memcpy(c->obuf + c->olen, data, len);
		c->olen += len;
	} else if (sock_send_all(c, (const unsigned char *)data, len) < 0) {
		return 0;
	}
	*written = len;
	return 1;
}

static int sbio_read(BIO *b, char *data, size_t len, size_t *readbytes)
{
	struct chan *c = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	/* never wait for the peer while our own records are still unsent */
	if (c->olen && ch_obuf_flush(c) < 0)
		return 0;
	for (;;) {
		ssize_t n;

		if (c->deadline_ns) {
			int r = ch_wait_fd(c->fd, POLLIN, c->deadline_ns);
			if (r < 0) {
				c->io_err = -r;
				return 0;
			}
		}
		n = recv(c->fd, data, len, c->closing ? MSG_DONTWAIT : 0);
		if (n > 0) {
			*readbytes = (size_t)n;
			ch_add_counter(&c->wire_recv, (uint64_t)n);
			return 1;
		}
		if (n == 0) {
			c->io_eof = true;
			*readbytes = 0;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if ((errno == EAGAIN || errno == EWOULDBLOCK) && c->deadline_ns)
			continue;
		c->io_err = (errno == EAGAIN || errno == EWOULDBLOCK) ? ETIMEDOUT : errno;
		return 0;
	}
}

static long sbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct chan *c = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return c && ch_obuf_flush(c) < 0 ? 0 : 1;
	case BIO_CTRL_WPENDING:
		return c ? (long)c->olen : 0;
	case BIO_CTRL_EOF:
		return c && c->io_eof;
	case BIO_C_GET_FD:
		if (!c)
			return -1;
		if (ptr)
			*(int *)ptr = c->fd;
		return c->fd;
	case BIO_CTRL_GET_CLOSE:
		return BIO_NOCLOSE;
	case BIO_CTRL_SET_CLOSE:
		return 1;
	default:
		return 0;
	}
}

static int sbio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int sbio_destroy(BIO *b)
{
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *g_bio_method;
static pthread_once_t g_bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
	int idx = BIO_get_new_index();
	BIO_METHOD *m;

	if (idx < 0)
		return;
	m = BIO_meth_new(idx | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "sealvm socket");
	if (!m)
		return;
	if (!BIO_meth_set_write_ex(m, sbio_write) || !BIO_meth_set_read_ex(m, sbio_read) ||
	    !BIO_meth_set_ctrl(m, sbio_ctrl) || !BIO_meth_set_create(m, sbio_create) ||
	    !BIO_meth_set_destroy(m, sbio_destroy)) {
		BIO_meth_free(m);
		return;
	}
	g_bio_method = m;
}

/* ---------------------------------------------------------------- chan object */

static int bs_writev(struct bstream *s, const struct iovec *iov, int iovcnt, struct err *e)
{
	return chan_writev(s->ctx, iov, iovcnt, e);
}

static int bs_read_full(struct bstream *s, void *buf, size_t len, struct err *e)
{
	return chan_read_full(s->ctx, buf, len, e);
}

static int bs_flush(struct bstream *s, struct err *e)
{
	return chan_flush(s->ctx, e);
}

struct chan *ch_new(int fd, enum chan_kind kind, const char *where)
{
	struct chan *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->kind = kind;
	c->wcap = kind == CHAN_TLS ? CHAN_TLS_WBUF : CHAN_TCP_WBUF;
	c->wbuf = aligned_alloc(64, c->wcap);
	if (kind == CHAN_TCP)
		c->rbuf = aligned_alloc(64, CHAN_RBUF);
	else
		c->obuf = aligned_alloc(64, CHAN_OBUF);
	if (!c->wbuf || (kind == CHAN_TCP ? !c->rbuf : !c->obuf)) {
		free(c->wbuf);
		free(c->obuf);
		free(c->rbuf);
		free(c);
		return NULL;
	}
	atomic_init(&c->shut, false);
	c->bs.writev_all = bs_writev;
	c->bs.read_full = bs_read_full;
	c->bs.flush = bs_flush;
	c->bs.ctx = c;
	snprintf(c->where, sizeof(c->where), "%s", where);
	return c;
}

void ch_free(struct chan *c)
{
	if (c->ssl)
		SSL_free(c->ssl);   /* frees the BIO too */
	if (c->fd >= 0)
		close(c->fd);
	free(c->wbuf);
	free(c->obuf);
	free(c->rbuf);
	free(c);
}

int ch_attach_ssl(struct chan *c, SSL_CTX *ctx, struct err *e)
{
	BIO *b;

	pthread_once(&g_bio_once, bio_method_init);
	if (!g_bio_method)
		return err_set(e, -ENOMEM, "TLS: cannot create socket BIO method");
	c->ssl = SSL_new(ctx);
	if (!c->ssl)
		return err_set(e, -ENOMEM, "TLS: cannot create connection object");
	b = BIO_new(g_bio_method);
	if (!b)
		return err_set(e, -ENOMEM, "TLS: cannot create BIO");
	BIO_set_data(b, c);
	SSL_set_bio(c->ssl, b, b);
	SSL_set_app_data(c->ssl, c);
	tls_vfy_attach(c->ssl, &c->vfy);
	return 0;
}

void ch_set_sock_opts(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int ch_set_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Sticky failure: remember the first error so later calls report it. */
static int chan_failed(struct chan *c, int r, struct err *e)
{
	if (!c->failed) {
		c->failed = true;
		c->fail.code = r;
		snprintf(c->fail.msg, sizeof(c->fail.msg), "%s", e->msg);
	}
	return r;
}

static int chan_check(struct chan *c, struct err *e)
{
	if (!c)
		return err_set(e, -EINVAL, "no channel");
	if (c->failed)
		return err_set(e, c->fail.code, "channel unusable after earlier error: %s", c->fail.msg);
	return 0;
}

/* Maps a failed socket operation (c->io_err) to an error. */
static int sock_fail(struct chan *c, const char *op, struct err *e)
{
	if (atomic_load(&c->shut))
		return err_set(e, -ECANCELED, "%s: channel shut down", op);
	if (c->io_err == ETIMEDOUT)
		return err_set(e, -ETIMEDOUT, "%s timed out after %d ms", op, c->timeout_ms);
	return err_sys(e, -(c->io_err ? c->io_err : EIO), "%s %s", op, c->where);
}

/* Maps a failed SSL_read/SSL_write after the handshake to an error. */
static int tls_io_fail(struct chan *c, int ret, const char *op, struct err *e)
{
	int se = SSL_get_error(c->ssl, ret);
	char why[256];
	int reason;

	if (atomic_load(&c->shut))
		return err_set(e, -ECANCELED, "%s: channel shut down", op);
	if (c->io_err == ETIMEDOUT)
		return err_set(e, -ETIMEDOUT, "%s timed out after %d ms", op, c->timeout_ms);
	if (se == SSL_ERROR_ZERO_RETURN)
		return err_set(e, -ENODATA, "connection closed by peer");
	if (c->io_err)
		return err_sys(e, -c->io_err, "%s %s", op, c->where);
	reason = tls_reason(why, sizeof(why));
	if (c->io_eof || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return err_set(e, -ENODATA, "connection closed by peer (without TLS close_notify)");
	if (reason >= SSL_AD_REASON_OFFSET)
		return err_set(e, -EPROTO, "%s: TLS: peer sent alert: %s", op, why);
	return err_set(e, -EPROTO, "%s: TLS: %s", op, why);
}

/* ---------------------------------------------------------------- writing */

static int tls_write_all(struct chan *c, const void *buf, size_t len, struct err *e)
{
	const unsigned char *p = buf;

	if (c->key_bytes >= CHAN_KEY_UPDATE) {
		SSL_key_update(c->ssl, SSL_KEY_UPDATE_NOT_REQUESTED);
		c->key_bytes = 0;
	}
	c->key_bytes += len;
	while (len > 0) {
		size_t n = 0;

		c->io_err = 0;
		if (ERR_peek_error())
			ERR_clear_error();
		if (SSL_write_ex(c->ssl, p, len, &n) != 1)
			return tls_io_fail(c, 0, "write", e);
		p += n;
		len -= n;
	}
	return 0;
}

/* Sends all of iov (modified in place) with sendmsg. */
static int tcp_send_all(struct chan *c, struct iovec *iov, int cnt, struct err *e)
{
	while (cnt > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (atomic_load(&c->shut))
				return err_set(e, -ECANCELED, "write: channel shut down");
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return err_set(e, -ETIMEDOUT, "write timed out after %d ms", c->timeout_ms);
			return err_sys(e, -errno, "write %s", c->where);
		}
		ch_add_counter(&c->wire_sent, (uint64_t)n);
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int wbuf_push(struct chan *c, struct err *e)
{
	int r = 0;

	if (c->wlen == 0)
		return 0;
	if (c->kind == CHAN_TLS) {
		r = tls_write_all(c, c->wbuf, c->wlen, e);
	} else {
		struct iovec v = { .iov_base = c->wbuf, .iov_len = c->wlen };
		r = tcp_send_all(c, &v, 1, e);
	}
	c->wlen = 0;
	return r;
}

/* Copies bytes into the gather buffer, pushing it whenever it fills. */
static int wbuf_add(struct chan *c, const unsigned char *p, size_t len, struct err *e)
{
	while (len > 0) {
		size_t n = c->wcap - c->wlen;
		int r;

		if (n > len)
			n = len;
		memcpy(c->wbuf + c->wlen, p, n);
		c->wlen += n;
		p += n;
		len -= n;
		if (c->wlen == c->wcap && (r = wbuf_push(c, e)))
			return r;
	}
	return 0;
}

static int tls_writev(struct chan *c, const struct iovec *iov, int iovcnt, struct err *e)
{
	int i, r;

	for (i = 0; i < iovcnt; i++) {
		const unsigned char *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (len >= CHAN_DIRECT_MIN) {
			if (c->wlen) {
				/* top the buffer up to a record boundary, then push it */
				size_t fill = (CHAN_REC - c->wlen % CHAN_REC) % CHAN_REC;
				memcpy(c->wbuf + c->wlen, p, fill);
				c->wlen += fill;
				p += fill;
				len -= fill;
				if ((r = wbuf_push(c, e)))
					return r;
			}
			size_t direct = len - len % CHAN_REC;
			if (direct) {
				if ((r = tls_write_all(c, p, direct, e)))
					return r;
				p += direct;
				len -= direct;
			}
		}
		if (len && (r = wbuf_add(c, p, len, e)))
			return r;
	}
	return 0;
}

static int tcp_writev(struct chan *c, const struct iovec *iov, int iovcnt, size_t total,
		      struct err *e)
{
	struct iovec v[CHAN_IOV_MAX];
	int i = 0, r;

	if (total < CHAN_DIRECT_MIN) {
		for (i = 0; i < iovcnt; i++)
			if ((r = wbuf_add(c, iov[i].iov_base, iov[i].iov_len, e)))
				return r;
		return 0;
	}
	/* large: send the buffered bytes and the caller's vectors together, uncopied */
	while (i < iovcnt) {
		int n = 0;

		if (c->wlen) {
			v[n].iov_base = c->wbuf;
			v[n].iov_len = c->wlen;
			n++;
		}
		for (; i < iovcnt && n < CHAN_IOV_MAX; i++)
			if (iov[i].iov_len)
				v[n++] = iov[i];
		c->wlen = 0;
		if ((r = tcp_send_all(c, v, n, e)))
			return r;
	}
	return 0;
}

int chan_writev(struct chan *c, const struct iovec *iov, int iovcnt, struct err *e)
{
	struct err tmp;
	size_t total = 0;
	int i, r;

	if (!e)
		e = &tmp;
	if ((r = chan_check(c, e)))
		return r;
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return err_set(e, -EINVAL, "write: bad vector");
	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	r = c->kind == CHAN_TLS ? tls_writev(c, iov, iovcnt, e)
				: tcp_writev(c, iov, iovcnt, total, e);
	if (r)
		return chan_failed(c, r, e);
	ch_add_counter(&c->app_sent, total);
	return 0;
}

int chan_write(struct chan *c, const void *buf, size_t len, struct err *e)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };

	return chan_writev(c, &v, 1, e);
}

int chan_flush(struct chan *c, struct err *e)
{
	struct err tmp;
	int r;

	if (!e)
		e = &tmp;
	if ((r = chan_check(c, e)))
		return r;
	if ((r = wbuf_push(c, e)))
		return chan_failed(c, r, e);
	if (c->olen) {
		c->io_err = 0;
		if (ch_obuf_flush(c) < 0)
			return chan_failed(c, sock_fail(c, "write", e), e);
	}
	return 0;
}

/* ---------------------------------------------------------------- reading */

static int tcp_read_fail(struct chan *c, ssize_t n, struct err *e)
{
	if (atomic_load(&c->shut))
		return err_set(e, -ECANCELED, "read: channel shut down");
	if (n == 0)
		return err_set(e, -ENODATA, "connection closed by peer");
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return err_set(e, -ETIMEDOUT, "read timed out after %d ms", c->timeout_ms);
	return err_sys(e, -errno, "read %s", c->where);
}

static int tcp_read_full(struct chan *c, unsigned char *p, size_t len, struct err *e)
{
	while (len > 0) {
		ssize_t n;

		if (c->rpos < c->rend) {
			size_t k = c->rend - c->rpos;
			if (k > len)
				k = len;
			memcpy(p, c->rbuf + c->rpos, k);
			c->rpos += k;
			p += k;
			len -= k;
			continue;
		}
		if (len >= CHAN_DIRECT_MIN) {
			n = recv(c->fd, p, len, MSG_WAITALL);
			if (n > 0) {
				ch_add_counter(&c->wire_recv, (uint64_t)n);
				p += n;
				len -= (size_t)n;
				continue;
			}
		} else {
			n = recv(c->fd, c->rbuf, CHAN_RBUF, 0);
			if (n > 0) {
				ch_add_counter(&c->wire_recv, (uint64_t)n);
				c->rpos = 0;
				c->rend = (size_t)n;
				continue;
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		return tcp_read_fail(c, n, e);
	}
	return 0;
}

static int tls_read_full(struct chan *c, unsigned char *p, size_t len, struct err *e)
{
	while (len > 0) {
		size_t n = 0;

		c->io_err = 0;
		if (ERR_peek_error())
			ERR_clear_error();
		if (SSL_read_ex(c->ssl, p, len, &n) != 1)
			return tls_io_fail(c, 0, "read", e);
		p += n;
		len -= n;
	}
	return 0;
}

int chan_read_full(struct chan *c, void *buf, size_t len, struct err *e)
{
	struct err tmp;
	int r;

	if (!e)
		e = &tmp;
	if ((r = chan_check(c, e)))
		return r;
	if (len && !buf)
		return err_set(e, -EINVAL, "read: no buffer");
	/* never wait for the peer while our own bytes sit in the buffer */
	if (c->wlen && (r = wbuf_push(c, e)))
		return chan_failed(c, r, e);
	r = c->kind == CHAN_TLS ? tls_read_full(c, buf, len, e) : tcp_read_full(c, buf, len, e);
	if (r)
		return chan_failed(c, r, e);
	ch_add_counter(&c->app_recv, len);
	return 0;
}

size_t chan_pending(struct chan *c)
{
	if (c->kind == CHAN_TLS) {
		int n = SSL_pending(c->ssl);
		if (n > 0)
			return (size_t)n;
		return SSL_has_pending(c->ssl) ? 1 : 0;
	}
	return c->rend - c->rpos;
}

/* ---------------------------------------------------------------- misc */

int chan_set_timeout(struct chan *c, int timeout_ms)
{
	struct timeval tv = { 0, 0 };

	if (timeout_ms < 0)
		return -EINVAL;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	c->timeout_ms = timeout_ms;
	return 0;
}

const char *chan_peer_name(struct chan *c)
{
	return c->peer;
}

const char *chan_cipher(struct chan *c)
{
	const char *s = c->ssl ? SSL_get_cipher_name(c->ssl) : NULL;

	return s ? s : "none";
}

enum chan_kind chan_kind(struct chan *c)
{
	return c->kind;
}

int chan_fd(struct chan *c)
{
	return c->fd;
}

void chan_shutdown(struct chan *c)
{
	if (!c)
		return;
	atomic_store(&c->shut, true);
	shutdown(c->fd, SHUT_RDWR);
}

void chan_close(struct chan *c)
{
	if (!c)
		return;
	/* A clean close_notify only when everything written was flushed: otherwise the
	 * peer must see an unclean end, not a clean one after missing data. */
	if (c->ssl && !c->failed && !atomic_load(&c->shut) && c->wlen == 0 && c->olen == 0) {
		c->closing = true;      /* the BIO will not block now */
		c->deadline_ns = 0;
		SSL_shutdown(c->ssl);
		ch_obuf_flush(c);
		ERR_clear_error();
	}
	ch_free(c);
}

struct x509_st *chan_peer_cert(struct chan *c)
{
	return c->ssl ? SSL_get0_peer_certificate(c->ssl) : NULL;
}

int chan_peer_fingerprint(struct chan *c, unsigned char sha256[32], struct err *e)
{
	X509 *cert = chan_peer_cert(c);
	unsigned int n = 0;

	if (!cert)
		return err_set(e, -ENOTSUP, "peer has no certificate (tcp:// channel)");
	if (X509_digest(cert, EVP_sha256(), sha256, &n) != 1 || n != 32) {
		ERR_clear_error();
		return err_set(e, -EIO, "TLS: cannot hash peer certificate");
	}
	return 0;
}

int chan_export_keying_material(struct chan *c, const char *label, const void *context,
				size_t context_len, void *out, size_t len, struct err *e)
{
	if (!c->ssl)
		return err_set(e, -ENOTSUP, "keying material export needs a tls:// channel");
	if (SSL_export_keying_material(c->ssl, out, len, label, strlen(label), context,
				       context_len, 1) != 1) {
		ERR_clear_error();
		return err_set(e, -EIO, "TLS: keying material export failed");
	}
	return 0;
}

struct bstream *chan_bstream(struct chan *c)
{
	return &c->bs;
}

uint64_t chan_bytes_sent(struct chan *c)
{
	return atomic_load_explicit(&c->wire_sent, memory_order_relaxed);
}

uint64_t chan_bytes_received(struct chan *c)
{
	return atomic_load_explicit(&c->wire_recv, memory_order_relaxed);
}

uint64_t chan_payload_sent(struct chan *c)
{
	return atomic_load_explicit(&c->app_sent, memory_order_relaxed);
}

uint64_t chan_payload_received(struct chan *c)
{
	return atomic_load_explicit(&c->app_recv, memory_order_relaxed);
}
