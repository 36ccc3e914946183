/* test_blk.c - virtio-blk: config space, request parsing on hand-built chains, the device on a hand-built ring. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/resource.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include "devices/virtio/blk.h"
#include "base/err.h"
#include "io/ioloop.h"

#define SECTORS 64

static const struct blk_disk rw_disk = { .sectors = SECTORS, .ro = false, .id = "disk-one" };
static const struct blk_disk ro_disk = { .sectors = SECTORS, .ro = true, .id = "disk-ro" };

/* ---- chains built by hand (no ring needed for parsing) ---- */

static void add(struct virtq_chain *c, void *p, uint32_t len, bool w)
{
	c->buf[c->n++] = (struct virtq_buf){ .host = p, .len = len, .device_writable = w };
	if (w)
		c->writable_len += len;
	else
		c->readable_len += len;
}

static struct virtio_blk_outhdr hdr(uint32_t type, uint64_t sector)
{
	return (struct virtio_blk_outhdr){ .type = type, .sector = sector };
}

static uint8_t data[8192];
static uint8_t status;
static struct iovec iov[VIRTQ_MAX_SIZE];

Test(blk, features_and_config)
{
	struct virtio_blk_config cfg;
	uint64_t f = blk_features(&rw_disk);

	cr_assert(f & (1ULL << VIRTIO_BLK_F_FLUSH));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_SEG_MAX));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_SIZE_MAX));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_DISCARD));
	cr_assert(f & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	cr_assert_not(f & (1ULL << VIRTIO_BLK_F_RO));
	f = blk_features(&ro_disk);
	cr_assert(f & (1ULL << VIRTIO_BLK_F_RO));
	cr_assert_not(f & (1ULL << VIRTIO_BLK_F_DISCARD));

	blk_config_fill(&rw_disk, &cfg);
	cr_assert_eq(cfg.capacity, SECTORS);
	cr_assert_eq(cfg.blk_size, 512);
	cr_assert_eq(cfg.seg_max, BLK_SEG_MAX);
	cr_assert_eq(cfg.size_max, BLK_SIZE_MAX);
	cr_assert_eq(cfg.max_discard_seg, 1);
	cr_assert_gt(cfg.max_discard_sectors, 0);
	cr_assert_eq(cfg.max_write_zeroes_seg, 1);
	cr_assert_eq(cfg.write_zeroes_may_unmap, 1);
	cr_assert_eq(offsetof(struct virtio_blk_config, blk_size), 20);
	cr_assert_eq(offsetof(struct virtio_blk_config, max_discard_sectors), 36);
	cr_assert_eq(offsetof(struct virtio_blk_config, write_zeroes_may_unmap), 56);
}

Test(blk_parse, read)
{
	struct virtq_chain c = { 0 };
	struct virtio_blk_outhdr h = hdr(VIRTIO_BLK_T_IN, 3);
	struct blk_parsed p;

	add(&c, &h, sizeof(h), false);
	add(&c, data, 512, true);
	add(&c, data + 512, 512, true);
	add(&c, &status, 1, true);
	blk_parse(&rw_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_eq(p.status, VIRTIO_BLK_S_OK);
	cr_assert_eq(p.status_ptr, &status);
	cr_assert(p.needs_io);
	cr_assert_eq(p.op, IO_OP_READ);
	cr_assert_eq(p.offset, 3 * 512);
	cr_assert_eq(p.len, 1024);
	cr_assert_eq(p.iovcnt, 2);
	cr_assert_eq(iov[0].iov_base, data);
	cr_assert_eq(iov[1].iov_base, data + 512);
	cr_assert_eq(p.written, 1025);
}

Test(blk_parse, any_framing)
{
	/* Header and data in one readable buffer; data and status in one writable buffer. */
	struct virtq_chain c = { 0 };
	struct virtio_blk_outhdr h = hdr(VIRTIO_BLK_T_OUT, SECTORS - 1);
	struct blk_parsed p;
	uint8_t buf[16 + 512];

	memcpy(buf, &h, sizeof(h));
	add(&c, buf, sizeof(buf), false);
	add(&c, &status, 1, true);
	blk_parse(&rw_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_eq(p.status, VIRTIO_BLK_S_OK);
	cr_assert_eq(p.op, IO_OP_WRITE);
	cr_assert_eq(p.iovcnt, 1);
	cr_assert_eq(iov[0].iov_base, buf + 16);
	cr_assert_eq(iov[0].iov_len, 512);
	cr_assert_eq(p.written, 1);

	memset(&c, 0, sizeof(c));
	h = hdr(VIRTIO_BLK_T_IN, 0);
	add(&c, &h, sizeof(h), false);
	add(&c, data, 513, true);
	blk_parse(&rw_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_eq(p.status, VIRTIO_BLK_S_OK);
	cr_assert_eq(p.status_ptr, data + 512);
	cr_assert_eq(p.len, 512);
	cr_assert_eq(iov[0].iov_len, 512);
}

static uint8_t parse_status(const struct blk_disk *d, uint32_t type, uint64_t sector, uint32_t dlen,
			    bool data_writable)
{
	struct virtq_chain c = { 0 };
	struct virtio_blk_outhdr h = hdr(type, sector);
	struct blk_parsed p;

	add(&c, &h, sizeof(h), false);
	if (dlen)
		add(&c, data, dlen, data_writable);
	add(&c, &status, 1, true);
	blk_parse(d, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_eq(p.status_ptr, &status);
	return p.status;
}

Test(blk_parse, bounds)
{
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_IN, SECTORS - 2, 1024, true), VIRTIO_BLK_S_OK);
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_IN, SECTORS - 1, 1024, true), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_IN, SECTORS, 512, true), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_IN, UINT64_MAX, 512, true), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_OUT, UINT64_MAX - 1, 1024, false),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_OUT, 1ULL << 55, 512, false), VIRTIO_BLK_S_IOERR);
	/* Lengths that are not whole sectors. */
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_IN, 0, 511, true), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_OUT, 0, 700, false), VIRTIO_BLK_S_IOERR);
	/* Zero-length transfer inside the disk: nothing to do. */
	cr_assert_eq(parse_status(&rw_disk, VIRTIO_BLK_T_IN, 0, 0, true), VIRTIO_BLK_S_OK);
}

