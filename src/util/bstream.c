#include "util/bstream.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

static int fd_writev_all(struct bstream *s, const struct iovec *iov, int iovcnt, struct err *e)
{
	struct fd_bstream *f = (struct fd_bstream *)s;
	struct iovec local[64];

	while (iovcnt > 0) {
		int n = iovcnt < 64 ? iovcnt : 64;
		ssize_t w;
		int i;

		for (i = 0; i < n; i++)
			local[i] = iov[i];
		for (i = 0; i < n;) {
			w = writev(f->fd, local + i, n - i);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return err_sys(e, -errno, "write");
			}
			/* skip fully written vectors, trim the partial one */
			while (i < n && (size_t)w >= local[i].iov_len) {
				w -= (ssize_t)local[i].iov_len;
				i++;
			}
			if (i < n) {
				local[i].iov_base = (char *)local[i].iov_base + w;
				local[i].iov_len -= (size_t)w;
			}
		}
		iov += n;
		iovcnt -= n;
	}
	return 0;
}

static int fd_read_full(struct bstream *s, void *buf, size_t len, struct err *e)
{
	struct fd_bstream *f = (struct fd_bstream *)s;
	char *p = buf;

	while (len > 0) {
		ssize_t r = read(f->fd, p, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(e, -errno, "read");
		}
		if (r == 0)
			return err_set(e, -ENODATA, "unexpected end of stream (truncated)");
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

void fd_bstream_init(struct fd_bstream *s, int fd)
{
	s->bs.writev_all = fd_writev_all;
	s->bs.read_full = fd_read_full;
	s->bs.flush = NULL;
	s->bs.ctx = s;
	s->fd = fd;
}
