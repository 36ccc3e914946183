/* fuzz_mmio.c - libFuzzer harness: guest register accesses to a virtio-mmio window with a dummy device behind it. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/mmio.h"
#include "fuzz.h"

/*
 * Input:
 *   u8  nq        the dummy device's queues: 1 + nq % VIRTIO_MAX_QUEUES
 *   u64 features  its device-specific feature bits
 *   u8  flags     bit 0: activate() fails
 *   u16 image_len, then that many bytes of guest RAM at 0 (RAM: 0x0000..0x3fff, two regions)
 *   then guest accesses and events, each:
 *     u8 kind   0 write, 1 read, 2 the I/O thread sees queue q kicked (u8 q),
 *               3 the device says it needs a reset
 *     u8 reg    < 0x80: a register offset from the table below (config space included),
 *               else (reg & 0x7f) << 5 | u8: any offset in the 4 KiB window
 *     u8 width  1, 2, 4 or 8 bytes (4 most often), or 3 (never sent by the bus, must be refused)
 *     value     for a write: width bytes
 * Each kick pops the queue's chains as a device would and returns them.
 */

#define REGION_SIZE 0x2000ULL
#define MAX_OPS 1024

static const uint16_t offsets[] = {
	0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044,
	0x050, 0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4, 0x0fc,
	0x100, 0x101, 0x104, 0x108, 0x10c, 0x110, 0x1ff, 0x048, 0x03c, 0xffc,
};
#define NR_OFFSETS (sizeof(offsets) / sizeof(offsets[0]))

static struct {
	uint64_t features;
	bool fail_activate;
	int activated;
	uint8_t config[16];
	struct virtq_chain chain;
} dummy;

static uint64_t d_features(struct virtio_dev *dev)
{
	(void)dev;
	return dummy.features;
}

static void d_config_read(struct virtio_dev *dev, uint64_t off, uint8_t *data, uint32_t len)
{
	(void)dev;
	if (off < sizeof(dummy.config) && len <= sizeof(dummy.config) - off)
		memcpy(data, dummy.config + off, len);
}

static void d_config_write(struct virtio_dev *dev, uint64_t off, const uint8_t *data, uint32_t len)
{
	(void)dev;
	if (off < sizeof(dummy.config) && len <= sizeof(dummy.config) - off)
		memcpy(dummy.config + off, data, len);
}

static int d_activate(struct virtio_dev *dev)
{
	/* Only with the features the transport accepted, VERSION_1 among them. */
	FZ_CHECK(virtio_has_feature(dev, VIRTIO_F_VERSION_1));
	dummy.activated++;
	return dummy.fail_activate ? -EIO : 0;
}

static void d_queue_notify(struct virtio_dev *dev, uint16_t q)
{
	struct virtq *vq = &dev->vq[q];
	bool pushed = false;

	FZ_CHECK(q < dev->ops->num_queues);
	/* At most a queue's worth of chains, each returned at once with all its writable bytes. */
	for (int i = 0; i < VIRTQ_MAX_SIZE; i++) {
		int r = virtq_pop(vq, &dummy.chain);

		if (r < 0) {
			dev->needs_reset(dev, "malformed queue");
			break;
		}
		if (r == 0)
			break;
		FZ_CHECK(dummy.chain.head < vq->size);
		virtq_push(vq, dummy.chain.head, (uint32_t)dummy.chain.writable_len);
		pushed = true;
	}
	if (pushed)
		dev->notify_used(dev, q);
}

static void d_reset(struct virtio_dev *dev)
{
	(void)dev;
	memset(dummy.config, 0, sizeof(dummy.config));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const gpa_t starts[2] = { 0, REGION_SIZE };
	static const uint64_t sizes[2] = { REGION_SIZE, REGION_SIZE };
	struct fz f = { data, size };
	struct fz_ram ram;
	struct virtio_dev_ops ops = {
		.name = "fuzz", .device_id = 42,
		.features = d_features, .config_read = d_config_read, .config_write = d_config_write,
		.activate = d_activate, .queue_notify = d_queue_notify, .reset = d_reset,
	};
	struct virtio_dev dev;
	struct virtio_mmio m;

	fz_quiet();
	fz_ram_init(&ram, starts, sizes, 2);
	memset(&dummy.config, 0, sizeof(dummy.config));
	dummy.activated = 0;
	ops.num_queues = (uint16_t)(1 + fz_u8(&f) % VIRTIO_MAX_QUEUES);
	dummy.features = fz_u64(&f);
	dummy.fail_activate = fz_u8(&f) & 1;
	fz_ram_load_image(&ram, &f);

	memset(&dev, 0, sizeof(dev));
	dev.ops = &ops;
	FZ_CHECK(virtio_mmio_init(&m, &dev, &ram.mem) == 0);

	for (int n = 0; n < MAX_OPS && !fz_empty(&f); n++) {
		uint8_t kind = fz_u8(&f) % 4;

		if (kind == 2) {
			virtio_mmio_queue_kicked(&m, fz_u8(&f));
			continue;
		}
		if (kind == 3) {
			dev.needs_reset(&dev, "fuzz");
			continue;
		}
		uint8_t reg = fz_u8(&f);
		uint64_t offset = reg < 0x80 ? offsets[reg % NR_OFFSETS] : (uint64_t)(reg & 0x7f) << 5 | fz_u8(&f);
		static const uint32_t widths[8] = { 4, 4, 4, 4, 1, 2, 8, 3 };
		uint32_t len = widths[fz_u8(&f) % 8];
		uint8_t *buf = malloc(len);   /* exactly len bytes */

		if (!buf)
			abort();
		if (kind == 0)
			fz_bytes(&f, buf, len);
		virtio_mmio_io(&m, offset, buf, len, kind == 0);
		if (kind == 1 && len == 4) {
			uint32_t v;

			memcpy(&v, buf, 4);
			v = le32toh(v);
			if (offset == 0x000)
				FZ_CHECK(v == 0x74726976);
			if (offset == 0x034)
				FZ_CHECK(v == 0 || v == VIRTQ_MAX_SIZE);
			if (offset == 0x060)
				FZ_CHECK((v & ~3u) == 0);
			if (offset == 0x070 && (v & VIRTIO_STATUS_DRIVER_OK))
				FZ_CHECK(v & VIRTIO_STATUS_FEATURES_OK);
		}
		free(buf);
		/* Whatever the driver did: a ready queue has a ring that passed the checks. */
		for (int q = 0; q < ops.num_queues; q++)
			if (dev.vq[q].ready)
				FZ_CHECK(virtq_validate(&dev.vq[q]) == 0);
		/* Negotiated features are a subset of the offered ones. */
		FZ_CHECK((dev.driver_features & ~(dummy.features | (1ULL << VIRTIO_F_VERSION_1) |
						  (1ULL << VIRTIO_RING_F_EVENT_IDX) |
						  (1ULL << VIRTIO_RING_F_INDIRECT_DESC))) == 0);
	}
	virtio_mmio_destroy(&m);
	fz_ram_free(&ram);
	return 0;
}
