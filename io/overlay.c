/* overlay.c - copy-on-write disk overlays (see overlay.h and docs/overlay.md). */
#include "io/overlay.h"
#include "io/overlay_priv.h"
#include "base/err.h"
#include "base/log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- the file format (pure) ---- */

uint64_t ovl_clusters(uint64_t size)
{
	return size / OVL_CLUSTER + (size % OVL_CLUSTER != 0);
}

static uint64_t bitmap_len_for(uint64_t size)
{
	uint64_t bytes = (ovl_clusters(size) + 7) / 8;

	return (bytes + PAGE - 1) / PAGE * PAGE;
}

static uint32_t header_crc(const struct ovl_header *le)
{
	struct ovl_header c = *le;

	c.crc = 0;
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)&c, sizeof(c));
}

void ovl_header_init(struct ovl_header *h, uint64_t size)
{
	uint64_t blen = bitmap_len_for(size);

	memset(h, 0, sizeof(*h));
	memcpy(h->magic, OVL_MAGIC, 8);
	h->version = htole32(OVL_VERSION);
	h->header_size = htole32(sizeof(*h));
	h->cluster_size = htole32(OVL_CLUSTER);
	h->size = htole64(size);
	h->bitmap_off = htole64(OVL_HEADER_AREA);
	h->bitmap_len = htole64(blen);
	h->data_off = htole64(OVL_HEADER_AREA + blen);
	h->crc = htole32(header_crc(h));
}

int ovl_header_parse(const void *buf, size_t len, uint64_t file_size, uint64_t base_size,
		     struct ovl_header *out)
{
	struct ovl_header h;

	if (len < sizeof(h))
		return err_set(EINVAL, "not an overlay: the file is too short for a header (%zu bytes)", len);
	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, OVL_MAGIC, 8))
		return err_set(EINVAL, "not a microvm overlay (bad magic)");
	if (le32toh(h.version) != OVL_VERSION)
		return err_set(EINVAL, "overlay format version %u is not supported (this microvm reads %u)",
			       le32toh(h.version), OVL_VERSION);
	if (le32toh(h.header_size) != sizeof(h))
		return err_set(EINVAL, "overlay header size %u is not %zu", le32toh(h.header_size), sizeof(h));
	if (le32toh(h.crc) != header_crc(&h))
		return err_set(EINVAL, "overlay header is corrupt (CRC mismatch)");
	out->version = le32toh(h.version);
	out->header_size = le32toh(h.header_size);
	out->cluster_size = le32toh(h.cluster_size);
	out->flags = le32toh(h.flags);
	out->size = le64toh(h.size);
	out->bitmap_off = le64toh(h.bitmap_off);
	out->bitmap_len = le64toh(h.bitmap_len);
	out->data_off = le64toh(h.data_off);
	out->crc = le32toh(h.crc);
	memcpy(out->magic, h.magic, 8);
	memset(out->reserved, 0, sizeof(out->reserved));
	if (out->cluster_size != OVL_CLUSTER)
		return err_set(EINVAL, "overlay cluster size %u is not supported (only %u)", out->cluster_size,
			       OVL_CLUSTER);
	if (out->flags)
		return err_set(EINVAL, "overlay has unknown flags 0x%x", out->flags);
	for (size_t i = 0; i < sizeof(h.reserved); i++)
		if (h.reserved[i])
			return err_set(EINVAL, "overlay header has non-zero reserved bytes");
	if (out->size == 0 || out->size % 512 || out->size > OVL_MAX_SIZE)
		return err_set(EINVAL, "overlay disk size %llu is invalid (a multiple of 512, at most %llu)",
			       (unsigned long long)out->size, (unsigned long long)OVL_MAX_SIZE);
	if (out->size != base_size)
		return err_set(EINVAL, "overlay was made for a base of %llu bytes, this base has %llu",
			       (unsigned long long)out->size, (unsigned long long)base_size);
	if (out->bitmap_off != OVL_HEADER_AREA || out->bitmap_len != bitmap_len_for(out->size) ||
	    out->data_off != out->bitmap_off + out->bitmap_len)
		return err_set(EINVAL, "overlay layout is invalid (bitmap at %llu, %llu bytes, data at %llu)",
			       (unsigned long long)out->bitmap_off, (unsigned long long)out->bitmap_len,
			       (unsigned long long)out->data_off);
	uint64_t need = out->data_off + ovl_clusters(out->size) * OVL_CLUSTER;
	if (file_size < need)
		return err_set(EINVAL, "overlay file is truncated (%llu bytes, needs %llu)",
			       (unsigned long long)file_size, (unsigned long long)need);
	return 0;
}

