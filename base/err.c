/* err.c - thread-local last-error message (see err.h). */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_buf[1024];

int err_set(int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	return errnum > 0 ? -errnum : errnum;
}

int err_prefix(int errnum, const char *fmt, ...)
{
	char prefix[512];
	char old[sizeof(err_buf)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err_buf, sizeof(old));
	/* Truncation of a very long message is acceptable. */
	size_t n = strnlen(prefix, sizeof(prefix) - 1);
	memcpy(err_buf, prefix, n);
	memcpy(err_buf + n, ": ", 2);
	size_t room = sizeof(err_buf) - n - 3;
	size_t m = strnlen(old, room);
	memcpy(err_buf + n + 2, old, m);
	err_buf[n + 2 + m] = '\0';
	return errnum > 0 ? -errnum : errnum;
}

int err_append(int errnum, const char *fmt, ...)
{
	size_t n = strnlen(err_buf, sizeof(err_buf) - 1);
	va_list ap;

	/* Truncation of a very long message is acceptable. */
	va_start(ap, fmt);
	vsnprintf(err_buf + n, sizeof(err_buf) - n, fmt, ap);
	va_end(ap);
	return errnum > 0 ? -errnum : errnum;
}

const char *err_msg(void)
{
	return err_buf;
}

void err_clear(void)
{
	err_buf[0] = '\0';
}
