/* test_mmio.c - virtio-mmio transport: registers, feature negotiation, queue setup, status, interrupts. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio/mmio.h"
#include "firmware/machine.h"

#define RAM (1ULL << 20)
#define FAKE_FEATURES ((1ULL << 0) | (1ULL << 5))

/* A fake device model that records what the transport asks of it. */
static struct {
	int activated, resets, activate_ret;
	int notified[VIRTIO_MAX_QUEUES];
	uint8_t config[16];
} fake;

static uint64_t fake_features(struct virtio_dev *dev) { (void)dev; return FAKE_FEATURES; }

static void fake_config_read(struct virtio_dev *dev, uint64_t off, uint8_t *data, uint32_t len)
{
	(void)dev;
	if (off < sizeof(fake.config) && len <= sizeof(fake.config) - off)
		memcpy(data, fake.config + off, len);
}

static void fake_config_write(struct virtio_dev *dev, uint64_t off, const uint8_t *data, uint32_t len)
{
	(void)dev;
	if (off < sizeof(fake.config) && len <= sizeof(fake.config) - off)
		memcpy(fake.config + off, data, len);
}

static int fake_activate(struct virtio_dev *dev) { (void)dev; fake.activated++; return fake.activate_ret; }
static void fake_queue_notify(struct virtio_dev *dev, uint16_t q) { (void)dev; fake.notified[q]++; }
static void fake_reset(struct virtio_dev *dev) { (void)dev; fake.resets++; }

static const struct virtio_dev_ops fake_ops = {
	.name = "fake",
	.device_id = 42,
	.num_queues = 2,
	.features = fake_features,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.queue_notify = fake_queue_notify,
	.reset = fake_reset,
};

static struct guest_mem mem;
static struct virtio_dev dev;
static struct virtio_mmio m;

static void setup(void)
{
	gpa_t start = 0;
	uint64_t size = RAM;

	memset(&fake, 0, sizeof(fake));
	memset(&dev, 0, sizeof(dev));
	dev.ops = &fake_ops;
	cr_assert_eq(guest_mem_map(&mem, &start, &size, 1), 0);
	cr_assert_eq(virtio_mmio_init(&m, &dev, &mem), 0);
}

static void teardown(void)
{
	virtio_mmio_destroy(&m);
	guest_mem_unmap(&mem);
}

TestSuite(mmio, .init = setup, .fini = teardown);

static uint32_t rd(uint64_t off)
{
	uint8_t b[4];
	uint32_t v;

	memset(b, 0xaa, 4);
	virtio_mmio_io(&m, off, b, 4, false);
	memcpy(&v, b, 4);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	uint8_t b[4];

	memcpy(b, &v, 4);
	virtio_mmio_io(&m, off, b, 4, true);
}

/* Counter of an eventfd, 0 if it was not signalled. */
static uint64_t drain(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static void negotiate(uint64_t features)
{
	wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(0x024, 0);
	wr(0x020, (uint32_t)features);
	wr(0x024, 1);
	wr(0x020, (uint32_t)(features >> 32));
	wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

#define ALL_FEATURES (FAKE_FEATURES | (1ULL << VIRTIO_F_VERSION_1) | \
		      (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC))
#define RUNNING (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | \
		 VIRTIO_STATUS_DRIVER_OK)

static void setup_queue(uint32_t q, uint32_t num, uint64_t desc, uint64_t drv, uint64_t devr)
{
	wr(0x030, q);
	wr(0x038, num);
	wr(0x080, (uint32_t)desc);
	wr(0x084, (uint32_t)(desc >> 32));
	wr(0x090, (uint32_t)drv);
	wr(0x094, (uint32_t)(drv >> 32));
	wr(0x0a0, (uint32_t)devr);
	wr(0x0a4, (uint32_t)(devr >> 32));
	wr(0x044, 1);
}

Test(mmio, identification)
{
	cr_assert_eq(rd(0x000), 0x74726976);
	cr_assert_eq(rd(0x004), 2);
	cr_assert_eq(rd(0x008), 42);
	cr_assert_eq(rd(0x00c), 0x4d564d31);
	cr_assert_eq(rd(0x070), 0);
	cr_assert_eq(rd(0x0fc), 0);
	cr_assert_eq(dev.transport, &m);
	cr_assert_not_null(dev.notify_used);
	cr_assert_not_null(dev.needs_reset);
}

