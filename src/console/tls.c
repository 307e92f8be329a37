#include "console/tls.h"
#include "channel/tls_ctx.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void ctls_nodelay(int fd)
{
	int one = 1;

	/* small frames (a keystroke, a HELLO) must not wait for a delayed ACK */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

const char *ctls_reason(char *buf, size_t len)
{
	unsigned long ec = ERR_peek_last_error();
	const char *r = ec ? ERR_reason_error_string(ec) : NULL;

	snprintf(buf, len, "%s", r ? r : ec ? "TLS error" : "connection closed");
	ERR_clear_error();
	return buf;
}

int ctls_parse_uri(const char *uri, char *host, size_t hostlen, char *port, size_t portlen, struct err *e)
{
	const char *h, *colon;
	size_t n;

	if (strncmp(uri, "tls://", 6))
		return err_set(e, -EINVAL, "console address must be tls://HOST:PORT (got '%s')", uri);
	h = uri + 6;
	if (*h == '[') {
		const char *close = strchr(h, ']');
		if (!close || close[1] != ':')
			return err_set(e, -EINVAL, "bad console address '%s'", uri);
		n = (size_t)(close - h - 1);
		h++;
		colon = close + 1;
	} else {
		colon = strrchr(h, ':');
		if (!colon)
			return err_set(e, -EINVAL, "console address '%s' has no port", uri);
		n = (size_t)(colon - h);
	}
	if (!n || n >= hostlen || !colon[1] || strlen(colon + 1) >= portlen ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return err_set(e, -EINVAL, "bad console address '%s'", uri);
	memcpy(host, h, n);
	host[n] = 0;
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

static SSL_CTX *console_ctx(bool server, const char *dir, const char *ca, const char *crl, struct err *e)
{
	char cert[PATH_MAX], key[PATH_MAX];
	struct tls_creds cr = { cert, key, ca, crl };
	SSL_CTX *ctx;

	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	ctx = tls_ctx_new(&cr, server, e);
	/* the server is non-blocking: a write may be retried from another buffer */
	if (ctx)
		SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

SSL_CTX *ctls_server_ctx(const char *host_dir, const char *owner_ca, const char *owner_crl,
			 struct err *e)
{
	return console_ctx(true, host_dir, owner_ca, owner_crl, e);
}

SSL_CTX *ctls_client_ctx(const char *dir, struct err *e)
{
	char ca[PATH_MAX], crl[PATH_MAX];

	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(crl, sizeof(crl), "%s/crl.pem", dir);
	return console_ctx(false, dir, ca, crl, e);
}

static long ms_left(const struct timespec *end)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (end->tv_sec - now.tv_sec) * 1000 + (end->tv_nsec - now.tv_nsec) / 1000000;
}

int ctls_connect(SSL_CTX *ctx, const char *host, const char *port, int timeout_ms, SSL **out,
		 struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct timespec end;
	char why[160];
	struct in6_addr a6;
	SSL *ssl = NULL;
	struct tls_vfy vfy = { "", "" };
	int fd = -1, r;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	end.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (getaddrinfo(host, port, &hints, &ai) || !ai)
		return err_set(e, -EHOSTUNREACH, "cannot resolve %s", host);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return err_sys(e, -errno, "socket");
	}
	ctls_nodelay(fd);
	r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (r < 0 && errno == EINPROGRESS) {
		/* a refused connection is not a failed handshake: a follower retries the one */
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		long left = ms_left(&end);

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			r = err_set(e, -ETIMEDOUT, "cannot connect to %s:%s: timed out", host, port);
			goto fail;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		r = soerr ? -1 : 0;
		errno = soerr;
	}
	if (r < 0) {
		r = err_sys(e, -errno, "cannot connect to %s:%s", host, port);
		goto fail;
	}
	ssl = SSL_new(ctx);
	if (ssl)
		tls_vfy_attach(ssl, &vfy);
	if (!ssl || !SSL_set_fd(ssl, fd)) {
		r = err_set(e, -ENOMEM, "TLS session");
		goto fail;
	}
	/* The server's certificate must name the host we asked for, in a SAN. */
	X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
							     X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
	if (inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else
		SSL_set1_host(ssl, host);
	SSL_set_tlsext_host_name(ssl, host);
	for (;;) {
		int rc = SSL_connect(ssl), err;
		struct pollfd p = { .fd = fd };
		long left;

		if (rc == 1)
			break;
		err = SSL_get_error(ssl, rc);
		if (err == SSL_ERROR_WANT_READ)
			p.events = POLLIN;
		else if (err == SSL_ERROR_WANT_WRITE)
			p.events = POLLOUT;
		else {
			long vr = SSL_get_verify_result(ssl);
			if (vr != X509_V_OK) {
				tls_verify_err(vr, &vfy, host, e);
				r = err_wrap(e, "console server %s", host);
			} else {
				r = err_set(e, -EACCES, "console TLS handshake with %s failed: %s", host,
					    ctls_reason(why, sizeof(why)));
			}
			goto fail;
		}
		left = ms_left(&end);
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			r = err_set(e, -ETIMEDOUT, "console TLS handshake with %s:%s timed out", host, port);
			goto fail;
		}
	}
	/* The client reads and writes with blocking calls from here on. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	tls_vfy_attach(ssl, NULL);   /* vfy lives on this stack */
	*out = ssl;
	return 0;
fail:
	SSL_free(ssl);
	close(fd);
	return r;
}
