/* readfile.c - read a small file whole, with a limit (see readfile.h). */
#include "base/readfile.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

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
