/* Channel layer: URI parsing, TLS 1.3 mutual authentication and its failures, plain
 * TCP, byte-exact bulk transfer, timeouts, shutdown, tampering. Run from the repo root
 * (it runs scripts/mkcerts.sh into a temporary directory). */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "channel/channel.h"

static char certs[256];

static char *dirof(const char *name)
{
	static char bufs[8][300];
	static int k;
	char *b = bufs[k++ % 8];

	snprintf(b, 300, "%s/%s", certs, name);
	return b;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int contains(const char *msg, const char *what)
{
	return strstr(msg, what) != NULL;
}

/* ------------------------------------------------------------------ data pattern */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The byte at stream offset o is byte (o % 8) of mix(o / 8). */
static void fill_pattern(unsigned char *buf, uint64_t off, size_t len)
{
	while (len > 0) {
		uint64_t w = mix(off / 8);
		unsigned i = (unsigned)(off % 8);
		for (; i < 8 && len > 0; i++, len--, off++)
			*buf++ = (unsigned char)(w >> (8 * i));
	}
}

/* ------------------------------------------------------------------ server thread */

enum srv_mode {
	SRV_ACCEPT,     /* accept (handshake) then close */
	SRV_ECHO,       /* messages {u64 len, bytes}: echo each back; len 0 ends */
	SRV_SINK,       /* {u64 total, bytes}: verify the pattern, answer {u64 total, u64 ok} */
	SRV_HOLD,       /* accept, then wait for the client to close */
};

struct srv {
	struct chan_listener *l;
	enum srv_mode mode;
	int timeout_ms;
	int r;              /* accept result */
	int rio;            /* result of the exchange */
	struct err e, eio;
	char peer[128];
	char cipher[64];
	unsigned char ekm[32];  /* exported keying material (TLS) */
	pthread_t th;
};

static int srv_sink(struct chan *c, struct err *e)
{
	static const size_t rsz[] = { 1, 7, 4096, 16384, 100000, 1 << 20, 13, 65536 };
	uint64_t total, off = 0, ok = 1, reply[2];
	unsigned char *buf = malloc(1 << 20), *want = malloc(1 << 20);
	unsigned k = 0;
	int r;

	if ((r = chan_read_full(c, &total, sizeof(total), e)))
		goto out;
	while (off < total) {
		size_t n = rsz[k++ % 8];
		if (n > total - off)
			n = (size_t)(total - off);
		if ((r = chan_read_full(c, buf, n, e)))
			goto out;
		fill_pattern(want, off, n);
		if (memcmp(buf, want, n) != 0)
			ok = 0;
		off += n;
	}
	reply[0] = total;
	reply[1] = ok;
	if ((r = chan_write(c, reply, sizeof(reply), e)) || (r = chan_flush(c, e)))
		goto out;
out:
	free(buf);
	free(want);
	return r;
}

static int srv_echo(struct chan *c, struct err *e)
{
	for (;;) {
		uint64_t len;
		unsigned char *buf;
		int r;

		if ((r = chan_read_full(c, &len, sizeof(len), e)))
			return r;
		if (len == 0)
			return 0;
		if (len > (64u << 20))
			return err_set(e, -EINVAL, "echo: bad length");
		buf = malloc(len);
		r = chan_read_full(c, buf, len, e);
		if (!r)
			r = chan_write(c, &len, sizeof(len), e);
		if (!r)
			r = chan_write(c, buf, len, e);
		if (!r)
			r = chan_flush(c, e);
		free(buf);
		if (r)
			return r;
	}
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct chan *c = NULL;
	unsigned char b;

	s->r = chan_accept(s->l, s->timeout_ms, &c, &s->e);
	if (s->r)
		return NULL;
	snprintf(s->peer, sizeof(s->peer), "%s", chan_peer_name(c));
	snprintf(s->cipher, sizeof(s->cipher), "%s", chan_cipher(c));
	if (chan_kind(c) == CHAN_TLS)
		chan_export_keying_material(c, "EXPORTER-sealvm-test", "ctx", 3, s->ekm,
					    sizeof(s->ekm), NULL);
	switch (s->mode) {
	case SRV_ACCEPT:
		break;
	case SRV_ECHO:
		s->rio = srv_echo(c, &s->eio);
		break;
	case SRV_SINK:
		s->rio = srv_sink(c, &s->eio);
		break;
	case SRV_HOLD:
		chan_set_timeout(c, 5000);
		s->rio = chan_read_full(c, &b, 1, &s->eio);
		break;
	}
	chan_close(c);
	return NULL;
}

/* Starts a server on 127.0.0.1:0; returns the port. */
static int srv_start(struct srv *s, const char *scheme, const char *dir, enum srv_mode mode)
{
	char uri[64];
	struct err e = { 0 };
	int r;

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->timeout_ms = 5000;
	snprintf(uri, sizeof(uri), "%s://127.0.0.1:0", scheme);
	r = chan_listen(uri, dir, &s->l, &e);
	CHECKF(r == 0, "chan_listen %s %s: %s", uri, dir ? dir : "-", e.msg);
	if (r)
		return -1;
	CHECK(chan_listener_port(s->l) > 0);
	pthread_create(&s->th, NULL, srv_main, s);
	return chan_listener_port(s->l);
}

static void srv_join(struct srv *s)
{
	pthread_join(s->th, NULL);
	chan_listener_close(s->l);
}

static struct chan *connect_to(const char *scheme, const char *host, int port, const char *dir,
			       int timeout_ms, int *r, struct err *e)
{
	char uri[128];
	struct chan *c = NULL;

	snprintf(uri, sizeof(uri), "%s://%s:%d", scheme, host, port);
	*r = chan_connect(uri, dir, timeout_ms, &c, e);
	return c;
}

/* ------------------------------------------------------------------ tests */

static void test_uri(void)
{
	enum chan_kind k;
	char h[64], p[8];
	struct err e = { 0 };
	static const char *bad[] = {
		"", "http://a:1", "tls://", "tls://a", "tls://:5", "tls://a:", "tls://a:65536",
		"tls://a:12a", "tls://::1:5", "tls://[::1:5", "tls://[zz]:5", "tls://[::1]5",
		"tls://a b:5", "tls://a:5/x", "tls://a:99999999999999999999", "TLS//a:1",
	};

	CHECK_INT(chan_parse_uri("tls://127.0.0.1:5000", &k, h, sizeof(h), p, sizeof(p), &e), 0);
	CHECK(k == CHAN_TLS);
	CHECK_STR(h, "127.0.0.1");
	CHECK_STR(p, "5000");
	CHECK_INT(chan_parse_uri("tcp://[::1]:0", &k, h, sizeof(h), p, sizeof(p), &e), 0);
	CHECK(k == CHAN_TCP);
	CHECK_STR(h, "::1");
	CHECK_STR(p, "0");
	CHECK_INT(chan_parse_uri("tls://host-b.example:65535", &k, h, sizeof(h), p, sizeof(p), &e), 0);
	CHECK_STR(h, "host-b.example");
	CHECK_STR(p, "65535");
	CHECK_INT(chan_parse_uri("tls://[fe80::1:2]:007", &k, h, sizeof(h), p, sizeof(p), &e), 0);
	CHECK_STR(h, "fe80::1:2");
	CHECK_STR(p, "7");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		int r = chan_parse_uri(bad[i], &k, h, sizeof(h), p, sizeof(p), &e);
		CHECKF(r == -EINVAL, "parse '%s' gave %d", bad[i], r);
		CHECKF(contains(e.msg, "URI"), "parse '%s': message '%s'", bad[i], e.msg);
	}
	/* host buffer too small */
	CHECK_INT(chan_parse_uri("tls://abcdefgh:1", &k, h, 4, p, sizeof(p), &e), -ENAMETOOLONG);
}

