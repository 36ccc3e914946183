/* rate_bench.c - the I/O rate limiters without KVM: fake guests drive virtio-blk and virtio-net flat out against a limit and measure what gets through (docs/benchmarks.md). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/ratelimit.h"
#include "bench/vdrv.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/net.h"
#include "io/ioloop.h"

#define QD 8
#define HDR_GPA (VDRV_DATA_GPA)
#define STATUS_GPA (VDRV_DATA_GPA + 0x1000)
#define BUF_GPA (VDRV_DATA_GPA + 0x10000)
#define NET_BUF 2048
#define DISK_BYTES (64ULL << 20)

enum kind { DISK_BYTES_K, DISK_OPS, NET_TX_BYTES, NET_TX_FRAMES, NET_RX_BYTES, NET_RX_FRAMES, TWO_DISKS };
static const char *const kind_names[] = { "disk-bytes", "disk-ops", "net-tx-bytes", "net-tx-frames",
					  "net-rx-bytes", "net-rx-frames", "two-disks" };

static struct {
	enum kind kind;
	enum io_engine engine;
	struct tb_config limit, limit2;
	double warm, seconds;
	const char *file;
} o = { .engine = IO_ENGINE_URING, .warm = 1, .seconds = 10 };

/* What one fake guest (or the host's sink) counted: units are bytes or operations, as the limit counts. */
struct meter {
	atomic_ullong units;
	uint64_t at_warm, at_end;
	double t0, t_warm, t_end;
	uint64_t errors;
};

static atomic_bool stop_flag;

static void die(const char *what)
{
	fprintf(stderr, "rate_bench: %s: %s\n", what, errno ? strerror(errno) : err_msg());
	exit(1);
}

/* SIZE[/MS][+BURST], SIZE and BURST with an optional K or M (powers of 1024). */
static int parse_spec(const char *s, struct tb_config *c)
{
	char *e;

	*c = (struct tb_config){ .refill_ms = TB_DEFAULT_REFILL_MS };
	c->size = strtoull(s, &e, 10);
	if (*e == 'K' || *e == 'M')
		c->size <<= *e++ == 'K' ? 10 : 20;
	if (*e == '/')
		c->refill_ms = strtoull(e + 1, &e, 10);
	if (*e == '+') {
		c->burst = strtoull(e + 1, &e, 10);
		if (*e == 'K' || *e == 'M')
			c->burst <<= *e++ == 'K' ? 10 : 20;
	}
	return *e || !c->size || !tb_config_valid(c) ? -1 : 0;
}

static double rate_of(const struct tb_config *c)
{
	return (double)c->size * 1000.0 / (double)c->refill_ms;
}

/* Called by whoever counts, after each unit batch: note the count at the warm-up's end and at the end. */
static bool meter_tick(struct meter *m, double now)
{
	if (!m->t_warm && now >= m->t0 + o.warm) {
		m->t_warm = now;
		m->at_warm = atomic_load(&m->units);
	}
	if (now >= m->t0 + o.warm + o.seconds) {
		m->t_end = now;
		m->at_end = atomic_load(&m->units);
		return true;
	}
	return false;
}

/* ---- a disk: QD reads of bs bytes in flight, all the time ---- */

struct disk {
	struct blk *blk;
	struct vdrv d;
	uint32_t bs;
	bool count_bytes;
	struct meter m;
	pthread_t thread;
};

static void disk_queue(struct disk *k, int slot, uint64_t n)
{
	struct vdrv_q *q = &k->d.q[0];
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN,
				       .sector = (n * k->bs % DISK_BYTES) / BLK_SECTOR_SIZE };
	uint16_t d0 = (uint16_t)(3 * slot);

	memcpy(vdrv_ptr(&k->d, HDR_GPA + 16ULL * slot, 16), &h, 16);
	vdrv_set_desc(&k->d, q, d0, HDR_GPA + 16ULL * slot, 16, VIRTQ_DESC_F_NEXT, d0 + 1);
	vdrv_set_desc(&k->d, q, d0 + 1, BUF_GPA + (uint64_t)k->bs * slot, k->bs,
		      VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, d0 + 2);
	vdrv_set_desc(&k->d, q, d0 + 2, STATUS_GPA + (uint64_t)slot, 1, VIRTQ_DESC_F_WRITE, 0);
	vdrv_add(&k->d, q, d0);
}

