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
#include <openssl/x509v3.h>

#define CHAN_REC        16384u          /* TLS max plaintext per record */
/* write gather buffers (TLS: a multiple of CHAN_REC) */
#ifndef CHAN_TLS_WBUF
#define CHAN_TLS_WBUF   (4 * CHAN_REC)
#endif
#ifndef CHAN_TCP_WBUF
#define CHAN_TCP_WBUF   (256 * 1024)
#endif
#define CHAN_DIRECT_MIN 16384u          /* pieces this large are not copied */
#ifndef CHAN_RBUF
#define CHAN_RBUF       (256 * 1024)    /* TCP read buffer */
#endif
/* OpenSSL's read buffer (read-ahead on): one record plus up to 8 KiB of the next
 * per recv(). Larger buffers measured slower: OpenSSL moves the partial record left
 * at the end of the buffer to its front before each refill, and big buffers fall
 * out of cache before the records in them are decrypted. */
#ifndef CHAN_TLS_RBUF
#define CHAN_TLS_RBUF   (24 * 1024)
#endif
/* encrypted records are gathered up to this much before a send() */
#ifndef CHAN_OBUF
#define CHAN_OBUF       (128 * 1024)
#endif
#define CHAN_IOV_MAX    64
#ifndef CHAN_KEY_UPDATE
#define CHAN_KEY_UPDATE (64ull << 30)   /* plaintext bytes per sending key */
#endif
#define CHAN_ACK        0x5a            /* server → client after a successful handshake */
#define CHAN_CIPHERS    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

struct chan {
	struct bstream bs;              /* chan_bstream() view; bs.ctx = this */
	enum chan_kind kind;
	int fd;
	SSL *ssl;
	int timeout_ms;
	int64_t deadline_ns;            /* handshake: the BIO polls until this (0: none) */
	bool closing;                   /* chan_close: never block in the BIO */
	int io_err;                     /* last errno seen by the BIO (ETIMEDOUT on timeout) */
	bool io_eof;                    /* the BIO saw end of stream */
	atomic_bool shut;               /* chan_shutdown() was called */
	bool failed;
	struct err fail;                /* sticky error */
	char vfy_subject[128];          /* certificate that failed verification */
	_Atomic uint64_t wire_sent, wire_recv, app_sent, app_recv;
	unsigned char *wbuf;
	size_t wlen, wcap;
	uint64_t key_bytes;             /* plaintext sent under the current key */
	unsigned char *obuf;            /* TLS only: encrypted records not yet sent */
	size_t olen;
	unsigned char *rbuf;            /* TCP only */
	size_t rpos, rend;
	char peer[256];
	char where[300];                /* "host:port" of the peer, for messages */
};

struct chan_listener {
	enum chan_kind kind;
	int fd;
	int port;
	SSL_CTX *ctx;
};

/* ---------------------------------------------------------------- helpers */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t deadline_after(int timeout_ms)
{
	return timeout_ms > 0 ? now_ns() + (int64_t)timeout_ms * 1000000 : 0;
}

/* Waits until fd has events or the deadline (0: none) passes: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int ms = -1, n;

		if (deadline) {
			int64_t left = deadline - now_ns();
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

static void add_counter(_Atomic uint64_t *ctr, uint64_t n)
{
	/* single writer: no locked read-modify-write needed */
	atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void format_hostport(char *buf, size_t len, const char *host, const char *port)
{
	if (strchr(host, ':'))
		snprintf(buf, len, "[%s]:%s", host, port);
	else
		snprintf(buf, len, "%s:%s", host, port);
}

static void format_sockaddr(char *buf, size_t len, const struct sockaddr *sa)
{
	char h[INET6_ADDRSTRLEN] = "?";
	char p[8];
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s->sin_addr, h, sizeof(h));
		port = ntohs(s->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, h, sizeof(h));
		port = ntohs(s->sin6_port);
	}
	snprintf(p, sizeof(p), "%d", port);
	format_hostport(buf, len, h, p);
}