/* 64 MiB in mixed pieces; the server checks every byte. */
static void bulk(const char *scheme, const char *sdir, const char *cdir)
{
	const uint64_t total = 64ull << 20;
	unsigned char *src = malloc(total);
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	uint64_t off = 0, reply[2] = { 0, 0 };
	unsigned k = 0;
	double t0;
	int port, r;

	fill_pattern(src, 0, total);
	port = srv_start(&s, scheme, sdir, SRV_SINK);
	if (port < 0) {
		free(src);
		return;
	}
	c = connect_to(scheme, "127.0.0.1", port, cdir, 5000, &r, &e);
	CHECKF(r == 0, "connect %s: %s", scheme, e.msg);
	if (r) {
		srv_join(&s);
		free(src);
		return;
	}
	CHECK_INT(chan_set_timeout(c, 20000), 0);
	t0 = now_s();
	r = chan_write(c, &total, sizeof(total), &e);
	while (!r && off < total) {
		/* header + page, single bytes, odd sizes, record-sized, large, 3-piece vectors */
		static const size_t sz[] = { 24, 4096, 1, 16384, 16383, 100000, 1 << 20, 5, 70000 };
		size_t a = sz[k % 9], b = sz[(k * 7 + 3) % 9], cc = sz[(k * 5 + 1) % 9];
		struct iovec v[3];
		int n = 0;

		k++;
		if (a > total - off)
			a = (size_t)(total - off);
		v[n].iov_base = src + off;
		v[n++].iov_len = a;
		off += a;
		if (k % 2 && off < total) {
			if (b > total - off)
				b = (size_t)(total - off);
			v[n].iov_base = src + off;
			v[n++].iov_len = b;
			off += b;
		}
		if (k % 3 == 0 && off < total) {
			if (cc > total - off)
				cc = (size_t)(total - off);
			v[n].iov_base = src + off;
			v[n++].iov_len = cc;
			off += cc;
		}
		r = chan_writev(c, v, n, &e);
	}
	CHECKF(r == 0, "%s write: %s", scheme, e.msg);
	/* read_full flushes what is still buffered */
	r = chan_read_full(c, reply, sizeof(reply), &e);
	CHECKF(r == 0, "%s reply: %s", scheme, e.msg);
	CHECK(reply[0] == total);
	CHECKF(reply[1] == 1, "%s: server saw different bytes", scheme);
	printf("  %s: 64 MiB verified in %.2f s (ASan build); wire %llu/%llu bytes, payload %llu\n",
	       scheme, now_s() - t0, (unsigned long long)chan_bytes_sent(c),
	       (unsigned long long)chan_bytes_received(c), (unsigned long long)chan_payload_sent(c));
	CHECK(chan_payload_sent(c) == total + 8);
	CHECK(chan_payload_received(c) == 16);
	if (chan_kind(c) == CHAN_TLS)
		CHECK(chan_bytes_sent(c) > total + 8);
	else
		CHECK(chan_bytes_sent(c) == total + 8);
	chan_close(c);
	srv_join(&s);
	CHECKF(s.r == 0, "server accept: %s", s.e.msg);
	CHECKF(s.rio == 0, "server: %s", s.eio.msg);
	free(src);
}

