#include "guard/text.h"

#include <stddef.h>
#include <string.h>

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
