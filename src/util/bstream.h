/* A byte stream that state sections are written to and read from: a file, a socket
 * or a TLS channel. The state layer never knows which. */
#ifndef SEALVM_UTIL_BSTREAM_H
#define SEALVM_UTIL_BSTREAM_H

#include <stddef.h>
#include <sys/uio.h>

#include "util/err.h"

struct bstream {
	/* Writes every byte of iov or fails: returns 0 or -errno with e set. */
	int (*writev_all)(struct bstream *s, const struct iovec *iov, int iovcnt, struct err *e);
	/* Reads exactly len bytes or fails: returns 0, -ENODATA with e set if the stream
	 * ended first ("truncated"), or another -errno. */
	int (*read_full)(struct bstream *s, void *buf, size_t len, struct err *e);
	/* Pushes buffered bytes out (may be NULL when unbuffered). */
	int (*flush)(struct bstream *s, struct err *e);
	void *ctx;
};

/* An unbuffered bstream over a plain file descriptor (file, pipe, TCP socket). */
struct fd_bstream {
	struct bstream bs;
	int fd;
};
void fd_bstream_init(struct fd_bstream *s, int fd);

static inline int bstream_write(struct bstream *s, const void *buf, size_t len, struct err *e)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	return s->writev_all(s, &iov, 1, e);
}

static inline int bstream_flush(struct bstream *s, struct err *e)
{
	return s->flush ? s->flush(s, e) : 0;
}

#endif
