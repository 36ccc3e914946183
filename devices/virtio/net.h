/* net.h - virtio-net (device ID 1): vnet header checks, RX buffer accounting and the device model over a tap-like fd. */
#ifndef MICROVM_VIRTIO_NET_H
#define MICROVM_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "base/ratelimit.h"
#include "devices/virtio/virtio.h"
#include "io/ioloop.h"

#define VIRTIO_ID_NET 1

/* Feature bits (virtio 1.2, 5.1.3). */
#define VIRTIO_NET_F_CSUM 0             /* the device takes frames with a partial checksum */
#define VIRTIO_NET_F_GUEST_CSUM 1       /* the driver takes frames with a partial checksum */
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

#define VIRTIO_NET_S_LINK_UP 1

/* virtio_net_hdr_v1 flags and gso_type values. */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80

#define NET_RXQ 0
#define NET_TXQ 1
#define NET_HDR_LEN 12                  /* sizeof(struct virtio_net_hdr_v1) */
#define NET_MAX_FRAME 65550             /* largest frame after the header (64 KiB GSO + Ethernet) */
#define NET_RX_BATCH 64                 /* frames per RX round before other work runs */
#define NET_TX_BATCH 64                 /* chains per TX round */

/* The header in front of every frame, both ways (all fields little endian). */
struct virtio_net_hdr_v1 {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_net_hdr_v1) == NET_HDR_LEN, "virtio_net_hdr_v1 is 12 bytes");

/* The guest-visible config space (virtio 1.2, 5.1.4); only mac and status are non-zero. */
struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
	uint32_t speed;
	uint8_t duplex;
	uint8_t rss_max_key_size;
	uint16_t rss_max_indirection_table_length;
	uint32_t supported_hash_types;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_net_config) == 24, "virtio_net_config layout");

/*
 * The host side of one interface, set up by the caller (io/tap.c for a
 * tap): a non-blocking fd with packet semantics (one read = one frame, one
 * write = one frame) that carries a 12-byte virtio_net_hdr_v1 in front of
 * every frame (tap: IFF_VNET_HDR + TUNSETVNETHDRSZ 12; unit tests: an
 * AF_UNIX SOCK_SEQPACKET socketpair).
 */
struct net_backend {
	int fd;
	uint8_t mac[6];
	/*
	 * TUN_F_* offload bits (linux/if_tun.h values) the host side accepts;
	 * the device offers only the guest features these can carry.
	 */
	unsigned int offloads;
	/*
	 * Called on activation with the TUN_F_* bits matching the features the
	 * driver accepted (the frames the host may now send the guest). 0 or
	 * -errno; NULL: nothing to do (unit tests).
	 */
	int (*set_offload)(void *ctx, unsigned int tun_flags);
	void *ctx;
	const char *name;               /* for logs, e.g. the tap name */
};

/* Counters, visible at exit (logged by the VMM) and in unit tests. */
struct net_stats {
	uint64_t rx_frames, rx_bytes;   /* delivered to the guest */
	uint64_t tx_frames, tx_bytes;   /* sent to the host */
	uint64_t rx_dropped;            /* a frame that fits no guest buffer, or a host read error */
	uint64_t tx_dropped;            /* a bad chain or header from the guest, or a host write error */
};

/*
 * Pure helpers (unit-tested).
 *
 * net_features: the device feature bits for a back end accepting the TUN_F_*
 * `offloads`: MAC, STATUS, MRG_RXBUF, CSUM and the HOST_* GSO bits always
 * (the tap takes GSO frames from us whatever its offload setting), a GUEST_*
 * bit only when the back end can send such frames (GUEST_CSUM needs TUN_F_CSUM;
 * GUEST_TSO4/TSO6/UFO need TUN_F_CSUM and TUN_F_TSO4/TSO6/UFO; GUEST_ECN needs
 * TUN_F_TSO_ECN and one of the TSO bits).
 */
uint64_t net_features(unsigned int offloads);

