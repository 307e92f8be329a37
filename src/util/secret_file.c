#include "util/secret_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"
#include "util/fsync.h"

int secret_file_check(const char *path, struct err *e)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return err_sys(e, -errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return err_set(e, -EINVAL, "%s is not a regular file", path);
	if (st.st_mode & 077)
		return err_set(e, -EACCES,
			       "%s is a secret but is %s by group or others (mode %04o): run chmod 600 %s",
			       path, (st.st_mode & 044) ? "readable" : "accessible",
			       (unsigned)(st.st_mode & 07777), path);
	return 0;
}

int secret_file_read(const char *path, size_t max, char **out, size_t *len, struct err *e)
{
	int rc = secret_file_check(path, e);

	*out = NULL;
	*len = 0;
	if (rc < 0)
		return rc;
	return file_read_all(path, max, out, len, e);
}

int secret_file_write(const char *path, const void *data, size_t len, int replace, struct err *e)
{
	if (!replace && access(path, F_OK) == 0)
		return err_set(e, -EEXIST, "%s already exists (not replacing a key)", path);
	return file_write_atomic(path, data, len, 0600, e);
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

int key_parse(const char *buf, size_t len, uint8_t key[32])
{
	size_t i;

	if (len == 32) {
		memcpy(key, buf, 32);
		return 0;
	}
	if (len != 64 && !(len == 65 && buf[64] == '\n'))
		return -EINVAL;
	for (i = 0; i < 32; i++) {
		int hi = unhex(buf[2 * i]), lo = unhex(buf[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int key_file_load(const char *path, uint8_t key[32], struct err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int r = secret_file_read(path, 80, &buf, &len, e);

	if (r < 0)
		return r;
	r = key_parse(buf, len, key);
	OPENSSL_cleanse(buf, len);
	free(buf);
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