static void test_tls_roundtrip(void)
{
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	int port, r;
	uint64_t len;
	char msg[] = "hello, sealvm", back[sizeof(msg)];
	struct bstream *bs;

	port = srv_start(&s, "tls", dirof("hosta"), SRV_ECHO);
	c = connect_to("tls", "127.0.0.1", port, dirof("hostb"), 5000, &r, &e);
	CHECKF(r == 0, "connect: %s", e.msg);
	if (r) {
		srv_join(&s);
		return;
	}
	CHECK(chan_kind(c) == CHAN_TLS);
	CHECK_STR(chan_peer_name(c), "hosta");
	CHECK_STR(chan_cipher(c), "TLS_AES_128_GCM_SHA256");
	CHECK(chan_fd(c) >= 0);
	/* channel binding and peer identity for the trust layer */
	unsigned char ekm[32] = { 0 }, fp[32], want[32];
	unsigned int fl = 0;
	CHECK_INT(chan_export_keying_material(c, "EXPORTER-sealvm-test", "ctx", 3, ekm, sizeof(ekm), &e), 0);
	CHECK_INT(chan_peer_fingerprint(c, fp, &e), 0);
	CHECK(chan_peer_cert(c) != NULL);
	{
		char path[400];
		FILE *f;
		X509 *x;
		snprintf(path, sizeof(path), "%s/cert.pem", dirof("hosta"));
		f = fopen(path, "r");
		x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
		CHECK(x && X509_digest(x, EVP_sha256(), want, &fl) == 1 && fl == 32);
		CHECK(memcmp(fp, want, 32) == 0);
		X509_free(x);
		if (f)
			fclose(f);
	}
	/* via the bstream adapter */
	bs = chan_bstream(c);
	len = sizeof(msg);
	CHECK_INT(bstream_write(bs, &len, sizeof(len), &e), 0);
	CHECK_INT(bstream_write(bs, msg, sizeof(msg), &e), 0);
	CHECK_INT(bstream_flush(bs, &e), 0);
	len = 0;
	CHECK_INT(bs->read_full(bs, &len, sizeof(len), &e), 0);
	CHECK_INT(len, sizeof(msg));
	CHECK_INT(bs->read_full(bs, back, sizeof(back), &e), 0);
	CHECK_STR(back, msg);
	CHECK_INT(chan_pending(c), 0);
	len = 0;
	CHECK_INT(chan_write(c, &len, sizeof(len), &e), 0);
	CHECK_INT(chan_flush(c, &e), 0);
	/* the server ends the echo loop and closes: EOF with close_notify */
	r = chan_read_full(c, back, 1, &e);
	CHECKF(r == -ENODATA && contains(e.msg, "connection closed by peer"), "eof: %d %s", r, e.msg);
	/* sticky */
	r = chan_write(c, msg, 1, &e);
	CHECKF(r == -ENODATA && contains(e.msg, "unusable"), "after eof: %d %s", r, e.msg);
	chan_close(c);
	srv_join(&s);
	CHECKF(s.r == 0, "accept: %s", s.e.msg);
	CHECK_STR(s.peer, "hostb");
	CHECK_STR(s.cipher, "TLS_AES_128_GCM_SHA256");
	CHECKF(s.rio == 0, "echo: %s", s.eio.msg);
	CHECK(memcmp(s.ekm, ekm, sizeof(ekm)) == 0);
	CHECK(memcmp(ekm, (unsigned char[32]){ 0 }, sizeof(ekm)) != 0);

	/* DNS name verification */
	port = srv_start(&s, "tls", dirof("hosta"), SRV_ACCEPT);
	c = connect_to("tls", "localhost", port, dirof("hostb"), 5000, &r, &e);
	CHECKF(r == 0, "connect localhost: %s", e.msg);
	chan_close(c);
	srv_join(&s);
}

