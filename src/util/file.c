#include "util/file.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max, char **out, size_t *len, struct err *e)
{
	struct stat st;
	char *buf;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*out = NULL;
	*len = 0;
	if (fd < 0)
		return err_sys(e, -errno, "%s", path);
	if (fstat(fd, &st) < 0) {
		int rc = err_sys(e, -errno, "%s", path);
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, -EINVAL, "%s is not a regular file", path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return err_set(e, -EFBIG, "%s is larger than %zu bytes", path, max);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return err_set(e, -ENOMEM, "%s: out of memory", path);
	}
	/* the size may change under us (an appended log): read what fits, stop at EOF */
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int rc = err_sys(e, -errno, "reading %s", path);
			free(buf);
			close(fd);
			return rc;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, int mode, struct err *e)
{
	char tmp[4096];
	const char *p = data;
	size_t off = 0;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return err_set(e, -ENAMETOOLONG, "%s: path too long", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return err_sys(e, -errno, "creating %s", tmp);
	if (fchmod(fd, mode) < 0)   /* the umask must not widen or narrow it */
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		int rc = err_sys(e, -errno, "renaming %s to %s", tmp, path);
		unlink(tmp);
		return rc;
	}
	return 0;
fail:
	{
		int rc = err_sys(e, -errno, "writing %s", tmp);
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return rc;
	}
}
