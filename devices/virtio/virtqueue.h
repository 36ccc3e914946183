/* virtqueue.h - split virtqueues (virtio 1.2 section 2.7): checked chain walking, used ring, notification suppression. */
#ifndef MICROVM_VIRTQUEUE_H
#define MICROVM_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/guest_mem.h"

#define VIRTQ_MAX_SIZE 256         /* largest queue size microvm offers (QueueNumMax) */

/* Descriptor flags. */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

/* Ring flags: avail->flags (driver -> device) and used->flags (device -> driver). */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
} __attribute__((packed));
_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc is 16 bytes");

/*
 * One queue's state. The transport fills size/desc/avail/used/ready from the
 * driver's register writes; only the thread that owns the device's queues (the
 * I/O thread) calls the functions below.
 */
struct virtq {
	const struct guest_mem *mem;
	uint16_t size;              /* QueueNum chosen by the driver, power of 2, <= VIRTQ_MAX_SIZE */
	bool ready;
	gpa_t desc, avail, used;    /* ring addresses */
	bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;              /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	uint16_t last_avail;        /* next avail ring entry to consume */
	uint16_t used_idx;          /* next used ring entry to fill */
	uint16_t signalled_used;    /* used_idx when the guest was last interrupted */
	bool signalled_valid;
};

/* One buffer of a chain, already translated to host memory. */
struct virtq_buf {
	void *host;
	uint32_t len;
	bool device_writable;
};

/* A descriptor chain: driver-readable buffers first, then device-writable ones. */
struct virtq_chain {
	uint16_t head;              /* to pass to virtq_push() */
	uint16_t n;                 /* buffers used in buf[] */
	uint64_t readable_len;      /* total bytes of driver -> device buffers */
	uint64_t writable_len;      /* total bytes of device -> driver buffers */
	struct virtq_buf buf[VIRTQ_MAX_SIZE];
};

/* Reset the ring state (indices, ready, negotiated ring features) and forget addresses; keeps mem. */
void virtq_reset(struct virtq *q);

/*
 * Check the ring addresses and size once the driver sets QueueReady: desc
 * (16*size), avail (6+2*size) and used (6+8*size) must lie in guest RAM with
 * the required alignment and must not overlap one another; size a power of 2
 * in 1..VIRTQ_MAX_SIZE.
 * Returns 0 or -EINVAL.
 */
int virtq_validate(const struct virtq *q);

/*
 * Take the next available chain. Returns 1 with *c filled, 0 when the ring is
 * empty or the queue is not ready, or -EINVAL when the driver broke the rules
 * (or the rings no longer translate): avail idx more than size
 * ahead, head or next index >= size, a loop or a chain longer than size
 * descriptors (those inside an indirect table included; the one descriptor
 * that points at the table is not counted), a buffer outside guest RAM or wrapping,
 * an indirect table that is nested, empty, not a multiple of 16 bytes, outside
 * RAM or used without VIRTIO_RING_F_INDIRECT_DESC, or a readable buffer after
 * a writable one. On -EINVAL the caller marks the device DEVICE_NEEDS_RESET and
 * stops using the queue. Never reads or writes outside guest RAM.
 * Zero-length buffers are accepted (their address is not checked) but are not
 * stored in c->buf. Descriptors are copied once before they are checked, so a
 * guest rewriting the table meanwhile cannot invalidate a checked value.
 * With EVENT_IDX, writes avail_event = the new last_avail (like QEMU).
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/*
 * Give back the chain virtq_pop() just returned, unanswered: the next pop
 * returns the same avail entry again (read afresh from the ring). A rate
 * limiter uses it so a throttled request stays in the guest's ring, in order,
 * and a snapshot meanwhile holds nothing half-taken.
 */
void virtq_unpop(struct virtq *q);

/* Return a chain to the driver with `written` bytes written into its writable buffers. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/*
 * Return n chains at once (head[i] with written[i] bytes) with one used-index
 * update, so the driver sees all of them or none (a mergeable RX frame).
 */
void virtq_push_n(struct virtq *q, const uint16_t *head, const uint32_t *written, int n);

/*
 * After one or more virtq_push() calls: does the driver want an interrupt?
 * Honours VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX.
 */
bool virtq_should_notify(struct virtq *q);

/*
 * Ask the driver to kick (true) or not (false) when it adds buffers: the used
 * ring's flags, or avail_event with EVENT_IDX. With enable = true, returns true
 * if buffers arrived meanwhile (the caller must look again before sleeping).
 */
bool virtq_enable_notify(struct virtq *q, bool enable);

/*
 * Ask the driver not to kick at all, for now: the device promises to look at
 * the ring again by itself (virtio-blk while requests are in flight: each
 * completion batch looks). With EVENT_IDX, avail_event goes one behind
 * last_avail, an index the driver's next publish can never cross (it would
 * need to add 2^16 entries to a ring of at most 256 the device does not
 * consume); without it, VIRTQ_USED_F_NO_NOTIFY. virtq_enable_notify(q, true)
 * undoes it (with EVENT_IDX, so does the next virtq_pop()).
 */
void virtq_suppress_kicks(struct virtq *q);

/*
 * Copy helpers across a chain's buffers (scatter/gather). virtq_chain_read
 * reads the driver-readable buffers, taken as one byte stream starting at
 * offset; virtq_chain_write writes the device-writable ones likewise. They
 * return the bytes copied, less than len when the buffers end first.
 */
uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t offset, void *dst, uint64_t len);
uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t offset, const void *src, uint64_t len);

#endif
