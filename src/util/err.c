#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void vset(struct err *e, int code, const char *fmt, va_list ap)
{
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vset(e, code, fmt, ap);
		va_end(ap);
	}
	return code;
}

int err_sys(struct err *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		size_t n;
		va_start(ap, fmt);
		vset(e, code, fmt, ap);
		va_end(ap);
		n = strlen(e->msg);
		if (n < sizeof(e->msg))
			snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(-code));
	}
	return code;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
	char prefix[256], old[sizeof(e->msg)];
	va_list ap;

	if (!e)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	{
		/* prefix + ": " + old message, truncated to fit */
		size_t n = strnlen(prefix, sizeof(prefix) - 1), m;
		memcpy(e->msg, prefix, n);
		if (n + 2 < sizeof(e->msg)) {
			memcpy(e->msg + n, ": ", 2);
			n += 2;
		}
		m = strnlen(old, sizeof(old) - 1);
		if (m > sizeof(e->msg) - 1 - n)
			m = sizeof(e->msg) - 1 - n;
		memcpy(e->msg + n, old, m);
		e->msg[n + m] = 0;
	}
	return e->code ? e->code : -EIO;
}
