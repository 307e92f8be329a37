#include "util/secret.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsync.h"

static int check_stat(const char *path, const struct stat *st, struct err *e)
{
	if (!S_ISREG(st->st_mode))
		return err_set(e, -EINVAL, "%s is not a regular file", path);
	if (st->st_mode & 077)
		return err_set(e, -EACCES,
			       "%s is accessible by group or others (mode %04o): a secret must be private; run: chmod 600 %s",
			       path, (unsigned)(st->st_mode & 07777), path);
	return 0;
}

int secret_file_check(const char *path, struct err *e)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return err_sys(e, -errno, "cannot use %s", path);
	return check_stat(path, &st, e);
}

int secret_file_read(const char *path, void *buf, size_t max, size_t *len, struct err *e)
{
	struct stat st;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_sys(e, -errno, "cannot open %s", path);
	if (fstat(fd, &st) < 0) {
		r = err_sys(e, -errno, "cannot stat %s", path);
		goto out;
	}
	r = check_stat(path, &st, e);
	if (r < 0)
		goto out;
	if ((uint64_t)st.st_size > max) {
		r = err_set(e, -EFBIG, "%s is larger than %zu bytes: not a key file", path, max);
		goto out;
	}
	n = read(fd, buf, max);
	if (n < 0) {
		r = err_sys(e, -errno, "cannot read %s", path);
		goto out;
	}
	*len = (size_t)n;
	r = 0;
out:
	close(fd);
	return r;
}

int secret_file_create(const char *path, const void *buf, size_t len, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int r = 0;

	if (fd < 0)
		return errno == EEXIST ? -EEXIST : err_sys(e, -errno, "cannot create %s", path);
	if (write(fd, buf, len) != (ssize_t)len)
		r = err_sys(e, -EIO, "cannot write %s", path);
	if (r == 0 && fsync(fd) < 0)
		r = err_sys(e, -errno, "cannot sync %s", path);
	close(fd);
	if (r == 0)
		r = fsync_parent(path, e);
	if (r < 0)
		unlink(path);
	return r;
}
