#include "util/pagemap.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define CHUNK 65536

int64_t pagemap_populated(const void *addr, uint64_t npages, uint64_t *idx, struct err *e)
{
	uint64_t first = (uint64_t)(uintptr_t)addr / 4096, done = 0, n = 0;
	uint64_t *buf;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_sys(e, -errno, "open /proc/self/pagemap");
	buf = malloc(CHUNK * sizeof(uint64_t));
	if (!buf) {
		close(fd);
		return err_set(e, -ENOMEM, "pagemap buffer");
	}
	while (done < npages) {
		uint64_t want = npages - done < CHUNK ? npages - done : CHUNK, i;
		ssize_t r = pread(fd, buf, want * 8, (off_t)((first + done) * 8));
		if (r <= 0 || r % 8) {
			int c = r < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return err_sys(e, c, "read /proc/self/pagemap");
		}
		want = (uint64_t)r / 8;
		for (i = 0; i < want; i++)
			if (buf[i] & (PM_PRESENT | PM_SWAPPED))
				idx[n++] = done + i;
		done += want;
	}
	free(buf);
	close(fd);
	return (int64_t)n;
}
