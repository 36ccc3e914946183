/* readfile.c - read a small file whole, with a limit (see readfile.h). */
#include "base/readfile.h"
#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int open_user_file(const char *path, const char *what, bool any_kind, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int e;

	if (fd < 0)
		return err_set(errno, "%s", strerror(errno));
	if (fstat(fd, st) < 0) {
		e = errno;
		close(fd);
		return err_set(e, "%s", strerror(e));
	}
	if (S_ISDIR(st->st_mode)) {
		close(fd);
		return err_set(EISDIR, "is a directory, not %s", what);
	}
	if (!any_kind && !S_ISREG(st->st_mode)) {
		close(fd);
		return err_set(EINVAL, "not a regular file");
	}
	return fd;
}

int read_whole(int fd, size_t max, uint8_t **data, size_t *len)
{
	uint8_t *buf = NULL;
	size_t used = 0, cap = 0;
	int ret = 0;

	*data = NULL;
	*len = 0;
	for (;;) {
		/* Room for one byte past the limit (to see it was passed) and the NUL. */
		if (used == cap) {
			if (used > max) {
				ret = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 4096;
			if (cap > max + 1)
				cap = max + 1;
			uint8_t *nbuf = realloc(buf, cap + 1);
			if (!nbuf) {
				ret = -ENOMEM;
				goto out;
			}
			buf = nbuf;
		}
		ssize_t n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (used > max) {
		ret = -EFBIG;
		goto out;
	}
	if (!buf && !(buf = malloc(1))) {
		ret = -ENOMEM;
		goto out;
	}
	buf[used] = '\0';
	*data = buf;
	*len = used;
	return 0;
out:
	free(buf);
	return ret;
}

int read_exact(int fd, size_t size, uint8_t **data, size_t *len)
{
	uint8_t *buf = malloc(size + 1);
	size_t used = 0;

	if (!buf)
		return err_set(ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = read(fd, buf + used, size + 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			return err_set(e, "read failed: %s", strerror(e));
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > size) {
			free(buf);
			return err_set(EIO, "the file grew while being read");
		}
	}
	if (used != size) {
		free(buf);
		return err_set(EIO, "read failed: file shrank while reading");
	}
	buf[used] = '\0';
	*data = buf;
	*len = used;
	return 0;
}

int read_user_file(const char *path, const char *what, uint64_t max, uint8_t **data, size_t *len)
{
	struct stat st;
	int fd = open_user_file(path, what, false, &st);
	int ret;

	*data = NULL;
	*len = 0;
	if (fd < 0)
		return fd;
	if (st.st_size == 0) {
		ret = err_set(EINVAL, "file is empty");
	} else if ((uint64_t)st.st_size > max) {
		ret = err_set(EFBIG, "file is larger than %llu %s", (unsigned long long)(max >= (1ULL << 30) ? max >> 30 : max >> 20),
			      max >= (1ULL << 30) ? "GiB" : "MiB");
	} else {
		/* One buffer of the size fstat saw (a kernel or initrd may be large); one byte more
		 * to see the file grew while being read. */
		ret = read_exact(fd, (size_t)st.st_size, data, len);
	}
	close(fd);
	return ret;
}
