/* Error reporting: functions return -errno and fill a struct err with a message.
 * Only main() prints and exits. */
#ifndef SEALVM_UTIL_ERR_H
#define SEALVM_UTIL_ERR_H

#include <errno.h>

struct err {
	int code;          /* negative errno, 0 when no error */
	char msg[512];
};

/* Formats the message into e (if non-NULL) and returns code (a negative errno). */
int err_set(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(-code)". */
int err_sys(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefixes an existing message with context ("restore: " + old message). */
int err_wrap(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
