#include "util/secret.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

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

static int unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int key_file_load(const char *path, uint8_t key[32], struct err *e)
{
	uint8_t buf[80];
	size_t len = 0, i;
	int r = secret_file_read(path, buf, sizeof(buf), &len, e);

	if (r < 0)
		return r;
	if (len == 32) {
		memcpy(key, buf, 32);
		r = 0;
	} else if (len == 64 || (len == 65 && buf[64] == '\n')) {
		for (i = 0, r = 0; i < 32 && r == 0; i++) {
			int hi = unhex((char)buf[2 * i]), lo = unhex((char)buf[2 * i + 1]);
			if (hi < 0 || lo < 0)
				r = -EINVAL;
			else
				key[i] = (uint8_t)(hi << 4 | lo);
		}
	} else {
		r = -EINVAL;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (r < 0)
		return err_set(e, -EINVAL, "%s is not a key: it must hold 32 bytes, or 64 hex digits (e.g. made by: openssl rand -hex 32 > %s; chmod 600 %s)",
			       path, path, path);
	return 0;
}

int host_key_load(const char *dir, const char *name, uint8_t key[32], struct err *e)
{
	char path[4096];
	uint8_t k[32];
	int r;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return err_set(e, -ENAMETOOLONG, "key path too long");
	for (;;) {
		r = key_file_load(path, key, e);
		if (r != -ENOENT)
			return r;
		if (RAND_bytes(k, sizeof(k)) != 1)
			return err_set(e, -EIO, "no randomness for %s", path);
		r = secret_file_create(path, k, sizeof(k), e);
		OPENSSL_cleanse(k, sizeof(k));
		if (r < 0 && r != -EEXIST)
			return r;
	}
}