Test(mmio, device_features)
{
	wr(0x014, 0);
	cr_assert_eq(rd(0x010), (uint32_t)ALL_FEATURES);
	wr(0x014, 1);
	cr_assert_eq(rd(0x010), 1, "VERSION_1 is bit 32");
	wr(0x014, 2);
	cr_assert_eq(rd(0x010), 0);
}

Test(mmio, negotiation_accepted)
{
	negotiate(ALL_FEATURES);
	cr_assert(rd(0x070) & VIRTIO_STATUS_FEATURES_OK);
	cr_assert_eq(dev.driver_features, ALL_FEATURES);
	cr_assert(dev.vq[0].event_idx && dev.vq[0].indirect && dev.vq[1].event_idx);
	cr_assert_eq(dev.vq[0].mem, &mem);

	/* Features are frozen after FEATURES_OK. */
	wr(0x024, 0);
	wr(0x020, 0);
	cr_assert_eq(dev.driver_features, ALL_FEATURES);
}

Test(mmio, negotiation_subset)
{
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	cr_assert(rd(0x070) & VIRTIO_STATUS_FEATURES_OK);
	cr_assert_not(dev.vq[0].event_idx);
	cr_assert_not(dev.vq[0].indirect);
}

Test(mmio, negotiation_refused_without_version_1)
{
	negotiate(FAKE_FEATURES);
	cr_assert_eq(rd(0x070), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER,
		     "FEATURES_OK stays clear");
	cr_assert_eq(dev.driver_features, 0);
}

Test(mmio, negotiation_refused_with_unoffered_bits)
{
	negotiate(ALL_FEATURES | (1ULL << 3));
	cr_assert_not(rd(0x070) & VIRTIO_STATUS_FEATURES_OK);
	negotiate(ALL_FEATURES | (1ULL << 40));
	cr_assert_not(rd(0x070) & VIRTIO_STATUS_FEATURES_OK);
	/* The driver may try again with a valid set. */
	negotiate(ALL_FEATURES);
	cr_assert(rd(0x070) & VIRTIO_STATUS_FEATURES_OK);
}

Test(mmio, driver_ok_needs_features_ok)
{
	wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_not(rd(0x070) & VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(fake.activated, 0);
}

Test(mmio, queue_setup)
{
	negotiate(ALL_FEATURES);
	wr(0x030, 0);
	cr_assert_eq(rd(0x034), VIRTQ_MAX_SIZE);
	wr(0x030, 2);
	cr_assert_eq(rd(0x034), 0, "no queue 2");
	cr_assert_eq(rd(0x044), 0);

	setup_queue(1, 128, 0x1000, 0x2000, 0x3000);
	cr_assert_eq(rd(0x044), 1);
	cr_assert(dev.vq[1].ready);
	cr_assert_eq(dev.vq[1].size, 128);
	cr_assert_eq(dev.vq[1].desc, 0x1000);
	cr_assert_eq(dev.vq[1].avail, 0x2000);
	cr_assert_eq(dev.vq[1].used, 0x3000);
	cr_assert(dev.vq[1].event_idx);
	wr(0x030, 0);
	cr_assert_eq(rd(0x044), 0, "queue 0 not ready");
	cr_assert_eq(rd(0x070) & VIRTIO_STATUS_NEEDS_RESET, 0);

	/* A ready queue can no longer be moved. */
	wr(0x030, 1);
	wr(0x080, 0x8000);
	wr(0x038, 64);
	cr_assert_eq(dev.vq[1].desc, 0x1000);
	cr_assert_eq(dev.vq[1].size, 128);

	/* Before DRIVER_OK the driver may take it back and move it. */
	wr(0x044, 0);
	cr_assert_not(dev.vq[1].ready);
	wr(0x080, 0x8000);
	wr(0x044, 1);
	cr_assert(dev.vq[1].ready);
	cr_assert_eq(dev.vq[1].desc, 0x8000);
}

Test(mmio, queue_registers_locked_after_driver_ok)
{
	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	wr(0x030, 1);
	wr(0x038, 16);
	wr(0x080, 0x4000);
	wr(0x044, 1);
	cr_assert_eq(dev.vq[1].size, 0);
	cr_assert_eq(dev.vq[1].desc, 0);
	cr_assert_not(dev.vq[1].ready);
	wr(0x030, 0);
	wr(0x044, 0);
	cr_assert(dev.vq[0].ready, "no disabling a queue while running");
}

static void expect_needs_reset(const char *why)
{
	cr_assert(rd(0x070) & VIRTIO_STATUS_NEEDS_RESET, "%s", why);
	cr_assert(atomic_load(&m.broken));
	cr_assert_eq(rd(0x060) & 2, 2, "%s: config change interrupt", why);
	cr_assert_eq(rd(0x0fc), 1, "%s: config generation bumped", why);
	cr_assert_eq(drain(m.irq_fd), 1, "%s: irq raised", why);
}

Test(mmio, queue_ready_bad_size)
{
	negotiate(ALL_FEATURES);
	setup_queue(0, 3, 0x1000, 0x2000, 0x3000);
	cr_assert_not(dev.vq[0].ready);
	cr_assert_eq(rd(0x044), 0);
	expect_needs_reset("size 3");
}

Test(mmio, queue_ready_size_too_large)
{
	negotiate(ALL_FEATURES);
	setup_queue(0, 512, 0x1000, 0x2000, 0x3000);
	cr_assert_not(dev.vq[0].ready);
	expect_needs_reset("size 512");
}

Test(mmio, queue_ready_misaligned)
{
	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1008, 0x2000, 0x3000);
	cr_assert_not(dev.vq[0].ready);
	expect_needs_reset("desc misaligned");
}

