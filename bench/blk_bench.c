/* blk_bench.c - microvm's virtio-blk path without KVM: a fake guest fills the request ring, kicks through the I/O thread, reaps the used ring (docs/benchmarks.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/vdrv.h"
#include "devices/virtio/blk.h"
#include "base/err.h"
#include "io/ioloop.h"
#include "io/overlay.h"
#include "base/log.h"

#define MAX_QD 64
#define HDR_GPA (VDRV_DATA_GPA)                 /* MAX_QD headers of 16 bytes */
#define STATUS_GPA (VDRV_DATA_GPA + 0x1000)     /* MAX_QD status bytes */
#define BUF_GPA (VDRV_DATA_GPA + 0x10000)       /* MAX_QD data buffers of bs bytes */

struct opts {
	const char *file;
	const char *overlay;            /* --overlay F: file is the read-only base, writes go to overlay F */
	bool fill;                      /* --fill: first write every block once (an overlay fully allocated) */
	enum io_engine engine;
	bool write, random, direct, verify_only;
	uint32_t bs;
	int qd;
	double seconds;
};

struct bench {
	struct opts o;
	int fd, check_fd;               /* check_fd: the image without O_DIRECT, for pread checks */
	uint64_t file_bytes, nblocks, next_seq;
	uint64_t rng;
	struct io_loop *loop;
	struct overlay *ovl;
	struct blk *blk;
	struct vdrv d;
	uint64_t done, errors;
	uint64_t slot_off[MAX_QD];
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Slot k: descriptors 3k (header), 3k+1 (data), 3k+2 (status), as Linux's virtio_blk lays a request out. */
static void queue_req(struct bench *b, int k, bool write, uint64_t off)
{
	struct vdrv_q *q = &b->d.q[0];
	struct virtio_blk_outhdr h = { .type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
				       .sector = off / BLK_SECTOR_SIZE };
	uint16_t d0 = (uint16_t)(3 * k);

	memcpy(vdrv_ptr(&b->d, HDR_GPA + 16ULL * k, 16), &h, 16);
	*(uint8_t *)vdrv_ptr(&b->d, STATUS_GPA + (uint64_t)k, 1) = 0xff;
	vdrv_set_desc(&b->d, q, d0, HDR_GPA + 16ULL * k, 16, VIRTQ_DESC_F_NEXT, d0 + 1);
	vdrv_set_desc(&b->d, q, d0 + 1, BUF_GPA + (uint64_t)b->o.bs * k, b->o.bs,
		      VIRTQ_DESC_F_NEXT | (write ? 0 : VIRTQ_DESC_F_WRITE), d0 + 2);
	vdrv_set_desc(&b->d, q, d0 + 2, STATUS_GPA + (uint64_t)k, 1, VIRTQ_DESC_F_WRITE, 0);
	b->slot_off[k] = off;
	vdrv_add(&b->d, q, d0);
}

static uint64_t next_offset(struct bench *b)
{
	uint64_t blk;

	if (b->o.random) {
		blk = xorshift(&b->rng) % b->nblocks;
	} else {
		blk = b->next_seq;
		b->next_seq = (b->next_seq + 1) % b->nblocks;
	}
	return blk * b->o.bs;
}

/*
 * Keep qd requests in flight until `seconds` have passed, then let the last
 * ones finish. Each completion's status byte is checked. Returns the seconds taken.
 */
static double run(struct bench *b, double seconds, uint64_t (*off_fn)(struct bench *, int k, uint64_t n),
		  uint64_t max_ios)
{
	struct vdrv_q *q = &b->d.q[0];
	uint64_t issued = 0;
	int inflight = 0;
	double t0 = vdrv_now(), end = t0 + seconds;
	bool stop = false;

	for (int k = 0; k < b->o.qd && issued < max_ios; k++, issued++, inflight++)
		queue_req(b, k, b->o.write, off_fn ? off_fn(b, k, issued) : next_offset(b));
	vdrv_publish(&b->d, q);
	while (inflight) {
		uint32_t id, len;
		int got = 0;

		while (vdrv_get_used(&b->d, q, &id, &len)) {
			int k = (int)id / 3;
			uint8_t st = *(uint8_t *)vdrv_ptr(&b->d, STATUS_GPA + (uint64_t)k, 1);
			uint32_t want = b->o.write ? 1 : b->o.bs + 1;

			got++;
			inflight--;
			b->done++;
			if (id % 3 || k >= b->o.qd || st != VIRTIO_BLK_S_OK || len != want) {
				if (b->errors++ == 0)
					fprintf(stderr, "blk_bench: request %u: status %u, used len %u (want %u)\n",
						id, st, len, want);
			}
			if (!stop && (b->done & 63) == 0 && vdrv_now() >= end)
				stop = true;
			if (!stop && issued < max_ios) {
				queue_req(b, k, b->o.write, off_fn ? off_fn(b, k, issued) : next_offset(b));
				issued++;
				inflight++;
			}
		}
		vdrv_publish(&b->d, q);
		if (got || !inflight)
			continue;
		if (vdrv_enable_cb(&b->d, q))
			continue;
		if (vdrv_wait_irq(&b->d, 10000) < 0) {
			fprintf(stderr, "blk_bench: no interrupt for 10 s with %d requests in flight\n", inflight);
			exit(3);
		}
	}
	return vdrv_now() - t0;
}

/* ---- the correctness check: stamped writes through the device, read back through it and with pread ---- */

#define VERIFY_IOS 256

static uint64_t verify_off(struct bench *b, int k, uint64_t n)
{
	(void)k;
	/* Distinct blocks spread over the file. */
	return ((n * 2654435761u) % b->nblocks) * b->o.bs;
}

static uint64_t stamp(uint64_t off, uint64_t i, uint64_t seed)
{
	return (off + i * 8) ^ seed ^ 0x6d6963726f766d00ULL;
}

static uint64_t verify_off_fill(struct bench *b, int k, uint64_t n)
{
	uint64_t off = verify_off(b, k, n);
	uint64_t *p = vdrv_ptr(&b->d, BUF_GPA + (uint64_t)b->o.bs * k, b->o.bs);

	for (uint64_t i = 0; i < b->o.bs / 8; i++)
		p[i] = stamp(off, i, b->rng);
	return off;
}

static uint64_t verify_off_clear(struct bench *b, int k, uint64_t n)
{
	memset(vdrv_ptr(&b->d, BUF_GPA + (uint64_t)b->o.bs * k, b->o.bs), 0, b->o.bs);
	return verify_off(b, k, n);
}

static int verify(struct bench *b)
{
	struct opts saved = b->o;
	uint64_t seed = b->rng;
	int bad = 0;

	if (b->nblocks < VERIFY_IOS)
		return 0;
	b->o.write = true;
	run(b, 1e9, verify_off_fill, VERIFY_IOS);
	b->o.write = false;
	/* Reads: check each block as it completes would need a hook; read in qd batches instead. */
	for (uint64_t n = 0; n < VERIFY_IOS; n += (uint64_t)b->o.qd) {
		uint64_t cnt = VERIFY_IOS - n < (uint64_t)b->o.qd ? VERIFY_IOS - n : (uint64_t)b->o.qd;
		struct vdrv_q *q = &b->d.q[0];
		for (int k = 0; k < (int)cnt; k++)
			queue_req(b, k, false, verify_off_clear(b, k, n + (uint64_t)k));
		vdrv_publish(&b->d, q);
		for (uint64_t got = 0; got < cnt;) {
			uint32_t id, len;
			if (vdrv_get_used(&b->d, q, &id, &len)) {
				got++;
				continue;
			}
			if (!vdrv_enable_cb(&b->d, q) && vdrv_wait_irq(&b->d, 10000) < 0) {
				fprintf(stderr, "blk_bench: verify: no interrupt for 10 s\n");
				exit(3);
			}
		}
		for (int k = 0; k < (int)cnt; k++) {
			uint64_t off = verify_off(b, k, n + (uint64_t)k);
			const uint64_t *p = vdrv_ptr(&b->d, BUF_GPA + (uint64_t)b->o.bs * k, b->o.bs);
			uint64_t host[8];

			if (pread(b->check_fd, host, sizeof(host), (off_t)off) != (ssize_t)sizeof(host)) {
				if (bad++ == 0)
					perror("blk_bench: verify: pread");
			}
			for (uint64_t i = 0; i < b->o.bs / 8; i++) {
				if (p[i] != stamp(off, i, seed) || (i < 8 && host[i] != p[i])) {
					if (bad++ == 0)
						fprintf(stderr, "blk_bench: verify: offset %llu word %llu: read back %016llx, wrote %016llx\n",
							(unsigned long long)off, (unsigned long long)i,
							(unsigned long long)p[i], (unsigned long long)stamp(off, i, seed));
					break;
				}
			}
		}
	}
	b->o = saved;
	return bad || b->errors ? -1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: blk_bench --file F --engine uring|sync --rw randread|randwrite|read|write "
			"--bs BYTES --qd N --time SECONDS [--direct] [--verify-only] [--overlay F [--fill]]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "file", 1, 0, 'f' }, { "engine", 1, 0, 'e' }, { "rw", 1, 0, 'r' }, { "bs", 1, 0, 'b' },
		{ "qd", 1, 0, 'q' }, { "time", 1, 0, 't' }, { "direct", 0, 0, 'd' },
		{ "verify-only", 0, 0, 'v' }, { "overlay", 1, 0, 'o' }, { "fill", 0, 0, 'F' }, { 0, 0, 0, 0 },
	};
	struct bench *b = calloc(1, sizeof(*b));
	const char *rw = "randread";
	int c;

