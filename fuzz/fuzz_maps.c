/* libFuzzer target: /proc/PID/maps text as the integrity guard parses it (paths are
 * whatever a file was named), and the sanitizer every reported string goes through.
 * Accepted maps must be ordered and non-overlapping; sanitized text must be valid
 * UTF-8 without control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/maps.h"
#include "guard/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = { 0 };
	struct maps m;
	char *s;

	if (maps_parse((const char *)data, size, &m, &e) == 0) {
		for (size_t i = 0; i < m.n; i++) {
			if (m.ent[i].end <= m.ent[i].start || (i && m.ent[i].start < m.ent[i - 1].end) ||
			    strlen(m.ent[i].path) >= MAPS_PATH_MAX)
				__builtin_trap();
			map_is_file(&m.ent[i]);
		}
		maps_free(&m);
	} else if (e.code >= 0 || !e.msg[0]) {
		__builtin_trap();
	}
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	text_sanitize(s);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			__builtin_trap();
	free(s);
	return 0;
}
