/* mmio.c - virtio-mmio transport, version 2 registers (virtio 1.2 section 4.2.2), status and feature negotiation. */
#include "devices/virtio/mmio.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"

#define MAGIC 0x74726976         /* "virt" */
#define VERSION 2
/* Our vendor ID: the ASCII bytes "MVM1" read as a big-endian number (virtio leaves it free). */
#define VENDOR_ID 0x4d564d31

enum {
	REG_MAGIC = 0x000,
	REG_VERSION = 0x004,
	REG_DEVICE_ID = 0x008,
	REG_VENDOR_ID = 0x00c,
	REG_DEVICE_FEATURES = 0x010,
	REG_DEVICE_FEATURES_SEL = 0x014,
	REG_DRIVER_FEATURES = 0x020,
	REG_DRIVER_FEATURES_SEL = 0x024,
	REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM_MAX = 0x034,
	REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044,
	REG_QUEUE_NOTIFY = VIRTIO_MMIO_QUEUE_NOTIFY,
	REG_INTERRUPT_STATUS = 0x060,
	REG_INTERRUPT_ACK = 0x064,
	REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080,
	REG_QUEUE_DESC_HIGH = 0x084,
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DRIVER_HIGH = 0x094,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
	REG_QUEUE_DEVICE_HIGH = 0x0a4,
	REG_CONFIG_GENERATION = 0x0fc,
};

#define INT_USED_BUFFER 1u
#define INT_CONFIG_CHANGE 2u

struct reg {
	uint32_t offset;
	const char *name;
	bool readable, writable;
};

/* Every register of the window below the config space; anything else is misuse. */
static const struct reg regs[] = {
	{ REG_MAGIC, "MagicValue", true, false },
	{ REG_VERSION, "Version", true, false },
	{ REG_DEVICE_ID, "DeviceID", true, false },
	{ REG_VENDOR_ID, "VendorID", true, false },
	{ REG_DEVICE_FEATURES, "DeviceFeatures", true, false },
	{ REG_DEVICE_FEATURES_SEL, "DeviceFeaturesSel", false, true },
	{ REG_DRIVER_FEATURES, "DriverFeatures", false, true },
	{ REG_DRIVER_FEATURES_SEL, "DriverFeaturesSel", false, true },
	{ REG_QUEUE_SEL, "QueueSel", false, true },
	{ REG_QUEUE_NUM_MAX, "QueueNumMax", true, false },
	{ REG_QUEUE_NUM, "QueueNum", false, true },
	{ REG_QUEUE_READY, "QueueReady", true, true },
	{ REG_QUEUE_NOTIFY, "QueueNotify", false, true },
	{ REG_INTERRUPT_STATUS, "InterruptStatus", true, false },
	{ REG_INTERRUPT_ACK, "InterruptACK", false, true },
	{ REG_STATUS, "Status", true, true },
	{ REG_QUEUE_DESC_LOW, "QueueDescLow", false, true },
	{ REG_QUEUE_DESC_HIGH, "QueueDescHigh", false, true },
	{ REG_QUEUE_DRIVER_LOW, "QueueDriverLow", false, true },
	{ REG_QUEUE_DRIVER_HIGH, "QueueDriverHigh", false, true },
	{ REG_QUEUE_DEVICE_LOW, "QueueDeviceLow", false, true },
	{ REG_QUEUE_DEVICE_HIGH, "QueueDeviceHigh", false, true },
	{ REG_CONFIG_GENERATION, "ConfigGeneration", true, false },
};
#define NR_REGS (sizeof(regs) / sizeof(regs[0]))

/* Once-only warnings, per register name; two more slots for non-registers. */
#define SLOT_UNKNOWN (-1)   /* an offset below the config space that is no register */
#define SLOT_CONFIG (-2)    /* the device config space */
static atomic_bool warned[NR_REGS + 2];

static int reg_index(uint64_t offset)
{
	for (size_t i = 0; i < NR_REGS; i++)
		if (regs[i].offset == offset)
			return (int)i;
	return -1;
}