static bool is_ip_literal(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* ---------------------------------------------------------------- URI */

int chan_parse_uri(const char *uri, enum chan_kind *kind, char *host, size_t hostlen,
		   char *port, size_t portlen, struct err *e)
{
	const char *p, *h, *hend, *pt;
	size_t hl, pl, i;
	unsigned long pv;
	unsigned char a6[16];

	if (!uri || !*uri)
		return err_set(e, -EINVAL, "invalid URI: empty (expected tls://HOST:PORT or tcp://HOST:PORT)");
	if (strncmp(uri, "tls://", 6) == 0)
		*kind = CHAN_TLS;
	else if (strncmp(uri, "tcp://", 6) == 0)
		*kind = CHAN_TCP;
	else
		return err_set(e, -EINVAL, "invalid URI '%s': scheme must be tls:// or tcp://", uri);
	p = uri + 6;
	if (*p == '[') {
		h = p + 1;
		hend = strchr(h, ']');
		if (!hend)
			return err_set(e, -EINVAL, "invalid URI '%s': missing ']' after IPv6 address", uri);
		pt = hend + 1;
		if (*pt != ':')
			return err_set(e, -EINVAL, "invalid URI '%s': missing :PORT", uri);
		pt++;
	} else {
		h = p;
		hend = strrchr(p, ':');
		if (!hend)
			return err_set(e, -EINVAL, "invalid URI '%s': missing :PORT", uri);
		pt = hend + 1;
	}
	hl = (size_t)(hend - h);
	if (hl == 0)
		return err_set(e, -EINVAL, "invalid URI '%s': empty host", uri);
	if (hl >= hostlen || hl > 253)
		return err_set(e, -ENAMETOOLONG, "invalid URI '%s': host name too long", uri);
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (*p == '[') {
		if (inet_pton(AF_INET6, host, a6) != 1)
			return err_set(e, -EINVAL, "invalid URI '%s': '%s' is not an IPv6 address", uri, host);
	} else {
		if (strchr(host, ':'))
			return err_set(e, -EINVAL, "invalid URI '%s': an IPv6 address must be written in [brackets]", uri);
		for (i = 0; i < hl; i++) {
			char ch = host[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_'))
				return err_set(e, -EINVAL, "invalid URI '%s': bad character in host name", uri);
		}
	}
	pl = strlen(pt);
	if (pl == 0)
		return err_set(e, -EINVAL, "invalid URI '%s': missing port number", uri);
	for (i = 0; i < pl; i++)
		if (pt[i] < '0' || pt[i] > '9')
			return err_set(e, -EINVAL, "invalid URI '%s': port must be a decimal number 0-65535", uri);
	pv = pl > 5 ? 65536 : strtoul(pt, NULL, 10);
	if (pv > 65535)
		return err_set(e, -EINVAL, "invalid URI '%s': port %s out of range 0-65535", uri, pt);
	if (portlen < 6)
		return err_set(e, -ENAMETOOLONG, "invalid URI '%s': port buffer too small", uri);
	snprintf(port, portlen, "%lu", pv);
	return 0;
}

/* ---------------------------------------------------------------- OpenSSL errors */

/* First OpenSSL error in this thread's queue as text; returns its reason code. */
static int tls_reason(char *buf, size_t len)
{
	unsigned long ec = ERR_peek_error();
	const char *r;

	if (!ec) {
		snprintf(buf, len, "unknown error");
		return 0;
	}
	r = ERR_reason_error_string(ec);
	if (r)
		snprintf(buf, len, "%s", r);
	else
		ERR_error_string_n(ec, buf, len);
	return ERR_GET_LIB(ec) == ERR_LIB_SSL ? ERR_GET_REASON(ec) : -1;
}

static bool is_cert_alert(int alert)
{
	switch (alert) {
	case SSL_AD_BAD_CERTIFICATE:
	case SSL_AD_UNSUPPORTED_CERTIFICATE:
	case SSL_AD_CERTIFICATE_REVOKED:
	case SSL_AD_CERTIFICATE_EXPIRED:
	case SSL_AD_CERTIFICATE_UNKNOWN:
	case SSL_AD_UNKNOWN_CA:
	case SSL_AD_ACCESS_DENIED:
	case SSL_AD_CERTIFICATE_REQUIRED:
		return true;
	}
	return false;
}

/* ---------------------------------------------------------------- context */

static int check_readable(const char *path, struct err *e)
{
	if (access(path, R_OK) < 0)
		return err_sys(e, -errno, "cannot load %s", path);
	return 0;
}

static int load_fail(const char *path, struct err *e)
{
	char why[256];

	tls_reason(why, sizeof(why));
	ERR_clear_error();
	return err_set(e, -EINVAL, "cannot load %s: not a usable PEM file (%s)", path, why);
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl;
	struct chan *c;
	X509 *cert;

	if (ok)
		return ok;
	ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	c = ssl ? SSL_get_app_data(ssl) : NULL;
	cert = X509_STORE_CTX_get_current_cert(store);
	if (c && cert && !c->vfy_subject[0]) {
		X509_NAME_oneline(X509_get_subject_name(cert), c->vfy_subject,
				  sizeof(c->vfy_subject));
	}
	return ok;
}

static SSL_CTX *make_ctx(const char *tls_dir, bool server, struct err *e)
{
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	SSL_CTX *ctx;
	int r;

	if (!tls_dir || !*tls_dir) {
		err_set(e, -EINVAL, "tls:// needs a TLS directory (ca.pem, cert.pem, key.pem)");
		return NULL;
	}
	snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", tls_dir);
	snprintf(key, sizeof(key), "%s/key.pem", tls_dir);
	if ((r = check_readable(ca, e)) || (r = check_readable(cert, e)) ||
	    (r = check_readable(key, e)))
		return NULL;

	ERR_clear_error();
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		err_set(e, -ENOMEM, "TLS: cannot create context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, CHAN_CIPHERS)) {
		err_set(e, -EINVAL, "TLS: cannot restrict to TLS 1.3");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* NO_AUTO_CHAIN: send cert.pem as it is (leaf + any intermediates it holds), not
	 * the leaf plus the CA root found in our trust store (the peer has the root). */
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY | SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, CHAN_TLS_RBUF);

	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		load_fail(cert, e);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		unsigned long ec = ERR_peek_last_error();
		if (ERR_GET_LIB(ec) == ERR_LIB_X509 && ERR_GET_REASON(ec) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			err_set(e, -EINVAL, "cannot load %s: the key does not match the certificate in %s",
				key, cert);
		} else {
			load_fail(key, e);
		}
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		err_set(e, -EINVAL, "%s does not match the certificate in %s", key, cert);
		goto fail;
	}
	/* Only the cluster CA is trusted: no system default paths. */
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		load_fail(ca, e);
		goto fail;
	}
	if (server) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		ERR_clear_error();
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	}
	SSL_CTX_set_verify_depth(ctx, 4);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
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
			int r = wait_fd(c->fd, POLLOUT, c->deadline_ns);
			if (r < 0) {
				c->io_err = -r;
				return -1;
			}
		}
		n = send(c->fd, p, len, flags);
		if (n >= 0) {
			add_counter(&c->wire_sent, (uint64_t)n);
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
static int obuf_flush(struct chan *c)
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
	if (c->olen + len > CHAN_OBUF && obuf_flush(c) < 0)
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
	if (c->olen && obuf_flush(c) < 0)
		return 0;
	for (;;) {
		ssize_t n;

		if (c->deadline_ns) {
			int r = wait_fd(c->fd, POLLIN, c->deadline_ns);
			if (r < 0) {
				c->io_err = -r;
				return 0;
			}
		}
		n = recv(c->fd, data, len, c->closing ? MSG_DONTWAIT : 0);
		if (n > 0) {
			*readbytes = (size_t)n;
			add_counter(&c->wire_recv, (uint64_t)n);
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
		return c && obuf_flush(c) < 0 ? 0 : 1;
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

static struct chan *chan_new(int fd, enum chan_kind kind, const char *where)
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

static void chan_free(struct chan *c)
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

static int chan_attach_ssl(struct chan *c, SSL_CTX *ctx, struct err *e)
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
	return 0;
}

static void set_sock_opts(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int set_blocking(int fd)
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

static int verify_error(struct chan *c, long vr, const char *host, struct err *e)
{
	const char *vs = X509_verify_cert_error_string(vr);
	char subj[160] = "";

	if (c->vfy_subject[0])
		snprintf(subj, sizeof(subj), "; certificate %s", c->vfy_subject);
	switch (vr) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return err_set(e, -EACCES, "TLS: certificate name mismatch: expected %s (%s%s)",
			       host ? host : "?", vs, subj);
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return err_set(e, -EACCES, "TLS: certificate expired (%s%s)", vs, subj);
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return err_set(e, -EACCES, "TLS: certificate not yet valid (%s%s)", vs, subj);
	default:
		return err_set(e, -EACCES, "TLS: peer certificate not trusted (%s%s)", vs, subj);
	}
}

/* Maps a failed handshake step (SSL_connect/SSL_accept/confirmation) to an error. */
static int tls_handshake_fail(struct chan *c, const char *host, struct err *e)
{
	long vr = SSL_get_verify_result(c->ssl);
	char why[256];
	int reason;

	if (atomic_load(&c->shut))
		return err_set(e, -ECANCELED, "TLS handshake: channel shut down");
	if (vr != X509_V_OK)
		return verify_error(c, vr, host, e);
	if (c->io_err == ETIMEDOUT)
		return err_set(e, -ETIMEDOUT, "TLS handshake timed out");
	reason = tls_reason(why, sizeof(why));
	if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		return err_set(e, -EACCES, "TLS: peer sent no certificate");
	if (reason >= SSL_AD_REASON_OFFSET) {
		if (is_cert_alert(reason - SSL_AD_REASON_OFFSET))
			return err_set(e, -EACCES, "TLS: peer rejected our certificate (%s)", why);
		return err_set(e, -EPROTO, "TLS handshake failed: peer sent alert: %s", why);
	}
	if (c->io_err)
		return err_sys(e, -c->io_err, "TLS handshake");
	if (c->io_eof || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return err_set(e, -ECONNRESET, "TLS handshake: connection closed by peer");
	return err_set(e, -EPROTO, "TLS handshake failed: %s", why);
}

static void note_peer(struct chan *c)
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);

	c->peer[0] = '\0';
	if (cert &&
	    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, c->peer,
				      sizeof(c->peer)) < 0)
		c->peer[0] = '\0';
}

