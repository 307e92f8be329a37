#include "util/statedir.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/secret_file.h"

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *path, struct err *e)
{
	char p[PATH_MAX];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(p))
		return err_set(e, -ENAMETOOLONG, "state directory path is empty or too long");
	memcpy(p, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		p[i] = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return err_sys(e, -errno, "cannot create %s", p);
		p[i] = i < n ? '/' : 0;
	}
	return 0;
}

static int load_host_id(struct state_dir *sd, struct err *e)
{
	char path[PATH_MAX + 16], buf[64];
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "%s/host-id", sd->path);
	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			len = n > 0 ? (size_t)n : 0;
			buf[len] = 0;
			if (len == 33 && buf[32] == '\n')
				buf[32] = 0;
			if (len != 33 || hex_decode(buf, sd->host_id, 16) < 0)
				return err_set(e, -EINVAL, "%s is damaged (expected 32 hex digits); remove it to make a new host id", path);
			return 0;
		}
		if (errno != ENOENT)
			return err_sys(e, -errno, "cannot read %s", path);
		if (RAND_bytes(sd->host_id, 16) != 1)
			return err_set(e, -EIO, "no randomness for the host id");
		hex_encode(sd->host_id, 16, buf);
		buf[32] = '\n';
		r = secret_file_create(path, buf, 33, e);
		if (r == 0)
			return 0;
		if (r != -EEXIST) /* another process made it first: read theirs */
			return r;
	}
}

int state_dir_open(struct state_dir *sd, const char *path, struct err *e)
{
	struct stat st;
	int r;

	memset(sd, 0, sizeof(*sd));
	if (!path)
		path = getenv("SEALVM_STATE_DIR");
	if (!path || !*path)
		path = STATE_DIR_DEFAULT;
	if (snprintf(sd->path, sizeof(sd->path), "%s", path) >= (int)sizeof(sd->path))
		return err_set(e, -ENAMETOOLONG, "state directory path too long");
	r = make_dirs(sd->path, e);
	if (r < 0)
		return err_wrap(e, "--state-dir");
	if (stat(sd->path, &st) < 0)
		return err_sys(e, -errno, "cannot use state directory %s", sd->path);
	if (!S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "state directory %s is not a directory", sd->path);
	if (st.st_mode & 022)
		return err_set(e, -EACCES, "state directory %s may be written by others (mode %04o): run chmod 700 %s",
			       sd->path, (unsigned)(st.st_mode & 07777), sd->path);
	return load_host_id(sd, e);
}

int state_dir_sub(const struct state_dir *sd, const char *name, char *out, size_t len, struct err *e)
{
	if (snprintf(out, len, "%s/%s", sd->path, name) >= (int)len)
		return err_set(e, -ENAMETOOLONG, "state path too long");
	if (mkdir(out, 0700) < 0 && errno != EEXIST)
		return err_sys(e, -errno, "cannot create %s", out);
	return 0;
}