static void warn_once(const struct virtio_mmio *m, int reg, uint64_t offset, const char *what)
{
	size_t slot = reg >= 0 ? (size_t)reg : reg == SLOT_UNKNOWN ? NR_REGS : NR_REGS + 1;

	if (atomic_exchange(&warned[slot], true))
		return;
	log_warn("%s: virtio-mmio %s (offset 0x%03llx): %s; ignored (logged once)",
		 m->dev->ops->name,
		 reg >= 0 ? regs[reg].name : reg == SLOT_UNKNOWN ? "unknown register" : "config space",
		 (unsigned long long)offset, what);
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	/* EAGAIN only when the counter would overflow: the interrupt is pending anyway. */
	if (fd >= 0 && write(fd, &one, sizeof(one)) != sizeof(one))
		log_debug("virtio-mmio: eventfd %d: %s", fd, strerror(errno));
}

static uint64_t offered_features(struct virtio_mmio *m)
{
	struct virtio_dev *dev = m->dev;
	uint64_t f = dev->ops->features ? dev->ops->features(dev) : 0;

	return f | (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
	       (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
}

/* The ring features a queue uses follow the negotiated ones. */
static void apply_features(struct virtio_mmio *m, struct virtq *q)
{
	q->mem = m->mem;
	q->event_idx = virtio_has_feature(m->dev, VIRTIO_RING_F_EVENT_IDX);
	q->indirect = virtio_has_feature(m->dev, VIRTIO_RING_F_INDIRECT_DESC);
}

/* (io, or vCPU with the lock held) Lock-free: the reset path holds the lock while waiting for the I/O thread. */
static void mmio_needs_reset(struct virtio_dev *dev, const char *why)
{
	struct virtio_mmio *m = dev->transport;

	if (atomic_exchange(&m->broken, true))
		return;
	log_warn("%s: device needs reset: %s", dev->ops->name, why);
	__atomic_fetch_add(&m->config_generation, 1, __ATOMIC_SEQ_CST);
	atomic_fetch_or(&m->interrupt_status, INT_CONFIG_CHANGE);
	signal_fd(m->irq_fd);
}

static void mmio_notify_used(struct virtio_dev *dev, uint16_t q)
{
	struct virtio_mmio *m = dev->transport;

	if (q >= dev->ops->num_queues || !virtq_should_notify(&dev->vq[q]))
		return;
	atomic_fetch_or(&m->interrupt_status, INT_USED_BUFFER);
	signal_fd(m->irq_fd);
}

int virtio_mmio_init(struct virtio_mmio *m, struct virtio_dev *dev, const struct guest_mem *mem)
{
	int i, ret;

	memset(m, 0, sizeof(*m));
	m->irq_fd = -1;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		m->notify_fd[i] = -1;
	if (!dev->ops || dev->ops->num_queues == 0 || dev->ops->num_queues > VIRTIO_MAX_QUEUES)
		return err_set(EINVAL, "%s: %u queues (1..%d supported)",
			       dev->ops && dev->ops->name ? dev->ops->name : "virtio device",
			       dev->ops ? dev->ops->num_queues : 0, VIRTIO_MAX_QUEUES);
	m->dev = dev;
	m->mem = mem;
	atomic_init(&m->interrupt_status, 0);
	atomic_init(&m->broken, false);

	m->irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m->irq_fd < 0)
		goto fail;
	for (i = 0; i < dev->ops->num_queues; i++) {
		m->notify_fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (m->notify_fd[i] < 0)
			goto fail;
	}
	ret = pthread_mutex_init(&m->lock, NULL);
	if (ret) {
		errno = ret;
		goto fail;
	}

	dev->transport = m;
	dev->notify_used = mmio_notify_used;
	dev->needs_reset = mmio_needs_reset;
	dev->driver_features = 0;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		dev->vq[i].mem = mem;
		virtq_reset(&dev->vq[i]);
	}
	return 0;

fail:
	ret = errno;
	if (m->irq_fd >= 0)
		close(m->irq_fd);
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (m->notify_fd[i] >= 0)
			close(m->notify_fd[i]);
	m->irq_fd = -1;
	m->dev = NULL;
	return err_set(ret, "%s: eventfd: %s", dev->ops->name, strerror(ret));
}