static void *disk_drive(void *arg)
{
	struct disk *k = arg;
	struct vdrv_q *q = &k->d.q[0];
	uint64_t n = 0;
	int inflight = 0;
	bool stop = false;

	k->m.t0 = vdrv_now();
	for (int s = 0; s < QD; s++, inflight++)
		disk_queue(k, s, n++);
	vdrv_publish(&k->d, q);
	while (inflight) {
		uint32_t id, len;
		int got = 0;

		while (vdrv_get_used(&k->d, q, &id, &len)) {
			int s = (int)id / 3;
			got++;
			inflight--;
			if (id % 3 || s >= QD || len != k->bs + 1 ||
			    *(uint8_t *)vdrv_ptr(&k->d, STATUS_GPA + (uint64_t)s, 1) != VIRTIO_BLK_S_OK)
				k->m.errors++;
			atomic_fetch_add(&k->m.units, k->count_bytes ? k->bs : 1);
			if (!stop && meter_tick(&k->m, vdrv_now()))
				stop = true;
			if (!stop) {
				disk_queue(k, s, n++);
				inflight++;
			}
		}
		vdrv_publish(&k->d, q);
		if (got || !inflight)
			continue;
		if (vdrv_enable_cb(&k->d, q))
			continue;
		if (vdrv_wait_irq(&k->d, 10000) < 0) {
			fprintf(stderr, "rate_bench: disk: no interrupt for 10 s\n");
			exit(3);
		}
	}
	return NULL;
}

static void disk_setup(struct disk *k, struct io_loop *loop, int file, const struct tb_config *limit,
		       bool bytes)
{
	struct blk_disk bd = { .sectors = DISK_BYTES / BLK_SECTOR_SIZE, .id = "rate" };
	struct rl_config rl = { 0 };

	k->count_bytes = bytes;
	k->bs = bytes ? 65536 : 4096;
	if (bytes)
		rl.bytes = *limit;
	else
		rl.ops = *limit;
	if (blk_create(&k->blk, &bd, &(struct disk_backend){ .loop = loop, .file = file }) < 0 ||
	    blk_set_limits(k->blk, &rl) < 0 ||
	    vdrv_init(&k->d, blk_virtio_dev(k->blk), loop, BUF_GPA + (2ULL << 20)) < 0)
		die("disk set-up");
}

/* ---- a NIC over a socketpair: the guest sends (TX) or receives (RX) as fast as it can ---- */

struct nic {
	struct net *net;
	struct vdrv d;
	int sv[2];                      /* [0] the device's, [1] the host's */
	bool tx, count_bytes;
	uint32_t frame;                 /* bytes after the vnet header */
	struct meter m;
};

static gpa_t slot_gpa(int q, int i)
{
	return VDRV_DATA_GPA + ((gpa_t)q * VDRV_QSIZE + (gpa_t)i) * NET_BUF;
}