	b->o = (struct opts){ .engine = IO_ENGINE_URING, .bs = 4096, .qd = 1, .seconds = 2 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'f': b->o.file = optarg; break;
		case 'e': b->o.engine = !strcmp(optarg, "sync") ? IO_ENGINE_SYNC : IO_ENGINE_URING; break;
		case 'r': rw = optarg; break;
		case 'b': b->o.bs = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'q': b->o.qd = atoi(optarg); break;
		case 't': b->o.seconds = atof(optarg); break;
		case 'd': b->o.direct = true; break;
		case 'v': b->o.verify_only = true; break;
		case 'o': b->o.overlay = optarg; break;
		case 'F': b->o.fill = true; break;
		default: usage();
		}
	}
	if (!b->o.file || b->o.qd < 1 || b->o.qd > MAX_QD || b->o.bs < 512 || b->o.bs % 512 ||
	    b->o.bs > BLK_SIZE_MAX || (b->o.overlay && b->o.direct) || (b->o.fill && !b->o.overlay) ||
	    (b->o.verify_only && b->o.overlay))
		usage();
	if (!strcmp(rw, "randread") || !strcmp(rw, "randwrite"))
		b->o.random = true;
	else if (strcmp(rw, "read") && strcmp(rw, "write"))
		usage();
	b->o.write = strstr(rw, "write") != NULL;
	log_set_level(LOG_WARN);

	b->fd = open(b->o.file, (b->o.overlay ? O_RDONLY : O_RDWR) | O_CLOEXEC | (b->o.direct ? O_DIRECT : 0));
	b->check_fd = open(b->o.file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (b->fd < 0 || b->check_fd < 0 || fstat(b->fd, &st) < 0) {
		fprintf(stderr, "blk_bench: %s: %s\n", b->o.file, strerror(errno));
		return 1;
	}
	b->file_bytes = (uint64_t)st.st_size;
	b->nblocks = b->file_bytes / b->o.bs;
	b->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() ^ (uint64_t)(vdrv_now() * 1e6);
	if (b->nblocks == 0) {
		fprintf(stderr, "blk_bench: %s is smaller than one block\n", b->o.file);
		return 1;
	}

	struct blk_disk disk = { .sectors = b->file_bytes / BLK_SECTOR_SIZE, .id = "bench" };
	uint64_t ram = BUF_GPA + (uint64_t)MAX_QD * b->o.bs;
	ram = (ram + (1 << 20) - 1) & ~((uint64_t)(1 << 20) - 1);
	int file;
	if (io_loop_create(&b->loop, b->o.engine) < 0) {
		/* A host without io_uring (disabled, seccomp): nothing to measure, not an error. */
		fprintf(stderr, "blk_bench: skipped: %s\n", err_msg());
		return 77;
	}
	bool created;
	int ofile = 0;
	if (b->o.overlay && (overlay_open(&b->ovl, b->o.overlay, NULL, b->file_bytes, false, &created) < 0 ||
			     (ofile = io_loop_register_file(b->loop, overlay_fd(b->ovl))) < 0)) {
		fprintf(stderr, "blk_bench: --overlay %s: %s\n", b->o.overlay, err_msg());
		return 1;
	}
	if (
	    (file = io_loop_register_file(b->loop, b->fd)) < 0 ||
	    (b->ovl && (overlay_attach(b->ovl, b->loop, file, ofile), false)) ||
	    blk_create(&b->blk, &disk, &(struct disk_backend){ .loop = b->loop, .file = file, .ovl = b->ovl }) < 0 ||
	    vdrv_init(&b->d, blk_virtio_dev(b->blk), b->loop, ram) < 0 ||
	    io_loop_start(b->loop) < 0 ||
	    vdrv_start(&b->d, 1ULL << VIRTIO_BLK_F_FLUSH, 1) < 0) {
		fprintf(stderr, "blk_bench: set-up failed: %s\n", err_msg());
		return 1;
	}

	int ret = 0;
	if (b->o.verify_only) {
		ret = verify(b) < 0 ? 4 : 0;
		printf("{\"bench\":\"blk-verify\",\"engine\":\"%s\",\"ok\":%s}\n",
		       io_engine_name(io_loop_engine(b->loop)), ret ? "false" : "true");
	} else {
		/* Any non-zero data; the content of benchmark writes is not checked. */
		memset(vdrv_ptr(&b->d, BUF_GPA, (uint64_t)MAX_QD * b->o.bs), 0x5a, (size_t)MAX_QD * b->o.bs);
		if (b->o.fill) {
			/* Every block written once, in order, untimed: the overlay then holds the whole disk. */
			struct opts keep = b->o;
			b->o.write = true;
			b->o.random = false;
			run(b, 1e9, NULL, b->nblocks);
			b->o = keep;
			b->done = 0;
			b->next_seq = 0;
		}
		double secs = run(b, b->o.seconds, NULL, UINT64_MAX);
		uint64_t left;
		if (read(b->d.mmio.irq_fd, &left, sizeof(left)) == sizeof(left))
			b->d.irqs += left;
		double iops = (double)b->done / secs;
		printf("{\"bench\":\"blk\",\"impl\":\"microvm-%s%s\",\"rw\":\"%s\",\"bs\":%u,\"qd\":%d,"
		       "\"direct\":%s,\"seconds\":%.4f,\"ios\":%llu,\"iops\":%.1f,\"mbps\":%.2f,"
		       "\"kicks\":%llu,\"irqs\":%llu,\"irq_waits\":%llu,\"errors\":%llu}\n",
		       io_engine_name(io_loop_engine(b->loop)), b->ovl ? "-overlay" : "", rw, b->o.bs, b->o.qd,
		       b->o.direct ? "true" : "false", secs, (unsigned long long)b->done, iops,
		       iops * b->o.bs / 1e6, (unsigned long long)b->d.q[0].kicks,
		       (unsigned long long)b->d.irqs, (unsigned long long)b->d.irq_waits,
		       (unsigned long long)b->errors);
		ret = b->errors ? 4 : 0;
	}
	io_loop_destroy(b->loop);
	vdrv_destroy(&b->d);
	blk_destroy(b->blk);
	overlay_close(b->ovl);
	close(b->fd);
	close(b->check_fd);
	free(b);
	return ret;
}