void virtio_mmio_destroy(struct virtio_mmio *m)
{
	if (!m->dev)
		return;
	if (m->irq_fd >= 0)
		close(m->irq_fd);
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (m->notify_fd[i] >= 0)
			close(m->notify_fd[i]);
	pthread_mutex_destroy(&m->lock);
	m->dev = NULL;
}

/* Status 0: back to the state after init. Lock held. */
static void reset_locked(struct virtio_mmio *m)
{
	struct virtio_dev *dev = m->dev;

	if (dev->ops->reset)
		dev->ops->reset(dev);
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_reset(&dev->vq[i]);
	dev->driver_features = 0;
	__atomic_store_n(&m->status, 0, __ATOMIC_SEQ_CST);
	m->device_features_sel = 0;
	m->driver_features_sel = 0;
	m->queue_sel = 0;
	m->driver_features = 0;
	atomic_store(&m->interrupt_status, 0);
	atomic_store(&m->broken, false);
}

static void write_status_locked(struct virtio_mmio *m, uint32_t val)
{
	struct virtio_dev *dev = m->dev;
	uint32_t old = m->status, set;

	if (val == 0) {
		reset_locked(m);
		return;
	}
	val &= ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET;   /* the device's bit, not the driver's */
	if (old & ~val) {
		warn_once(m, reg_index(REG_STATUS), REG_STATUS, "driver cleared status bits without a reset");
		return;
	}
	set = val & ~old;

	if (set & VIRTIO_STATUS_FEATURES_OK) {
		uint64_t offered = offered_features(m);

		if ((m->driver_features & ~offered) ||
		    !(m->driver_features & (1ULL << VIRTIO_F_VERSION_1))) {
			log_warn("%s: driver features 0x%llx refused (offered 0x%llx, VERSION_1 required)",
				 dev->ops->name, (unsigned long long)m->driver_features,
				 (unsigned long long)offered);
			val &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
			set &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
		} else {
			dev->driver_features = m->driver_features;
			for (int i = 0; i < dev->ops->num_queues; i++)
				apply_features(m, &dev->vq[i]);
		}
	}
	if ((set & VIRTIO_STATUS_DRIVER_OK) && !(val & VIRTIO_STATUS_FEATURES_OK)) {
		warn_once(m, reg_index(REG_STATUS), REG_STATUS, "DRIVER_OK without FEATURES_OK");
		val &= ~(uint32_t)VIRTIO_STATUS_DRIVER_OK;
		set &= ~(uint32_t)VIRTIO_STATUS_DRIVER_OK;
	}
	__atomic_store_n(&m->status, val, __ATOMIC_SEQ_CST);

	if (set & VIRTIO_STATUS_DRIVER_OK) {
		int ret = dev->ops->activate ? dev->ops->activate(dev) : 0;

		if (ret < 0) {
			char why[160];

			snprintf(why, sizeof(why), "activate failed: %s", strerror(-ret));
			mmio_needs_reset(dev, why);
		}
	}
}

/* The selected queue if the driver may still configure it, else NULL (logged). */
static struct virtq *setup_queue_locked(struct virtio_mmio *m, int reg, uint64_t offset)
{
	struct virtq *q;

	if (m->queue_sel >= m->dev->ops->num_queues) {
		warn_once(m, reg, offset, "QueueSel names no queue");
		return NULL;
	}
	q = &m->dev->vq[m->queue_sel];
	if (q->ready || (m->status & VIRTIO_STATUS_DRIVER_OK)) {
		warn_once(m, reg, offset, "queue is ready or DRIVER_OK is set");
		return NULL;
	}
	return q;
}

static void set_low(gpa_t *a, uint32_t v) { *a = (*a & ~0xffffffffULL) | v; }
static void set_high(gpa_t *a, uint32_t v) { *a = (*a & 0xffffffffULL) | ((uint64_t)v << 32); }

