/*
 * blk.c - a minimal virtio-mmio (version 2) + virtio-blk driver for the blk.* checks.
 *
 * Written from the virtio 1.2 specification: 2.1-2.7 (status, features,
 * split virtqueues), 4.2 (virtio-mmio), 5.2 (block device). One queue per
 * device, no interrupts (the IOAPIC pins stay masked): requests are completed
 * by polling the used ring with a bounded wait. Every register access is an
 * exit to microvm, and guest code is emulated here, so each check does few
 * requests and the data patterns are cheap to make and compare.
 */
#include "virtio.h"

/* Feature bits (5.2.3, 6). */
#define F_SIZE_MAX   1
#define F_SEG_MAX    2
#define F_RO         5
#define F_BLK_SIZE   6
#define F_FLUSH      9
#define F_WANTED ((1ULL << F_SIZE_MAX) | (1ULL << F_SEG_MAX) | (1ULL << F_RO) | \
		  (1ULL << F_BLK_SIZE) | (1ULL << F_FLUSH) | (1ULL << F_VERSION_1))

/* Block config (5.2.4) offsets. */
#define CFG_CAPACITY 0
#define CFG_SIZE_MAX 8
#define CFG_SEG_MAX  12
#define CFG_BLK_SIZE 20

/* Requests (5.2.6). */
#define T_IN     0
#define T_OUT    1
#define T_FLUSH  4
#define T_GET_ID 8
#define S_OK     0
#define S_IOERR  1
#define S_UNSUPP 2
#define S_NONE   0xff  /* our marker: the device has not written the status */

#define QSIZE_MAX  32   /* 8 requests of 3 descriptors in flight */
#define MAX_DISKS  4
#define MAX_OPS    16
#define MAX_REQS   8    /* requests in flight at once */
#define BUF_SECTORS 16  /* data buffer: 8 KiB */
#define SECTOR     512

struct req_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

/* One device's rings and request headers, in our own (identity mapped) image. */
struct ring {
	struct desc desc[QSIZE_MAX];                       /* align 16 */
	struct { uint16_t flags, idx, ring[QSIZE_MAX], used_event; } avail __attribute__((aligned(16)));
	struct { uint16_t flags, idx; struct { uint32_t id, len; } ring[QSIZE_MAX]; uint16_t avail_event; }
		used __attribute__((aligned(16)));
	struct req_hdr hdr[MAX_REQS];
	uint8_t status[MAX_REQS];
} __attribute__((aligned(64)));

struct disk {
	uint64_t base;
	uint32_t irq;
	uint64_t features;         /* offered by the device */
	uint64_t capacity;         /* sectors */
	uint16_t qsize;
	uint16_t avail_idx;        /* our next avail index */
	uint16_t used_seen;        /* used entries consumed */
	bool ok;                   /* set up, DRIVER_OK */
	bool irq_checked;
};

enum op_kind { OP_READ, OP_WRITE, OP_MULTI, OP_RO, OP_ID, OP_IOERR, OP_CAPACITY, OP_HOSTILE, OP_ABUSE, OP_SOAK,
	       OP_BENCH, OP_SEQ, OP_RECORDS };
enum hostile { H_NEXT, H_ADDR, H_WRAP, H_LOOP, H_AVAIL, H_INDIRECT, H_LEN };
static const char *const hostile_names[] = { "next", "addr", "wrap", "loop", "avail", "indirect", "len" };
/* blk.abuse: a driver that misbehaves at the register level (see op_abuse()). */
enum abuse { A_GARBAGE, A_ORDER, A_MIDRESET };
static const char *const abuse_names[] = { "garbage", "order", "midreset" };

struct op {
	enum op_kind kind;
	int disk;
	uint64_t sector, seed, count;
	uint64_t run, pace;        /* blk.records */
	const char *str;           /* blk.id */
	size_t str_len;
};

static struct {
	bool any;                  /* some blk.* key was given */
	enum vfind find;
	bool want_count;
	uint64_t count;
	bool cmdline_devices;
	int nr_ops;
	struct op ops[MAX_OPS];
} cfg;

static struct ring rings[MAX_DISKS] __attribute__((aligned(4096)));
static uint8_t buf[BUF_SECTORS * SECTOR] __attribute__((aligned(4096)));
static struct disk disks[MAX_DISKS];
static int nr_disks;
static const struct boot_info *boot;

/* ---- command line ---- */

/* Split v at ':' into up to max numbers; returns how many, or -1 if one is malformed. */
static int split_nums(const char *v, size_t n, uint64_t *out, int max)
{
	int k = 0;
	size_t s = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] != ':')
			continue;
		if (k == max || !parse_num(v + s, i - s, false, &out[k]))
			return -1;
		k++;
		s = i + 1;
	}
	return k;
}

/* The index of v[0..n) in names (a KIND of blk.hostile or blk.abuse). */
static bool find_name(const char *const *names, uint64_t count, const char *v, size_t n, uint64_t *index)
{
	for (uint64_t i = 0; i < count; i++)
		if (mem_eq_str(v, n, names[i])) {
			*index = i;
			return true;
		}
	return false;
}

/* A disk: 0, 1, ... or vda, vdb, ... */
static bool parse_disk(const char *v, size_t n, int *disk)
{
	uint64_t d;

	if (n == 3 && v[0] == 'v' && v[1] == 'd' && v[2] >= 'a' && v[2] < 'a' + MAX_DISKS) {
		*disk = v[2] - 'a';
		return true;
	}
	if (!parse_num(v, n, false, &d) || d >= MAX_DISKS)
		return false;
	*disk = (int)d;
	return true;
}

bool blk_wanted(void)
{
	return cfg.any;
}

bool blk_wants_fdt(int mode)
{
	return cfg.any && vfind_fdt(cfg.find, mode);
}

bool blk_wants_acpi(int mode)
{
	return cfg.any && vfind_acpi(cfg.find, mode);
}