/*
 * The TUN_F_* bits matching the negotiated GUEST_* features: what the host may
 * send the guest (TSO/UFO/ECN bits only together with GUEST_CSUM). 0 when none.
 */
unsigned int net_tun_offloads(uint64_t features);

/*
 * Check the header of a frame the guest sends, frame_len bytes after the
 * header, against the negotiated features. Accepted: flags 0 or NEEDS_CSUM
 * (only with CSUM, and csum_start + csum_offset + 2 <= frame_len); gso_type
 * NONE, or TCPV4 / TCPV6 / UDP with HOST_TSO4 / HOST_TSO6 / HOST_UFO and
 * gso_size > 0, plus the ECN bit only on TCP with HOST_ECN. Returns 0 or
 * -EINVAL. Fields are little endian.
 */
int net_tx_hdr_check(const struct virtio_net_hdr_v1 *h, uint64_t frame_len, uint64_t features);

/*
 * Check (and fix up) the header the host put in front of a frame for the
 * guest: NEEDS_CSUM only with GUEST_CSUM, GSO types only with the matching
 * GUEST_* feature (ECN with GUEST_ECN), no unknown flags or types.
 * DATA_VALID is cleared without GUEST_CSUM (a hint the driver cannot take;
 * it then checks the checksum itself). Returns 0 or -EINVAL (drop the frame).
 */
int net_rx_hdr_check(struct virtio_net_hdr_v1 *h, uint64_t features);

#define NET_RX_NO_FIT (-1)              /* this frame can never fit (drop it) */
#define NET_RX_BAD_BUF (-2)             /* chain 0 cannot hold even the header */

/*
 * RX accounting: how a frame of frame_len bytes (header included) is spread
 * over the available chains, whose writable lengths are wlen[0..n), in order.
 * Without mergeable buffers the frame must fit chain 0 alone. With them it
 * fills each chain before the next. take[i] gets the bytes written into chain
 * i for every chain it uses. Returns:
 *   k > 0           the frame takes chains 0..k-1 (take[0..k) filled);
 *   0               n chains are not enough (mergeable: they are all full,
 *                   take[0..n) filled, more chains are needed; or n == 0);
 *   NET_RX_BAD_BUF  wlen[0] < NET_HDR_LEN: chain 0 can hold no frame at all;
 *   NET_RX_NO_FIT   frame_len < NET_HDR_LEN or > NET_HDR_LEN + NET_MAX_FRAME,
 *                   or (not mergeable) frame_len > wlen[0].
 */
int net_rx_account(uint64_t frame_len, const uint32_t *wlen, int n, bool mergeable, uint32_t *take);

/*
 * Create the device on loop: registers its fd watch and a timer on the loop (so before
 * io_loop_start()). be->fd stays the caller's. Returns 0 or -errno with
 * err_msg(). net_destroy() only after io_loop_destroy() (or if the loop never
 * started): the loop may still call into the device until then.
 */
struct net;
int net_create(struct net **out, const struct net_backend *be, struct io_loop *loop);
void net_destroy(struct net *n);

/* The virtio device to hand to a transport. */
struct virtio_dev *net_virtio_dev(struct net *n);

/* A consistent copy of the counters (any thread). */
void net_get_stats(struct net *n, struct net_stats *out);

/*
 * Rate limits per direction (base/ratelimit.h), any thread, at any time:
 * bytes counts frame bytes without the vnet header, ops frames. Both
 * directions restart with full buckets. TX: a chain over the limit stays in
 * the ring (virtq_unpop). RX: a frame over the limit waits, read, in the
 * device; the tap is not read meanwhile (its queue fills and drops, as on a
 * slow link). Either way the wait is an I/O-loop timer: no vCPU and no other
 * device waits. All zero: no limit (the default). Returns 0 or -EINVAL.
 */
int net_set_limits(struct net *n, const struct rl_config *rx, const struct rl_config *tx);

/* The limiters as they stand now. */
void net_get_limits(struct net *n, struct rate_limiter *rx, struct rate_limiter *tx);

#endif