static uint32_t read_reg_locked(struct virtio_mmio *m, uint32_t offset)
{
	struct virtio_dev *dev = m->dev;
	uint16_t nq = dev->ops->num_queues;

	switch (offset) {
	case REG_MAGIC: return MAGIC;
	case REG_VERSION: return VERSION;
	case REG_DEVICE_ID: return dev->ops->device_id;
	case REG_VENDOR_ID: return VENDOR_ID;
	case REG_DEVICE_FEATURES:
		if (m->device_features_sel > 1)
			return 0;
		return (uint32_t)(offered_features(m) >> (32 * m->device_features_sel));
	case REG_QUEUE_NUM_MAX: return m->queue_sel < nq ? VIRTQ_MAX_SIZE : 0;
	case REG_QUEUE_READY: return m->queue_sel < nq ? dev->vq[m->queue_sel].ready : 0;
	case REG_INTERRUPT_STATUS: return atomic_load(&m->interrupt_status);
	case REG_STATUS:
		return m->status | (atomic_load(&m->broken) ? VIRTIO_STATUS_NEEDS_RESET : 0);
	case REG_CONFIG_GENERATION: return __atomic_load_n(&m->config_generation, __ATOMIC_SEQ_CST);
	}
	return 0;
}

static void write_reg_locked(struct virtio_mmio *m, int reg, uint32_t offset, uint32_t val)
{
	struct virtio_dev *dev = m->dev;
	struct virtq *q;

	switch (offset) {
	case REG_DEVICE_FEATURES_SEL: m->device_features_sel = val; return;
	case REG_DRIVER_FEATURES_SEL: m->driver_features_sel = val; return;
	case REG_DRIVER_FEATURES:
		if (m->status & VIRTIO_STATUS_FEATURES_OK) {
			warn_once(m, reg, offset, "features written after FEATURES_OK");
			return;
		}
		if (m->driver_features_sel == 0)
			m->driver_features = (m->driver_features & ~0xffffffffULL) | val;
		else if (m->driver_features_sel == 1)
			m->driver_features = (m->driver_features & 0xffffffffULL) | ((uint64_t)val << 32);
		else if (val)
			warn_once(m, reg, offset, "feature bits beyond 63");
		return;
	case REG_QUEUE_SEL: m->queue_sel = val; return;
	case REG_QUEUE_NUM:
		if ((q = setup_queue_locked(m, reg, offset)))
			q->size = val <= VIRTQ_MAX_SIZE ? (uint16_t)val : 0; /* 0 fails validation */
		return;
	case REG_QUEUE_DESC_LOW: case REG_QUEUE_DESC_HIGH:
	case REG_QUEUE_DRIVER_LOW: case REG_QUEUE_DRIVER_HIGH:
	case REG_QUEUE_DEVICE_LOW: case REG_QUEUE_DEVICE_HIGH: {
		gpa_t *a;

		if (!(q = setup_queue_locked(m, reg, offset)))
			return;
		a = offset < REG_QUEUE_DRIVER_LOW ? &q->desc :
		    offset < REG_QUEUE_DEVICE_LOW ? &q->avail : &q->used;
		if (offset & 4)
			set_high(a, val);
		else
			set_low(a, val);
		return;
	}
	case REG_QUEUE_READY:
		if (val > 1) {
			warn_once(m, reg, offset, "value other than 0 or 1");
			return;
		}
		if (m->queue_sel < dev->ops->num_queues && dev->vq[m->queue_sel].ready == (val == 1))
			return;    /* no change */
		if (val == 0) {
			/* Taking a queue back is only safe while the device is not running. */
			if (m->status & VIRTIO_STATUS_DRIVER_OK)
				warn_once(m, reg, offset, "queue disabled after DRIVER_OK");
			else if (m->queue_sel < dev->ops->num_queues)
				dev->vq[m->queue_sel].ready = false;
			return;
		}
		if (!(q = setup_queue_locked(m, reg, offset)))
			return;
		apply_features(m, q);
		if (virtq_validate(q) != 0) {
			char why[200];

			snprintf(why, sizeof(why),
				 "queue %u: invalid ring (size %u, desc 0x%llx, driver 0x%llx, device 0x%llx)",
				 m->queue_sel, q->size, (unsigned long long)q->desc,
				 (unsigned long long)q->avail, (unsigned long long)q->used);
			mmio_needs_reset(dev, why);
			return;
		}
		q->ready = true;
		return;
	case REG_QUEUE_NOTIFY:
		if (val >= dev->ops->num_queues) {
			warn_once(m, reg, offset, "queue index out of range");
			return;
		}
		signal_fd(m->notify_fd[val]);
		return;
	case REG_INTERRUPT_ACK:
		atomic_fetch_and(&m->interrupt_status, ~val);
		return;
	case REG_STATUS:
		write_status_locked(m, val);
		return;
	}
}