Test(blk_parse, read_only_and_unknown)
{
	cr_assert_eq(parse_status(&ro_disk, VIRTIO_BLK_T_OUT, 0, 512, false), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(parse_status(&ro_disk, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);
	cr_assert_eq(parse_status(&rw_disk, 99, 0, 0, false), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(parse_status(&rw_disk, 0xffffffffu, 0, 0, false), VIRTIO_BLK_S_UNSUPP);
}

Test(blk_parse, missing_header_or_status)
{
	struct virtq_chain c = { 0 };
	struct blk_parsed p;
	uint8_t shorthdr[8] = { 0 };

	add(&c, shorthdr, sizeof(shorthdr), false);
	add(&c, &status, 1, true);
	blk_parse(&rw_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_eq(p.status, VIRTIO_BLK_S_IOERR);
	cr_assert_eq(p.status_ptr, &status);
	cr_assert_not(p.needs_io);

	struct virtio_blk_outhdr h = hdr(VIRTIO_BLK_T_OUT, 0);
	memset(&c, 0, sizeof(c));
	add(&c, &h, sizeof(h), false);
	add(&c, data, 512, false);
	blk_parse(&rw_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_null(p.status_ptr, "no writable byte: no status");
	cr_assert_not(p.needs_io);

	memset(&c, 0, sizeof(c));
	blk_parse(&rw_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_null(p.status_ptr);
}

Test(blk_parse, flush_and_get_id)
{
	struct virtq_chain c = { 0 };
	struct virtio_blk_outhdr h = hdr(VIRTIO_BLK_T_FLUSH, 0);
	struct blk_parsed p;

	add(&c, &h, sizeof(h), false);
	add(&c, &status, 1, true);
	blk_parse(&rw_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_eq(p.status, VIRTIO_BLK_S_OK);
	cr_assert_eq(p.op, IO_OP_FLUSH);
	cr_assert(p.needs_io);
	blk_parse(&ro_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_eq(p.status, VIRTIO_BLK_S_OK);
	cr_assert_not(p.needs_io, "nothing to sync on a read-only image");

	memset(&c, 0, sizeof(c));
	h = hdr(VIRTIO_BLK_T_GET_ID, 0);
	add(&c, &h, sizeof(h), false);
	add(&c, data, 20, true);
	add(&c, &status, 1, true);
	blk_parse(&rw_disk, &c, iov, VIRTQ_MAX_SIZE, &p);
	cr_assert_eq(p.status, VIRTIO_BLK_S_OK);
	cr_assert_not(p.needs_io);
	cr_assert_eq(p.written, 21);
}

static uint8_t seg_status(const struct blk_disk *d, uint32_t type, uint64_t sector, uint32_t n,
			  uint32_t flags, int nseg, struct blk_parsed *p)
{
	struct virtq_chain c = { 0 };
	struct virtio_blk_outhdr h = hdr(type, 0);
	struct virtio_blk_discard_wz seg[2] = {
		{ .sector = sector, .num_sectors = n, .flags = flags },
		{ .sector = sector, .num_sectors = n, .flags = flags },
	};

	add(&c, &h, sizeof(h), false);
	/* The segment split over two buffers. */
	add(&c, seg, 5, false);
	add(&c, (uint8_t *)seg + 5, (uint32_t)(16 * nseg - 5), false);
	add(&c, &status, 1, true);
	blk_parse(d, &c, iov, VIRTQ_MAX_SIZE, p);
	return p->status;
}

Test(blk_parse, discard_and_write_zeroes)
{
	struct blk_parsed p;

	cr_assert_eq(seg_status(&rw_disk, VIRTIO_BLK_T_DISCARD, 8, 8, 0, 1, &p), VIRTIO_BLK_S_OK);
	cr_assert_eq(p.op, IO_OP_DISCARD);
	cr_assert_eq(p.offset, 8 * 512);
	cr_assert_eq(p.len, 8 * 512);
	cr_assert(p.needs_io);
	cr_assert_eq(seg_status(&rw_disk, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0, 1, &p), VIRTIO_BLK_S_OK);
	cr_assert_eq(p.op, IO_OP_WRITE_ZEROES);
	cr_assert_eq(seg_status(&rw_disk, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, VIRTIO_BLK_WZ_F_UNMAP, 1, &p),
		     VIRTIO_BLK_S_OK);
	cr_assert_eq(p.op, IO_OP_DISCARD);
	/* Flags discard does not know, reserved bits: UNSUPP. */
	cr_assert_eq(seg_status(&rw_disk, VIRTIO_BLK_T_DISCARD, 0, 1, 1, 1, &p), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(seg_status(&rw_disk, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 2, 1, &p),
		     VIRTIO_BLK_S_UNSUPP);
	/* Out of the disk, overflowing, too many segments, read-only. */
	cr_assert_eq(seg_status(&rw_disk, VIRTIO_BLK_T_DISCARD, SECTORS - 1, 2, 0, 1, &p),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(seg_status(&rw_disk, VIRTIO_BLK_T_DISCARD, UINT64_MAX, 1, 0, 1, &p),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(seg_status(&rw_disk, VIRTIO_BLK_T_DISCARD, 0, 1, 0, 2, &p), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(seg_status(&ro_disk, VIRTIO_BLK_T_DISCARD, 0, 1, 0, 1, &p), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(seg_status(&ro_disk, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0, 1, &p),
		     VIRTIO_BLK_S_IOERR);
}

Test(blk_parse, too_many_buffers_for_iov)
{
	struct virtq_chain c = { 0 };
	struct virtio_blk_outhdr h = hdr(VIRTIO_BLK_T_IN, 0);
	struct blk_parsed p;

	add(&c, &h, sizeof(h), false);
	for (int i = 0; i < 4; i++)
		add(&c, data + 512 * i, 512, true);
	add(&c, &status, 1, true);
	blk_parse(&rw_disk, &c, iov, 2, &p);
	cr_assert_eq(p.status, VIRTIO_BLK_S_IOERR);
}

/* ---- the device on a ring in a fake guest RAM, with a real I/O loop ---- */

#define RAM_SIZE (1 << 20)
#define QSIZE 16
#define DESC_GPA 0x0
#define AVAIL_GPA 0x1000
#define USED_GPA 0x2000
#define HDR_GPA 0x3000     /* 16 headers of 16 bytes */
#define STATUS_GPA 0x3800  /* 16 status bytes */
#define DATA_GPA 0x10000   /* 16 x 4 KiB */

struct rig {
	uint8_t *ram;
	struct guest_mem mem;
	struct io_loop *loop;
	struct blk *blk;
	struct virtio_dev *dev;
	int fd;
	atomic_int notified;
	atomic_int broken;
	uint16_t avail_idx;
};

static void t_notify(struct virtio_dev *dev, uint16_t q)
{
	struct rig *r = dev->transport;
	(void)q;
	atomic_fetch_add(&r->notified, 1);
}

static void t_needs_reset(struct virtio_dev *dev, const char *why)
{
	struct rig *r = dev->transport;
	(void)why;
	atomic_fetch_add(&r->broken, 1);
}

static bool rig_setup(struct rig *r, enum io_engine e, bool ro)
{
	char tmpl[] = "/tmp/microvm-blk-XXXXXX";
	struct blk_disk d = { .sectors = SECTORS, .ro = ro, .id = "rig" };

	memset(r, 0, sizeof(*r));
	/* mmap'ed: the freeze tests register part of it with userfaultfd. */
	r->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(r->ram, MAP_FAILED);
	r->mem.nr = 1;
	r->mem.region[0] = (struct guest_region){ .gpa = 0, .size = RAM_SIZE, .host = r->ram };
	r->fd = mkstemp(tmpl);
	cr_assert_geq(r->fd, 0);
	unlink(tmpl);
	cr_assert_eq(ftruncate(r->fd, SECTORS * 512), 0);
	if (io_loop_create(&r->loop, e) < 0)
		return false;
	int file = io_loop_register_file(r->loop, r->fd);
	cr_assert_eq(blk_create(&r->blk, &d, &(struct disk_backend){ .loop = r->loop, .file = file }), 0);
	r->dev = blk_virtio_dev(r->blk);
	r->dev->transport = r;
	r->dev->notify_used = t_notify;
	r->dev->needs_reset = t_needs_reset;
	struct virtq *q = &r->dev->vq[0];
	*q = (struct virtq){ .mem = &r->mem, .size = QSIZE, .ready = true, .desc = DESC_GPA,
			     .avail = AVAIL_GPA, .used = USED_GPA };
	cr_assert_eq(virtq_validate(q), 0);
	cr_assert_eq(io_loop_start(r->loop), 0);
	cr_assert_eq(r->dev->ops->activate(r->dev), 0);
	return true;
}

static void rig_teardown(struct rig *r)
{
	io_loop_destroy(r->loop);
	blk_destroy(r->blk);
	close(r->fd);
	munmap(r->ram, RAM_SIZE);
}

static void set_desc(struct rig *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
	memcpy(r->ram + DESC_GPA + 16 * i, &d, sizeof(d));
}

/* Request slot k (0..4): descriptors 3k..3k+2 = header, data (one 4 KiB page or less), status. */
static void add_req(struct rig *r, int k, uint32_t type, uint64_t sector, uint32_t dlen)
{
	struct virtio_blk_outhdr h = hdr(type, sector);
	uint16_t d0 = (uint16_t)(3 * k);
	bool devwrites = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;

	memcpy(r->ram + HDR_GPA + 16 * k, &h, sizeof(h));
	r->ram[STATUS_GPA + k] = 0xff;
	set_desc(r, d0, HDR_GPA + 16 * k, 16, VIRTQ_DESC_F_NEXT, d0 + 1);
	if (dlen) {
		set_desc(r, d0 + 1, DATA_GPA + 4096 * k, dlen,
			 VIRTQ_DESC_F_NEXT | (devwrites ? VIRTQ_DESC_F_WRITE : 0), d0 + 2);
		set_desc(r, d0 + 2, STATUS_GPA + k, 1, VIRTQ_DESC_F_WRITE, 0);
	} else {
		set_desc(r, d0, HDR_GPA + 16 * k, 16, VIRTQ_DESC_F_NEXT, d0 + 2);
		set_desc(r, d0 + 2, STATUS_GPA + k, 1, VIRTQ_DESC_F_WRITE, 0);
	}
	uint16_t slot = r->avail_idx % QSIZE;
	memcpy(r->ram + AVAIL_GPA + 4 + 2 * slot, &d0, 2);
	r->avail_idx++;
	__atomic_store_n((uint16_t *)(r->ram + AVAIL_GPA + 2), r->avail_idx, __ATOMIC_RELEASE);
}

static void kick_fn(void *arg)
{
	struct rig *r = arg;
	r->dev->ops->queue_notify(r->dev, 0);
}

static uint16_t used_idx(struct rig *r)
{
	return __atomic_load_n((uint16_t *)(r->ram + USED_GPA + 2), __ATOMIC_ACQUIRE);
}

static void kick_and_wait(struct rig *r, uint16_t want_used)
{
	io_loop_call(r->loop, kick_fn, r);
	for (int i = 0; i < 5000 && used_idx(r) != want_used; i++)
		usleep(1000);
	cr_assert_eq(used_idx(r), want_used);
}

static void test_device_rw(enum io_engine e)
{
	struct rig r;

	if (!rig_setup(&r, e, false))
		cr_skip_test("io_uring unavailable here");
	/* Five writes in flight at once, then read them back. */
	for (int k = 0; k < 5; k++) {
		memset(r.ram + DATA_GPA + 4096 * k, 'A' + k, 4096);
		add_req(&r, k, VIRTIO_BLK_T_OUT, (uint64_t)8 * k, 4096);
	}
	kick_and_wait(&r, 5);
	for (int k = 0; k < 5; k++)
		cr_assert_eq(r.ram[STATUS_GPA + k], VIRTIO_BLK_S_OK);
	cr_assert_gt(atomic_load(&r.notified), 0);
	uint8_t back[4096];
	cr_assert_eq(pread(r.fd, back, 4096, 3 * 4096), 4096);
	cr_assert_eq(back[0], 'D');
	cr_assert_eq(back[4095], 'D');
	struct blk_stats st;
	blk_get_stats(r.blk, &st);
	cr_assert_eq(st.requests, 5);
	cr_assert_eq(st.writes, 5);
	cr_assert_eq(st.write_bytes, 5 * 4096);
	cr_assert_eq(st.reads + st.flushes + st.read_bytes + st.errors, 0);

	memset(r.ram + DATA_GPA, 0, 5 * 4096);
	for (int k = 0; k < 4; k++)
		add_req(&r, k, VIRTIO_BLK_T_IN, (uint64_t)8 * (3 - k), 4096);
	add_req(&r, 4, VIRTIO_BLK_T_FLUSH, 0, 0);
	kick_and_wait(&r, 10);
	for (int k = 0; k < 5; k++)
		cr_assert_eq(r.ram[STATUS_GPA + k], VIRTIO_BLK_S_OK);
	for (int k = 0; k < 4; k++)
		cr_assert_eq(r.ram[DATA_GPA + 4096 * k + 100], 'A' + 3 - k);
	/* used.len of a read: data + status. */
	uint32_t lens = 0;
	for (int i = 5; i < 10; i++) {
		uint32_t len;
		memcpy(&len, r.ram + USED_GPA + 4 + 8 * i + 4, 4);
		lens += len;
	}
	cr_assert_eq(lens, 4 * 4097 + 1);

	/* Bad requests get a status, the device goes on. */
	add_req(&r, 0, VIRTIO_BLK_T_IN, SECTORS, 512);
	add_req(&r, 1, 42, 0, 0);
	add_req(&r, 2, VIRTIO_BLK_T_GET_ID, 0, 20);
	add_req(&r, 3, VIRTIO_BLK_T_OUT, 0, 100);
	kick_and_wait(&r, 14);
	cr_assert_eq(r.ram[STATUS_GPA + 0], VIRTIO_BLK_S_IOERR);
	cr_assert_eq(r.ram[STATUS_GPA + 1], VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(r.ram[STATUS_GPA + 2], VIRTIO_BLK_S_OK);
	cr_assert_str_eq((char *)r.ram + DATA_GPA + 2 * 4096, "rig");
	cr_assert_eq(r.ram[STATUS_GPA + 3], VIRTIO_BLK_S_IOERR);
	cr_assert_eq(atomic_load(&r.broken), 0);
	/* The counters: 4 reads and a flush in the second batch; GET_ID is a request only; 3 errors. */
	blk_get_stats(r.blk, &st);
	cr_assert_eq(st.requests, 14);
	cr_assert_eq(st.reads, 4);
	cr_assert_eq(st.read_bytes, 4 * 4096);
	cr_assert_eq(st.flushes, 1);
	cr_assert_eq(st.writes, 5);
	cr_assert_eq(st.errors, 3);

	/* Reset waits for what is in flight. */
	for (int k = 0; k < 5; k++) {
		memset(r.ram + DATA_GPA + 4096 * k, 'Z', 512);
		add_req(&r, k, VIRTIO_BLK_T_OUT, (uint64_t)k, 512);
	}
	io_loop_call(r.loop, kick_fn, &r);
	r.dev->ops->reset(r.dev);
	cr_assert_eq(pread(r.fd, back, 5 * 512, 0), 5 * 512);
	for (int i = 0; i < 5 * 512; i++)
		cr_assert_eq(back[i], 'Z', "write %d finished before the reset returned", i / 512);
	rig_teardown(&r);
}

/*
 * A snapshot's freeze with a read in flight: the read must complete into the
 * used ring (data, status, used element) before freeze() returns, and the
 * device must take no new request until thaw(). The read is held in flight
 * by a userfaultfd on the guest page it reads into: the host copy blocks
 * until the test's handler thread fills the page, 300 ms after the fault.
 */
struct uffd_hold {
	int fd;
	uint8_t *page;
	atomic_bool faulted, released;
};

static void *uffd_handler(void *arg)
{
	struct uffd_hold *h = arg;
	struct uffd_msg msg;
	struct pollfd p = { .fd = h->fd, .events = POLLIN };

	if (poll(&p, 1, 5000) != 1 || read(h->fd, &msg, sizeof(msg)) != sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT)
		return NULL;
	atomic_store(&h->faulted, true);
	usleep(300 * 1000);
	static uint8_t zero[4096] __attribute__((aligned(4096)));
	struct uffdio_copy c = { .dst = (uintptr_t)h->page, .src = (uintptr_t)zero, .len = 4096 };
	atomic_store(&h->released, true);
	ioctl(h->fd, UFFDIO_COPY, &c);
	return NULL;
}

static void test_freeze_inflight(enum io_engine e)
{
	struct rig r;
	struct uffd_hold h = { .fd = -1 };
	pthread_t t;

	if (!rig_setup(&r, e, false))
		cr_skip_test("io_uring unavailable here");
	uint8_t sector[512];
	memset(sector, 'Q', sizeof(sector));
	cr_assert_eq(pwrite(r.fd, sector, sizeof(sector), 5 * 512), 512);
	h.page = r.ram + DATA_GPA;
	h.fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (h.fd < 0) {
		rig_teardown(&r);
		cr_skip_test("userfaultfd unavailable here (%s): needs root", strerror(errno));
	}
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { .start = (uintptr_t)h.page, .len = 4096 },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	cr_assert_eq(ioctl(h.fd, UFFDIO_API, &api), 0);
	cr_assert_eq(madvise(h.page, 4096, MADV_DONTNEED), 0);
	cr_assert_eq(ioctl(h.fd, UFFDIO_REGISTER, &reg), 0);
	cr_assert_eq(pthread_create(&t, NULL, uffd_handler, &h), 0);

	add_req(&r, 0, VIRTIO_BLK_T_IN, 5, 512);
	/* The kick returns once the request is taken from the ring and handed to the I/O engine. */
	io_loop_call(r.loop, kick_fn, &r);
	for (int i = 0; i < 5000 && !atomic_load(&h.faulted); i++)
		usleep(1000);
	cr_assert(atomic_load(&h.faulted), "the read never touched its buffer");
	cr_assert_eq(used_idx(&r), 0, "the read finished while its page was held");

	cr_assert_eq(r.dev->ops->freeze(r.dev), 0);
	cr_assert(atomic_load(&h.released), "freeze() returned before the read in flight finished");
	cr_assert_eq(used_idx(&r), 1, "the read in flight was not answered in the used ring");
	cr_assert_eq(r.ram[STATUS_GPA + 0], VIRTIO_BLK_S_OK);
	cr_assert_eq(r.ram[DATA_GPA + 511], 'Q');

	/* Frozen: a new request stays in the ring, however often the driver kicks. */
	add_req(&r, 1, VIRTIO_BLK_T_IN, 5, 512);
	io_loop_call(r.loop, kick_fn, &r);
	usleep(100 * 1000);
	cr_assert_eq(used_idx(&r), 1, "a frozen device took a new request");
	r.dev->ops->thaw(r.dev);
	for (int i = 0; i < 5000 && used_idx(&r) != 2; i++)
		usleep(1000);
	cr_assert_eq(used_idx(&r), 2, "after the thaw, the request queued meanwhile is served");
	cr_assert_eq(r.ram[STATUS_GPA + 1], VIRTIO_BLK_S_OK);
	pthread_join(t, NULL);
	close(h.fd);
	rig_teardown(&r);
}

Test(blk_freeze_uring, inflight_read_completes, .timeout = 30) { test_freeze_inflight(IO_ENGINE_URING); }
Test(blk_freeze_sync, inflight_read_completes, .timeout = 30) { test_freeze_inflight(IO_ENGINE_SYNC); }

/*
 * A snapshot's freeze syncs a writable image through the I/O engine and
 * reports a failure (the snapshot is then refused): here the "image" is a
 * pipe, where fdatasync fails with EINVAL. A read-only image needs no sync.
 */
static void test_freeze_syncs(enum io_engine e)
{
	struct rig r;
	int p[2];

	for (int ro = 0; ro <= 1; ro++) {
		if (!rig_setup(&r, e, ro))
			cr_skip_test("io_uring unavailable here");
		cr_assert_eq(r.dev->ops->freeze(r.dev), 0, "a regular file syncs");
		r.dev->ops->thaw(r.dev);
		rig_teardown(&r);
	}
	cr_assert_eq(pipe(p), 0);
	for (int ro = 0; ro <= 1; ro++) {
		struct blk *b;
		struct io_loop *loop;
		struct blk_disk d = { .sectors = SECTORS, .ro = ro, .id = "pipe" };
		cr_assert_eq(io_loop_create(&loop, e), 0);
		int file = io_loop_register_file(loop, p[1]);
		cr_assert_eq(blk_create(&b, &d, &(struct disk_backend){ .loop = loop, .file = file }), 0);
		cr_assert_eq(io_loop_start(loop), 0);
		struct virtio_dev *dev = blk_virtio_dev(b);
		err_clear();
		int ret = dev->ops->freeze(dev);
		if (ro) {
			cr_assert_eq(ret, 0, "a read-only image is not synced");
		} else {
			cr_assert_eq(ret, -EINVAL, "a failed sync fails the freeze (got %d)", ret);
			cr_assert(strstr(err_msg(), "virtio-blk pipe: syncing the image"), "%s", err_msg());
		}
		dev->ops->thaw(dev);
		io_loop_destroy(loop);
		blk_destroy(b);
	}
	close(p[0]);
	close(p[1]);
}

Test(blk_freeze_uring, syncs_the_image) { test_freeze_syncs(IO_ENGINE_URING); }
Test(blk_freeze_sync, syncs_the_image) { test_freeze_syncs(IO_ENGINE_SYNC); }

Test(blk_device_uring, rw) { test_device_rw(IO_ENGINE_URING); }
Test(blk_device_sync, rw) { test_device_rw(IO_ENGINE_SYNC); }

Test(blk_device, read_only_and_malformed)
{
	struct rig r;

	rig_setup(&r, IO_ENGINE_SYNC, true);
	add_req(&r, 0, VIRTIO_BLK_T_OUT, 0, 512);
	add_req(&r, 1, VIRTIO_BLK_T_DISCARD, 0, 16);
	kick_and_wait(&r, 2);
	cr_assert_eq(r.ram[STATUS_GPA + 0], VIRTIO_BLK_S_IOERR);
	cr_assert_eq(r.ram[STATUS_GPA + 1], VIRTIO_BLK_S_IOERR);
	/* A head index out of range: the device asks for a reset, nothing crashes. */
	uint16_t bad = 200;
	memcpy(r.ram + AVAIL_GPA + 4 + 2 * (r.avail_idx % QSIZE), &bad, 2);
	r.avail_idx++;
	__atomic_store_n((uint16_t *)(r.ram + AVAIL_GPA + 2), r.avail_idx, __ATOMIC_RELEASE);
	io_loop_call(r.loop, kick_fn, &r);
	cr_assert_eq(atomic_load(&r.broken), 1);
	rig_teardown(&r);
}

/*
 * Found by fuzz_blk: rings laid out so that used.flags is avail.idx made
 * blk_process() spin forever on the I/O thread (each notification toggle moved
 * avail.idx). The queue is now refused on every use: one reset request, and
 * the kick returns.
 */
Test(blk_device, overlapping_rings_do_not_hang, .timeout = 10)
{
	struct rig r;

	rig_setup(&r, IO_ENGINE_SYNC, false);
	add_req(&r, 0, VIRTIO_BLK_T_IN, 0, 512);
	kick_and_wait(&r, 1);
	r.dev->vq[0].avail = USED_GPA - 2;
	memset(r.ram + USED_GPA - 2, 0, 4);
	io_loop_call(r.loop, kick_fn, &r);
	io_loop_call(r.loop, kick_fn, &r);
	cr_assert_eq(atomic_load(&r.broken), 1);
	rig_teardown(&r);
}

#ifdef MICROVM_TEST_HOOKS   /* MICROVM_TEST_BLK_FAIL */
Test(blk_device, injected_error)
{
	struct rig r;

	setenv(BLK_FAIL_ENV, "eio:9", 1);
	rig_setup(&r, IO_ENGINE_SYNC, false);
	unsetenv(BLK_FAIL_ENV);
	add_req(&r, 0, VIRTIO_BLK_T_IN, 8, 1024);   /* touches sector 9 */
	add_req(&r, 1, VIRTIO_BLK_T_IN, 10, 512);   /* does not */
	add_req(&r, 2, VIRTIO_BLK_T_OUT, 9, 512);
	kick_and_wait(&r, 3);
	cr_assert_eq(r.ram[STATUS_GPA + 0], VIRTIO_BLK_S_IOERR);
	cr_assert_eq(r.ram[STATUS_GPA + 1], VIRTIO_BLK_S_OK);
	cr_assert_eq(r.ram[STATUS_GPA + 2], VIRTIO_BLK_S_IOERR);
	rig_teardown(&r);
}
#endif

/*
 * Host faults under a running device: the disk file truncated behind its
 * back, and writes the host refuses (a file size limit, which fails like a
 * full file system: the write returns an error). Each request gets IOERR,
 * the device does not break, and it serves requests again once the host
 * lets it.
 */
static void test_host_faults(enum io_engine e)
{
	struct rig r;
	struct rlimit old, lim;

	if (!rig_setup(&r, e, false))
		cr_skip_test("io_uring unavailable here");
	/* Truncated to 4 sectors: reads past the new end fail, the rest works. */
	cr_assert_eq(ftruncate(r.fd, 4 * 512), 0);
	add_req(&r, 0, VIRTIO_BLK_T_IN, 8, 512);   /* entirely past the end */
	add_req(&r, 1, VIRTIO_BLK_T_IN, 2, 4096);  /* crosses it */
	add_req(&r, 2, VIRTIO_BLK_T_IN, 0, 1024);  /* inside */
	kick_and_wait(&r, 3);
	cr_assert_eq(r.ram[STATUS_GPA + 0], VIRTIO_BLK_S_IOERR);
	cr_assert_eq(r.ram[STATUS_GPA + 1], VIRTIO_BLK_S_IOERR);
	cr_assert_eq(r.ram[STATUS_GPA + 2], VIRTIO_BLK_S_OK);

	/* Writes beyond what the host allows (RLIMIT_FSIZE: EFBIG, as ENOSPC would be). */
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 8 * 512;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	memset(r.ram + DATA_GPA, 'W', 2 * 4096);
	add_req(&r, 0, VIRTIO_BLK_T_OUT, 16, 512); /* wholly beyond the limit */
	add_req(&r, 1, VIRTIO_BLK_T_OUT, 0, 512);  /* below it */
	add_req(&r, 2, VIRTIO_BLK_T_FLUSH, 0, 0);
	kick_and_wait(&r, 6);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert_eq(r.ram[STATUS_GPA + 0], VIRTIO_BLK_S_IOERR);
	cr_assert_eq(r.ram[STATUS_GPA + 1], VIRTIO_BLK_S_OK);
	cr_assert_eq(r.ram[STATUS_GPA + 2], VIRTIO_BLK_S_OK);
	uint8_t back[512];
	cr_assert_eq(pread(r.fd, back, 512, 0), 512);
	cr_assert_eq(back[0], 'W');
	cr_assert_eq(back[511], 'W');

	/* The limit lifted, the same write succeeds: nothing stuck, device not broken. */
	add_req(&r, 0, VIRTIO_BLK_T_OUT, 16, 512);
	kick_and_wait(&r, 7);
	cr_assert_eq(r.ram[STATUS_GPA + 0], VIRTIO_BLK_S_OK);
	cr_assert_eq(atomic_load(&r.broken), 0);
	rig_teardown(&r);
}

Test(blk_device_uring, host_faults) { test_host_faults(IO_ENGINE_URING); }
Test(blk_device_sync, host_faults) { test_host_faults(IO_ENGINE_SYNC); }

/*
 * Soak: rounds of up to five concurrent requests (one zone of 8 sectors per
 * request slot, so they never overlap) of random kind, sector and length,
 * with the host failing everything that touches sector 9 (MICROVM_TEST_BLK_FAIL).
 * A model of the disk knows each sector's content after an acknowledged
 * write and forgets it after a failed one. Every acknowledged read must
 * match the model, only requests touching sector 9 may fail, and at the end,
 * after a flush, the file holds every acknowledged write.
 */
#ifdef MICROVM_TEST_HOOKS   /* MICROVM_TEST_BLK_FAIL */
#define SOAK_ROUNDS 6000
#define SOAK_ZONE 8
#define SOAK_FAIL_SECTOR 9

static uint64_t soak_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_soak(enum io_engine e)
{
	static uint8_t model[SECTORS * 512];
	static uint8_t file[SECTORS * 512];
	bool known[SECTORS];
	struct rig r;
	uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)e;
	uint16_t used = 0;
	unsigned ok = 0, failed = 0, reads_checked = 0;

	setenv(BLK_FAIL_ENV, "eio:9", 1);
	bool have = rig_setup(&r, e, false);
	unsetenv(BLK_FAIL_ENV);
	if (!have)
		cr_skip_test("io_uring unavailable here");
	memset(model, 0, sizeof(model)); /* the file starts as zeroes */
	for (int i = 0; i < SECTORS; i++)
		known[i] = true;

	for (int round = 0; round < SOAK_ROUNDS; round++) {
		struct { uint32_t type; uint64_t sector; uint32_t n; } req[5];
		int m = 1 + (int)(soak_rand(&seed) % 5);

		for (int k = 0; k < m; k++) {
			uint64_t x = soak_rand(&seed);
			uint32_t n = 1 + (uint32_t)(x % SOAK_ZONE);
			uint64_t first = (uint64_t)k * SOAK_ZONE + (x >> 8) % (SOAK_ZONE - n + 1);
			uint32_t kind = (uint32_t)((x >> 16) % 8);
			req[k].type = kind < 4 ? VIRTIO_BLK_T_OUT : kind < 7 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_FLUSH;
			req[k].sector = req[k].type == VIRTIO_BLK_T_FLUSH ? 0 : first;
			req[k].n = req[k].type == VIRTIO_BLK_T_FLUSH ? 0 : n;
			uint8_t *buf = r.ram + DATA_GPA + 4096 * k;
			if (req[k].type == VIRTIO_BLK_T_OUT)
				for (uint32_t i = 0; i < n * 512; i++)
					buf[i] = (uint8_t)(soak_rand(&seed) >> 24);
			else
				memset(buf, 0xee, 4096);
			add_req(&r, k, req[k].type, req[k].sector, req[k].n * 512);
		}
		used = (uint16_t)(used + m);
		kick_and_wait(&r, used);

		for (int k = 0; k < m; k++) {
			uint8_t st = r.ram[STATUS_GPA + k];
			const uint8_t *buf = r.ram + DATA_GPA + 4096 * k;
			bool touches = req[k].n && SOAK_FAIL_SECTOR >= req[k].sector &&
				       SOAK_FAIL_SECTOR < req[k].sector + req[k].n;
			cr_assert_eq(st, touches ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK,
				     "round %d slot %d: type %u sectors %llu+%u: status %u", round, k, req[k].type,
				     (unsigned long long)req[k].sector, req[k].n, st);
			st == VIRTIO_BLK_S_OK ? ok++ : failed++;
			for (uint32_t i = 0; i < req[k].n; i++) {
				uint64_t s = req[k].sector + i;
				if (req[k].type == VIRTIO_BLK_T_OUT && st == VIRTIO_BLK_S_OK) {
					memcpy(model + s * 512, buf + i * 512, 512);
					known[s] = true;
				} else if (req[k].type == VIRTIO_BLK_T_OUT) {
					known[s] = false; /* the host may or may not have written it */
				} else if (req[k].type == VIRTIO_BLK_T_IN && st == VIRTIO_BLK_S_OK && known[s]) {
					cr_assert(memcmp(model + s * 512, buf + i * 512, 512) == 0,
						  "round %d: sector %llu read back wrong", round, (unsigned long long)s);
					reads_checked++;
				}
			}
		}
	}
	add_req(&r, 0, VIRTIO_BLK_T_FLUSH, 0, 0);
	kick_and_wait(&r, (uint16_t)(used + 1));
	cr_assert_eq(r.ram[STATUS_GPA + 0], VIRTIO_BLK_S_OK);
	cr_assert_eq(pread(r.fd, file, sizeof(file), 0), (ssize_t)sizeof(file));
	for (int s = 0; s < SECTORS; s++)
		if (known[s])
			cr_assert(memcmp(model + s * 512, file + s * 512, 512) == 0,
				  "sector %d: an acknowledged write is not in the file", s);
	cr_assert_gt(failed, 0, "no injected failure was met");
	cr_assert_gt(reads_checked, 100, "only %u sector reads were checked", reads_checked);
	cr_assert_eq(atomic_load(&r.broken), 0);
	cr_log_info("soak: %u requests acknowledged, %u failed as injected, %u sector reads checked", ok, failed,
		    reads_checked);
	rig_teardown(&r);
}

Test(blk_soak, uring, .timeout = 120) { test_soak(IO_ENGINE_URING); }
Test(blk_soak, sync, .timeout = 120) { test_soak(IO_ENGINE_SYNC); }
#endif

/* ---- rate limits: requests wait in the ring, in order, on the I/O thread's timer ---- */

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint16_t used_id(struct rig *r, int i)
{
	uint32_t id;
	memcpy(&id, r->ram + USED_GPA + 4 + 8 * (i % QSIZE), 4);
	return (uint16_t)id;
}

static void test_throttle_order(enum io_engine e)
{
	struct rig r;
	struct rl_config one = { .ops = { .size = 1, .refill_ms = 100 } };

	if (!rig_setup(&r, e, false))
		cr_skip_test("io_uring unavailable here");
	cr_assert_eq(blk_set_limits(r.blk, &one), 0);
	/* write, write, flush, write: one request each 100 ms, answered in ring order. */
	double t0 = mono_s();
	add_req(&r, 0, VIRTIO_BLK_T_OUT, 0, 4096);
	add_req(&r, 1, VIRTIO_BLK_T_OUT, 8, 4096);
	add_req(&r, 2, VIRTIO_BLK_T_FLUSH, 0, 0);
	add_req(&r, 3, VIRTIO_BLK_T_OUT, 16, 4096);
	kick_and_wait(&r, 4);
	double took = mono_s() - t0;
	cr_assert_geq(took, 0.29, "three waits of 100 ms: took %.3f s", took);
	for (int k = 0; k < 4; k++) {
		cr_assert_eq(r.ram[STATUS_GPA + k], VIRTIO_BLK_S_OK);
		cr_assert_eq(used_id(&r, k), 3 * k, "used entry %d is request %d", k, used_id(&r, k) / 3);
	}
	struct rate_limiter rl;
	blk_get_limits(r.blk, &rl);
	cr_assert_geq(rl.throttled, 3);
	cr_assert_eq(rl.ops.cfg.size, 1);

	/* Bytes: 8 KiB a second with 4 KiB requests: the third waits ~1/2 s; lifting the limit frees it at once. */
	struct rl_config bytes = { .bytes = { .size = 8192, .refill_ms = 1000 } };
	cr_assert_eq(blk_set_limits(r.blk, &bytes), 0);
	for (int k = 0; k < 3; k++)
		add_req(&r, k, VIRTIO_BLK_T_IN, 0, 4096);
	io_loop_call(r.loop, kick_fn, &r);
	for (int i = 0; i < 200 && used_idx(&r) != 6; i++)
		usleep(1000);
	usleep(50000);
	cr_assert_eq(used_idx(&r), 6, "two reads fit the bucket, the third waits");
	struct rl_config none = { 0 };
	t0 = mono_s();
	cr_assert_eq(blk_set_limits(r.blk, &none), 0, "as PATCH does");
	for (int i = 0; i < 5000 && used_idx(&r) != 7; i++)
		usleep(100);
	cr_assert_eq(used_idx(&r), 7);
	cr_assert_lt(mono_s() - t0, 0.3, "no limit: no wait");
	cr_assert_eq(atomic_load(&r.broken), 0);
	rig_teardown(&r);
}

Test(blk_limit_uring, order_and_flush, .timeout = 30) { test_throttle_order(IO_ENGINE_URING); }
Test(blk_limit_sync, order_and_flush, .timeout = 30) { test_throttle_order(IO_ENGINE_SYNC); }

/* A snapshot while requests wait: nothing is in flight, nothing is lost or answered twice. */
static void test_throttle_freeze(enum io_engine e)
{
	struct rig r;
	struct rl_config slow = { .ops = { .size = 1, .refill_ms = 3600000 } };

	if (!rig_setup(&r, e, false))
		cr_skip_test("io_uring unavailable here");
	cr_assert_eq(blk_set_limits(r.blk, &slow), 0);
	for (int k = 0; k < 3; k++)
		add_req(&r, k, VIRTIO_BLK_T_OUT, (uint64_t)8 * k, 4096);
	kick_and_wait(&r, 1);
	cr_assert_eq(r.dev->ops->freeze(r.dev), 0);
	cr_assert_eq(used_idx(&r), 1);
	cr_assert_eq(r.dev->vq[0].last_avail, 1, "the waiting requests are still the guest's");
	cr_assert_eq(r.ram[STATUS_GPA + 1], 0xff);
	r.dev->ops->thaw(r.dev);
	usleep(50000);
	cr_assert_eq(used_idx(&r), 1, "still throttled after the thaw");
	struct rl_config none = { 0 };
	cr_assert_eq(blk_set_limits(r.blk, &none), 0);
	for (int i = 0; i < 5000 && used_idx(&r) != 3; i++)
		usleep(1000);
	cr_assert_eq(used_idx(&r), 3);
	/* The first was answered before the freeze; the two released together may complete in
	 * either order (independent writes on an engine with several requests in flight). */
	cr_assert_eq(used_id(&r, 0), 0);
	cr_assert((used_id(&r, 1) == 3 && used_id(&r, 2) == 6) || (used_id(&r, 1) == 6 && used_id(&r, 2) == 3),
		  "used ids %u, %u: each waiting request answered once", used_id(&r, 1), used_id(&r, 2));
	struct blk_stats st;
	blk_get_stats(r.blk, &st);
	cr_assert_eq(st.writes, 3, "each request once");
	rig_teardown(&r);
}

Test(blk_limit_uring, freeze_while_throttled, .timeout = 30) { test_throttle_freeze(IO_ENGINE_URING); }
Test(blk_limit_sync, freeze_while_throttled, .timeout = 30) { test_throttle_freeze(IO_ENGINE_SYNC); }

/* ---- completions published in batches: one used-ring update and one notification per batch ---- */

static atomic_int batch_notes, batch_irqs;
static uint16_t batch_seen[8];

/* The transport's check, as virtio-mmio makes it: does the driver want this interrupt? */
static void t_notify_evidx(struct virtio_dev *dev, uint16_t q)
{
	struct rig *r = dev->transport;
	int n = atomic_fetch_add(&batch_notes, 1);

	if (n < 8)
		batch_seen[n] = used_idx(r);
	if (virtq_should_notify(&dev->vq[q]))
		atomic_fetch_add(&batch_irqs, 1);
}

/* On the I/O thread: the kick, then a pause in which the sync workers finish every request of it. */
static void kick_then_pause(void *arg)
{
	struct rig *r = arg;

	r->dev->ops->queue_notify(r->dev, 0);
	usleep(200 * 1000);
}

static void set_used_event(struct rig *r, uint16_t v)
{
	__atomic_store_n((uint16_t *)(r->ram + AVAIL_GPA + 4 + 2 * QSIZE), v, __ATOMIC_RELEASE);
}

static void batch_of_five(struct rig *r, uint16_t want_used)
{
	for (int k = 0; k < 5; k++)
		add_req(r, k, VIRTIO_BLK_T_OUT, (uint64_t)8 * k, 4096);
	io_loop_call(r->loop, kick_then_pause, r);
	for (int i = 0; i < 5000 && used_idx(r) != want_used; i++)
		usleep(1000);
	cr_assert_eq(used_idx(r), want_used);
	for (int k = 0; k < 5; k++)
		cr_assert_eq(r->ram[STATUS_GPA + k], VIRTIO_BLK_S_OK);
}

Test(blk_batch_sync, one_used_update_and_one_interrupt_per_batch, .timeout = 30)
{
	struct rig r;

	cr_assert(rig_setup(&r, IO_ENGINE_SYNC, false));
	atomic_store(&batch_notes, 0);
	atomic_store(&batch_irqs, 0);
	r.dev->notify_used = t_notify_evidx;
	r.dev->vq[0].event_idx = true;
	/* The driver wants an interrupt once used entry 2 is filled. */
	set_used_event(&r, 2);
	batch_of_five(&r, 5);
	/* Five completions, one batch: the used index went 0 -> 5 in one step, one notification. */
	cr_assert_eq(atomic_load(&batch_notes), 1);
	cr_assert_eq(batch_seen[0], 5);
	cr_assert_eq(atomic_load(&batch_irqs), 1);
	struct blk_stats st;
	blk_get_stats(r.blk, &st);
	cr_assert_eq(st.writes, 5);

	/* used_event still 2, already passed: the next batch raises no interrupt (EVENT_IDX). */
	batch_of_five(&r, 10);
	cr_assert_eq(atomic_load(&batch_notes), 2);
	cr_assert_eq(batch_seen[1], 10);
	cr_assert_eq(atomic_load(&batch_irqs), 1);

	/* The driver asks again, at entry 12: the batch 10 -> 15 crosses it, one interrupt. */
	set_used_event(&r, 12);
	batch_of_five(&r, 15);
	cr_assert_eq(atomic_load(&batch_notes), 3);
	cr_assert_eq(batch_seen[2], 15);
	cr_assert_eq(atomic_load(&batch_irqs), 2);
	cr_assert_eq(atomic_load(&r.broken), 0);
	rig_teardown(&r);
}

/* ---- no kicks while busy: with 8 or more requests in flight, completions look at the ring ---- */

#define BUSY_QSIZE 64
static uint16_t busy_avail_event;

static void noop_io(void *arg)
{
	(void)arg;
}

static uint16_t avail_event_of(struct rig *r)
{
	return __atomic_load_n((uint16_t *)(r->ram + USED_GPA + 4 + 8 * BUSY_QSIZE), __ATOMIC_ACQUIRE);
}

/* On the I/O thread: the kick takes 8 flushes; then the driver adds a ninth and, told not to, does not kick. */
static void kick_busy(void *arg)
{
	struct rig *r = arg;

	r->dev->ops->queue_notify(r->dev, 0);
	busy_avail_event = avail_event_of(r);
	add_req(r, 8, VIRTIO_BLK_T_FLUSH, 0, 0);
	usleep(100 * 1000);
}

Test(blk_batch_sync, no_kicks_while_busy, .timeout = 30)
{
	struct rig r;

	cr_assert(rig_setup(&r, IO_ENGINE_SYNC, false));
	/* A larger ring (the pool of 16 requests made at activation is enough for 9). */
	r.dev->vq[0].size = BUSY_QSIZE;
	r.dev->vq[0].event_idx = true;
	cr_assert_eq(virtq_validate(&r.dev->vq[0]), 0);
	for (int k = 0; k < 8; k++)
		add_req(&r, k, VIRTIO_BLK_T_FLUSH, 0, 0);
	io_loop_call(r.loop, kick_busy, &r);
	cr_assert_eq(busy_avail_event, 7, "8 in flight: avail_event one behind last_avail (8), no kicks");
	/* The ninth is served without a kick: a completion batch looked at the ring. */
	for (int i = 0; i < 5000 && used_idx(&r) != 9; i++)
		usleep(1000);
	cr_assert_eq(used_idx(&r), 9);
	for (int k = 0; k < 9; k++)
		cr_assert_eq(r.ram[STATUS_GPA + k], VIRTIO_BLK_S_OK);
	/* All answered: fewer than 8 in flight, so kicks are on again at the ring's end. */
	io_loop_call(r.loop, noop_io, NULL);
	cr_assert_eq(avail_event_of(&r), 9);
	cr_assert_eq(atomic_load(&r.broken), 0);
	rig_teardown(&r);
}

/*
 * A reset with requests in flight, then at once a set-up with another queue
 * size (blk_activate() replaces the request pool), again and again. The I/O
 * thread must be done with the pool before the reset returns: it once put a
 * batch's requests back on the free list after `inflight` reached 0, so the
 * new set-up freed the pool under it (a use after free the ASan build
 * reports; a corrupt free list in the plain one).
 */
static void test_reset_resize(enum io_engine e)
{
	struct rig r;

	if (!rig_setup(&r, e, false))
		cr_skip_test("io_uring unavailable here");
	for (int round = 0; round < 300; round++) {
		/* Two requests: descriptors 0-5, inside either size. */
		for (int k = 0; k < 2; k++)
			add_req(&r, k, VIRTIO_BLK_T_OUT, (uint64_t)k, 512);
		io_loop_call(r.loop, kick_fn, &r);
		r.dev->ops->reset(r.dev);
		/* The driver sets the queue up again from scratch, half or whole size in turn. */
		memset(r.ram + AVAIL_GPA, 0, 0x1000);
		memset(r.ram + USED_GPA, 0, 0x1000);
		r.avail_idx = 0;
		struct virtq *q = &r.dev->vq[0];
		*q = (struct virtq){ .mem = &r.mem, .size = round % 2 ? QSIZE / 2 : QSIZE, .ready = true,
				     .desc = DESC_GPA, .avail = AVAIL_GPA, .used = USED_GPA };
		cr_assert_eq(virtq_validate(q), 0);
		cr_assert_eq(r.dev->ops->activate(r.dev), 0);
	}
	/* The device still serves (at the last round's size, 8): two writes, each answered once. */
	for (int k = 0; k < 2; k++)
		add_req(&r, k, VIRTIO_BLK_T_OUT, (uint64_t)k, 512);
	kick_and_wait(&r, 2);
	for (int k = 0; k < 2; k++)
		cr_assert_eq(r.ram[STATUS_GPA + k], VIRTIO_BLK_S_OK);
	cr_assert_eq(atomic_load(&r.broken), 0);
	rig_teardown(&r);
}
Test(blk_device_uring, reset_then_resize, .timeout = 60) { test_reset_resize(IO_ENGINE_URING); }
Test(blk_device_sync, reset_then_resize, .timeout = 60) { test_reset_resize(IO_ENGINE_SYNC); }
