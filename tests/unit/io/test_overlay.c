/* test_overlay.c - copy-on-write overlays on the real I/O loop (both engines): read-through, COW fills, runs, flush and reopen, every refused header. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <zlib.h>

#include "base/err.h"
#include "io/ioloop.h"
#include "io/overlay.h"

#define CL OVL_CLUSTER
#define NCL 16
#define BASE_SIZE (NCL * CL)
#define MAXREQ 16

struct t {
	char dir[64];
	char base_path[128], ovl_path[128];
	int base_fd;
	uint64_t base_size;
	struct io_loop *loop;
	struct overlay *ovl;
	enum io_engine engine;
	struct io_request req[MAXREQ];
	struct iovec iov[MAXREQ][3];
	int64_t res[MAXREQ];
	atomic_int done;
	int nreq;
	int submit_ret;
};

static uint8_t base_byte(uint64_t off)
{
	return (uint8_t)(off * 7 / 512 + 1);
}

static void make_base(struct t *t, uint64_t size)
{
	uint8_t *b = malloc(size);

	for (uint64_t i = 0; i < size; i++)
		b[i] = base_byte(i);
	snprintf(t->base_path, sizeof(t->base_path), "%s/base", t->dir);
	int fd = open(t->base_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, b, size, 0), (ssize_t)size);
	close(fd);
	free(b);
	t->base_size = size;
	t->base_fd = open(t->base_path, O_RDONLY);
	cr_assert_geq(t->base_fd, 0);
}

static void new_dir(struct t *t)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->dir, "/tmp/microvm-ovl-XXXXXX");
	cr_assert_not_null(mkdtemp(t->dir));
	snprintf(t->ovl_path, sizeof(t->ovl_path), "%s/ovl", t->dir);
}

/* Open the overlay at t->ovl_path and start a loop on it; false: io_uring unavailable. */
static bool start(struct t *t, enum io_engine e)
{
	bool created;

	t->engine = e;
	cr_assert_eq(overlay_open(&t->ovl, t->ovl_path, NULL, t->base_size, false, &created), 0, "%s", err_msg());
	int ret = io_loop_create(&t->loop, e);
	if (ret < 0 && e == IO_ENGINE_URING) {
		overlay_close(t->ovl);
		return false;
	}
	cr_assert_eq(ret, 0, "%s", err_msg());
	int bf = io_loop_register_file(t->loop, t->base_fd);
	int of = io_loop_register_file(t->loop, overlay_fd(t->ovl));
	cr_assert_geq(bf, 0);
	cr_assert_geq(of, 0);
	overlay_attach(t->ovl, t->loop, bf, of);
	cr_assert_eq(io_loop_start(t->loop), 0, "%s", err_msg());
	return true;
}

static void stop(struct t *t)
{
	io_loop_destroy(t->loop);
	t->loop = NULL;
	overlay_close(t->ovl);
	t->ovl = NULL;
}

static void cleanup(struct t *t)
{
	close(t->base_fd);
	unlink(t->base_path);
	unlink(t->ovl_path);
	rmdir(t->dir);
}

static void on_done(struct io_request *r, int64_t res)
{
	struct t *t = r->priv;

	t->res[r - t->req] = res;
	atomic_fetch_add(&t->done, 1);
}

static void submit_all(void *arg)
{
	struct t *t = arg;

	for (int i = 0; i < t->nreq && !t->submit_ret; i++)
		t->submit_ret = overlay_submit(t->ovl, &t->req[i]);
}

/* Queue request i (not yet submitted). Buffers are split in up to three iovecs of odd sizes. */
static void prep(struct t *t, int i, enum io_op op, void *buf, uint64_t len, uint64_t off)
{
	uint64_t a = len / 3 / 512 * 512, b = len / 2 - a / 2;
	bool rw = op == IO_OP_READ || op == IO_OP_WRITE;

	t->req[i] = (struct io_request){ .op = op, .offset = off, .len = rw ? 0 : len, .done = on_done, .priv = t };
	t->nreq = i + 1;
	if (!rw)
		return;
	if (b < a)
		b = a;
	if (a + b > len)
		a = b = 0;
	t->iov[i][0] = (struct iovec){ .iov_base = buf, .iov_len = a };
	t->iov[i][1] = (struct iovec){ .iov_base = (uint8_t *)buf + a, .iov_len = b };
	t->iov[i][2] = (struct iovec){ .iov_base = (uint8_t *)buf + a + b, .iov_len = len - a - b };
	t->req[i].iov = t->iov[i];
	t->req[i].iovcnt = 3;
}