bool blk_parse(const char *key, size_t klen, const char *v, size_t n)
{
	static const char *const names[] = { "read", "write", "multi", "ro", "id", "ioerr",
					     "capacity", "hostile", "abuse", "soak", "bench", "seq", "records" };
	uint64_t num[5] = { 0, 0, 0, 1, 0 };
	size_t colon = 0;

	cfg.any = true;
	if (mem_eq_str(key, klen, "count"))
		return (cfg.want_count = parse_num(v, n, false, &cfg.count));
	if (mem_eq_str(key, klen, "find"))
		return vfind_parse(v, n, &cfg.find);
	if (mem_eq_str(key, klen, "cmdline_devices")) {
		if (!parse_num(v, n, false, &num[0]) || num[0] > 1)
			return false;
		cfg.cmdline_devices = num[0];
		return true;
	}
	int kind = -1;
	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (mem_eq_str(key, klen, names[i]))
			kind = i;
	if (kind < 0 || cfg.nr_ops == MAX_OPS)
		return false;
	struct op *o = &cfg.ops[cfg.nr_ops];
	o->kind = (enum op_kind)kind;
	while (colon < n && v[colon] != ':')
		colon++;
	if (!parse_disk(v, colon, &o->disk))
		return false;
	const char *rest = v + colon + 1;
	size_t rn = colon < n ? n - colon - 1 : 0;
	bool has_rest = colon < n;
	int k;

	switch (o->kind) {
	case OP_READ:
	case OP_WRITE:    /* DISK:SECTOR:SEED[:COUNT] */
	case OP_MULTI:    /* DISK:SECTOR:SEED[:N] */
		num[2] = o->kind == OP_MULTI ? MAX_REQS : 1;
		k = has_rest ? split_nums(rest, rn, num, 3) : -1;
		if (k < 2)
			return false;
		o->sector = num[0];
		o->seed = num[1];
		o->count = k == 3 ? num[2] : (o->kind == OP_MULTI ? MAX_REQS : 1);
		if (!o->count || o->count > (o->kind == OP_MULTI ? MAX_REQS : BUF_SECTORS))
			return false;
		break;
	case OP_RO:       /* DISK */
		if (has_rest)
			return false;
		break;
	case OP_ID:       /* DISK:STRING (up to 20 bytes) */
		if (!has_rest || rn > 20)
			return false;
		o->str = rest;
		o->str_len = rn;
		break;
	case OP_IOERR:    /* DISK:SECTOR */
	case OP_CAPACITY: /* DISK:SECTORS */
		if (!has_rest || split_nums(rest, rn, num, 1) != 1)
			return false;
		o->sector = num[0];
		break;
	case OP_HOSTILE:  /* DISK:KIND */
		if (!has_rest || !find_name(hostile_names, sizeof(hostile_names) / sizeof(hostile_names[0]),
					    rest, rn, &o->count))
			return false;
		break;
	case OP_BENCH:    /* DISK:BATCHES */
		if (!has_rest || split_nums(rest, rn, num, 1) != 1 || !num[0] || num[0] > 10000000)
			return false;
		o->count = num[0];
		break;
	case OP_SEQ:      /* DISK:N[:READS] */
		num[1] = 0;
		k = has_rest ? split_nums(rest, rn, num, 2) : -1;
		if (k < 1 || !num[0] || num[0] > 1000000 || num[1] > 1000000)
			return false;
		o->count = num[0];
		o->seed = num[1];   /* port reads after each step */
		break;
	case OP_SOAK:     /* DISK:ROUNDS:SEED */
		if (!has_rest || split_nums(rest, rn, num, 2) != 2 || !num[0] || num[0] > 100000)
			return false;
		o->count = num[0];
		o->seed = num[1];
		break;
	case OP_RECORDS:  /* DISK:FIRST:COUNT:EVERY[:RUN[:PACE]] */
		num[3] = 0;
		k = has_rest ? split_nums(rest, rn, num, 5) : -1;
		if (k < 3 || !num[1] || num[1] > 1000000 || !num[2] || num[2] > MAX_REQS || num[4] > 1000000)
			return false;
		o->sector = num[0];
		o->count = num[1];
		o->seed = num[2];   /* at most this many records per flush */
		o->run = num[3];
		o->pace = num[4];   /* port reads after each durable line */
		break;
	case OP_ABUSE:    /* DISK:KIND */
		if (!has_rest || !find_name(abuse_names, sizeof(abuse_names) / sizeof(abuse_names[0]),
					    rest, rn, &o->count))
			return false;
		break;
	}
	cfg.nr_ops++;
	return true;
}

/* ---- transport ---- */

static uint32_t rd(const struct disk *d, uint32_t reg)
{
	return vm_rd(d->base, reg);
}

static void wr(const struct disk *d, uint32_t reg, uint32_t v)
{
	vm_wr(d->base, reg, v);
}

static void wr64(const struct disk *d, uint32_t reg, uint64_t v)
{
	vm_wr64(d->base, reg, v);
}

#define barrier compiler_barrier

static uint64_t cfg_read(const struct disk *d, uint32_t off, bool wide)
{
	return vm_cfg_read(d->base, off, wide);
}

static uint32_t wait_status(const struct disk *d, uint32_t mask, uint32_t want)
{
	return vm_wait_status(d->base, mask, want);
}