Test(mmio, queue_ready_overlapping_rings)
{
	/* used.flags would be avail.idx (fuzz_blk found a device loop that never ended). */
	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1000, 0x2002, 0x2004);
	cr_assert_not(dev.vq[0].ready);
	expect_needs_reset("used ring over the avail ring");
}

Test(mmio, queue_ready_outside_ram)
{
	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1000, 0x2000, RAM - 8 * 16);
	cr_assert_not(dev.vq[0].ready);
	expect_needs_reset("used ring crosses the end of RAM");
	/* Only logged and raised once. */
	setup_queue(0, 16, 0x1000, 0x2000, 0x100000000ULL);
	cr_assert_eq(drain(m.irq_fd), 0);
	cr_assert_eq(rd(0x0fc), 1);
}

Test(mmio, driver_ok_activates)
{
	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	cr_assert_eq(fake.activated, 1);
	cr_assert_eq(rd(0x070), RUNNING);
	wr(0x070, RUNNING);
	cr_assert_eq(fake.activated, 1, "activated once");
}

Test(mmio, activate_failure_needs_reset)
{
	fake.activate_ret = -ENOMEM;
	negotiate(ALL_FEATURES);
	wr(0x070, RUNNING);
	cr_assert_eq(fake.activated, 1);
	cr_assert_eq(rd(0x070), RUNNING | VIRTIO_STATUS_NEEDS_RESET);
	expect_needs_reset("activate failed");
}

Test(mmio, clearing_status_bits_ignored)
{
	negotiate(ALL_FEATURES);
	wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert(rd(0x070) & VIRTIO_STATUS_FEATURES_OK);
	/* FAILED may be added. */
	wr(0x070, rd(0x070) | VIRTIO_STATUS_FAILED);
	cr_assert(rd(0x070) & VIRTIO_STATUS_FAILED);
}

Test(mmio, reset)
{
	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	dev.needs_reset(&dev, "test");
	cr_assert(rd(0x070) & VIRTIO_STATUS_NEEDS_RESET);
	wr(0x030, 1);
	wr(0x024, 1);
	wr(0x014, 1);

	wr(0x070, 0);
	cr_assert_eq(fake.resets, 1);
	cr_assert_eq(rd(0x070), 0);
	cr_assert_eq(rd(0x060), 0, "interrupt status cleared");
	cr_assert_not(atomic_load(&m.broken));
	cr_assert_eq(dev.driver_features, 0);
	cr_assert_eq(m.driver_features, 0);
	cr_assert_eq(m.queue_sel, 0);
	cr_assert_eq(m.device_features_sel, 0);
	cr_assert_eq(m.driver_features_sel, 0);
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		cr_assert_not(dev.vq[i].ready);
		cr_assert_eq(dev.vq[i].size, 0);
		cr_assert_eq(dev.vq[i].desc, 0);
		cr_assert_eq(dev.vq[i].last_avail, 0);
		cr_assert_not(dev.vq[i].event_idx);
		cr_assert_eq(dev.vq[i].mem, &mem, "mem kept");
	}
	cr_assert_eq(rd(0x044), 0);

	/* And the device can be brought up again. */
	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	cr_assert_eq(fake.activated, 2);
	cr_assert_eq(rd(0x070), RUNNING);
}