/* Submit the prepared requests together on the I/O thread and wait for all. */
static void run(struct t *t)
{
	atomic_store(&t->done, 0);
	t->submit_ret = 0;
	cr_assert_eq(io_loop_call(t->loop, submit_all, t), 0);
	cr_assert_eq(t->submit_ret, 0);
	for (int i = 0; i < 10000 && atomic_load(&t->done) < t->nreq; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&t->done), t->nreq);
}

static int64_t io1(struct t *t, enum io_op op, void *buf, uint64_t len, uint64_t off)
{
	prep(t, 0, op, buf, len, off);
	run(t);
	return t->res[0];
}

/* The virtual disk as the test expects it. */
static uint8_t model[BASE_SIZE + CL];

static void model_reset(uint64_t size)
{
	for (uint64_t i = 0; i < size; i++)
		model[i] = base_byte(i);
}

/* A fresh base of BASE_SIZE with its model and a new overlay, served by engine e; skips where io_uring is not. */
static void start_fresh(struct t *t, enum io_engine e)
{
	make_base(t, BASE_SIZE);
	model_reset(BASE_SIZE);
	if (!start(t, e)) {
		cleanup(t);
		cr_skip_test("io_uring unavailable here");
	}
}

static void check_disk(struct t *t)
{
	static uint8_t buf[BASE_SIZE + CL];

	memset(buf, 0xee, sizeof(buf));
	cr_assert_eq(io1(t, IO_OP_READ, buf, t->base_size, 0), (int64_t)t->base_size);
	for (uint64_t i = 0; i < t->base_size; i++)
		cr_assert_eq(buf[i], model[i], "%s: byte %llu is %u, expected %u", io_engine_name(t->engine),
			     (unsigned long long)i, buf[i], model[i]);
}

static void check_base_untouched(struct t *t)
{
	uint8_t b[512];

	for (uint64_t off = 0; off < t->base_size; off += sizeof(b)) {
		cr_assert_eq(pread(t->base_fd, b, sizeof(b), (off_t)off), (ssize_t)sizeof(b));
		for (size_t i = 0; i < sizeof(b); i++)
			cr_assert_eq(b[i], base_byte(off + i));
	}
}

static void write_pattern(struct t *t, uint8_t v, uint64_t off, uint64_t len)
{
	uint8_t *b = malloc(len);

	memset(b, v, len);
	cr_assert_eq(io1(t, IO_OP_WRITE, b, len, off), (int64_t)len);
	memset(model + off, v, len);
	free(b);
}

static struct ovl_header file_header(const char *path)
{
	struct ovl_header h;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(fd);
	return h;
}

static void test_rw(enum io_engine e)
{
	struct t t;

	new_dir(&t);
	start_fresh(&t, e);
	check_disk(&t);                                 /* read-through from the base */
	cr_assert_eq(overlay_allocated(t.ovl), 0);
	write_pattern(&t, 0xa1, 2 * CL, CL);            /* one whole cluster */
	write_pattern(&t, 0xb2, 5 * CL + 1024, 512);    /* part of one: COW fill */
	write_pattern(&t, 0xc3, 7 * CL - 512, 1024);    /* the end of 6, the start of 7 */
	write_pattern(&t, 0xd4, 9 * CL + 512, 3 * CL);  /* 9..12, partial at both ends */
	cr_assert_eq(overlay_allocated(t.ovl), 1 + 1 + 2 + 4);
	check_disk(&t);                                 /* runs of overlay and base in one read */
	/* Reads spanning runs at odd offsets. */
	static uint8_t buf[6 * CL];
	cr_assert_eq(io1(&t, IO_OP_READ, buf, 6 * CL - 1024, 4 * CL + 512), (int64_t)(6 * CL - 1024));
	cr_assert_eq(memcmp(buf, model + 4 * CL + 512, 6 * CL - 1024), 0);
	/* Rewriting an allocated cluster in part goes straight to the overlay. */
	write_pattern(&t, 0xe5, 5 * CL, 512);
	check_disk(&t);
	/* The COW fill is in the overlay file: the cluster's bytes at data_off + 5 * CL. */
	struct ovl_header h = file_header(t.ovl_path);
	uint8_t cl[CL];
	cr_assert_eq(pread(overlay_fd(t.ovl), cl, CL, (off_t)(le64toh(h.data_off) + 5 * CL)), (ssize_t)CL);
	cr_assert_eq(memcmp(cl, model + 5 * CL, CL), 0);
	check_base_untouched(&t);
	stop(&t);
	cleanup(&t);
}