static void test_tcp_roundtrip(void)
{
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	int port, r;
	uint64_t len = 3;

	port = srv_start(&s, "tcp", NULL, SRV_ECHO);
	c = connect_to("tcp", "127.0.0.1", port, NULL, 5000, &r, &e);
	CHECKF(r == 0, "tcp connect: %s", e.msg);
	if (r) {
		srv_join(&s);
		return;
	}
	CHECK(chan_kind(c) == CHAN_TCP);
	CHECK_STR(chan_peer_name(c), "");
	CHECK_INT(chan_write(c, &len, 8, &e), 0);
	CHECK_INT(chan_write(c, "abc", 3, &e), 0);
	len = 0;
	CHECK_INT(chan_read_full(c, &len, 8, &e), 0);
	CHECK_INT(len, 3);
	char b[4] = { 0 };
	CHECK_INT(chan_read_full(c, b, 3, &e), 0);
	CHECK_STR(b, "abc");
	len = 0;
	CHECK_INT(chan_write(c, &len, 8, &e), 0);
	CHECK_INT(chan_flush(c, &e), 0);
	r = chan_read_full(c, b, 1, &e);
	CHECKF(r == -ENODATA && contains(e.msg, "connection closed by peer"), "tcp eof: %d %s", r, e.msg);
	chan_close(c);
	srv_join(&s);
	CHECKF(s.rio == 0, "tcp echo: %s", s.eio.msg);

	/* IPv6 literal, if this host has ::1 */
	struct chan_listener *l = NULL;
	r = chan_listen("tcp://[::1]:0", NULL, &l, &e);
	if (r) {
		printf("  IPv6 skipped: %s\n", e.msg);
		return;
	}
	char uri[64];
	struct chan *a = NULL;
	snprintf(uri, sizeof(uri), "tcp://[::1]:%d", chan_listener_port(l));
	r = chan_connect(uri, NULL, 2000, &c, &e);
	CHECKF(r == 0, "connect %s: %s", uri, e.msg);
	if (!r) {
		CHECK_INT(chan_accept(l, 2000, &a, &e), 0);
		CHECK_INT(chan_write(c, "v6", 2, &e), 0);
		CHECK_INT(chan_flush(c, &e), 0);
		memset(b, 0, sizeof(b));
		if (a)
			CHECK_INT(chan_read_full(a, b, 2, &e), 0);
		CHECK_STR(b, "v6");
		chan_close(a);
		chan_close(c);
	}
	chan_listener_close(l);
	/* bad URI */
	r = chan_connect("udp://127.0.0.1:1", NULL, 100, &c, &e);
	CHECKF(r == -EINVAL && contains(e.msg, "scheme"), "bad scheme: %d %s", r, e.msg);
}

/* The client must refuse server_dir's certificate with a message containing want. */
static void refuse_server(const char *server_dir, const char *host, const char *want)
{
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	int port, r;

	port = srv_start(&s, "tls", dirof(server_dir), SRV_ACCEPT);
	c = connect_to("tls", host, port, dirof("hostb"), 5000, &r, &e);
	CHECKF(r == -EACCES && c == NULL, "server %s: connect gave %d (%s)", server_dir, r, e.msg);
	CHECKF(contains(e.msg, want), "server %s: '%s' lacks '%s'", server_dir, e.msg, want);
	printf("  client refuses %s: %s\n", server_dir, e.msg);
	srv_join(&s);
	CHECKF(s.r == -EACCES && contains(s.e.msg, "peer rejected our certificate"),
	       "server %s side: %d %s", server_dir, s.r, s.e.msg);
	printf("  server side: %s\n", s.e.msg);
}

static void test_refusals(void)
{
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	int port, r;

	refuse_server("badca", "127.0.0.1", "not trusted (unable to get local issuer certificate");
	refuse_server("wrongname", "127.0.0.1", "certificate name mismatch: expected 127.0.0.1");
	refuse_server("wrongname", "localhost", "certificate name mismatch: expected localhost");
	refuse_server("expired", "127.0.0.1", "certificate expired");

	/* the server refuses a client whose certificate comes from another CA (the client
	 * itself trusts the cluster CA, so it gets as far as presenting its certificate) */
	{
		char cmd[1024];
		snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s/cert.pem %s/key.pem %s/ && cp %s/ca.pem %s/",
			 dirof("badclient"), dirof("badca"), dirof("badca"), dirof("badclient"),
			 dirof("hosta"), dirof("badclient"));
		CHECK_INT(system(cmd), 0);
	}
	port = srv_start(&s, "tls", dirof("hosta"), SRV_ACCEPT);
	c = connect_to("tls", "127.0.0.1", port, dirof("badclient"), 5000, &r, &e);
	CHECKF(r == -EACCES && c == NULL, "badca client: connect gave %d (%s)", r, e.msg);
	CHECKF(contains(e.msg, "peer rejected our certificate"), "badca client: '%s'", e.msg);
	printf("  badca client sees: %s\n", e.msg);
	srv_join(&s);
	CHECKF(s.r == -EACCES && contains(s.e.msg, "not trusted") &&
	       contains(s.e.msg, "unable to get local issuer certificate"),
	       "server vs badca client: %d %s", s.r, s.e.msg);
	printf("  server sees: %s\n", s.e.msg);

	/* ... and an expired client certificate */
	port = srv_start(&s, "tls", dirof("hosta"), SRV_ACCEPT);
	c = connect_to("tls", "127.0.0.1", port, dirof("expired"), 5000, &r, &e);
	CHECKF(r == -EACCES && c == NULL, "expired client: %d (%s)", r, e.msg);
	srv_join(&s);
	CHECKF(s.r == -EACCES && contains(s.e.msg, "certificate expired"),
	       "server vs expired client: %d %s", s.r, s.e.msg);

	/* a TLS client talking to a plain TCP server, and the reverse */
	port = srv_start(&s, "tcp", NULL, SRV_HOLD);
	c = connect_to("tls", "127.0.0.1", port, dirof("hostb"), 1000, &r, &e);
	CHECKF(r < 0 && c == NULL, "tls to tcp server: %d", r);
	printf("  tls client to tcp server: %s\n", e.msg);
	chan_close(c);
	srv_join(&s);

	port = srv_start(&s, "tls", dirof("hosta"), SRV_ACCEPT);
	c = connect_to("tcp", "127.0.0.1", port, NULL, 1000, &r, &e);
	CHECKF(r == 0, "tcp connect to tls server: %s", e.msg);
	if (c) {
		CHECK_INT(chan_write(c, "GET / HTTP/1.0\r\n\r\n", 18, &e), 0);
		CHECK_INT(chan_flush(c, &e), 0);
	}
	srv_join(&s);
	CHECKF(s.r < 0 && contains(s.e.msg, "TLS handshake"), "tls server vs garbage: %d %s", s.r, s.e.msg);
	printf("  tls server vs garbage: %s\n", s.e.msg);
	chan_close(c);
}

