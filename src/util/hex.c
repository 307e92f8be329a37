#include "util/hex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void hex_encode(const void *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	const uint8_t *p = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = 0;
}

static int nib(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *s, void *out, size_t n)
{
	uint8_t *p = out;

	if (!s || strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *in, size_t n)
{
	const uint8_t *p = in;
	char *out, *o;

	if (n > (SIZE_MAX / 4) * 3 - 3)
		return NULL;
	out = malloc((n + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*o = 0;
	return out;
}

static int b64val(char c)
{
	const char *q = c ? strchr(b64, c) : NULL;
	return q ? (int)(q - b64) : -1;
}

uint8_t *b64_decode(const char *s, size_t *n)
{
	size_t len = s ? strlen(s) : 0, pad = 0, o = 0;
	uint8_t *out;

	*n = 0;
	if (!s || len % 4)
		return NULL;
	if (len && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int last = i + 4 == len;
		for (int k = 0; k < 4; k++) {
			v[k] = b64val(s[i + k]);
			/* '=' only as the final padding */
			if (v[k] < 0 && !(last && s[i + k] == '=' && k >= 4 - (int)pad))
				goto bad;
			if (v[k] < 0)
				v[k] = 0;
		}
		uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[o++] = (uint8_t)(x >> 16);
		if (!(last && pad == 2))
			out[o++] = (uint8_t)(x >> 8);
		if (!(last && pad >= 1))
			out[o++] = (uint8_t)x;
		/* canonical: the bits that padding drops must be zero */
		if (last && pad == 2 && (x & 0xffff))
			goto bad;
		if (last && pad == 1 && (x & 0xff))
			goto bad;
	}
	*n = o;
	return out;
bad:
	free(out);
	return NULL;
}
