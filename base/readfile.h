/* readfile.h - the files a user names (--kernel, --initrd, --run, --config): open and check one, read it whole. */
#ifndef MICROVM_READFILE_H
#define MICROVM_READFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/*
 * Open a file the user named, for reading (close-on-exec), and check what it
 * is: never a directory ("is a directory, not WHAT"); a regular file, or
 * with any_kind anything else that opens (a pipe, /dev/stdin). Returns the
 * fd with *st filled, or -errno with err_msg() saying what is wrong without
 * naming the file: the caller prefixes the flag and path (err_prefix()).
 */
int open_user_file(const char *path, const char *what, bool any_kind, struct stat *st);

/*
 * Read fd to its end into a new malloc'ed buffer (NUL-terminated after the
 * data, not counted in *len), growing it as it fills, so pipes work too.
 * Returns 0, -EFBIG when there are more than max bytes, -ENOMEM, or -errno
 * of a failed read (EINTR is retried). *data is NULL after an error. No
 * message is set: the callers name the file.
 */
int read_whole(int fd, size_t max, uint8_t **data, size_t *len);

/*
 * Read fd, a regular file fstat() found size bytes long, to its end into one
 * new malloc'ed buffer (NUL-terminated, *len bytes). Fails, with err_msg()
 * unprefixed, when the file grew or shrank while being read, on a read
 * error and out of memory; *data is left alone then.
 */
int read_exact(int fd, size_t size, uint8_t **data, size_t *len);

/*
 * A regular file the user named, read whole: open_user_file(), then not
 * empty, at most max bytes, and the same size at the end of the read as at
 * its start. Returns 0 with a new malloc'ed *data (NUL-terminated, *len
 * bytes), or -errno with err_msg() (unprefixed, as open_user_file()).
 */
int read_user_file(const char *path, const char *what, uint64_t max, uint8_t **data, size_t *len);

#endif