Test(overlay_sync, read_write_cow) { test_rw(IO_ENGINE_SYNC); }
Test(overlay_uring, read_write_cow) { test_rw(IO_ENGINE_URING); }

static void test_flush_reopen(enum io_engine e)
{
	struct t t;
	uint8_t zero[CL * 2];

	new_dir(&t);
	start_fresh(&t, e);
	write_pattern(&t, 0x11, 3 * CL + 512, 512);
	write_pattern(&t, 0x22, 15 * CL, CL);
	cr_assert_eq(io1(&t, IO_OP_FLUSH, NULL, 0, 0), 0);
	/* Written but not flushed: its bit is not in the file yet. */
	write_pattern(&t, 0x33, 8 * CL, CL);
	/* The bitmap on disk holds exactly the flushed clusters. */
	struct ovl_header h = file_header(t.ovl_path);
	uint8_t bm[2];
	cr_assert_eq(pread(overlay_fd(t.ovl), bm, 2, (off_t)le64toh(h.bitmap_off)), 2);
	cr_assert_eq(bm[0], 1u << 3);
	cr_assert_eq(bm[1], 1u << 7);
	/* Zeroing: a partial unallocated range and a whole allocated cluster read as zeroes. */
	memset(zero, 0, sizeof(zero));
	cr_assert_eq(io1(&t, IO_OP_WRITE_ZEROES, NULL, 1024, 10 * CL + 512), 0);
	memset(model + 10 * CL + 512, 0, 1024);
	cr_assert_eq(io1(&t, IO_OP_DISCARD, NULL, CL, 15 * CL), 0);
	memset(model + 15 * CL, 0, CL);
	check_disk(&t);
	cr_assert_eq(io1(&t, IO_OP_FLUSH, NULL, 0, 0), 0);
	stop(&t);
	/* Reopened: every flushed cluster is there, read back through a new loop. */
	cr_assert(start(&t, e));
	cr_assert_eq(overlay_allocated(t.ovl), 4);
	check_disk(&t);
	check_base_untouched(&t);
	stop(&t);
	cleanup(&t);
}

Test(overlay_sync, flush_and_reopen) { test_flush_reopen(IO_ENGINE_SYNC); }
Test(overlay_uring, flush_and_reopen) { test_flush_reopen(IO_ENGINE_URING); }

/* Writes to the 8 sectors of one unallocated cluster, all in flight together: none is lost to another's COW fill. */
static void test_concurrent(enum io_engine e)
{
	struct t t;
	static uint8_t bufs[MAXREQ][512];

	new_dir(&t);
	start_fresh(&t, e);
	for (int round = 0; round < 4; round++) {
		uint64_t c = 1 + (uint64_t)round * 3;
		for (int i = 0; i < 8; i++) {
			int s = (i * 3 + round) % 8;    /* a different order each round */
			memset(bufs[i], 0x40 + round * 8 + s, 512);
			memcpy(model + c * CL + (uint64_t)s * 512, bufs[i], 512);
			prep(&t, i, IO_OP_WRITE, bufs[i], 512, c * CL + (uint64_t)s * 512);
		}
		/* And one read of the cluster in the middle of them. */
		static uint8_t rd[CL];
		prep(&t, 8, IO_OP_READ, rd, CL, c * CL);
		run(&t);
		for (int i = 0; i < 8; i++)
			cr_assert_eq(t.res[i], 512);
		cr_assert_eq(t.res[8], CL);
	}
	check_disk(&t);
	cr_assert_eq(overlay_allocated(t.ovl), 4);
	stop(&t);
	cleanup(&t);
}