/* Bring queue 0 up with one chain pushed to the used ring. */
static void run_one_request(void)
{
	struct virtq_desc d = { .addr = 0x10000, .len = 16, .flags = 0, .next = 0 };
	struct virtq_chain *c = malloc(sizeof(*c));
	uint16_t idx = 1;

	cr_assert_not_null(c);
	memcpy(mem.region[0].host + 0x1000, &d, sizeof(d));
	memcpy(mem.region[0].host + 0x2002, &idx, 2);
	cr_assert_eq(virtq_pop(&dev.vq[0], c), 1);
	virtq_push(&dev.vq[0], c->head, 0);
	free(c);
}

Test(mmio, used_buffer_interrupt_and_ack)
{
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	run_one_request();
	dev.notify_used(&dev, 0);
	cr_assert_eq(rd(0x060), 1);
	cr_assert_eq(drain(m.irq_fd), 1);
	wr(0x064, 1);
	cr_assert_eq(rd(0x060), 0);
	dev.notify_used(&dev, 7);    /* no such queue: ignored */
	cr_assert_eq(drain(m.irq_fd), 0);
	cr_assert_eq(rd(0x060), 0);
}

Test(mmio, used_buffer_interrupt_suppressed)
{
	uint16_t flags = VIRTQ_AVAIL_F_NO_INTERRUPT;

	negotiate(1ULL << VIRTIO_F_VERSION_1);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	memcpy(mem.region[0].host + 0x2000, &flags, 2);
	run_one_request();
	dev.notify_used(&dev, 0);
	cr_assert_eq(rd(0x060), 0);
	cr_assert_eq(drain(m.irq_fd), 0);
}

Test(mmio, ack_clears_only_given_bits)
{
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	run_one_request();
	dev.notify_used(&dev, 0);
	dev.needs_reset(&dev, "test");
	cr_assert_eq(rd(0x060), 3);
	cr_assert_eq(drain(m.irq_fd), 2);
	wr(0x064, 2);
	cr_assert_eq(rd(0x060), 1);
	wr(0x064, 0xffffffff);
	cr_assert_eq(rd(0x060), 0);
}

Test(mmio, bad_accesses_ignored)
{
	uint8_t b[8];

	memset(b, 0xaa, sizeof(b));
	virtio_mmio_io(&m, 0x000, b, 2, false);
	cr_assert_eq(b[0], 0);
	cr_assert_eq(b[1], 0);
	virtio_mmio_io(&m, 0x000, b, 8, false);
	cr_assert_eq(b[7], 0, "8-byte read of a register gives 0");
	virtio_mmio_io(&m, 0x002, b, 2, false);
	virtio_mmio_io(&m, 0x001, b, 1, false);

	b[0] = VIRTIO_STATUS_ACKNOWLEDGE;
	virtio_mmio_io(&m, 0x070, b, 1, true);
	cr_assert_eq(rd(0x070), 0, "1-byte write to Status ignored");
	memset(b, 0, 8);
	b[0] = 1;
	virtio_mmio_io(&m, 0x070, b, 8, true);
	cr_assert_eq(rd(0x070), 0, "8-byte write to Status ignored");

	wr(0x000, 0x12345678);
	cr_assert_eq(rd(0x000), 0x74726976, "MagicValue is read-only");
	wr(0x0fc, 7);
	cr_assert_eq(rd(0x0fc), 0);
	cr_assert_eq(rd(0x020), 0, "DriverFeatures is write-only");
	cr_assert_eq(rd(0x050), 0, "QueueNotify is write-only");
	cr_assert_eq(rd(0x0f0), 0, "no register");
	wr(0x0f0, 1);
	cr_assert_eq(rd(0x048), 0);
	wr(0x044, 5);
	cr_assert_eq(rd(0x044), 0, "QueueReady 5 ignored");
	wr(0x038, 16);    /* queue 0 */
	wr(0x030, 9);
	wr(0x038, 16);    /* no queue 9: ignored */
	wr(0x044, 1);
	cr_assert_eq(rd(0x070) & VIRTIO_STATUS_NEEDS_RESET, 0, "QueueReady on no queue is ignored");
}