/* Runs the TLS handshake (server or client) and the one-byte confirmation. */
static int tls_handshake(struct chan *c, bool server, const char *host, int64_t deadline,
			 struct err *e)
{
	unsigned char ack = CHAN_ACK;
	size_t n = 0;
	int r;

	c->deadline_ns = deadline;
	c->io_err = 0;
	c->io_eof = false;
	ERR_clear_error();
	if (!server) {
		X509_VERIFY_PARAM *vpm = SSL_get0_param(c->ssl);
		X509_VERIFY_PARAM_set_hostflags(vpm, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
						     X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
		if (is_ip_literal(host)) {
			r = X509_VERIFY_PARAM_set1_ip_asc(vpm, host);
		} else {
			r = X509_VERIFY_PARAM_set1_host(vpm, host, 0);
			if (r == 1)
				r = SSL_set_tlsext_host_name(c->ssl, host);
		}
		if (r != 1) {
			ERR_clear_error();
			return err_set(e, -EINVAL, "TLS: cannot set expected peer name %s", host);
		}
		r = SSL_connect(c->ssl);
	} else {
		r = SSL_accept(c->ssl);
	}
	if (r != 1)
		goto fail;
	/* TLS 1.3 lets the client finish before the server has checked the client's
	 * certificate; the confirmation makes a rejection visible in chan_connect. */
	if (server) {
		if (SSL_write_ex(c->ssl, &ack, 1, &n) != 1 || obuf_flush(c) < 0)
			goto fail;
	} else {
		if (SSL_read_ex(c->ssl, &ack, 1, &n) != 1)
			goto fail;
		if (ack != CHAN_ACK) {
			r = err_set(e, -EPROTO, "TLS handshake: peer is not a sealvm channel (bad confirmation byte)");
			goto out;
		}
	}
	note_peer(c);
	c->deadline_ns = 0;
	return 0;
fail:
	r = tls_handshake_fail(c, host, e);
out:
	ERR_clear_error();
	c->deadline_ns = 0;
	return r;
}

/* ---------------------------------------------------------------- listen/accept/connect */

int chan_listen(const char *uri, const char *tls_dir, struct chan_listener **out, struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	struct chan_listener *l;
	char host[256], port[8], hp[300];
	enum chan_kind kind;
	struct err tmp;
	int r, g, fd = -1;

	if (!e)
		e = &tmp;
	*out = NULL;
	if ((r = chan_parse_uri(uri, &kind, host, sizeof(host), port, sizeof(port), e)))
		return r;
	format_hostport(hp, sizeof(hp), host, port);
	l = calloc(1, sizeof(*l));
	if (!l)
		return err_set(e, -ENOMEM, "listen %s: out of memory", hp);
	l->kind = kind;
	l->fd = -1;
	if (kind == CHAN_TLS) {
		l->ctx = make_ctx(tls_dir, true, e);
		if (!l->ctx) {
			free(l);
			return e->code;
		}
	}
	g = getaddrinfo(host, port, &hints, &res);
	if (g) {
		r = err_set(e, -EADDRNOTAVAIL, "listen %s: cannot resolve %s: %s", hp, host,
			    gai_strerror(g));
		goto fail;
	}
	r = err_set(e, -EADDRNOTAVAIL, "listen %s: no address", hp);
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;

		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = err_sys(e, -errno, "listen %s: socket", hp);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			r = err_sys(e, -errno, "listen %s: bind", hp);
		} else if (listen(fd, 64) < 0) {
			r = err_sys(e, -errno, "listen %s", hp);
		} else {
			r = 0;
			break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (r)
		goto fail;
	l->fd = fd;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			l->port = ss.ss_family == AF_INET6
				? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
				: ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	*out = l;
	return 0;
fail:
	SSL_CTX_free(l->ctx);
	free(l);
	return r;
}

int chan_listener_fd(struct chan_listener *l)
{
	return l->fd;
}

int chan_listener_port(struct chan_listener *l)
{
	return l->port;
}

enum chan_kind chan_listener_kind(struct chan_listener *l)
{
	return l->kind;
}

void chan_listener_close(struct chan_listener *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	SSL_CTX_free(l->ctx);
	free(l);
}

int chan_accept(struct chan_listener *l, int timeout_ms, struct chan **out, struct err *e)
{
	int64_t deadline = deadline_after(timeout_ms);
	struct sockaddr_storage ss;
	socklen_t sl;
	char where[300];
	struct chan *c;
	struct err tmp;
	int fd, r;

	if (!e)
		e = &tmp;
	*out = NULL;
	for (;;) {
		sl = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			r = wait_fd(l->fd, POLLIN, deadline);
			if (r == -ETIMEDOUT)
				return err_set(e, r, "accept: timed out waiting for a connection");
			if (r < 0)
				return err_sys(e, r, "accept");
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		return err_sys(e, -errno, "accept");
	}
	format_sockaddr(where, sizeof(where), (struct sockaddr *)&ss);
	set_sock_opts(fd);
	c = chan_new(fd, l->kind, where);
	if (!c) {
		close(fd);
		return err_set(e, -ENOMEM, "accept from %s: out of memory", where);
	}
	if (l->kind == CHAN_TLS) {
		if ((r = chan_attach_ssl(c, l->ctx, e)) || (r = tls_handshake(c, true, NULL, deadline, e))) {
			err_wrap(e, "accept from %s", where);
			chan_free(c);
			return r;
		}
	}
	*out = c;
	return 0;
}

static int tcp_connect(const char *host, const char *port, const char *hp, int64_t deadline,
		       int *fdout, struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	int g, r, fd;

	g = getaddrinfo(host, port, &hints, &res);
	if (g)
		return err_set(e, -EHOSTUNREACH, "connect %s: cannot resolve %s: %s", hp, host,
			       g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
	r = err_set(e, -EHOSTUNREACH, "connect %s: no address", hp);
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = err_sys(e, -errno, "connect %s: socket", hp);
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			int so = 0;
			socklen_t sl = sizeof(so);

			if (errno != EINPROGRESS) {
				r = err_sys(e, -errno, "connect %s", hp);
				close(fd);
				continue;
			}
			r = wait_fd(fd, POLLOUT, deadline);
			if (r == -ETIMEDOUT) {
				r = err_set(e, -ETIMEDOUT, "connect %s: timed out", hp);
				close(fd);
				break;
			}
			if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0)
				r = -errno;
			else if (r == 0 && so)
				r = -so;
			if (r) {
				err_sys(e, r, "connect %s", hp);
				close(fd);
				continue;
			}
		}
		if ((r = set_blocking(fd))) {
			err_sys(e, r, "connect %s: fcntl", hp);
			close(fd);
			continue;
		}
		set_sock_opts(fd);
		freeaddrinfo(res);
		*fdout = fd;
		return 0;
	}
	freeaddrinfo(res);
	return r;
}

