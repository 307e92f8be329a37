#include "guard/text.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int proc_read(const char *path, size_t max, char **out, size_t *len, struct err *e)
{
	size_t cap = 16384, n = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*out = NULL;
	if (fd < 0 || !buf) {
		int rc = fd < 0 ? err_sys(e, -errno, "opening %s", path) : err_set(e, -ENOMEM, "out of memory");
		free(buf);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	for (;;) {
		ssize_t k;
		if (n + 1 >= cap) {
			char *nb = cap < max ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				free(buf);
				close(fd);
				return err_set(e, -EFBIG, "%s is larger than %zu bytes", path, max);
			}
			buf = nb;
			cap *= 2;
		}
		k = read(fd, buf + n, cap - n - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int rc = err_sys(e, -errno, "reading %s", path);
			free(buf);
			close(fd);
			return rc;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid, -1 if cut short. */
static int seq_len(const unsigned char *p)
{
	int n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if (!p[i])
			return -1;
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	}
	/* overlong three-byte forms, surrogates, and code points past U+10FFFF */
	if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0) || (p[0] == 0xF0 && p[1] < 0x90) ||
	    (p[0] == 0xF4 && p[1] >= 0x90))
		return 0;
	return n;
}

void text_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		int n = seq_len(p);
		if (n < 0) {
			*p = 0;
			return;
		}
		if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}