void virtio_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio *m = opaque;
	struct virtio_dev *dev = m->dev;
	int reg;
	uint32_t val;

	if (!is_write)
		memset(data, 0, len);
	if (offset >= VIRTIO_MMIO_CONFIG) {
		if (len != 1 && len != 2 && len != 4 && len != 8) {
			warn_once(m, SLOT_CONFIG, offset, "config access of a bad width");
			return;
		}
		pthread_mutex_lock(&m->lock);
		if (is_write && dev->ops->config_write)
			dev->ops->config_write(dev, offset - VIRTIO_MMIO_CONFIG, data, len);
		else if (!is_write && dev->ops->config_read)
			dev->ops->config_read(dev, offset - VIRTIO_MMIO_CONFIG, data, len);
		pthread_mutex_unlock(&m->lock);
		return;
	}

	reg = reg_index(offset);
	if (reg < 0) {
		warn_once(m, SLOT_UNKNOWN, offset, "no register at this offset");
		return;
	}
	if (len != 4) {
		warn_once(m, reg, offset, "access is not 32 bits wide");
		return;
	}
	if (is_write ? !regs[reg].writable : !regs[reg].readable) {
		warn_once(m, reg, offset, is_write ? "register is read-only" : "register is write-only");
		return;
	}

	pthread_mutex_lock(&m->lock);
	if (is_write) {
		memcpy(&val, data, 4);
		write_reg_locked(m, reg, (uint32_t)offset, le32toh(val));
	} else {
		val = htole32(read_reg_locked(m, (uint32_t)offset));
		memcpy(data, &val, 4);
	}
	pthread_mutex_unlock(&m->lock);
}

void virtio_mmio_queue_kicked(struct virtio_mmio *m, uint16_t q)
{
	struct virtio_dev *dev = m->dev;

	if (atomic_load(&m->broken) || q >= dev->ops->num_queues || !dev->ops->queue_notify)
		return;
	if (!(__atomic_load_n(&m->status, __ATOMIC_SEQ_CST) & VIRTIO_STATUS_DRIVER_OK))
		return;
	dev->ops->queue_notify(dev, q);
}

void virtio_mmio_save(struct virtio_mmio *m, struct virtio_mmio_state *s)
{
	struct virtio_dev *dev = m->dev;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&m->lock);
	s->device_id = dev->ops->device_id;
	s->num_queues = dev->ops->num_queues;
	s->status = m->status;
	s->device_features_sel = m->device_features_sel;
	s->driver_features_sel = m->driver_features_sel;
	s->queue_sel = m->queue_sel;
	s->driver_features = m->driver_features;
	s->negotiated = dev->driver_features;
	s->interrupt_status = atomic_load(&m->interrupt_status);
	s->config_generation = __atomic_load_n(&m->config_generation, __ATOMIC_SEQ_CST);
	s->broken = atomic_load(&m->broken);
	for (int i = 0; i < dev->ops->num_queues; i++) {
		const struct virtq *q = &dev->vq[i];
		s->q[i] = (struct virtio_queue_state){
			.desc = q->desc, .avail = q->avail, .used = q->used, .size = q->size,
			.last_avail = q->last_avail, .used_idx = q->used_idx,
			.signalled_used = q->signalled_used, .ready = q->ready,
			.signalled_valid = q->signalled_valid,
		};
	}
	pthread_mutex_unlock(&m->lock);
}