Test(mmio, config_space)
{
	uint8_t b[8];
	uint64_t v8;

	for (int i = 0; i < 16; i++)
		fake.config[i] = (uint8_t)(0x10 + i);
	cr_assert_eq(rd(0x104), 0x17161514);
	virtio_mmio_io(&m, 0x101, b, 1, false);
	cr_assert_eq(b[0], 0x11);
	virtio_mmio_io(&m, 0x102, b, 2, false);
	cr_assert_eq(b[0], 0x12);
	cr_assert_eq(b[1], 0x13);
	virtio_mmio_io(&m, 0x108, b, 8, false);
	memcpy(&v8, b, 8);
	cr_assert_eq(v8, 0x1f1e1d1c1b1a1918ULL);
	cr_assert_eq(rd(0x200), 0, "beyond the device's config space reads 0");

	b[0] = 0xab;
	b[1] = 0xcd;
	virtio_mmio_io(&m, 0x106, b, 2, true);
	cr_assert_eq(fake.config[6], 0xab);
	cr_assert_eq(fake.config[7], 0xcd);

	memset(b, 0x55, sizeof(b));
	virtio_mmio_io(&m, 0x100, b, 3, true);
	cr_assert_eq(fake.config[0], 0x10, "3-byte write ignored");
	virtio_mmio_io(&m, 0x100, b, 3, false);
	cr_assert_eq(b[0], 0, "3-byte read gives 0");
}

/* QueueNotify as the MMIO bus (vmm/bus.h) hands it on: the offset from the device's base. */
Test(mmio, queue_notify)
{
	uint32_t v;

	v = 1;
	virtio_mmio_io(&m, VIRTIO_MMIO_QUEUE_NOTIFY, (uint8_t *)&v, 4, true);
	cr_assert_eq(drain(m.notify_fd[1]), 1);
	cr_assert_eq(drain(m.notify_fd[0]), 0);
	v = 0;
	virtio_mmio_io(&m, VIRTIO_MMIO_QUEUE_NOTIFY, (uint8_t *)&v, 4, true);
	virtio_mmio_io(&m, VIRTIO_MMIO_QUEUE_NOTIFY, (uint8_t *)&v, 4, true);
	cr_assert_eq(drain(m.notify_fd[0]), 2);
	v = 2;
	virtio_mmio_io(&m, VIRTIO_MMIO_QUEUE_NOTIFY, (uint8_t *)&v, 4, true);
	v = 0xffff;
	virtio_mmio_io(&m, VIRTIO_MMIO_QUEUE_NOTIFY, (uint8_t *)&v, 4, true);
	cr_assert_eq(drain(m.notify_fd[0]), 0);
	cr_assert_eq(drain(m.notify_fd[1]), 0);
	cr_assert_eq(m.notify_fd[2], -1, "only num_queues eventfds");

	v = 0;
	virtio_mmio_io(&m, 0, (uint8_t *)&v, 4, false);
	cr_assert_eq(v, 0x74726976);
}

Test(mmio, queue_kicked)
{
	virtio_mmio_queue_kicked(&m, 0);
	cr_assert_eq(fake.notified[0], 0, "not before DRIVER_OK");
	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	virtio_mmio_queue_kicked(&m, 0);
	virtio_mmio_queue_kicked(&m, 1);
	virtio_mmio_queue_kicked(&m, 5);
	cr_assert_eq(fake.notified[0], 1);
	cr_assert_eq(fake.notified[1], 1);
	dev.needs_reset(&dev, "test");
	virtio_mmio_queue_kicked(&m, 0);
	cr_assert_eq(fake.notified[0], 1, "not while broken");
}

Test(mmio, init_rejects_too_many_queues)
{
	static const struct virtio_dev_ops many = { .name = "many", .num_queues = VIRTIO_MAX_QUEUES + 1 };
	struct virtio_dev d2 = { .ops = &many };
	struct virtio_mmio m2;

	cr_assert_eq(virtio_mmio_init(&m2, &d2, &mem), -EINVAL);
	virtio_mmio_destroy(&m2);
}

Test(mmio, used_buffer_interrupt_with_event_idx)
{
	uint16_t used_event = 5;

	negotiate(ALL_FEATURES);
	setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
	wr(0x070, RUNNING);
	cr_assert(dev.vq[0].event_idx);
	run_one_request();
	dev.notify_used(&dev, 0);
	cr_assert_eq(drain(m.irq_fd), 1, "the first interrupt always goes out");
	wr(0x064, 1);
	/* used_event (after the 16-entry avail ring) asks for an interrupt only past entry 5. */
	memcpy(mem.region[0].host + 0x2000 + 4 + 2 * 16, &used_event, 2);
	virtq_push(&dev.vq[0], 0, 0);                /* used idx 2 */
	dev.notify_used(&dev, 0);
	cr_assert_eq(drain(m.irq_fd), 0);
	cr_assert_eq(rd(0x060), 0);
}