int ovl_bitmap_check(const struct ovl_header *h, const uint8_t *bitmap, size_t len)
{
	uint64_t n = ovl_clusters(h->size);

	if (len != h->bitmap_len)
		return err_set(EINVAL, "overlay bitmap is %zu bytes, not %llu", len,
			       (unsigned long long)h->bitmap_len);
	if (n % 8 && (bitmap[n / 8] >> (n % 8)))
		return err_set(EINVAL, "overlay bitmap marks clusters past the end of the disk");
	for (uint64_t i = (n + 7) / 8; i < len; i++)
		if (bitmap[i])
			return err_set(EINVAL, "overlay bitmap marks clusters past the end of the disk");
	return 0;
}

/* ---- opening ---- */

static int full_pread(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/* fsync the directory holding path, so a new name survives a power cut. */
static int sync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		ret = -errno;
	if (dfd >= 0)
		close(dfd);
	free(copy);
	return ret;
}

/* A new empty file: path with O_EXCL | O_NOFOLLOW, or an unnamed one in tmpdir. */
static int create_file(const char *path, const char *tmpdir)
{
	int fd;

	if (path) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return err_set(errno, "cannot create it: %s", strerror(errno));
		/*
		 * Locked before a byte is written (a clone's copy of a saved layer can
		 * take a while): another VM opening the half-made file finds it locked.
		 */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;
			close(fd);
			return e == EWOULDBLOCK ? err_set(EBUSY, "overlay is locked: another VM opened it as it was made")
						: err_set(e, "cannot lock the overlay: %s", strerror(e));
		}
		return fd;
	}
	fd = open(tmpdir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return err_set(errno, "cannot create a throw-away overlay in %s: %s", tmpdir, strerror(errno));
	/* The file system has no O_TMPFILE: a private name, gone at once. */
	char name[PATH_MAX];
	if ((size_t)snprintf(name, sizeof(name), "%s/.microvm-overlay-XXXXXX", tmpdir) >= sizeof(name))
		return err_set(ENAMETOOLONG, "throw-away overlay: %s: path too long", tmpdir);
	fd = mkostemp(name, O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "cannot create a throw-away overlay in %s: %s", tmpdir, strerror(errno));
	unlink(name);
	return fd;
}

static int alloc_maps(struct overlay *o)
{
	o->clusters = ovl_clusters(o->h.size);
	o->pages = o->h.bitmap_len / PAGE;
	o->bitmap = calloc(1, o->h.bitmap_len);
	o->busy = calloc(1, o->h.bitmap_len);
	o->dirty = calloc(1, o->pages);
	if (!o->bitmap || !o->busy || !o->dirty)
		return err_set(ENOMEM, "out of memory for the allocation bitmap");
	return 0;
}

static int lock_it(int fd)
{
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return err_set(EBUSY, "overlay is locked: another VM has it open");
		return err_set(errno, "cannot lock the overlay: %s", strerror(errno));
	}
	return 0;
}

/* Make fd a new, empty overlay for size bytes: header, sparse length, durable. */
static int format_new(struct overlay *o, uint64_t size, const char *path)
{
	struct ovl_header le;
	uint8_t area[OVL_HEADER_AREA] = { 0 };
	int ret;

	ovl_header_init(&le, size);
	memcpy(area, &le, sizeof(le));
	if ((ret = full_pwrite(o->fd, area, sizeof(area), 0)) < 0 ||
	    (ftruncate(o->fd, (off_t)(le64toh(le.data_off) + ovl_clusters(size) * OVL_CLUSTER)) < 0 &&
	     (ret = -errno)) ||
	    (path && fsync(o->fd) < 0 && (ret = -errno)) || (path && (ret = sync_dir_of(path)) < 0))
		return err_set(-ret, "cannot write the new overlay: %s", strerror(-ret));
	return ovl_header_parse(area, sizeof(area), UINT64_MAX, size, &o->h) ?: alloc_maps(o);
}

