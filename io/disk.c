/* disk.c - disk image files (see disk.h). */
#include "io/disk.h"
#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int disk_open(const char *path, bool ro, bool direct, uint64_t *size)
{
	int flags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);
	struct stat st;
	int fd, ret;

	fd = open(path, flags);
	if (fd < 0) {
		int e = errno;
		if (e == EISDIR)
			return err_set(e, "is a directory, not a disk image");
		if (e == EINVAL && direct)
			return err_set(EOPNOTSUPP, "the file system does not support O_DIRECT");
		return err_set(e, "%s", strerror(e));
	}
	if (fstat(fd, &st) < 0) {
		ret = err_set(errno, "%s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = err_set(EISDIR, "is a directory, not a disk image");
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		ret = err_set(EINVAL, "not a regular file or block device");
		goto fail;
	}
	off_t end = lseek(fd, 0, SEEK_END);
	if (end < 0) {
		ret = err_set(errno, "cannot find its size: %s", strerror(errno));
		goto fail;
	}
	if (end == 0) {
		ret = err_set(EINVAL, "the image is empty (size 0)");
		goto fail;
	}
	if (end % DISK_SECTOR_SIZE) {
		ret = err_set(EINVAL, "size %lld is not a multiple of %d bytes", (long long)end, DISK_SECTOR_SIZE);
		goto fail;
	}
	if (flock(fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			ret = err_set(EBUSY, "image is locked: another VM has it open%s", ro ? " for writing" : "");
		else
			ret = err_set(errno, "cannot lock it: %s", strerror(errno));
		goto fail;
	}
	*size = (uint64_t)end;
	return fd;
fail:
	close(fd);
	return ret;
}

int disk_submit(const struct disk_backend *be, struct io_request *req)
{
	if (be->ovl)
		return overlay_submit(be->ovl, req);
	req->file = be->file;
	return io_loop_submit(be->loop, req);
}
