/* readfile.h - read a small file (or pipe) whole, with a size limit: --config and --run use it. */
#ifndef MICROVM_READFILE_H
#define MICROVM_READFILE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Read fd to its end into a new malloc'ed buffer (NUL-terminated after the
 * data, not counted in *len), growing it as it fills, so pipes work too.
 * Returns 0, -EFBIG when there are more than max bytes, -ENOMEM, or -errno
 * of a failed read (EINTR is retried). *data is NULL after an error. No
 * message is set: the callers name the file.
 */
int read_whole(int fd, size_t max, uint8_t **data, size_t *len);

#endif
