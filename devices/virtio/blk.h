/* blk.h - virtio-blk (device ID 2): config space, request parsing and the device model over the I/O loop. */
#ifndef MICROVM_VIRTIO_BLK_H
#define MICROVM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/ratelimit.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtqueue.h"
#include "io/disk.h"
#include "io/ioloop.h"

#define VIRTIO_ID_BLOCK 2

/* Feature bits (virtio 1.2, 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types. */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

/* Status byte values. */
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* Discard / write-zeroes segment flag. */
#define VIRTIO_BLK_WZ_F_UNMAP 1

#define BLK_SECTOR_SIZE 512
#define BLK_ID_BYTES 20
#define BLK_SIZE_MAX (1u << 20)                   /* largest single buffer the driver should use */
#define BLK_SEG_MAX (VIRTQ_MAX_SIZE - 2)          /* data buffers per request (header + status) */
#define BLK_MAX_REQ_BYTES ((uint64_t)BLK_SEG_MAX * BLK_SIZE_MAX) /* longer requests: IOERR */
#define BLK_MAX_DISCARD_SECTORS (1u << 22)        /* 2 GiB per segment */
#define BLK_MAX_DISCARD_SEG 1

/* The guest-visible config space (virtio 1.2, 5.2.4), up to write_zeroes_may_unmap. */
struct virtio_blk_config {
	uint64_t capacity;              /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_blk_config) == 60, "virtio_blk_config layout");

/* The request header the driver puts first (16 bytes). */
struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio_blk_outhdr is 16 bytes");

/* One DISCARD / WRITE_ZEROES segment (16 bytes). */
struct virtio_blk_discard_wz {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_blk_discard_wz) == 16, "discard segment is 16 bytes");

/* What request handling needs to know about a disk. */
struct blk_disk {
	uint64_t sectors;               /* capacity in 512-byte sectors */
	bool ro;
	char id[BLK_ID_BYTES];          /* GET_ID answer, NUL padded (not necessarily terminated) */
};

/* Device feature bits for d (RO only for read-only disks). */
uint64_t blk_features(const struct blk_disk *d);

/* Fill the config space for d, little endian. */
void blk_config_fill(const struct blk_disk *d, struct virtio_blk_config *cfg);

/* The outcome of parsing one request chain. */
struct blk_parsed {
	uint32_t type;                  /* header type (0 if there was no header) */
	uint8_t *status_ptr;            /* host address of the status byte; NULL: the chain has none */
	uint8_t status;                 /* VIRTIO_BLK_S_OK: go on; otherwise answer at once with this */
	bool needs_io;                  /* status OK and a host operation is to be submitted */
	enum io_op op;
	int iovcnt;                     /* READ/WRITE: entries filled in the caller's iov[] */
	uint64_t offset, len;           /* bytes on the disk (READ/WRITE: len = data bytes) */
	uint32_t written;               /* on success, bytes the device writes into the chain (status included) */
};

/*
 * Parse and check a request chain against disk d: the 16-byte header in the
 * driver-readable bytes, the status as the last device-writable byte, data in
 * between (IN: writable bytes before the status; OUT: readable bytes after the
 * header; DISCARD / WRITE_ZEROES: 16-byte segments after the header). Checks:
 * header and status present, data lengths multiples of 512, sector + length
 * inside the disk (overflow-safe), no writes to a read-only disk, at most
 * BLK_MAX_REQ_BYTES, known type and flags. Never fails: a bad request comes
 * back with status IOERR or UNSUPP. READ/WRITE data buffers are written to
 * iov[0..iov_max) (iov_max >= c->n is always enough). Pure: touches only the
 * chain's buffers (reads) and iov.
 */
void blk_parse(const struct blk_disk *d, const struct virtq_chain *c, struct iovec *iov, int iov_max,
	       struct blk_parsed *out);

/* A disk's request counters since it was created (the control API's metrics). */
struct blk_stats {
	uint64_t requests;              /* chains answered */
	uint64_t reads, writes, flushes;    /* host operations that succeeded */
	uint64_t read_bytes, write_bytes;
	uint64_t errors;                /* answered IOERR or UNSUPP (bad request or host error) */
};

/*
 * The device model. Create it for disk d; requests go to the back end be
 * (its loop and file registered by the caller, or an overlay attached to
 * the loop: io/disk.h). Takes one I/O-loop timer (io_loop_timer), so before
 * io_loop_start(). Reads BLK_FAIL_ENV (test only, below).
 * Returns 0 or -errno with err_msg().
 */
struct blk;
int blk_create(struct blk **out, const struct blk_disk *d, const struct disk_backend *be);
void blk_destroy(struct blk *b);

/* A consistent copy of the counters (any thread). */
void blk_get_stats(struct blk *b, struct blk_stats *out);

/* The virtio device to hand to a transport (ops, priv and queues set). */
struct virtio_dev *blk_virtio_dev(struct blk *b);

/*
 * Rate limits (base/ratelimit.h), any thread, at any time: bytes counts the
 * data of reads and writes, ops every request with a host operation (read,
 * write, flush, discard, write-zeroes). Both buckets restart full. A request
 * over the limit stays in the virtqueue (virtq_unpop) and the queue waits on
 * an I/O-loop timer, so requests keep their order (a flush never passes the
 * writes before it, nor a write the flush) and vCPUs and other devices never
 * wait. All zero: no limit (the default). Returns 0 or -EINVAL (out of range).
 */
int blk_set_limits(struct blk *b, const struct rl_config *c);

/* The limiter as it stands now (configuration, levels, throttled count). */
void blk_get_limits(struct blk *b, struct rate_limiter *out);

/*
 * TEST ONLY: when the environment variable MICROVM_TEST_BLK_FAIL is
 * "eio:SECTOR", every read or write touching SECTOR fails on the host side
 * with EIO (after the real I/O), so guest-level tests can see IOERR; with
 * "every:N", every Nth read, write or flush does (the guest soak test). Read once
 * by blk_create(); never set it in production.
 */
#define BLK_FAIL_ENV "MICROVM_TEST_BLK_FAIL"

#endif
