/* disk.h - disk image files: open, check and lock one for a virtio-blk device. */
#ifndef MICROVM_IO_DISK_H
#define MICROVM_IO_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "io/ioloop.h"
#include "io/overlay.h"

/* Sizes are whole sectors of this many bytes (virtio-blk's unit). */
#define DISK_SECTOR_SIZE 512

/*
 * Open the image at path (read-only or read-write, O_DIRECT if asked), check
 * it is a non-empty regular file or block device whose size is a multiple of
 * 512 bytes, and lock it: shared when read-only, exclusive when writable, so
 * several VMs may share a read-only image and a writer has it alone. Returns
 * the fd (close-on-exec) with *size in bytes, or -errno with err_msg() saying
 * what is wrong with the file, without naming it: the caller prefixes that.
 * Failures an option may fix: -EOPNOTSUPP when direct is asked and the file
 * system has no O_DIRECT; -EACCES, -EROFS or -EPERM only when the open itself
 * is refused (for writing, unless ro).
 */
int disk_open(const char *path, bool ro, bool direct, uint64_t *size);

/*
 * A disk's back end as a device model sees it: the image itself (file index
 * `file` of loop) or a copy-on-write overlay over it (ovl != NULL; the base
 * is then read-only and file is unused by requests).
 */
struct disk_backend {
	struct io_loop *loop;
	int file;
	struct overlay *ovl;
};

/*
 * I/O thread only (or before the loop starts): submit req to the back end,
 * with io_loop_submit()'s contract (req->file is set here).
 */
int disk_submit(const struct disk_backend *be, struct io_request *req);

#endif
