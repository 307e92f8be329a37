#include "util/secret_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

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
