/* Internals shared by the channel's files (not part of its API):
 *   channel.c  the channel object, its OpenSSL BIO, buffered reads and writes
 *   tls.c      TLS contexts, certificate checks, the handshake
 *   net.c      URIs, listening, accepting, connecting */
#ifndef SEALVM_CHANNEL_CHAN_IMPL_H
#define SEALVM_CHANNEL_CHAN_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>

#include "channel/channel.h"
#include "channel/tls_ctx.h"

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
	struct tls_vfy vfy;             /* why the peer's certificate was refused */
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

static inline int64_t ch_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t ch_deadline_after(int timeout_ms)
{
	return timeout_ms > 0 ? ch_now_ns() + (int64_t)timeout_ms * 1000000 : 0;
}


static inline void ch_add_counter(_Atomic uint64_t *ctr, uint64_t n)
{
	/* single writer: no locked read-modify-write needed */
	atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* Waits until fd has events or the deadline (0: none) passes: 0, -ETIMEDOUT or -errno. */
int ch_wait_fd(int fd, short events, int64_t deadline);
/* A TLS 1.3 context with this host's credentials from tls_dir. */
SSL_CTX *ch_make_ctx(const char *tls_dir, bool server, struct err *e);
/* Runs the TLS handshake (server or client) and the one-byte confirmation. */
int ch_tls_handshake(struct chan *c, bool server, const char *host, int64_t deadline, struct err *e);
struct chan *ch_new(int fd, enum chan_kind kind, const char *where);
void ch_free(struct chan *c);
int ch_attach_ssl(struct chan *c, SSL_CTX *ctx, struct err *e);
/* Sends the encrypted records gathered in obuf. */
int ch_obuf_flush(struct chan *c);
void ch_set_sock_opts(int fd);
int ch_set_blocking(int fd);
void ch_format_hostport(char *buf, size_t len, const char *host, const char *port);
bool ch_is_ip_literal(const char *host);

#endif