/* A client certificate the server must refuse for its role (server's view in s.e). */
static void refuse_client(const char *server_dir, const char *client_dir, const char *want)
{
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	int port, r;

	port = srv_start(&s, "tls", dirof(server_dir), SRV_ACCEPT);
	c = connect_to("tls", "127.0.0.1", port, dirof(client_dir), 5000, &r, &e);
	CHECKF(r == -EACCES && c == NULL, "client %s: connect gave %d (%s)", client_dir, r, e.msg);
	chan_close(c);
	srv_join(&s);
	CHECKF(s.r == -EACCES && contains(s.e.msg, want), "server vs client %s: %d '%s' lacks '%s'",
	       client_dir, s.r, s.e.msg, want);
	printf("  server refuses client %s: %s\n", client_dir, s.e.msg);
}

/* Host certificates for the wrong role, CA certificates used as hosts, revoked
 * certificates and private keys others can read are all refused. */
static void test_roles(void)
{
	struct chan_listener *l = NULL;
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	char cmd[2048];
	int port, r;

	/* as destinations (servers), checked by the connecting source */
	refuse_server("cahost", "127.0.0.1", "not acceptable for its role: it is a CA certificate");
	refuse_server("clientonly", "127.0.0.1", "lacks serverAuth");
	refuse_server("noeku", "127.0.0.1", "no extended key usage");
	/* as sources (clients), checked by the destination */
	refuse_client("hosta", "cahost", "it is a CA certificate");
	refuse_client("hosta", "serveronly", "lacks clientAuth");
	refuse_client("hosta", "noeku", "no extended key usage");
	/* the opposite roles of the one-role certificates are fine */
	port = srv_start(&s, "tls", dirof("serveronly"), SRV_ACCEPT);
	c = connect_to("tls", "127.0.0.1", port, dirof("clientonly"), 5000, &r, &e);
	CHECKF(r == 0, "serveronly server, clientonly client: %d %s", r, e.msg);
	chan_close(c);
	srv_join(&s);
	CHECKF(s.r == 0, "serveronly server side: %s", s.e.msg);

	/* revocation: a destination whose tls dir holds the CRL refuses the revoked source,
	 * and a source holding it refuses a revoked destination */
	snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -r %s %s && cp %s/crl.pem %s/ && "
		 "rm -rf %s && cp -r %s %s && cp %s/crl.pem %s/",
		 dirof("hosta-crl"), dirof("hosta"), dirof("hosta-crl"), dirof("ca"), dirof("hosta-crl"),
		 dirof("revoked-crl"), dirof("revoked"), dirof("revoked-crl"), dirof("ca"), dirof("revoked-crl"));
	CHECK_INT(system(cmd), 0);
	refuse_client("hosta-crl", "revoked", "revoked");
	port = srv_start(&s, "tls", dirof("revoked"), SRV_ACCEPT);
	c = connect_to("tls", "127.0.0.1", port, dirof("hosta-crl"), 5000, &r, &e);
	CHECKF(r == -EACCES && contains(e.msg, "revoked"), "client vs revoked server: %d %s", r, e.msg);
	chan_close(c);
	srv_join(&s);
	/* a good peer passes the CRL check */
	port = srv_start(&s, "tls", dirof("hosta-crl"), SRV_ACCEPT);
	c = connect_to("tls", "127.0.0.1", port, dirof("hostb"), 5000, &r, &e);
	CHECKF(r == 0, "hostb to a CRL-checking server: %d %s", r, e.msg);
	CHECK(c && chan_peer_has_name(c, "hosta") && !chan_peer_has_name(c, "hostb") &&
	      !chan_peer_has_name(c, "host") && !chan_peer_has_name(c, ""));
	chan_close(c);
	srv_join(&s);
	CHECKF(s.r == 0, "CRL-checking server vs hostb: %s", s.e.msg);
	/* a CRL file that is not one stops the host from starting */
	snprintf(cmd, sizeof(cmd), "echo garbage > %s/crl.pem", dirof("hosta-crl"));
	CHECK_INT(system(cmd), 0);
	r = chan_listen("tls://127.0.0.1:0", dirof("hosta-crl"), &l, &e);
	CHECKF(r == -EINVAL && contains(e.msg, "crl.pem"), "garbage crl: %d %s", r, e.msg);
	chan_listener_close(l);
	l = NULL;

	/* a private key readable by others is refused, with the fix in the message */
	snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -r %s %s && chmod 644 %s/key.pem",
		 dirof("openkey"), dirof("hosta"), dirof("openkey"), dirof("openkey"));
	CHECK_INT(system(cmd), 0);
	r = chan_listen("tls://127.0.0.1:0", dirof("openkey"), &l, &e);
	CHECKF(r == -EACCES && contains(e.msg, "chmod 600") && contains(e.msg, "0644"), "0644 key: %d %s", r, e.msg);
	printf("  key readable by others: %s\n", e.msg);
	chan_listener_close(l);
	c = connect_to("tls", "127.0.0.1", 1, dirof("openkey"), 1000, &r, &e);
	CHECKF(r == -EACCES && contains(e.msg, "chmod 600"), "0644 key (client): %d %s", r, e.msg);
}

