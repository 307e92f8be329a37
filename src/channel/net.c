/* Channel endpoints: URIs, listening, accepting and connecting (see channel.h). */
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

void ch_format_hostport(char *buf, size_t len, const char *host, const char *port)
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
	ch_format_hostport(buf, len, h, p);
}

bool ch_is_ip_literal(const char *host)
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
	ch_format_hostport(hp, sizeof(hp), host, port);
	l = calloc(1, sizeof(*l));
	if (!l)
		return err_set(e, -ENOMEM, "listen %s: out of memory", hp);
	l->kind = kind;
	l->fd = -1;
	if (kind == CHAN_TLS) {
		l->ctx = ch_make_ctx(tls_dir, true, e);
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

int chan_accept_fd(struct chan_listener *l, int *fd, char *where, size_t len, char *addr, size_t alen,
		   struct err *e)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char h[INET6_ADDRSTRLEN] = "?";

	for (;;) {
		sl = sizeof(ss);
		*fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (*fd >= 0)
			break;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		return err_sys(e, -errno, "accept");
	}
	format_sockaddr(where, len, (struct sockaddr *)&ss);
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, h, sizeof(h));
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, h, sizeof(h));
	snprintf(addr, alen, "%s", h);
	ch_set_sock_opts(*fd);
	return 0;
}

int chan_handshake(struct chan_listener *l, int fd, const char *where, int timeout_ms, struct chan **out,
		   struct err *e)
{
	int64_t deadline = ch_deadline_after(timeout_ms);
	struct chan *c = ch_new(fd, l->kind, where);
	int r;

	*out = NULL;
	if (!c) {
		close(fd);
		return err_set(e, -ENOMEM, "accept from %s: out of memory", where);
	}
	if (l->kind == CHAN_TLS) {
		if ((r = ch_attach_ssl(c, l->ctx, e)) || (r = ch_tls_handshake(c, true, NULL, deadline, e))) {
			err_wrap(e, "accept from %s", where);
			ch_free(c);
			return r;
		}
	}
	*out = c;
	return 0;
}

int chan_accept(struct chan_listener *l, int timeout_ms, struct chan **out, struct err *e)
{
	int64_t deadline = ch_deadline_after(timeout_ms);
	char where[300], addr[64];
	struct err tmp;
	int fd, r;

	if (!e)
		e = &tmp;
	*out = NULL;
	while ((r = chan_accept_fd(l, &fd, where, sizeof(where), addr, sizeof(addr), e)) == -EAGAIN) {
		r = ch_wait_fd(l->fd, POLLIN, deadline);
		if (r == -ETIMEDOUT)
			return err_set(e, r, "accept: timed out waiting for a connection");
		if (r < 0)
			return err_sys(e, r, "accept");
	}
	if (r < 0)
		return r;
	if (timeout_ms > 0) {
		int64_t left = (deadline - ch_now_ns()) / 1000000;
		timeout_ms = left > 0 ? (int)left : 1;
	}
	return chan_handshake(l, fd, where, timeout_ms, out, e);
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
			r = ch_wait_fd(fd, POLLOUT, deadline);
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
		if ((r = ch_set_blocking(fd))) {
			err_sys(e, r, "connect %s: fcntl", hp);
			close(fd);
			continue;
		}
		ch_set_sock_opts(fd);
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
	int64_t deadline = ch_deadline_after(timeout_ms);
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
	ch_format_hostport(hp, sizeof(hp), host, port);
	if (kind == CHAN_TLS) {
		ctx = ch_make_ctx(tls_dir, false, e);
		if (!ctx)
			return e->code;
	}
	if ((r = tcp_connect(host, port, hp, deadline, &fd, e))) {
		SSL_CTX_free(ctx);
		return r;
	}
	c = ch_new(fd, kind, hp);
	if (!c) {
		close(fd);
		SSL_CTX_free(ctx);
		return err_set(e, -ENOMEM, "connect %s: out of memory", hp);
	}
	if (kind == CHAN_TLS) {
		r = ch_attach_ssl(c, ctx, e);
		SSL_CTX_free(ctx);  /* the SSL object holds its own reference */
		if (!r)
			r = ch_tls_handshake(c, false, host, deadline, e);
		if (r) {
			err_wrap(e, "connect %s", hp);
			ch_free(c);
			return r;
		}
	}
	*out = c;
	return 0;
}

