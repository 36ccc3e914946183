/* log.c - stderr logging with a level (see log.h). */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_int cur_level = LOG_INFO;

void log_set_level(enum log_level level)
{
	atomic_store(&cur_level, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&cur_level);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error: ", "warning: ", "", "debug: " };
	char line[1024];
	va_list ap;

	if ((int)level > atomic_load(&cur_level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One fprintf per line so lines from different threads do not interleave. */
	fprintf(stderr, "microvm: %s%s\n", names[level], line);
}