/* Host side of TX: count what arrives. */
static void *tx_sink(void *arg)
{
	struct nic *c = arg;
	static uint8_t buf[NET_HDR_LEN + 65536];

	c->m.t0 = vdrv_now();
	while (!atomic_load(&stop_flag)) {
		struct pollfd p = { .fd = c->sv[1], .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = read(c->sv[1], buf, sizeof(buf));
		if (r < 0)
			continue;
		if (r != NET_HDR_LEN + (ssize_t)c->frame)
			c->m.errors++;
		atomic_fetch_add(&c->m.units, c->count_bytes ? (uint64_t)r - NET_HDR_LEN : 1);
		if (meter_tick(&c->m, vdrv_now()))
			atomic_store(&stop_flag, true);
	}
	return NULL;
}

/* Host side of RX: send frames while the device takes them. */
static void *rx_sender(void *arg)
{
	struct nic *c = arg;
	uint8_t buf[NET_HDR_LEN + 1514] = { 0 };

	memset(buf + NET_HDR_LEN, 0x5a, c->frame);
	while (!atomic_load(&stop_flag)) {
		struct pollfd p = { .fd = c->sv[1], .events = POLLOUT };
		if (poll(&p, 1, 100) <= 0)
			continue;
		if (write(c->sv[1], buf, NET_HDR_LEN + c->frame) < 0 && errno != EAGAIN)
			die("rx sender");
	}
	return NULL;
}

static void guest_tx(struct nic *c)
{
	struct vdrv *d = &c->d;
	struct vdrv_q *q = &d->q[NET_TXQ];
	int inflight = 0;

	for (int i = 0; i < VDRV_QSIZE; i++) {
		memset(vdrv_ptr(d, slot_gpa(NET_TXQ, i), NET_BUF), 0, NET_HDR_LEN + c->frame);
		vdrv_set_desc(d, q, (uint16_t)i, slot_gpa(NET_TXQ, i), NET_HDR_LEN + c->frame, 0, 0);
		vdrv_add(d, q, (uint16_t)i);
		inflight++;
	}
	vdrv_publish(d, q);
	while (!atomic_load(&stop_flag)) {
		uint32_t id, len;
		int got = 0;

		while (vdrv_get_used(d, q, &id, &len)) {
			got++;
			vdrv_add(d, q, (uint16_t)(id % VDRV_QSIZE));
		}
		vdrv_publish(d, q);
		if (got)
			continue;
		if (!vdrv_enable_cb(d, q))
			vdrv_wait_irq(d, 100);
	}
	(void)inflight;
}

static void guest_rx(struct nic *c)
{
	struct vdrv *d = &c->d;
	struct vdrv_q *q = &d->q[NET_RXQ];
	bool stop = false;

	c->m.t0 = vdrv_now();
	for (int i = 0; i < VDRV_QSIZE; i++) {
		vdrv_set_desc(d, q, (uint16_t)i, slot_gpa(NET_RXQ, i), NET_BUF, VIRTQ_DESC_F_WRITE, 0);
		vdrv_add(d, q, (uint16_t)i);
	}
	vdrv_publish(d, q);
	while (!stop) {
		uint32_t id, len;
		int got = 0;

		while (got < 256 && vdrv_get_used(d, q, &id, &len)) {
			got++;
			if (len != NET_HDR_LEN + c->frame)
				c->m.errors++;
			atomic_fetch_add(&c->m.units, c->count_bytes ? (uint64_t)len - NET_HDR_LEN : 1);
			vdrv_add(d, q, (uint16_t)(id % VDRV_QSIZE));
		}
		vdrv_publish(d, q);
		if (meter_tick(&c->m, vdrv_now()))
			stop = true;
		if (got)
			continue;
		if (!vdrv_enable_cb(d, q))
			vdrv_wait_irq(d, 100);
	}
	atomic_store(&stop_flag, true);
}

/* ---- results ---- */

/*
 * One line of JSON. Hard facts, true on any host however slow: the units
 * that went through never exceed the bucket, the burst and the refill over
 * the elapsed time (plus the requests in flight); the limiter refused at least
 * once. The rates are the figures (bench/run checks them against +-5%).
 */
static int report(const char *name, const struct meter *m, const struct rate_limiter *rl,
		  const struct tb_config *lim, uint64_t slack)
{
	double rate = rate_of(lim);
	double steady = (double)(m->at_end - m->at_warm) / (m->t_end - m->t_warm);
	double warm_expect = (double)lim->size + (double)lim->burst + rate * (m->t_warm - m->t0);
	double bound = (double)lim->size + (double)lim->burst + rate * (m->t_end - m->t0) + (double)slack;
	bool ok = m->errors == 0 && rl->throttled > 0 && (double)m->at_end <= bound;

	printf("{\"bench\":\"rate\",\"kind\":\"%s\",\"engine\":\"%s\",\"limit\":%.0f,\"size\":%llu,"
	       "\"refill_ms\":%llu,\"burst\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"rate_vs_limit\":%.4f,"
	       "\"first_window\":%llu,\"first_window_expected\":%.0f,\"first_vs_expected\":%.4f,"
	       "\"total\":%llu,\"bound\":%.0f,\"throttled\":%llu,\"errors\":%llu,\"ok\":%s}\n",
	       name, io_engine_name(o.engine), rate, (unsigned long long)lim->size,
	       (unsigned long long)lim->refill_ms, (unsigned long long)lim->burst, m->t_end - m->t_warm, steady,
	       steady / rate, (unsigned long long)m->at_warm, warm_expect, (double)m->at_warm / warm_expect,
	       (unsigned long long)m->at_end, bound, (unsigned long long)rl->throttled,
	       (unsigned long long)m->errors, ok ? "true" : "false");
	return ok ? 0 : 4;
}

static void usage(void)
{
	fprintf(stderr, "usage: rate_bench --kind disk-bytes|disk-ops|net-tx-bytes|net-tx-frames|net-rx-bytes|"
			"net-rx-frames|two-disks --limit SIZE[/MS][+BURST] [--limit2 SPEC] [--file F] "
			"[--engine uring|sync] [--warm S] [--time S]\n");
	exit(2);
}

static int run_disks(struct io_loop *loop, int nd)
{
	struct disk k[2] = { 0 };
	int fd = open(o.file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600), file, ret = 0;

	if (fd < 0 || ftruncate(fd, (off_t)DISK_BYTES) < 0)
		die(o.file);
	if ((file = io_loop_register_file(loop, fd)) < 0)
		die("register");
	for (int i = 0; i < nd; i++)
		disk_setup(&k[i], loop, file, i ? &o.limit2 : &o.limit, o.kind != DISK_OPS);
	if (io_loop_start(loop) < 0)
		die("start");
	for (int i = 0; i < nd; i++)
		if (vdrv_start(&k[i].d, 0, 1) < 0)
			die("driver start");
	for (int i = 0; i < nd; i++)
		pthread_create(&k[i].thread, NULL, disk_drive, &k[i]);
	for (int i = 0; i < nd; i++)
		pthread_join(k[i].thread, NULL);
	for (int i = 0; i < nd; i++) {
		struct rate_limiter rl;
		char name[32];
		blk_get_limits(k[i].blk, &rl);
		snprintf(name, sizeof(name), "two-disks-%d", i);
		ret |= report(nd > 1 ? name : kind_names[o.kind], &k[i].m, &rl, i ? &o.limit2 : &o.limit,
			      (uint64_t)QD * (k[i].count_bytes ? k[i].bs : 1));
	}
	io_loop_destroy(loop);
	for (int i = 0; i < nd; i++) {
		vdrv_destroy(&k[i].d);
		blk_destroy(k[i].blk);
	}
	close(fd);
	return ret;
}

static int run_nic(struct io_loop *loop)
{
	static struct nic c;
	struct rl_config none = { 0 }, lim = { 0 };
	bool bytes = o.kind == NET_TX_BYTES || o.kind == NET_RX_BYTES;
	pthread_t peer;

	c.tx = o.kind == NET_TX_BYTES || o.kind == NET_TX_FRAMES;
	c.count_bytes = bytes;
	c.frame = bytes ? 1400 : 64;
	if (bytes)
		lim.bytes = o.limit;
	else
		lim.ops = o.limit;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, c.sv) < 0)
		die("socketpair");
	struct net_backend be = { .fd = c.sv[0], .mac = { 2, 0, 0, 0, 0, 9 }, .name = "rate" };
	if (net_create(&c.net, &be, loop) < 0 ||
	    net_set_limits(c.net, c.tx ? &none : &lim, c.tx ? &lim : &none) < 0 ||
	    vdrv_init(&c.d, net_virtio_dev(c.net), loop, VDRV_DATA_GPA + 2ULL * VDRV_QSIZE * NET_BUF) < 0 ||
	    io_loop_start(loop) < 0 ||
	    vdrv_start(&c.d, (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS), 2) < 0)
		die("NIC set-up");
	pthread_create(&peer, NULL, c.tx ? tx_sink : rx_sender, &c);
	if (c.tx)
		guest_tx(&c);
	else
		guest_rx(&c);
	pthread_join(peer, NULL);
	struct rate_limiter rx, tx;
	net_get_limits(c.net, &rx, &tx);
	/* In flight beyond the count: TX frames the sink has not read yet cannot exceed what was admitted. */
	int ret = report(kind_names[o.kind], &c.m, c.tx ? &tx : &rx, &o.limit, bytes ? c.frame : 1);
	io_loop_destroy(loop);
	vdrv_destroy(&c.d);
	net_destroy(c.net);
	close(c.sv[0]);
	close(c.sv[1]);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "kind", 1, 0, 'k' }, { "limit", 1, 0, 'l' }, { "limit2", 1, 0, 'L' }, { "engine", 1, 0, 'e' },
		{ "warm", 1, 0, 'w' }, { "time", 1, 0, 't' }, { "file", 1, 0, 'f' }, { 0, 0, 0, 0 },
	};
	bool have_kind = false;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'k':
			for (int i = 0; i <= TWO_DISKS; i++)
				if (!strcmp(optarg, kind_names[i]))
					o.kind = (enum kind)i, have_kind = true;
			break;
		case 'l': if (parse_spec(optarg, &o.limit) < 0) usage(); break;
		case 'L': if (parse_spec(optarg, &o.limit2) < 0) usage(); break;
		case 'e': o.engine = !strcmp(optarg, "sync") ? IO_ENGINE_SYNC : IO_ENGINE_URING; break;
		case 'w': o.warm = atof(optarg); break;
		case 't': o.seconds = atof(optarg); break;
		case 'f': o.file = optarg; break;
		default: usage();
		}
	}
	if (!have_kind || !o.limit.size || !(o.warm > 0) || !(o.seconds > 0) ||
	    (o.kind == TWO_DISKS && !o.limit2.size) || (o.kind <= DISK_OPS && !o.file) ||
	    (o.kind == TWO_DISKS && !o.file))
		usage();
	log_set_level(LOG_WARN);
	struct io_loop *loop;
	if (io_loop_create(&loop, o.engine) < 0) {
		fprintf(stderr, "rate_bench: skipped: %s\n", err_msg());
		return 77;
	}
	if (o.kind == TWO_DISKS)
		return run_disks(loop, 2);
	if (o.kind <= DISK_OPS)
		return run_disks(loop, 1);
	return run_nic(loop);
}
