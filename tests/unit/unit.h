/* Tiny unit-test helpers: CHECK(cond) records a failure with file:line and
 * carries on; unit_done() prints a summary and returns the exit code. */
#ifndef SEALVM_TESTS_UNIT_H
#define SEALVM_TESTS_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_checks_;
static int unit_failures_;

#define CHECK(cond) CHECKF(cond, "%s", #cond)

/* CHECKF(cond, fmt, ...): on failure prints fmt with the arguments. */
#define CHECKF(cond, ...)                                                      \
	do {                                                                   \
		__atomic_add_fetch(&unit_checks_, 1, __ATOMIC_RELAXED);        \
		if (!(cond)) {                                                 \
			__atomic_add_fetch(&unit_failures_, 1, __ATOMIC_RELAXED); \
			fprintf(stderr, "%s:%d: CHECK failed: ", __FILE__,     \
				__LINE__);                                     \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
		}                                                              \
	} while (0)

#define CHECK_INT(a, b)                                                        \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		CHECKF(a_ == b_, "%s == %s (%lld != %lld)", #a, #b, a_, b_);   \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		CHECKF(a_ && b_ && strcmp(a_, b_) == 0,                        \
		       "%s == %s (\"%s\" != \"%s\")", #a, #b,                  \
		       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                \
	} while (0)

static inline int unit_done(void)
{
	int fails = __atomic_load_n(&unit_failures_, __ATOMIC_RELAXED);
	int checks = __atomic_load_n(&unit_checks_, __ATOMIC_RELAXED);

	fprintf(stderr, "%s: %d checks, %d failed\n", fails ? "FAIL" : "OK",
		checks, fails);
	return fails ? 1 : 0;
}

#endif
