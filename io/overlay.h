/* overlay.h - copy-on-write disk overlays: reads of unwritten clusters from a shared read-only base, every write in an overlay file. */
#ifndef MICROVM_IO_OVERLAY_H
#define MICROVM_IO_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/ioloop.h"

/*
 * The overlay file (docs/overlay.md), little endian:
 *   [0, 4096)            header (struct ovl_header, then zeroes)
 *   [4096, data_off)     allocation bitmap: bit (c % 8) of byte c / 8 set = cluster c is in the overlay
 *   [data_off, ...)      cluster c's bytes at data_off + c * OVL_CLUSTER (the disk's own layout, sparse)
 * The bitmap's bits only ever go from 0 to 1, and a bit is written only after
 * its cluster's data is durable (overlay_submit() FLUSH).
 */
#define OVL_MAGIC "MVMOVL\r\n"
#define OVL_VERSION 1
#define OVL_CLUSTER 4096u
#define OVL_HEADER_AREA 4096u
#define OVL_MAX_SIZE (1ull << 44)       /* 16 TiB of virtual disk: a 512 MiB bitmap */

struct ovl_header {
	char magic[8];                  /* OVL_MAGIC */
	uint32_t version;               /* OVL_VERSION */
	uint32_t header_size;           /* sizeof(struct ovl_header): the bytes the CRC covers with crc */
	uint32_t cluster_size;          /* OVL_CLUSTER */
	uint32_t flags;                 /* 0; any bit set is refused */
	uint64_t size;                  /* virtual disk size in bytes = the base's size, a multiple of 512 */
	uint64_t bitmap_off;            /* OVL_HEADER_AREA */
	uint64_t bitmap_len;            /* bytes, ceil(clusters / 8) rounded up to 4096 */
	uint64_t data_off;              /* bitmap_off + bitmap_len */
	uint8_t reserved[68];           /* zero */
	uint32_t crc;                   /* CRC-32 (zlib) of the header with this field 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct ovl_header) == 128, "ovl_header is 128 bytes");

/* Clusters of a disk of size bytes (the last one may be partial). */
uint64_t ovl_clusters(uint64_t size);

/* The header of a new overlay over a base of size bytes, CRC set. size: 512..OVL_MAX_SIZE, a multiple of 512. */
void ovl_header_init(struct ovl_header *h, uint64_t size);

/*
 * Check the first len bytes of an overlay file whose size is file_size
 * against a base of base_size bytes: magic, CRC, version, header size,
 * cluster size, flags, reserved bytes, the layout (bitmap where it belongs
 * and long enough, data after it), the size (= base_size, <= OVL_MAX_SIZE),
 * and file_size >= data_off + clusters * OVL_CLUSTER. Pure. Returns 0 with
 * *out filled (host byte order), or -EINVAL with err_msg() saying what is
 * wrong in one line.
 */
int ovl_header_parse(const void *buf, size_t len, uint64_t file_size, uint64_t base_size,
		     struct ovl_header *out);

/*
 * Check a bitmap read from the file (len = bitmap_len of h): no bit set for
 * a cluster past the disk's end. Pure. Returns 0 or -EINVAL with err_msg().
 */
int ovl_bitmap_check(const struct ovl_header *h, const uint8_t *bitmap, size_t len);

struct overlay;

/*
 * Open (create when it does not exist) the overlay at path for a base image
 * of base_size bytes. A new file is created with O_EXCL | O_NOFOLLOW, mode
 * 0600, sparse, its header and layout durable (fsync of the file and its
 * directory) before this returns; an existing one must be a regular file
 * (not a symlink) whose header passes ovl_header_parse(). path NULL: a
 * throw-away overlay, an unnamed file in tmpdir (O_TMPFILE; or a private
 * name unlinked at once) that vanishes when closed, even on SIGKILL.
 * exclusive lock (flock) either way; *created says whether a file was made.
 * must_create: an existing file at path is refused (EEXIST), never opened.
 * Returns 0, or -errno with err_msg() (without the path: the caller adds it).
 */
int overlay_open(struct overlay **out, const char *path, const char *tmpdir, uint64_t base_size,
		 bool must_create, bool *created);

/*
 * Open a fresh overlay at path (NULL: throw-away in tmpdir) as a copy of the
 * overlay file open at src_fd (a snapshot's saved layer, checked here
 * against base_size; the fd stays the caller's): path must not exist. The
 * copy keeps holes and is durable before this returns. Returns 0 or -errno
 * with err_msg().
 */
int overlay_open_copy(struct overlay **out, const char *path, const char *tmpdir, int src_fd,
		      uint64_t base_size);

/* The overlay file's fd (to register with the I/O loop and for overlay_save()). */
int overlay_fd(const struct overlay *o);

/*
 * Before io_loop_start(): requests on o go to loop, reads of unwritten
 * clusters to file index base_file (the base image, opened read-only), the
 * rest to ovl_file (overlay_fd(), registered by the caller).
 */
void overlay_attach(struct overlay *o, struct io_loop *loop, int base_file, int ovl_file);

/*
 * I/O thread only (or before the loop starts): a request on the virtual
 * disk, as io_loop_submit() takes it (req->file is ignored). READ: runs of
 * allocated clusters from the overlay, the others from the base. WRITE: into
 * the overlay; a cluster written for the first time and only in part is
 * first filled from the base (copy on write); writes touching a cluster that
 * is being allocated wait for it. DISCARD and WRITE_ZEROES both make the
 * range read as zeroes (a hole in the overlay, clusters marked allocated).
 * FLUSH: fdatasync the overlay, then write the bitmap pages changed before
 * the flush began, then fdatasync again; one flush at a time. done() gets
 * the full length (READ/WRITE) or 0, or -errno. Returns 0 or -EINVAL for a
 * bad op or a range outside the disk (done() is then not called), -ENOMEM.
 */
int overlay_submit(struct overlay *o, struct io_request *req);

/*
 * With no request in flight and the loop stopped (any thread): make every
 * allocation durable as a FLUSH would (fdatasync, bitmap, fdatasync).
 * Returns 0 or -errno with err_msg().
 */
int overlay_sync(struct overlay *o);

/*
 * With o flushed and no request in flight (a snapshot's frozen disk): copy
 * the overlay file into the empty file dst_fd, keeping holes
 * (SEEK_DATA/SEEK_HOLE + copy_file_range), and fsync it. Returns 0 or
 * -errno with err_msg().
 */
int overlay_save(const struct overlay *o, int dst_fd);

/*
 * TEST ONLY (builds with -Dtest_hooks=true): when this environment variable
 * is set at overlay_open()/overlay_open_copy(), a FLUSH writes the dirty
 * bitmap pages *before* its first fdatasync (the wrong order: a bit may
 * reach the disk before its cluster's data), for the power-cut test's
 * control (docs/powercut.md). overlay_sync() is unchanged.
 */
#define OVL_TEST_BITMAP_FIRST_ENV "MICROVM_TEST_OVL_BITMAP_FIRST"

/* Clusters allocated (for tests and logs). */
uint64_t overlay_allocated(const struct overlay *o);

/* Close the file (a throw-away overlay vanishes) and free o. NULL is ignored. Does not sync. */
void overlay_close(struct overlay *o);

#endif
