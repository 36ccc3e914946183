/* err.h - one thread-local "last error" message that travels with a negative errno. */
#ifndef MICROVM_ERR_H
#define MICROVM_ERR_H

/*
 * Functions in every folder return 0 on success or a negative errno. When they
 * fail they also record a one-line, user-facing message naming the thing that
 * failed ("--kernel foo: No such file or directory"). Only main() prints it and
 * decides to exit. The layers below vmm/ say what is wrong with the file or
 * value they were given; they do not know the flag it came from: the caller
 * in vmm/ prefixes that ("--kernel foo", "--mem 1K") and adds hints that name
 * a flag.
 */

/* Record a message (printf format) and return -errnum (errnum > 0). */
int err_set(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current message with "PREFIX: " (e.g. the file name) and return -errnum. */
int err_prefix(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append text (printf format, e.g. "; try ...") to the current message and return -errnum. */
int err_append(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread, or "" if none. */
const char *err_msg(void);

/* Forget the last message. */
void err_clear(void);

#endif