/* Reset, then ACK, DRIVER, features, FEATURES_OK, queue 0, DRIVER_OK (3.1.1, 4.2.3). */
static bool dev_init(struct disk *d, struct ring *r, int idx, bool quiet)
{
	uint32_t st;

	d->ok = false;
	wr(d, VM_STATUS, 0);
	if ((st = wait_status(d, 0xff, 0)) != 0) {
		fail(FAIL_BLK_INIT, "blk: vd%c: status 0x%x after reset, expected 0", 'a' + idx, st);
		return false;
	}
	wr(d, VM_STATUS, ST_ACK);
	wr(d, VM_STATUS, ST_ACK | ST_DRIVER);
	uint64_t f = vm_device_features(d->base);
	d->features = f;
	if (!(f & (1ULL << F_VERSION_1))) {
		fail(FAIL_BLK_INIT, "blk: vd%c: device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)",
		     'a' + idx, f);
		wr(d, VM_STATUS, ST_FAILED);
		return false;
	}
	uint64_t drv = f & F_WANTED;
	vm_driver_features(d->base, drv);
	wr(d, VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	st = rd(d, VM_STATUS);
	if (!(st & ST_FEATURES_OK)) {
		fail(FAIL_BLK_INIT, "blk: vd%c: FEATURES_OK not kept (status 0x%x, features 0x%lx)",
		     'a' + idx, st, drv);
		wr(d, VM_STATUS, ST_FAILED);
		return false;
	}
	d->capacity = cfg_read(d, CFG_CAPACITY, true);

	wr(d, VM_QUEUE_SEL, 0);
	uint32_t ready = rd(d, VM_QUEUE_READY), max = rd(d, VM_QUEUE_NUM_MAX);
	if (ready || !max) {
		fail(FAIL_BLK_INIT, "blk: vd%c: queue 0: QueueReady %u, QueueNumMax %u", 'a' + idx,
		     ready, max);
		wr(d, VM_STATUS, ST_FAILED);
		return false;
	}
	uint16_t q = QSIZE_MAX;
	while (q > max)
		q >>= 1;
	d->qsize = q;
	d->avail_idx = d->used_seen = 0;
	memset(r, 0, sizeof(*r));
	wr(d, VM_QUEUE_NUM, q);
	wr64(d, VM_QUEUE_DESC, (uint64_t)(uintptr_t)r->desc);
	wr64(d, VM_QUEUE_DRIVER, (uint64_t)(uintptr_t)&r->avail);
	wr64(d, VM_QUEUE_DEVICE, (uint64_t)(uintptr_t)&r->used);
	wr(d, VM_QUEUE_READY, 1);
	if (rd(d, VM_QUEUE_READY) != 1) {
		fail(FAIL_BLK_INIT, "blk: vd%c: QueueReady reads 0 after setting it", 'a' + idx);
		wr(d, VM_STATUS, ST_FAILED);
		return false;
	}
	wr(d, VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	st = rd(d, VM_STATUS);
	if (st != (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK)) {
		fail(FAIL_BLK_INIT, "blk: vd%c: status 0x%x after DRIVER_OK", 'a' + idx, st);
		return false;
	}
	d->ok = true;
	if (!quiet) {
		uint32_t seg = f & (1ULL << F_SEG_MAX) ? (uint32_t)cfg_read(d, CFG_SEG_MAX, false) : 0;
		uint32_t bs = f & (1ULL << F_BLK_SIZE) ? (uint32_t)cfg_read(d, CFG_BLK_SIZE, false) : 0;
		gprintf("blk: vd%c at 0x%lx irq %u: features 0x%lx (ro %u flush %u), %lu sectors, "
			"seg_max %u, blk_size %u, queue %u of %u\n",
			'a' + idx, d->base, d->irq, f, (unsigned)(f >> F_RO) & 1,
			(unsigned)(f >> F_FLUSH) & 1, d->capacity, seg, bs, q, max);
	}
	return true;
}

/* ---- requests ---- */

/* Put request slot s (3 descriptors from 3*s, or 2 without data) in the avail ring; no notify. */
static void queue_req(struct disk *d, struct ring *r, int s, uint32_t type, uint64_t sector,
		      void *data, uint32_t len, bool dev_writes)
{
	uint16_t h = (uint16_t)(3 * s);
	struct desc *dd = r->desc;

	r->hdr[s] = (struct req_hdr){ type, 0, sector };
	r->status[s] = S_NONE;
	dd[h] = (struct desc){ (uint64_t)(uintptr_t)&r->hdr[s], sizeof(struct req_hdr), DESC_F_NEXT,
			       (uint16_t)(h + 1) };
	uint16_t last = h;
	if (len) {
		dd[h + 1] = (struct desc){ (uint64_t)(uintptr_t)data, len,
					   (uint16_t)(DESC_F_NEXT | (dev_writes ? DESC_F_WRITE : 0)),
					   (uint16_t)(h + 2) };
		last = (uint16_t)(h + 1);
	}
	dd[last].next = (uint16_t)(last + 1);
	dd[last + 1] = (struct desc){ (uint64_t)(uintptr_t)&r->status[s], 1, DESC_F_WRITE, 0 };
	r->avail.ring[d->avail_idx % d->qsize] = h;
	d->avail_idx++;
}

static void kick(struct disk *d, struct ring *r)
{
	barrier();
	*(volatile uint16_t *)&r->avail.idx = d->avail_idx;
	barrier();
	wr(d, VM_QUEUE_NOTIFY, 0);
}

/*
 * Wait for n completions of slots 0..n-1 (any order). want_len[s]: the used
 * length each must report. Returns false (after fail()) on a timeout or a
 * malformed used entry.
 */
static bool wait_used(struct disk *d, struct ring *r, int idx, int n, const uint32_t *want_len)
{
	struct wait_clock clock;
	uint32_t done = 0;
	int got = 0;

	/* The TSC runs on while the VM is paused (a snapshot): its jumps are not counted. */
	wait_clock_start(&clock, WAIT_USED_TSC);
	for (uint32_t spins = 0; got < n; spins++) {
		uint16_t used = *(volatile uint16_t *)&r->used.idx;
		if (used == d->used_seen) {
			if (wait_clock_expired(&clock) || spins > WAIT_SPINS) {
				uint32_t st = rd(d, VM_STATUS);
				fail(FAIL_BLK_IO, "blk: vd%c: %d of %d requests completed in the bounded wait "
				     "(used idx %u, device status 0x%x)", 'a' + idx, got, n, used, st);
				return false;
			}
			continue;
		}
		barrier();
		uint32_t id = r->used.ring[d->used_seen % d->qsize].id;
		uint32_t len = r->used.ring[d->used_seen % d->qsize].len;
		d->used_seen++;
		got++;
		int s = (int)(id / 3);
		if (id % 3 || s >= n || (done & (1u << s))) {
			fail(FAIL_BLK_USED, "blk: vd%c: used ring entry id %u is not a request in flight",
			     'a' + idx, id);
			return false;
		}
		done |= 1u << s;
		if (want_len && len != want_len[s] && r->status[s] == S_OK) {
			fail(FAIL_BLK_USED, "blk: vd%c: used len %u for a request that wrote %u bytes",
			     'a' + idx, len, want_len[s]);
			return false;
		}
	}
	if (!d->irq_checked) {
		/*
		 * Interrupts were not suppressed: the device must set InterruptStatus bit 0.
		 * It publishes the used entry first and notifies after, so allow it a moment.
		 */
		uint32_t is = rd(d, VM_IRQ_STATUS);
		uint64_t deadline = rdtsc() + WAIT_TSC;
		for (uint32_t spins = 0; !(is & 1) && rdtsc() < deadline && spins < WAIT_SPINS; spins++)
			is = rd(d, VM_IRQ_STATUS);
		d->irq_checked = true;
		if (!(is & 1)) {
			fail(FAIL_BLK_USED, "blk: vd%c: InterruptStatus 0x%x after a used buffer, expected bit 0",
			     'a' + idx, is);
			return false;
		}
		wr(d, VM_IRQ_ACK, is);
	}
	return true;
}

/* One request, waited for; returns its status byte, or -1 after a failure. */
static int request(int idx, uint32_t type, uint64_t sector, void *data, uint32_t len, bool dev_writes)
{
	struct disk *d = &disks[idx];
	struct ring *r = &rings[idx];
	uint32_t want = 1 + (dev_writes ? len : 0);

	queue_req(d, r, 0, type, sector, data, len, dev_writes);
	kick(d, r);
	if (!wait_used(d, r, idx, 1, &want))
		return -1;
	return r->status[0];
}

/* The pattern: each little-endian u64 at disk byte 8*w holds w ^ seed * golden ratio. */
static uint64_t seed_mix(uint64_t seed)
{
	return seed * 0x9e3779b97f4a7c15ULL;
}

static void fill(uint64_t *p, uint64_t sector, uint64_t count, uint64_t seed)
{
	uint64_t m = seed_mix(seed), w = sector * (SECTOR / 8);

	for (uint64_t i = 0; i < count * (SECTOR / 8); i++)
		p[i] = (w + i) ^ m;
}

/* Compare; report the first differing word. */
static bool verify(int idx, const uint64_t *p, uint64_t sector, uint64_t count, uint64_t seed)
{
	uint64_t m = seed_mix(seed), w = sector * (SECTOR / 8);

	for (uint64_t i = 0; i < count * (SECTOR / 8); i++)
		if (p[i] != ((w + i) ^ m)) {
			fail(FAIL_BLK_DATA, "blk: vd%c: sector %lu word %lu is 0x%lx, expected 0x%lx (seed %lu)",
			     'a' + idx, sector + i / 64, i % 64, p[i], (w + i) ^ m, seed);
			return false;
		}
	return true;
}

static const char *status_name(int s)
{
	return s == S_OK ? "OK" : s == S_IOERR ? "IOERR" : s == S_UNSUPP ? "UNSUPP" :
	       s == S_NONE ? "not written" : "invalid";
}

static bool expect_ok(int idx, const char *what, int st)
{
	if (st == S_OK)
		return true;
	if (st >= 0)
		fail(FAIL_BLK_IO, "blk: vd%c: %s: status %d (%s), expected OK", 'a' + idx, what, st,
		     status_name(st));
	return false;
}

static void op_read(const struct op *o)
{
	uint32_t len = (uint32_t)o->count * SECTOR;

	memset(buf, 0, len);
	if (expect_ok(o->disk, "read", request(o->disk, T_IN, o->sector, buf, len, true)) &&
	    verify(o->disk, (const uint64_t *)buf, o->sector, o->count, o->seed))
		gprintf("blk: vd%c: read %lu sectors at %lu: pattern %lu ok\n", 'a' + o->disk, o->count,
			o->sector, o->seed);
}

static void op_write(const struct op *o)
{
	struct disk *d = &disks[o->disk];
	uint32_t len = (uint32_t)o->count * SECTOR;

	if (!(d->features & (1ULL << F_FLUSH))) {
		fail(FAIL_BLK_INIT, "blk: vd%c: no VIRTIO_BLK_F_FLUSH, cannot make a write durable",
		     'a' + o->disk);
		return;
	}
	fill((uint64_t *)buf, o->sector, o->count, o->seed);
	if (!expect_ok(o->disk, "write", request(o->disk, T_OUT, o->sector, buf, len, false)) ||
	    !expect_ok(o->disk, "flush", request(o->disk, T_FLUSH, 0, NULL, 0, false)))
		return;
	memset(buf, 0, len);
	if (expect_ok(o->disk, "read back", request(o->disk, T_IN, o->sector, buf, len, true)) &&
	    verify(o->disk, (const uint64_t *)buf, o->sector, o->count, o->seed))
		gprintf("blk: vd%c: wrote and flushed %lu sectors at %lu: pattern %lu, read back ok\n",
			'a' + o->disk, o->count, o->sector, o->seed);
}

/*
 * For snapshot tests: step i of N writes sector i (pattern SEQ_SEED), flushes,
 * prints "blk: seq i" and reads a port READS times; a VM snapshotted midway and restored must go on
 * with the next step. Then every sector is read back and checked.
 */
#define SEQ_SEED 77
#define SEQ_PACE_PORT 0x3ff   /* COM1's scratch register: every read is an exit to the VMM */
static void op_seq(const struct op *o)
{
	struct disk *d = &disks[o->disk];

	if (o->count > d->capacity) {
		fail(FAIL_BLK_IO, "blk: vd%c: seq of %lu sectors on a disk of %lu", 'a' + o->disk, o->count,
		     d->capacity);
		return;
	}
	for (uint64_t i = 0; i < o->count; i++) {
		fill((uint64_t *)buf, i, 1, SEQ_SEED);
		if (!expect_ok(o->disk, "seq write", request(o->disk, T_OUT, i, buf, SECTOR, false)) ||
		    !expect_ok(o->disk, "seq flush", request(o->disk, T_FLUSH, 0, NULL, 0, false)))
			return;
		gprintf("blk: seq %lu\n", i);
		/* Paced by exits, not the TSC: in a nested KVM the TSC can jump back and make a wait endless. */
		for (uint64_t k = 0; k < o->seed; k++)
			(void)inb(SEQ_PACE_PORT);
	}
	for (uint64_t i = 0; i < o->count; i += BUF_SECTORS) {
		uint64_t n = o->count - i < BUF_SECTORS ? o->count - i : BUF_SECTORS;
		memset(buf, 0, n * SECTOR);
		if (!expect_ok(o->disk, "seq read back", request(o->disk, T_IN, i, buf, (uint32_t)(n * SECTOR), true)) ||
		    !verify(o->disk, (const uint64_t *)buf, i, n, SEQ_SEED))
			return;
	}
	gprintf("blk: vd%c: seq of %lu sectors written, read back ok\n", 'a' + o->disk, o->count);
}

/*
 * blk.records=DISK:FIRST:COUNT:EVERY[:RUN[:PACE]], for the power-cut test
 * (tests/powercut, docs/powercut.md): COUNT numbered 512-byte records, record
 * n at sector FIRST + n, written in batches of 1, 2, ..., EVERY, 1, 2, ...
 * records (a batch's writes all in flight at once), each batch followed by a
 * FLUSH; once the FLUSH completed with OK the guest prints "blk: durable N"
 * (records 0..N-1 were acknowledged as durable) and reads a port PACE times.
 * Then every record is read back and checked. A record (64 little-endian
 * words): REC_MAGIC, n, RUN, 60 words (sector * 64 + i) ^ seed_mix(RUN *
 * 1000003 + n + 1) for i = 3..62, and a checksum of words 0..62 (h = rol64(h,
 * 1) + w), so the host can tell an intact record from a missing, misplaced or
 * torn one.
 */
#define REC_MAGIC 0x31304345524d564dULL   /* "MVMREC01" */

static uint64_t rotsum(const uint64_t *w, int n)
{
	uint64_t h = 0;

	for (int i = 0; i < n; i++)
		h = ((h << 1) | (h >> 63)) + w[i];
	return h;
}

static void make_record(uint64_t *p, uint64_t sector, uint64_t n, uint64_t run)
{
	uint64_t m = seed_mix(run * 1000003 + n + 1);

	p[0] = REC_MAGIC;
	p[1] = n;
	p[2] = run;
	for (int i = 3; i < 63; i++)
		p[i] = (sector * 64 + (uint64_t)i) ^ m;
	p[63] = rotsum(p, 63);
}

static void op_records(const struct op *o)
{
	int idx = o->disk;
	struct disk *d = &disks[idx];
	struct ring *r = &rings[idx];
	uint64_t done = 0, batch = 1;
	unsigned flushes = 0;

	if (!(d->features & (1ULL << F_FLUSH))) {
		fail(FAIL_BLK_INIT, "blk: vd%c: no VIRTIO_BLK_F_FLUSH, cannot make a record durable", 'a' + idx);
		return;
	}
	if (o->sector + o->count > d->capacity || 3 * o->seed > d->qsize) {
		fail(FAIL_BLK_IO, "blk: vd%c: records %lu..%lu at sector %lu: disk of %lu sectors, queue of %u",
		     'a' + idx, (uint64_t)0, o->count - 1, o->sector, d->capacity, d->qsize);
		return;
	}
	while (done < o->count) {
		int k = (int)(batch < o->count - done ? batch : o->count - done);
		for (int j = 0; j < k; j++) {
			uint64_t n = done + (uint64_t)j;
			make_record((uint64_t *)(buf + (size_t)j * SECTOR), o->sector + n, n, o->run);
			queue_req(d, r, j, T_OUT, o->sector + n, buf + (size_t)j * SECTOR, SECTOR, false);
		}
		kick(d, r);
		if (!wait_used(d, r, idx, k, NULL))
			return;
		for (int j = 0; j < k; j++)
			if (!expect_ok(idx, "record write", r->status[j]))
				return;
		if (!expect_ok(idx, "record flush", request(idx, T_FLUSH, 0, NULL, 0, false)))
			return;
		done += (uint64_t)k;
		flushes++;
		gprintf("blk: durable %lu\n", done);
		for (uint64_t i = 0; i < o->pace; i++)
			(void)inb(SEQ_PACE_PORT);
		batch = batch % o->seed + 1;
	}
	for (uint64_t n = 0; n < o->count; n += BUF_SECTORS) {
		uint64_t c = o->count - n < BUF_SECTORS ? o->count - n : BUF_SECTORS;
		memset(buf, 0, c * SECTOR);
		if (!expect_ok(idx, "record read back", request(idx, T_IN, o->sector + n, buf,
								(uint32_t)(c * SECTOR), true)))
			return;
		for (uint64_t j = 0; j < c; j++) {
			uint64_t want[64];
			const uint64_t *p = (const uint64_t *)(buf + j * SECTOR);
			make_record(want, o->sector + n + j, n + j, o->run);
			for (int w = 0; w < 64; w++)
				if (p[w] != want[w]) {
					fail(FAIL_BLK_DATA, "blk: vd%c: record %lu (sector %lu) word %d is 0x%lx, "
					     "expected 0x%lx", 'a' + idx, n + j, o->sector + n + j, w, p[w], want[w]);
					return;
				}
		}
	}
	gprintf("blk: vd%c: records: %lu written in %u flushes, read back ok\n", 'a' + idx, o->count, flushes);
}

/* N one-sector reads of consecutive sectors, all in the avail ring before the first completion is looked at. */
/*
 * n (1..MAX_REQS) one-sector reads of first, first + 1, ... into buf, all in
 * the avail ring before one notify; waits for every completion and checks
 * each status. Returns false after fail().
 */
static bool reads_in_flight(int disk, uint64_t first, int n, const char *what)
{
	struct disk *d = &disks[disk];
	struct ring *r = &rings[disk];
	uint32_t want[MAX_REQS];

	if (3 * n > d->qsize) {
		fail(FAIL_BLK_INIT, "blk: vd%c: queue size %u too small for %d requests", 'a' + disk,
		     d->qsize, n);
		return false;
	}
	for (int s = 0; s < n; s++) {
		queue_req(d, r, s, T_IN, first + (uint64_t)s, buf + s * SECTOR, SECTOR, true);
		want[s] = SECTOR + 1;
	}
	kick(d, r);
	if (!wait_used(d, r, disk, n, want))
		return false;
	for (int s = 0; s < n; s++)
		if (!expect_ok(disk, what, r->status[s]))
			return false;
	return true;
}

static void op_multi(const struct op *o)
{
	int n = (int)o->count;

	memset(buf, 0, (size_t)n * SECTOR);
	if (!reads_in_flight(o->disk, o->sector, n, "read in flight"))
		return;
	if (verify(o->disk, (const uint64_t *)buf, o->sector, (uint64_t)n, o->seed))
		gprintf("blk: vd%c: %d reads in flight at %lu: pattern %lu ok\n", 'a' + o->disk, n,
			o->sector, o->seed);
}

/*
 * blk.bench=DISK:BATCHES, for bench/vm.py: BATCHES rounds of MAX_REQS one-sector
 * reads in flight (reads_in_flight(), sectors walking through the disk and back
 * to 0 at its end); timed by the host from the start and done lines.
 */
static void op_bench(const struct op *o)
{
	struct disk *d = &disks[o->disk];
	uint64_t next = 0;

	if (3 * MAX_REQS > d->qsize || d->capacity < MAX_REQS) {
		fail(FAIL_BLK_INIT, "blk: vd%c: queue size %u or capacity %lu too small for the bench",
		     'a' + o->disk, d->qsize, d->capacity);
		return;
	}
	gprintf("bench: blk %lu start\n", o->count * MAX_REQS);
	uint64_t t0 = rdtsc();
	for (uint64_t b = 0; b < o->count; b++) {
		if (!reads_in_flight(o->disk, next, MAX_REQS, "bench read"))
			return;
		next = next + 2 * MAX_REQS <= d->capacity ? next + MAX_REQS : 0;
	}
	gprintf("bench: blk %lu done, %lu TSC cycles\n", o->count * MAX_REQS, rdtsc() - t0);
}

static void op_ro(const struct op *o)
{
	struct disk *d = &disks[o->disk];

	if (!(d->features & (1ULL << F_RO))) {
		fail(FAIL_BLK_RO, "blk: vd%c: VIRTIO_BLK_F_RO not offered", 'a' + o->disk);
		return;
	}
	fill((uint64_t *)buf, 0, 1, 0xbad);
	int st = request(o->disk, T_OUT, 0, buf, SECTOR, false);
	if (st < 0)
		return;
	if (st != S_IOERR) {
		fail(FAIL_BLK_RO, "blk: vd%c: write to a read-only disk: status %d (%s), expected IOERR",
		     'a' + o->disk, st, status_name(st));
		return;
	}
	gprintf("blk: vd%c: read-only, write refused with IOERR\n", 'a' + o->disk);
}

static void op_id(const struct op *o)
{
	char id[21];

	memset(buf, 0xee, 20);
	if (!expect_ok(o->disk, "GET_ID", request(o->disk, T_GET_ID, 0, buf, 20, true)))
		return;
	/* 20 bytes, NUL terminated only if shorter (5.2.6). */
	memcpy(id, buf, 20);
	id[20] = '\0';
	size_t l = strlen(id);
	if (l != o->str_len || memcmp(id, o->str, l)) {
		fail(FAIL_BLK_ID, "blk: vd%c: GET_ID is '%s', expected '%.*s'", 'a' + o->disk, id,
		     (int)o->str_len, o->str);
		return;
	}
	gprintf("blk: vd%c: id '%s'\n", 'a' + o->disk, id);
}

static void op_ioerr(const struct op *o)
{
	int st = request(o->disk, T_IN, o->sector, buf, SECTOR, true);

	if (st < 0)
		return;
	if (st != S_IOERR) {
		fail(FAIL_BLK_IOERR, "blk: vd%c: read at %lu: status %d (%s), expected IOERR",
		     'a' + o->disk, o->sector, st, status_name(st));
		return;
	}
	/* The device carries on: another sector reads fine. */
	uint64_t other = o->sector ? 0 : 1;
	if (expect_ok(o->disk, "read after IOERR", request(o->disk, T_IN, other, buf, SECTOR, true)))
		gprintf("blk: vd%c: read at %lu got IOERR, then sector %lu read ok\n", 'a' + o->disk,
			o->sector, other);
}

static void op_capacity(const struct op *o)
{
	struct disk *d = &disks[o->disk];

	if (d->capacity != o->sector)
		fail(FAIL_BLK_CAPACITY, "blk: vd%c: capacity %lu sectors, expected %lu", 'a' + o->disk,
		     d->capacity, o->sector);
	else
		gprintf("blk: vd%c: capacity %lu sectors\n", 'a' + o->disk, d->capacity);
}

/*
 * A request that breaks the rules: the device must set DEVICE_NEEDS_RESET
 * and not use the chain. Then we reset it, set it up again and read sector 0.
 */
static void op_hostile(const struct op *o)
{
	int idx = o->disk;
	struct disk *d = &disks[idx];
	struct ring *r = &rings[idx];
	enum hostile h = (enum hostile)o->count;
	struct desc *dd = r->desc;
	uint16_t used_before = r->used.idx;

	queue_req(d, r, 0, T_IN, 0, buf, SECTOR, true);
	switch (h) {
	case H_NEXT:      /* header's next out of range */
		dd[0].next = (uint16_t)(d->qsize + 7);
		break;
	case H_ADDR:      /* data buffer far beyond RAM */
		dd[1].addr = 0x7f0000000000ULL;
		break;
	case H_WRAP:      /* data buffer wraps around the address space */
		dd[1].addr = 0xfffffffffffffe00ULL;
		dd[1].len = 0x400;
		break;
	case H_LOOP:      /* data points back at the header */
		dd[1].next = 0;
		break;
	case H_AVAIL:     /* avail idx more than queue size ahead */
		d->avail_idx = (uint16_t)(d->avail_idx + d->qsize + 1);
		break;
	case H_INDIRECT:  /* INDIRECT without VIRTIO_RING_F_INDIRECT_DESC negotiated */
		dd[0].flags = DESC_F_INDIRECT;
		dd[0].len = 48;
		break;
	case H_LEN:       /* a 4 GiB - 1 data buffer */
		dd[1].len = 0xffffffffu;
		break;
	}
	kick(d, r);
	uint32_t st = wait_status(d, ST_NEEDS_RESET, ST_NEEDS_RESET);
	if (!(st & ST_NEEDS_RESET)) {
		fail(FAIL_BLK_HOSTILE, "blk: vd%c: hostile '%s': status 0x%x, no DEVICE_NEEDS_RESET "
		     "(used idx %u -> %u)", 'a' + idx, hostile_names[h], st, used_before,
		     *(volatile uint16_t *)&r->used.idx);
		return;
	}
	uint32_t is = rd(d, VM_IRQ_STATUS);
	gprintf("blk: vd%c: hostile '%s': status 0x%x (DEVICE_NEEDS_RESET), interrupt status 0x%x\n",
		'a' + idx, hostile_names[h], st, is);
	if (is)
		wr(d, VM_IRQ_ACK, is);
	d->irq_checked = true;   /* after a reset the first completion need not be re-checked */
	if (!dev_init(d, r, idx, true))
		return;
	if (expect_ok(idx, "read after reset", request(idx, T_IN, 0, buf, SECTOR, true)))
		gprintf("blk: vd%c: reset and set up again, sector 0 read ok\n", 'a' + idx);
}

/* The device still identifies itself: magic, version 2, block device. */
static bool still_answers(const struct disk *d, int idx, const char *what)
{
	uint32_t magic = rd(d, VM_MAGIC), ver = rd(d, VM_VERSION), id = rd(d, VM_DEVICE_ID);

	if (magic != VIRTIO_MAGIC || ver != 2 || id != VIRTIO_ID_BLK) {
		fail(FAIL_BLK_ABUSE, "blk: vd%c: %s: magic 0x%x version %u device %u afterwards", 'a' + idx,
		     what, magic, ver, id);
		return false;
	}
	return true;
}

/* Reset, set up again and read sector 0: the device recovered. */
static void recover(struct disk *d, struct ring *r, int idx, const char *what)
{
	uint32_t is = rd(d, VM_IRQ_STATUS);

	if (is)
		wr(d, VM_IRQ_ACK, is);
	d->irq_checked = true;
	if (!dev_init(d, r, idx, true))
		return;
	if (expect_ok(idx, "read after reset", request(idx, T_IN, 0, buf, SECTOR, true)))
		gprintf("blk: vd%c: %s: reset and set up again, sector 0 read ok\n", 'a' + idx, what);
}

/*
 * A driver gone wrong at the register level; microvm must stay up and the
 * device must recover after a reset:
 * - garbage: pseudo-random values written to every register of the window,
 *   three times over (queue addresses, sizes, notifications, status bits);
 * - order: the set-up steps out of order (DRIVER_OK first, QueueReady on an
 *   unconfigured queue, a notify before any queue, features after
 *   FEATURES_OK, a queue size change after QueueReady);
 * - midreset: a reset while eight writes are in flight; once the status
 *   reads 0 the device must not touch the old rings again.
 */
static void op_abuse(const struct op *o)
{
	int idx = o->disk;
	struct disk *d = &disks[idx];
	struct ring *r = &rings[idx];
	enum abuse a = (enum abuse)o->count;
	const char *what = abuse_names[a];

	switch (a) {
	case A_GARBAGE: {
		uint64_t x = 0x9e3779b97f4a7c15ULL;
		int n = 0;
		for (int round = 0; round < 3; round++)
			for (uint32_t reg = 0; reg < 0x200; reg += 4) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				wr(d, reg, (uint32_t)(x >> 16));
				n++;
			}
		if (!still_answers(d, idx, what))
			return;
		gprintf("blk: vd%c: garbage: %d register writes, status 0x%x, the device still answers\n",
			'a' + idx, n, rd(d, VM_STATUS));
		break;
	}
	case A_ORDER: {
		wr(d, VM_STATUS, 0);
		wr(d, VM_STATUS, ST_DRIVER_OK);                   /* before ACK, DRIVER, FEATURES_OK */
		uint32_t s1 = rd(d, VM_STATUS);
		wr(d, VM_QUEUE_NOTIFY, 0);                        /* no queue set up */
		wr(d, VM_STATUS, 0);
		wr(d, VM_STATUS, ST_ACK | ST_DRIVER);
		wr(d, VM_QUEUE_SEL, 0);
		wr(d, VM_QUEUE_READY, 1);                         /* size and addresses never written */
		uint32_t ready = rd(d, VM_QUEUE_READY);
		wr(d, VM_QUEUE_SEL, 7);                           /* no such queue */
		wr(d, VM_QUEUE_NUM, 8);
		wr(d, VM_QUEUE_READY, 1);
		wr(d, VM_QUEUE_SEL, 0);
		vm_driver_features(d->base, d->features & F_WANTED);
		wr(d, VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
		vm_driver_features(d->base, ~0ULL);               /* after FEATURES_OK: ignored */
		wr(d, VM_QUEUE_NUM, 0);                           /* size change on a queue said ready */
		wr(d, VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
		wr(d, VM_QUEUE_NOTIFY, 0);
		wr(d, VM_STATUS, ST_ACK);                         /* clears bits without a reset */
		uint32_t s2 = rd(d, VM_STATUS);
		if (!still_answers(d, idx, what))
			return;
		gprintf("blk: vd%c: order: DRIVER_OK alone left status 0x%x, QueueReady without a queue "
			"reads %u, status 0x%x at the end\n", 'a' + idx, s1, ready, s2);
		if (s1 & ST_DRIVER_OK)
			fail(FAIL_BLK_ABUSE, "blk: vd%c: order: DRIVER_OK accepted without FEATURES_OK", 'a' + idx);
		break;
	}
	case A_MIDRESET: {
		for (int s = 0; s < MAX_REQS && 3 * s + 2 < d->qsize; s++) {
			fill((uint64_t *)(buf + (size_t)s * SECTOR), 64 + (uint64_t)s, 1, 40);
			queue_req(d, r, s, T_OUT, 64 + (uint64_t)s, buf + (size_t)s * SECTOR, SECTOR, false);
		}
		kick(d, r);
		wr(d, VM_STATUS, 0);
		uint32_t st = wait_status(d, 0xff, 0);
		if (st != 0) {
			fail(FAIL_BLK_ABUSE, "blk: vd%c: midreset: status 0x%x after the reset", 'a' + idx, st);
			return;
		}
		/* The reset is complete: from now on the old rings are ours alone. */
		memset(&r->used, 0xa5, sizeof(r->used));
		memset(r->status, 0xa5, sizeof(r->status));
		uint64_t until = rdtsc() + WAIT_TSC / 8;
		for (uint32_t spins = 0; rdtsc() < until && spins < WAIT_SPINS / 8; spins++)
			(void)rd(d, VM_STATUS);
		const volatile uint8_t *u = (const volatile uint8_t *)&r->used;
		for (size_t i = 0; i < sizeof(r->used); i++)
			if (u[i] != 0xa5) {
				fail(FAIL_BLK_ABUSE, "blk: vd%c: midreset: the device wrote the used ring (byte %lu) "
				     "after the reset completed", 'a' + idx, (uint64_t)i);
				return;
			}
		for (int s = 0; s < MAX_REQS; s++)
			if (((volatile uint8_t *)r->status)[s] != 0xa5) {
				fail(FAIL_BLK_ABUSE, "blk: vd%c: midreset: the device wrote request %d's status "
				     "after the reset completed", 'a' + idx, s);
				return;
			}
		gprintf("blk: vd%c: midreset: reset with requests in flight; nothing written to the old "
			"rings afterwards\n", 'a' + idx);
		break;
	}
	}
	recover(d, r, idx, what);
}

/*
 * blk.soak=DISK:ROUNDS:SEED: random batches of up to 4 writes in flight
 * (1-4 sectors each, never overlapping), reads of 1-8 sectors verified
 * against a model of the first SOAK_SECTORS sectors, and flushes. The host
 * may fail any request (MICROVM_TEST_BLK_FAIL=every:N, after the real I/O):
 * a write that got IOERR leaves its sectors unknown, a read that got IOERR
 * checks nothing, a flush that got IOERR makes nothing durable. At the end
 * a flush that succeeds makes every acknowledged write durable, and the model
 * is printed ("soak: vdX state S:SEED:N", "... zero S:N") for the harness to
 * compare with the file (run.py --image-from-stdout).
 */
#define SOAK_SECTORS 64
#define SOAK_UNKNOWN (~0ULL)

static uint64_t soak_next(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void op_soak(const struct op *o)
{
	int idx = o->disk;
	struct disk *d = &disks[idx];
	struct ring *r = &rings[idx];
	uint64_t model[SOAK_SECTORS];      /* 0: zeroes; SOAK_UNKNOWN; else the pattern's seed */
	uint64_t x = o->seed * 0x9e3779b97f4a7c15ULL + 1, next_seed = 1000;
	unsigned writes = 0, reads = 0, flushes = 0, errors = 0, verified = 0;

	if (d->capacity < SOAK_SECTORS) {
		fail(FAIL_BLK_IO, "blk: vd%c: soak needs %d sectors, the disk has %lu", 'a' + idx,
		     SOAK_SECTORS, d->capacity);
		return;
	}
	memset(model, 0, sizeof(model));   /* --gen made the disk all zeroes */
	for (uint64_t round = 0; round < o->count; round++) {
		uint64_t pick = soak_next(&x) % 100;
		if (pick < 45) {
			/* Up to 4 writes at once, to ranges that do not overlap. */
			int n = 1 + (int)(soak_next(&x) % 4);
			uint64_t sec[4], cnt[4], seed[4];
			int k = 0;
			for (int t = 0; t < n * 4 && k < n; t++) {
				uint64_t c = 1 + soak_next(&x) % 4, s = soak_next(&x) % (SOAK_SECTORS - c + 1);
				bool clash = false;
				for (int j = 0; j < k; j++)
					clash |= s < sec[j] + cnt[j] && sec[j] < s + c;
				if (clash)
					continue;
				sec[k] = s, cnt[k] = c, seed[k] = next_seed++;
				fill((uint64_t *)(buf + (size_t)k * 4 * SECTOR), s, c, seed[k]);
				queue_req(d, r, k, T_OUT, s, buf + (size_t)k * 4 * SECTOR, (uint32_t)(c * SECTOR), false);
				k++;
			}
			kick(d, r);
			if (!wait_used(d, r, idx, k, NULL))
				return;
			for (int j = 0; j < k; j++) {
				writes++;
				bool ok = r->status[j] == S_OK;
				errors += !ok;
				if (r->status[j] != S_OK && r->status[j] != S_IOERR) {
					fail(FAIL_BLK_IO, "blk: vd%c: soak: write status %u", 'a' + idx, r->status[j]);
					return;
				}
				for (uint64_t s = sec[j]; s < sec[j] + cnt[j]; s++)
					model[s] = ok ? seed[j] : SOAK_UNKNOWN;
			}
		} else if (pick < 85) {
			uint64_t c = 1 + soak_next(&x) % 8, s = soak_next(&x) % (SOAK_SECTORS - c + 1);
			memset(buf, 0x5a, c * SECTOR);
			int st = request(idx, T_IN, s, buf, (uint32_t)(c * SECTOR), true);
			reads++;
			if (st < 0)
				return;
			if (st != S_OK) {
				errors++;
				continue;
			}
			for (uint64_t i = 0; i < c; i++) {
				const uint64_t *p = (const uint64_t *)(buf + i * SECTOR);
				uint64_t m = model[s + i];
				bool good = true;
				if (m == SOAK_UNKNOWN)
					continue;
				if (m == 0) {
					for (int w = 0; w < SECTOR / 8; w++)
						good &= p[w] == 0;
					if (!good) {
						fail(FAIL_BLK_DATA, "blk: vd%c: soak round %lu: sector %lu should be "
						     "zeroes", 'a' + idx, round, s + i);
						return;
					}
				} else if (!verify(idx, p, s + i, 1, m)) {
					return;
				}
				verified++;
			}
		} else {
			int st = request(idx, T_FLUSH, 0, NULL, 0, false);
			flushes++;
			if (st < 0)
				return;
			errors += st != S_OK;
		}
	}
	/* Make every acknowledged write durable: flush until one succeeds. */
	int st = S_IOERR;
	for (int t = 0; t < 16 && st == S_IOERR; t++) {
		st = request(idx, T_FLUSH, 0, NULL, 0, false);
		flushes++;
		if (st < 0)
			return;
	}
	if (st != S_OK) {
		fail(FAIL_BLK_IO, "blk: vd%c: soak: no flush succeeded at the end (status %d)", 'a' + idx, st);
		return;
	}
	gprintf("blk: vd%c: soak: %lu rounds, %u writes, %u reads (%u sectors verified), %u flushes, "
		"%u IOERR\n", 'a' + idx, o->count, writes, reads, verified, flushes, errors);
	for (int s = 0; s < SOAK_SECTORS;) {
		int e = s + 1;
		while (e < SOAK_SECTORS && model[e] == model[s])
			e++;
		if (model[s] == 0)
			gprintf("soak: vd%c zero %d:%d\n", 'a' + idx, s, e - s);
		else if (model[s] != SOAK_UNKNOWN)
			gprintf("soak: vd%c state %d:%lu:%d\n", 'a' + idx, s, model[s], e - s);
		s = e;
	}
}

/* ---- discovery ---- */

static void probe(const struct virtio_mmio_loc *locs, int n)
{
	for (int i = 0; i < n; i++) {
		int id = virtio_window_id(&locs[i], FAIL_BLK_FIND, "blk");
		if (id != VIRTIO_ID_BLK)   /* not a block device (0: placeholder), or unusable */
			continue;
		if (nr_disks == MAX_DISKS)
			break;
		disks[nr_disks++] = (struct disk){ .base = locs[i].base, .irq = locs[i].irq };
	}
}

/* "4K@0xd0000000:5": size with an optional K/M suffix, base, irq. */
static bool parse_cmdline_dev(const char *v, size_t n, struct virtio_mmio_loc *out)
{
	size_t at = 0, colon;
	uint64_t mult = 1;

	while (at < n && v[at] != '@')
		at++;
	colon = at;
	while (colon < n && v[colon] != ':')
		colon++;
	if (at == n || colon == n || at == 0)
		return false;
	size_t sl = at;
	if (v[sl - 1] == 'K' || v[sl - 1] == 'k')
		mult = 1024, sl--;
	else if (v[sl - 1] == 'M' || v[sl - 1] == 'm')
		mult = 1024 * 1024, sl--;
	uint64_t irq;
	if (!parse_num(v, sl, false, &out->size) || !parse_num(v + at + 1, colon - at - 1, false, &out->base) ||
	    !parse_num(v + colon + 1, n - colon - 1, false, &irq))
		return false;
	out->size *= mult;
	out->irq = (uint32_t)irq;
	return true;
}

/* blk.cmdline_devices=1: one virtio_mmio.device= token per device found, same window and IRQ, in order. */
static void check_cmdline_devices(const struct virtio_mmio_loc *locs, int n)
{
	static const char key[] = "virtio_mmio.device=";
	const char *s = boot->cmdline;
	int k = 0;

	while (*s) {
		while (*s == ' ')
			s++;
		const char *t = s;
		while (*s && *s != ' ')
			s++;
		if (s == t || !starts_with(t, key))
			continue;
		const char *v = t + sizeof(key) - 1;
		struct virtio_mmio_loc c;
		if (!parse_cmdline_dev(v, (size_t)(s - v), &c)) {
			fail(FAIL_BLK_CMDLINE, "blk: malformed '%.*s'", (int)(s - t), t);
			return;
		}
		if (k >= n || c.base != locs[k].base || c.size != locs[k].size || c.irq != locs[k].irq) {
			fail(FAIL_BLK_CMDLINE, "blk: '%.*s' does not match device %d of %d from the firmware "
			     "tables", (int)(s - t), t, k, n);
			return;
		}
		k++;
	}
	if (k != n || !n)
		fail(FAIL_BLK_CMDLINE, "blk: %d virtio_mmio.device= on the command line, %d devices in "
		     "the firmware tables", k, n);
	else
		gprintf("blk: command line describes all %d virtio-mmio devices\n", n);
}

void blk_enable(void)
{
	cfg.any = true;
}

const uint8_t *blk_read_sectors(int disk, uint64_t sector, uint32_t count)
{
	if (disk < 0 || disk >= nr_disks) {
		fail(FAIL_BLK_FIND, "blk: no vd%c (%d block devices)", 'a' + disk, nr_disks);
		return NULL;
	}
	if (!count || count > BUF_SECTORS)
		return NULL;
	if (!disks[disk].ok && !dev_init(&disks[disk], &rings[disk], disk, false))
		return NULL;
	memset(buf, 0, BUF_SECTORS * SECTOR);
	/* Not past the end: what is beyond stays zero. */
	if (sector >= disks[disk].capacity)
		return buf;
	if (count > disks[disk].capacity - sector)
		count = (uint32_t)(disks[disk].capacity - sector);
	if (!expect_ok(disk, "read", request(disk, T_IN, sector, buf, count * SECTOR, true)))
		return NULL;
	return buf;
}

void blk_run(const struct boot_info *bi, const struct fdt_info *fi, const struct acpi_info *ai)
{
	const struct virtio_mmio_loc *locs;
	const char *from;

	boot = bi;
	int n = virtio_locate(bi, fi, ai, cfg.find, &locs, &from);
	if (n < 0) {
		fail(FAIL_BLK_FIND, "blk: no valid %s to find the devices in",
		     cfg.find == VFIND_FDT ? "device tree" : "ACPI DSDT");
		return;
	}
	gprintf("blk: %d virtio-mmio devices from the %s\n", n, from);
	if (cfg.cmdline_devices)
		check_cmdline_devices(locs, n);
	probe(locs, n);
	gprintf("blk: %d block devices\n", nr_disks);
	if (cfg.want_count && (uint64_t)nr_disks != cfg.count)
		fail(FAIL_BLK_FIND, "blk: %d block devices, expected %lu", nr_disks, cfg.count);

	/* Set up every disk an op names (in order, so vda's line comes first). */
	for (int i = 0; i < nr_disks; i++) {
		bool used = false;
		for (int k = 0; k < cfg.nr_ops; k++)
			used |= cfg.ops[k].disk == i;
		if (used)
			dev_init(&disks[i], &rings[i], i, false);
	}
	for (int k = 0; k < cfg.nr_ops; k++) {
		const struct op *o = &cfg.ops[k];
		if (o->disk >= nr_disks) {
			fail(FAIL_BLK_FIND, "blk: no vd%c (%d block devices)", 'a' + o->disk, nr_disks);
			continue;
		}
		if (!disks[o->disk].ok)
			continue;
		switch (o->kind) {
		case OP_READ: op_read(o); break;
		case OP_WRITE: op_write(o); break;
		case OP_MULTI: op_multi(o); break;
		case OP_RO: op_ro(o); break;
		case OP_ID: op_id(o); break;
		case OP_IOERR: op_ioerr(o); break;
		case OP_CAPACITY: op_capacity(o); break;
		case OP_HOSTILE: op_hostile(o); break;
		case OP_ABUSE: op_abuse(o); break;
		case OP_SOAK: op_soak(o); break;
		case OP_BENCH: op_bench(o); break;
		case OP_SEQ: op_seq(o); break;
		case OP_RECORDS: op_records(o); break;
		}
	}
}