/* Read and check the header and bitmap of an existing overlay. */
static int load(struct overlay *o, uint64_t base_size)
{
	uint8_t area[sizeof(struct ovl_header)];
	struct stat st;
	int ret;

	if (fstat(o->fd, &st) < 0)
		return err_set(errno, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(EINVAL, "the overlay is not a regular file");
	int fl = fcntl(o->fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(o->fd, F_SETFL, fl & ~O_NONBLOCK);
	size_t got = (uint64_t)st.st_size < sizeof(area) ? (size_t)st.st_size : sizeof(area);
	if ((ret = full_pread(o->fd, area, got, 0)) < 0)
		return err_set(-ret, "cannot read the overlay header: %s", strerror(-ret));
	if ((ret = ovl_header_parse(area, got, (uint64_t)st.st_size, base_size, &o->h)) < 0 ||
	    (ret = alloc_maps(o)) < 0)
		return ret;
	if ((ret = full_pread(o->fd, o->bitmap, o->h.bitmap_len, (off_t)o->h.bitmap_off)) < 0)
		return err_set(-ret, "cannot read the overlay bitmap: %s", strerror(-ret));
	if ((ret = ovl_bitmap_check(&o->h, o->bitmap, o->h.bitmap_len)) < 0)
		return ret;
	for (uint64_t c = 0; c < o->clusters; c++)
		o->allocated += ovl_bit(o->bitmap, c);
	return 0;
}

/* The test hook (OVL_TEST_BITMAP_FIRST_ENV), read when an overlay is opened. */
static void test_hooks(struct overlay *o)
{
#ifdef MICROVM_TEST_HOOKS
	if (getenv(OVL_TEST_BITMAP_FIRST_ENV)) {
		o->test_bitmap_first = true;
		log_warn("TEST ONLY: %s: an overlay FLUSH writes the bitmap before its data is durable",
			 OVL_TEST_BITMAP_FIRST_ENV);
	}
#else
	(void)o;
#endif
}

int overlay_open(struct overlay **out, const char *path, const char *tmpdir, uint64_t base_size,
		 bool must_create, bool *created)
{
	struct overlay *o;
	int ret;

	*out = NULL;
	*created = false;
	if (base_size == 0 || base_size % 512 || base_size > OVL_MAX_SIZE)
		return err_set(EINVAL, "the base's size %llu cannot have an overlay (at most %llu bytes)",
			       (unsigned long long)base_size, (unsigned long long)OVL_MAX_SIZE);
	if (!(o = calloc(1, sizeof(*o))))
		return err_set(ENOMEM, "out of memory");
	o->fd = -1;
	/*
	 * An existing overlay is the user's own file: a regular file (checked
	 * before the open too: no device node is ever opened, some act on open),
	 * owned by this user or root and writable by no one else, as a snapshot
	 * directory must be. Another user's file planted under the name would
	 * otherwise choose what the guest reads and read what it writes.
	 */
	struct stat ls;
	bool exists = path && !must_create && lstat(path, &ls) == 0;
	if (exists && !S_ISREG(ls.st_mode) && !S_ISLNK(ls.st_mode)) {
		ret = err_set(EINVAL, "the overlay is not a regular file");
		goto fail;
	}
	if (exists && S_ISREG(ls.st_mode) &&
	    ((ls.st_uid != geteuid() && ls.st_uid != 0) || (ls.st_mode & (S_IWGRP | S_IWOTH)))) {
		ret = err_set(EPERM, "refused: an existing overlay must belong to you or root and be writable by "
			      "no one else (uid %u, mode %04o)", (unsigned)ls.st_uid, (unsigned)(ls.st_mode & 07777));
		goto fail;
	}
	if (path && !must_create)   /* O_NONBLOCK: a FIFO in its place must not hang us (load() refuses it) */
		o->fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat fs;
	if (o->fd >= 0 && (!exists || fstat(o->fd, &fs) < 0 || fs.st_ino != ls.st_ino || fs.st_dev != ls.st_dev)) {
		ret = err_set(EAGAIN, "the overlay was replaced while it was opened; try again");
		goto fail;
	}
	bool tried = path && !must_create;
	if (tried && o->fd < 0 && errno == ELOOP) {
		ret = err_set(ELOOP, "the overlay is a symbolic link (refused)");
		goto fail;
	}
	if (tried && o->fd < 0 && errno != ENOENT) {
		ret = err_set(errno, "%s", strerror(errno));
		goto fail;
	}
	if (o->fd < 0) {
		if ((o->fd = create_file(path, tmpdir)) < 0) {
			ret = o->fd;
			goto fail;
		}
		*created = true;
		if ((ret = lock_it(o->fd)) < 0 || (ret = format_new(o, base_size, path)) < 0)
			goto fail;
	} else if ((ret = lock_it(o->fd)) < 0 || (ret = load(o, base_size)) < 0) {
		goto fail;
	}
	test_hooks(o);
	*out = o;
	return 0;
fail:
	if (*created && path)
		unlink(path);
	*created = false;
	overlay_close(o);
	return ret;
}

/* Copy [from, to) of src_fd into dst_fd at the same offsets by reading and writing. */
static int copy_plain(int src_fd, int dst_fd, uint64_t from, uint64_t to)
{
	size_t cap = 1u << 20;
	uint8_t *buf = malloc(cap);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	while (from < to && ret == 0) {
		size_t n = to - from < cap ? (size_t)(to - from) : cap;
		if ((ret = full_pread(src_fd, buf, n, (off_t)from)) == 0)
			ret = full_pwrite(dst_fd, buf, n, (off_t)from);
		from += n;
	}
	free(buf);
	return ret;
}

/*
 * Copy src_fd's data extents into dst_fd (same offsets), leaving holes as
 * holes: copy_file_range (which may share blocks), or reads and writes where
 * the kernel cannot copy between the two (another file system: EXDEV).
 */
static int copy_sparse(int src_fd, int dst_fd, uint64_t len)
{
	off_t pos = 0;

	if (ftruncate(dst_fd, (off_t)len) < 0)
		return -errno;
	while ((uint64_t)pos < len) {
		off_t data = lseek(src_fd, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			return -errno;
		off_t hole = lseek(src_fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > len)
			hole = (off_t)len;
		loff_t in = data, outp = data;
		while (in < hole) {
			ssize_t n = copy_file_range(src_fd, &in, dst_fd, &outp, (size_t)(hole - in), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EXDEV || errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) {
				int r = copy_plain(src_fd, dst_fd, (uint64_t)in, (uint64_t)hole);
				if (r < 0)
					return r;
				break;
			}
			if (n < 0)
				return -errno;
			if (n == 0)
				return -EIO;
		}
		pos = hole;
	}
	return 0;
}

int overlay_open_copy(struct overlay **out, const char *path, const char *tmpdir, int src_fd,
		      uint64_t base_size)
{
	struct overlay saved = { .fd = src_fd };
	struct stat st;
	int ret, fd;

	*out = NULL;
	/* The saved layer must itself be a valid overlay for this base. */
	ret = load(&saved, base_size);
	free(saved.bitmap);
	free(saved.busy);
	free(saved.dirty);
	if (ret < 0)
		return err_prefix(-ret, "the snapshot's saved overlay");
	if (fstat(src_fd, &st) < 0)
		return err_set(errno, "the snapshot's saved overlay: %s", strerror(errno));
	/* path must not exist (O_EXCL); NULL: a throw-away file in tmpdir. */
	if ((fd = create_file(path, tmpdir)) < 0)
		return fd;
	ret = copy_sparse(src_fd, fd, (uint64_t)st.st_size);
	if (ret == 0 && path && fsync(fd) < 0)
		ret = -errno;
	if (ret == 0 && path)
		ret = sync_dir_of(path);
	if (ret < 0) {
		close(fd);
		if (path)
			unlink(path);
		return err_set(-ret, "cannot copy the snapshot's saved overlay: %s", strerror(-ret));
	}
	struct overlay *o = calloc(1, sizeof(*o));
	if (!o) {
		close(fd);
		if (path)
			unlink(path);
		return err_set(ENOMEM, "out of memory");
	}
	o->fd = fd;
	if ((ret = lock_it(fd)) < 0 || (ret = load(o, base_size)) < 0) {
		overlay_close(o);
		if (path)
			unlink(path);
		return ret;
	}
	test_hooks(o);
	*out = o;
	return 0;
}

int overlay_fd(const struct overlay *o)
{
	return o->fd;
}

uint64_t overlay_allocated(const struct overlay *o)
{
	return o->allocated;
}

void overlay_attach(struct overlay *o, struct io_loop *loop, int base_file, int ovl_file)
{
	o->loop = loop;
	o->base_file = base_file;
	o->ovl_file = ovl_file;
}

int overlay_sync(struct overlay *o)
{
	int ret = 0;

	if (fdatasync(o->fd) < 0)
		return err_set(errno, "fdatasync: %s", strerror(errno));
	bool any = false;
	for (uint64_t p = 0; p < o->pages; p++) {
		if (!o->dirty[p])
			continue;
		if ((ret = full_pwrite(o->fd, o->bitmap + p * PAGE, PAGE, (off_t)(o->h.bitmap_off + p * PAGE))) < 0)
			return err_set(-ret, "writing the allocation bitmap: %s", strerror(-ret));
		o->dirty[p] = 0;
		any = true;
	}
	if (any && fdatasync(o->fd) < 0)
		return err_set(errno, "fdatasync: %s", strerror(errno));
	return 0;
}

int overlay_save(const struct overlay *o, int dst_fd)
{
	struct stat st;
	int ret;

	if (fstat(o->fd, &st) < 0)
		return err_set(errno, "%s", strerror(errno));
	if ((ret = copy_sparse(o->fd, dst_fd, (uint64_t)st.st_size)) < 0 || (fsync(dst_fd) < 0 && (ret = -errno)))
		return err_set(-ret, "copying the overlay: %s", strerror(-ret));
	return 0;
}

void overlay_close(struct overlay *o)
{
	if (!o)
		return;
	if (o->fd >= 0)
		close(o->fd);
	free(o->bitmap);
	free(o->busy);
	free(o->dirty);
	free(o);
}
