#include "util/size.h"

#include <ctype.h>
#include <stdlib.h>

int parse_uint(const char *s, uint64_t max, uint64_t *out, struct err *e)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return err_set(e, -EINVAL, "'%s' is not a number", s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return err_set(e, -ERANGE, "'%s' is not a number from 0 to %llu", s, (unsigned long long)max);
	*out = v;
	return 0;
}

int parse_size(const char *s, int default_mib, uint64_t *out, struct err *e)
{
	unsigned long long v;
	unsigned shift = default_mib ? 20 : 0;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return err_set(e, -EINVAL, "size '%s' is not a number with an optional K, M or G suffix",
			       s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return err_set(e, -ERANGE, "size '%s' is too large", s);
	switch (toupper((unsigned char)*end)) {
	case 0:
		break;
	case 'K':
		shift = 10;
		end++;
		break;
	case 'M':
		shift = 20;
		end++;
		break;
	case 'G':
		shift = 30;
		end++;
		break;
	case 'T':
		shift = 40;
		end++;
		break;
	default:
		return err_set(e, -EINVAL, "size '%s' has an unknown suffix (use K, M, G or T)", s);
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return err_set(e, -EINVAL, "size '%s' has trailing characters", s);
	if (v > (UINT64_MAX >> shift))
		return err_set(e, -ERANGE, "size '%s' is too large", s);
	*out = (uint64_t)v << shift;
	return 0;
}