int chan_connect(const char *uri, const char *tls_dir, int timeout_ms, struct chan **out,
		 struct err *e)
{
	int64_t deadline = deadline_after(timeout_ms);
	char host[256], port[8], hp[300];
	enum chan_kind kind;
	SSL_CTX *ctx = NULL;
	struct chan *c;
	struct err tmp;
	int r, fd = -1;

	if (!e)
		e = &tmp;
	*out = NULL;
	if ((r = chan_parse_uri(uri, &kind, host, sizeof(host), port, sizeof(port), e)))
		return r;
	format_hostport(hp, sizeof(hp), host, port);
	if (kind == CHAN_TLS) {
		ctx = make_ctx(tls_dir, false, e);
		if (!ctx)
			return e->code;
	}
	if ((r = tcp_connect(host, port, hp, deadline, &fd, e))) {
		SSL_CTX_free(ctx);
		return r;
	}
	c = chan_new(fd, kind, hp);
	if (!c) {
		close(fd);
		SSL_CTX_free(ctx);
		return err_set(e, -ENOMEM, "connect %s: out of memory", hp);
	}
	if (kind == CHAN_TLS) {
		r = chan_attach_ssl(c, ctx, e);
		SSL_CTX_free(ctx);  /* the SSL object holds its own reference */
		if (!r)
			r = tls_handshake(c, false, host, deadline, e);
		if (r) {
			err_wrap(e, "connect %s", hp);
			chan_free(c);
			return r;
		}
	}
	*out = c;
	return 0;
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
		add_counter(&c->wire_sent, (uint64_t)n);
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
	add_counter(&c->app_sent, total);
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
		if (obuf_flush(c) < 0)
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
				add_counter(&c->wire_recv, (uint64_t)n);
				p += n;
				len -= (size_t)n;
				continue;
			}
		} else {
			n = recv(c->fd, c->rbuf, CHAN_RBUF, 0);
			if (n > 0) {
				add_counter(&c->wire_recv, (uint64_t)n);
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
	add_counter(&c->app_recv, len);
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
		obuf_flush(c);
		ERR_clear_error();
	}
	chan_free(c);
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