int virtio_mmio_load(struct virtio_mmio *m, const struct virtio_mmio_state *s)
{
	struct virtio_dev *dev = m->dev;
	const char *name = dev->ops->name;
	const uint32_t known = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |
			       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_FAILED;

	if (s->device_id != dev->ops->device_id || s->num_queues != dev->ops->num_queues)
		return err_set(EINVAL, "%s state: saved for device type %u with %u queues", name,
			       s->device_id, s->num_queues);
	if ((s->status & ~known) ||
	    ((s->status & VIRTIO_STATUS_DRIVER_OK) && !(s->status & VIRTIO_STATUS_FEATURES_OK)))
		return err_set(EINVAL, "%s state: bad status 0x%x", name, s->status);
	if ((s->status & VIRTIO_STATUS_FEATURES_OK) &&
	    (s->negotiated != s->driver_features || (s->negotiated & ~offered_features(m)) ||
	     !(s->negotiated & (1ULL << VIRTIO_F_VERSION_1))))
		return err_set(EINVAL, "%s state: features 0x%llx are not ones the device offers", name,
			       (unsigned long long)s->negotiated);
	if (!(s->status & VIRTIO_STATUS_FEATURES_OK) && s->negotiated)
		return err_set(EINVAL, "%s state: features without FEATURES_OK", name);

	pthread_mutex_lock(&m->lock);
	dev->driver_features = s->negotiated;
	for (uint32_t i = 0; i < s->num_queues; i++) {
		const struct virtio_queue_state *qs = &s->q[i];
		struct virtq *q = &dev->vq[i];
		virtq_reset(q);
		q->desc = qs->desc;
		q->avail = qs->avail;
		q->used = qs->used;
		q->size = qs->size;
		apply_features(m, q);
		if (qs->ready && virtq_validate(q) != 0) {
			pthread_mutex_unlock(&m->lock);
			return err_set(EINVAL, "%s state: queue %u: rings outside guest RAM or malformed", name, i);
		}
		q->ready = qs->ready;
		q->last_avail = qs->last_avail;
		q->used_idx = qs->used_idx;
		q->signalled_used = qs->signalled_used;
		q->signalled_valid = qs->signalled_valid;
	}
	m->device_features_sel = s->device_features_sel;
	m->driver_features_sel = s->driver_features_sel;
	m->queue_sel = s->queue_sel;
	m->driver_features = s->driver_features;
	atomic_store(&m->interrupt_status, s->interrupt_status & (INT_USED_BUFFER | INT_CONFIG_CHANGE));
	__atomic_store_n(&m->config_generation, s->config_generation, __ATOMIC_SEQ_CST);
	atomic_store(&m->broken, s->broken != 0);
	__atomic_store_n(&m->status, s->status, __ATOMIC_SEQ_CST);
	int ret = 0;
	if ((s->status & VIRTIO_STATUS_DRIVER_OK) && !s->broken && dev->ops->activate)
		ret = dev->ops->activate(dev);
	/* A kick may have been on its way when the snapshot froze the device: each queue gets one. */
	for (uint32_t i = 0; ret == 0 && i < s->num_queues; i++)
		if (dev->vq[i].ready)
			signal_fd(m->notify_fd[i]);
	/*
	 * An interrupt the device raised while it was frozen (a request in flight
	 * completing) may not have reached the saved irqchip state yet (KVM
	 * injects an irqfd's edge from a work queue): raise it again. A driver
	 * reads the status register, so a second edge for one status is harmless.
	 */
	if (ret == 0 && atomic_load(&m->interrupt_status))
		signal_fd(m->irq_fd);
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		return err_set(-ret, "%s state: activating the device: %s", name, strerror(-ret));
	return 0;
}