Test(overlay_sync, concurrent_writes_one_cluster) { test_concurrent(IO_ENGINE_SYNC); }
Test(overlay_uring, concurrent_writes_one_cluster) { test_concurrent(IO_ENGINE_URING); }

/* A base whose size is not a whole number of clusters: the last one is partial. */
Test(overlay_sync, partial_last_cluster)
{
	struct t t;
	uint64_t size = 3 * CL + 1536;

	new_dir(&t);
	make_base(&t, size);
	model_reset(size);
	cr_assert(start(&t, IO_ENGINE_SYNC));
	write_pattern(&t, 0x77, 3 * CL + 512, 512);
	check_disk(&t);
	cr_assert_eq(io1(&t, IO_OP_FLUSH, NULL, 0, 0), 0);
	/* Past the end: refused at once. */
	uint8_t b[1024];
	prep(&t, 0, IO_OP_READ, b, 1024, size - 512);
	cr_assert_eq(overlay_submit(t.ovl, &t.req[0]), -EINVAL);
	stop(&t);
	cr_assert(start(&t, IO_ENGINE_SYNC));
	check_disk(&t);
	stop(&t);
	cleanup(&t);
}

/* ---- refused files ---- */

static void expect_refused(struct t *t, const char *what)
{
	struct overlay *o = NULL;
	bool created = true;
	int ret = overlay_open(&o, t->ovl_path, NULL, t->base_size, false, &created);

	cr_assert_lt(ret, 0, "%s: accepted", what);
	cr_assert_null(o);
	cr_assert_not(created);
	cr_assert_neq(err_msg()[0], '\0');
	cr_assert_null(strchr(err_msg(), '\n'), "one line: %s", err_msg());
}

/* Write a header over the overlay file. */
static void put_header(struct t *t, const struct ovl_header *h)
{
	int fd = open(t->ovl_path, O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, h, sizeof(*h), 0), (ssize_t)sizeof(*h));
	close(fd);
}

static void fresh_overlay(struct t *t)
{
	struct overlay *o;
	bool created;

	unlink(t->ovl_path);
	cr_assert_eq(overlay_open(&o, t->ovl_path, NULL, t->base_size, false, &created), 0, "%s", err_msg());
	cr_assert(created);
	overlay_close(o);
}

static void set_crc(struct ovl_header *h)
{
	h->crc = 0;
	h->crc = htole32((uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)h, sizeof(*h)));
}