/* A foreign client built on OpenSSL directly: no certificate, or TLS 1.2 only. */
static void raw_client(int port, int tls12, int with_cert)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	char path[400];
	unsigned char b;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_port = htons((uint16_t)port);
	if (tls12)
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	if (with_cert) {
		snprintf(path, sizeof(path), "%s/cert.pem", dirof("hostb"));
		SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM);
		snprintf(path, sizeof(path), "%s/key.pem", dirof("hostb"));
		SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	ssl = SSL_new(ctx);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		SSL_set_fd(ssl, fd);
		if (SSL_connect(ssl) == 1)
			SSL_read(ssl, &b, 1);
	}
	ERR_clear_error();
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
}

static void test_foreign_clients(void)
{
	struct srv s;
	int port;

	port = srv_start(&s, "tls", dirof("hosta"), SRV_ACCEPT);
	raw_client(port, 0, 0);
	srv_join(&s);
	CHECKF(s.r == -EACCES && contains(s.e.msg, "TLS: peer sent no certificate"),
	       "no client cert: %d %s", s.r, s.e.msg);
	printf("  client without certificate: %s\n", s.e.msg);

	port = srv_start(&s, "tls", dirof("hosta"), SRV_ACCEPT);
	raw_client(port, 1, 1);
	srv_join(&s);
	CHECKF(s.r == -EPROTO && contains(s.e.msg, "protocol"), "tls1.2 client: %d %s", s.r, s.e.msg);
	printf("  TLS 1.2 client: %s\n", s.e.msg);

	/* a well-behaved foreign TLS 1.3 client with a good certificate is accepted */
	port = srv_start(&s, "tls", dirof("hosta"), SRV_ACCEPT);
	raw_client(port, 0, 1);
	srv_join(&s);
	CHECKF(s.r == 0 && strcmp(s.peer, "hostb") == 0, "raw good client: %d %s", s.r, s.e.msg);
}

static void test_files(void)
{
	struct chan_listener *l = NULL;
	struct chan *c = NULL;
	struct err e = { 0 };
	char dir[300];
	int r;

	snprintf(dir, sizeof(dir), "%s/nonexistent", certs);
	r = chan_listen("tls://127.0.0.1:0", dir, &l, &e);
	CHECKF(r == -ENOENT && contains(e.msg, "cannot load") && contains(e.msg, "nonexistent/ca.pem"),
	       "missing dir: %d %s", r, e.msg);
	r = chan_connect("tls://127.0.0.1:1", dir, 1000, &c, &e);
	CHECKF(r == -ENOENT && contains(e.msg, "cannot load"), "missing dir (client): %d %s", r, e.msg);
	r = chan_listen("tls://127.0.0.1:0", NULL, &l, &e);
	CHECKF(r == -EINVAL, "no dir: %d %s", r, e.msg);
	/* a key that is not a key */
	snprintf(dir, sizeof(dir), "%s/broken", certs);
	{
		char cmd[1024];
		snprintf(cmd, sizeof(cmd),
			 "mkdir -p %s && cp %s/ca.pem %s/cert.pem %s/ && echo garbage > %s/key.pem && chmod 600 %s/key.pem",
			 dir, dirof("hosta"), dirof("hosta"), dir, dir, dir);
		CHECK_INT(system(cmd), 0);
	}
	r = chan_listen("tls://127.0.0.1:0", dir, &l, &e);
	CHECKF(r < 0 && contains(e.msg, "cannot load") && contains(e.msg, "broken/key.pem"),
	       "bad key: %d %s", r, e.msg);
	printf("  bad key: %s\n", e.msg);
	/* key of another host */
	{
		char cmd[1024];
		snprintf(cmd, sizeof(cmd), "cp %s/key.pem %s/key.pem", dirof("hostb"), dir);
		CHECK_INT(system(cmd), 0);
	}
	r = chan_listen("tls://127.0.0.1:0", dir, &l, &e);
	CHECKF(r < 0 && contains(e.msg, "does not match"), "wrong key: %d %s", r, e.msg);
	printf("  wrong key: %s\n", e.msg);
	/* bind failure */
	struct chan_listener *l1 = NULL, *l2 = NULL;
	CHECK_INT(chan_listen("tcp://127.0.0.1:0", NULL, &l1, &e), 0);
	if (l1) {
		char uri[64];
		snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", chan_listener_port(l1));
		r = chan_listen(uri, NULL, &l2, &e);
		CHECKF(r == -EADDRINUSE && contains(e.msg, "Address already in use"), "bind: %d %s", r, e.msg);
		chan_listener_close(l1);
	}
}

