#include "util/fsync.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int fsync_dir(const char *dir, struct err *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return err_sys(e, -errno, "cannot open directory %s", dir);
	if (fsync(fd) < 0)
		r = err_sys(e, -errno, "cannot sync directory %s", dir);
	close(fd);
	return r;
}

int fsync_parent(const char *path, struct err *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash)
		return fsync_dir(".", e);
	if ((size_t)(slash - path) >= sizeof(dir))
		return err_set(e, -ENAMETOOLONG, "path too long: %s", path);
	if (slash == path)
		return fsync_dir("/", e);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = 0;
	return fsync_dir(dir, e);
}