Test(overlay_file, refused)
{
	struct t t;
	struct ovl_header good, h;

	new_dir(&t);
	make_base(&t, BASE_SIZE);
	fresh_overlay(&t);
	good = file_header(t.ovl_path);
	struct stat st;
	cr_assert_eq(stat(t.ovl_path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq((uint64_t)st.st_size, le64toh(good.data_off) + BASE_SIZE);
	cr_assert_lt((uint64_t)st.st_blocks * 512, (uint64_t)st.st_size, "created sparse");

#define CASE(what, stmt, fix)                                                     \
	do {                                                                      \
		fresh_overlay(&t);                                                \
		h = good;                                                         \
		stmt;                                                             \
		if (fix)                                                          \
			set_crc(&h);                                              \
		put_header(&t, &h);                                               \
		expect_refused(&t, what);                                         \
	} while (0)
	CASE("magic", h.magic[0] = 'X', true);
	CASE("crc", h.crc ^= 1, false);
	CASE("size without crc", h.size = htole64(BASE_SIZE * 2), false);
	CASE("version", h.version = htole32(2), true);
	CASE("header size", h.header_size = htole32(64), true);
	CASE("cluster size", h.cluster_size = htole32(8192), true);
	CASE("flags", h.flags = htole32(1), true);
	CASE("reserved", h.reserved[3] = 1, true);
	CASE("size vs base", h.size = htole64(BASE_SIZE - 512), true);
	CASE("size not sectors", h.size = htole64(BASE_SIZE + 1), true);
	CASE("bitmap offset", h.bitmap_off = htole64(0), true);
	CASE("bitmap length", h.bitmap_len = htole64(0), true);
	CASE("data offset", h.data_off = htole64(4096), true);
#undef CASE
	/* Truncated: header only part there, and the data area short. */
	fresh_overlay(&t);
	cr_assert_eq(truncate(t.ovl_path, 100), 0);
	expect_refused(&t, "truncated header");
	fresh_overlay(&t);
	cr_assert_eq(truncate(t.ovl_path, (off_t)(le64toh(good.data_off) + BASE_SIZE - 512)), 0);
	expect_refused(&t, "truncated data");
	cr_assert_eq(truncate(t.ovl_path, 0), 0);
	expect_refused(&t, "empty");
	/* A bit past the end of the disk. */
	fresh_overlay(&t);
	int fd = open(t.ovl_path, O_WRONLY);
	uint8_t past = 1u << (NCL % 8);
	cr_assert_eq(pwrite(fd, &past, 1, (off_t)(le64toh(good.bitmap_off) + NCL / 8)), 1);
	close(fd);
	expect_refused(&t, "bitmap bit past the end");
	/* A base of another size. */
	fresh_overlay(&t);
	t.base_size = BASE_SIZE + CL;
	expect_refused(&t, "base size mismatch");
	cr_assert(strstr(err_msg(), "base"), "%s", err_msg());
	t.base_size = BASE_SIZE;
	/* A symlink to a good overlay, and a directory. */
	char link[160];
	snprintf(link, sizeof(link), "%s/link", t.dir);
	fresh_overlay(&t);
	cr_assert_eq(symlink(t.ovl_path, link), 0);
	char keep[128];
	strcpy(keep, t.ovl_path);
	strcpy(t.ovl_path, link);
	expect_refused(&t, "symlink");
	cr_assert(strstr(err_msg(), "symbolic link"), "%s", err_msg());
	unlink(link);
	cr_assert_eq(mkdir(link, 0700), 0);
	expect_refused(&t, "directory");
	rmdir(link);
	cr_assert_eq(mkfifo(link, 0600), 0);
	expect_refused(&t, "fifo (and no hang)");
	cr_assert(strstr(err_msg(), "not a regular file"), "%s", err_msg());
	unlink(link);
	strcpy(t.ovl_path, keep);
	/* Locked by another holder. */
	fresh_overlay(&t);
	struct overlay *o1;
	bool created;
	cr_assert_eq(overlay_open(&o1, t.ovl_path, NULL, t.base_size, false, &created), 0);
	cr_assert_not(created);
	expect_refused(&t, "locked");
	overlay_close(o1);
	/* must_create: an existing overlay is not taken as it is. */
	cr_assert_eq(overlay_open(&o1, t.ovl_path, NULL, t.base_size, true, &created), -EEXIST);
	cr_assert_not(created);
	/* Someone else's file under the name, or one others may write: refused before its header is read. */
	fresh_overlay(&t);
	cr_assert_eq(chmod(t.ovl_path, 0620), 0);
	expect_refused(&t, "group-writable");
	cr_assert(strstr(err_msg(), "writable by no one else"), "%s", err_msg());
	cr_assert_eq(chmod(t.ovl_path, 0600), 0);
	if (geteuid() == 0) {
		cr_assert_eq(chown(t.ovl_path, 65534, 65534), 0);
		expect_refused(&t, "another user's");
		cr_assert(strstr(err_msg(), "belong to you or root"), "%s", err_msg());
		cr_assert_eq(chown(t.ovl_path, 0, 0), 0);
	}
	/* A device node is never opened. */
	strcpy(keep, t.ovl_path);
	strcpy(t.ovl_path, "/dev/null");
	expect_refused(&t, "device node");
	cr_assert(strstr(err_msg(), "not a regular file"), "%s", err_msg());
	strcpy(t.ovl_path, keep);
	cleanup(&t);
}

/* Saving a layer to another file system (no copy_file_range there: EXDEV) reads and writes instead. */
Test(overlay_file, save_across_file_systems)
{
	struct t t;
	struct overlay *o;
	struct statfs a, b;

	new_dir(&t);
	make_base(&t, BASE_SIZE);
	model_reset(BASE_SIZE);
	cr_assert(start(&t, IO_ENGINE_SYNC));
	write_pattern(&t, 0x3c, 2 * CL + 512, 1024);
	cr_assert_eq(io1(&t, IO_OP_FLUSH, NULL, 0, 0), 0);
	char saved[] = "/dev/shm/microvm-test-layer-XXXXXX";
	int sfd = mkstemp(saved);
	cr_assert_geq(sfd, 0);
	unlink(saved);
	cr_assert_eq(fstatfs(sfd, &a), 0);
	cr_assert_eq(statfs(t.dir, &b), 0);
	if (a.f_type == b.f_type)
		cr_log_warn("/dev/shm and %s are the same kind of file system: the EXDEV path is not reached", t.dir);
	cr_assert_eq(overlay_save(t.ovl, sfd), 0, "%s", err_msg());
	stop(&t);
	char copy[160];
	snprintf(copy, sizeof(copy), "%s/copy", t.dir);
	cr_assert_eq(overlay_open_copy(&o, copy, NULL, sfd, t.base_size), 0, "%s", err_msg());
	cr_assert_eq(overlay_allocated(o), 1);
	overlay_close(o);
	close(sfd);
	strcpy(t.ovl_path, copy);
	cr_assert(start(&t, IO_ENGINE_SYNC));
	check_disk(&t);
	stop(&t);
	unlink(copy);
	snprintf(t.ovl_path, sizeof(t.ovl_path), "%s/ovl", t.dir);
	cleanup(&t);
}

/* A throw-away overlay leaves nothing in its directory; a copy starts from the saved layer. */
Test(overlay_file, throwaway_and_copy)
{
	struct t t;
	struct overlay *o;
	bool created;

	new_dir(&t);
	make_base(&t, BASE_SIZE);
	model_reset(BASE_SIZE);
	cr_assert_eq(overlay_open(&o, NULL, t.dir, t.base_size, false, &created), 0, "%s", err_msg());
	cr_assert(created);
	struct stat st;
	cr_assert_eq(fstat(overlay_fd(o), &st), 0);
	cr_assert_eq(st.st_nlink, 0, "the throw-away overlay has no name");
	overlay_close(o);
	/* A persistent overlay with data, saved and copied twice. */
	cr_assert(start(&t, IO_ENGINE_SYNC));
	write_pattern(&t, 0x5a, 4 * CL + 512, 2048);
	cr_assert_eq(io1(&t, IO_OP_FLUSH, NULL, 0, 0), 0);
	char saved[160], copy[160];
	snprintf(saved, sizeof(saved), "%s/saved", t.dir);
	snprintf(copy, sizeof(copy), "%s/copy", t.dir);
	int sfd = open(saved, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(sfd, 0);
	cr_assert_eq(overlay_save(t.ovl, sfd), 0, "%s", err_msg());
	stop(&t);
	struct stat a, b;
	cr_assert_eq(stat(t.ovl_path, &a), 0);
	cr_assert_eq(fstat(sfd, &b), 0);
	cr_assert_eq(a.st_size, b.st_size);
	cr_assert_lt((uint64_t)b.st_blocks * 512, (uint64_t)b.st_size, "the saved layer stays sparse");
	cr_assert_eq(overlay_open_copy(&o, copy, NULL, sfd, t.base_size), 0, "%s", err_msg());
	cr_assert_eq(overlay_allocated(o), 1);
	overlay_close(o);
	cr_assert_lt(overlay_open_copy(&o, copy, NULL, sfd, t.base_size), 0, "the new overlay must not exist");
	cr_assert_lt(overlay_open_copy(&o, NULL, t.dir, sfd, t.base_size + CL), 0, "base size checked");
	cr_assert(strstr(err_msg(), "saved overlay"), "%s", err_msg());
	cr_assert_eq(overlay_open_copy(&o, NULL, t.dir, sfd, t.base_size), 0, "%s", err_msg());
	overlay_close(o);
	close(sfd);
	/* The copy reads as the original did. */
	strcpy(t.ovl_path, copy);
	cr_assert(start(&t, IO_ENGINE_SYNC));
	check_disk(&t);
	stop(&t);
	unlink(saved);
	unlink(copy);
	snprintf(t.ovl_path, sizeof(t.ovl_path), "%s/ovl", t.dir);
	cleanup(&t);
	cr_assert_eq(rmdir(t.dir) == 0 || errno == ENOENT, 1);
}