static void test_timeouts(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct chan *c = NULL;
	struct err e = { 0 };
	char uri[64];
	double t0, dt;
	int fd, r, port;

	/* a listener that the kernel accepts for but that never speaks */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(listen(fd, 4), 0);
	CHECK_INT(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%d", port);
	t0 = now_s();
	r = chan_connect(uri, dirof("hostb"), 400, &c, &e);
	dt = now_s() - t0;
	CHECKF(r == -ETIMEDOUT && contains(e.msg, "TLS handshake timed out"), "silent server: %d %s", r, e.msg);
	CHECKF(dt >= 0.35 && dt < 2.0, "silent server: took %.2f s", dt);
	printf("  silent server: %s (%.2f s)\n", e.msg, dt);

	/* nothing listening */
	close(fd);
	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%d", port);
	r = chan_connect(uri, dirof("hostb"), 1000, &c, &e);
	CHECKF(r == -ECONNREFUSED && contains(e.msg, "Connection refused") &&
	       contains(e.msg, "connect 127.0.0.1:"), "refused: %d %s", r, e.msg);
	printf("  refused: %s\n", e.msg);

	/* accept: nobody comes; then a client that never speaks */
	struct chan_listener *l = NULL;
	CHECK_INT(chan_listen("tls://127.0.0.1:0", dirof("hosta"), &l, &e), 0);
	if (!l)
		return;
	t0 = now_s();
	r = chan_accept(l, 300, &c, &e);
	dt = now_s() - t0;
	CHECKF(r == -ETIMEDOUT && dt < 1.5, "accept nobody: %d %s %.2f", r, e.msg, dt);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_port = htons((uint16_t)chan_listener_port(l));
	CHECK_INT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	t0 = now_s();
	r = chan_accept(l, 400, &c, &e);
	dt = now_s() - t0;
	CHECKF(r == -ETIMEDOUT && contains(e.msg, "TLS handshake timed out") && dt < 2.0,
	       "silent client: %d %s %.2f", r, e.msg, dt);
	printf("  silent client: %s (%.2f s)\n", e.msg, dt);
	close(fd);
	chan_listener_close(l);
}

struct shut_arg {
	struct chan *c;
	int delay_ms;
};

static void *shut_main(void *arg)
{
	struct shut_arg *a = arg;

	usleep((useconds_t)a->delay_ms * 1000);
	chan_shutdown(a->c);
	return NULL;
}

static void test_read_timeout_and_shutdown(const char *scheme, const char *sdir, const char *cdir)
{
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	unsigned char b[16];
	double t0, dt;
	int port, r;

	/* read timeout */
	port = srv_start(&s, scheme, sdir, SRV_HOLD);
	c = connect_to(scheme, "127.0.0.1", port, cdir, 5000, &r, &e);
	CHECKF(r == 0, "%s connect: %s", scheme, e.msg);
	if (!c) {
		srv_join(&s);
		return;
	}
	CHECK_INT(chan_set_timeout(c, 300), 0);
	t0 = now_s();
	r = chan_read_full(c, b, sizeof(b), &e);
	dt = now_s() - t0;
	CHECKF(r == -ETIMEDOUT && contains(e.msg, "timed out") && dt > 0.25 && dt < 2.0,
	       "%s read timeout: %d %s %.2f", scheme, r, e.msg, dt);
	chan_close(c);
	srv_join(&s);

	/* chan_shutdown from another thread wakes a blocked reader */
	port = srv_start(&s, scheme, sdir, SRV_HOLD);
	c = connect_to(scheme, "127.0.0.1", port, cdir, 5000, &r, &e);
	if (!c) {
		srv_join(&s);
		return;
	}
	struct shut_arg a = { c, 200 };
	pthread_t th;
	pthread_create(&th, NULL, shut_main, &a);
	t0 = now_s();
	r = chan_read_full(c, b, sizeof(b), &e);
	dt = now_s() - t0;
	pthread_join(th, NULL);
	CHECKF(r == -ECANCELED && contains(e.msg, "shut down") && dt < 2.0,
	       "%s shutdown: %d %s %.2f", scheme, r, e.msg, dt);
	r = chan_write(c, b, 1, &e);
	CHECK(r == -ECANCELED);
	chan_close(c);
	srv_join(&s);
}

/* Writing to a peer that has gone must give an error, not SIGPIPE. */
static void test_peer_gone(const char *scheme, const char *sdir, const char *cdir)
{
	static unsigned char buf[1 << 20];
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	int port, r, i;

	port = srv_start(&s, scheme, sdir, SRV_ACCEPT);
	c = connect_to(scheme, "127.0.0.1", port, cdir, 5000, &r, &e);
	srv_join(&s);   /* the server has closed its end */
	if (!c)
		return;
	chan_set_timeout(c, 5000);
	for (i = 0, r = 0; i < 64 && !r; i++) {
		r = chan_write(c, buf, sizeof(buf), &e);
		if (!r)
			r = chan_flush(c, &e);
	}
	CHECKF(r == -EPIPE || r == -ECONNRESET, "%s write to closed peer: %d %s", scheme, r, e.msg);
	printf("  %s write to closed peer: %s\n", scheme, e.msg);
	chan_close(c);
}

/* ------------------------------------------------------------------ tampering proxy */

struct proxy {
	int lfd;
	int port, target;
	uint64_t flip_at;   /* client→server offset whose byte is flipped */
	pthread_t th;
};

static void *proxy_main(void *arg)
{
	struct proxy *p = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int a = accept(p->lfd, NULL, NULL), b = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t up = 0;
	static unsigned char buf[65536];

	sa.sin_port = htons((uint16_t)p->target);
	if (a < 0 || connect(b, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	for (;;) {
		struct pollfd pf[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
		if (poll(pf, 2, 5000) <= 0)
			break;
		if (pf[0].revents) {
			ssize_t n = read(a, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (p->flip_at >= up && p->flip_at < up + (uint64_t)n)
				buf[p->flip_at - up] ^= 0x01;
			up += (uint64_t)n;
			if (write(b, buf, (size_t)n) != n)
				break;
		}
		if (pf[1].revents) {
			ssize_t n = read(b, buf, sizeof(buf));
			if (n <= 0 || write(a, buf, (size_t)n) != n)
				break;
		}
	}
out:
	if (a >= 0)
		close(a);
	close(b);
	return NULL;
}

static void test_tamper(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct proxy p = { 0 };
	struct srv s;
	struct chan *c;
	struct err e = { 0 };
	unsigned char *buf = calloc(1, 1 << 20);
	uint64_t len = 1 << 20;
	int r;

	p.target = srv_start(&s, "tls", dirof("hosta"), SRV_ECHO);
	p.flip_at = 200000;  /* well after the handshake */
	p.lfd = socket(AF_INET, SOCK_STREAM, 0);
	bind(p.lfd, (struct sockaddr *)&sa, sizeof(sa));
	listen(p.lfd, 1);
	getsockname(p.lfd, (struct sockaddr *)&sa, &sl);
	p.port = ntohs(sa.sin_port);
	pthread_create(&p.th, NULL, proxy_main, &p);
	c = connect_to("tls", "127.0.0.1", p.port, dirof("hostb"), 5000, &r, &e);
	CHECKF(r == 0, "connect via proxy: %s", e.msg);
	if (c) {
		chan_set_timeout(c, 5000);
		r = chan_write(c, &len, sizeof(len), &e);
		if (!r)
			r = chan_write(c, buf, len, &e);
		if (!r)
			r = chan_read_full(c, &len, sizeof(len), &e);
		CHECKF(r < 0, "client: tampered stream went unnoticed");
		chan_close(c);
	}
	pthread_join(p.th, NULL);
	close(p.lfd);
	srv_join(&s);
	CHECKF(s.rio == -EPROTO && contains(s.eio.msg, "bad record mac"), "server on tamper: %d %s",
	       s.rio, s.eio.msg);
	printf("  tampered record: %s\n", s.eio.msg);
	free(buf);
}

int main(void)
{
	char cmd[512];

	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(certs, sizeof(certs), "/tmp/sealvm-test-channel-XXXXXX");
	if (!mkdtemp(certs)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "scripts/mkcerts.sh %s", certs);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_channel: %s failed (run from the repository root)\n", cmd);
		return 1;
	}

	test_uri();
	test_tls_roundtrip();
	test_tcp_roundtrip();
	bulk("tls", dirof("hosta"), dirof("hostb"));
	bulk("tcp", NULL, NULL);
	test_refusals();
	test_roles();
	test_foreign_clients();
	test_files();
	test_timeouts();
	test_read_timeout_and_shutdown("tls", dirof("hosta"), dirof("hostb"));
	test_read_timeout_and_shutdown("tcp", NULL, NULL);
	test_peer_gone("tls", dirof("hosta"), dirof("hostb"));
	test_peer_gone("tcp", NULL, NULL);
	test_tamper();

	snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
	if (system(cmd) != 0)
		fprintf(stderr, "test_channel: cannot remove %s\n", certs);
	return unit_done();
}
