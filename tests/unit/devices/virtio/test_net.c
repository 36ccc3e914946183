/* test_net.c - virtio-net: features, vnet header checks, RX accounting, and the device over a socketpair on hand-built rings. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "base/err.h"
#include "io/ioloop.h"

#define BIT(b) (1ULL << (b))

/* ---- pure parts ---- */

Test(net, features_follow_offloads)
{
	uint64_t always = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_MRG_RXBUF) |
			  BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) |
			  BIT(VIRTIO_NET_F_HOST_ECN) | BIT(VIRTIO_NET_F_HOST_UFO);
	uint64_t guest = BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |
			 BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) | BIT(VIRTIO_NET_F_GUEST_UFO);
	unsigned int all = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO;

	cr_assert_eq(net_features(0), always);
	cr_assert_eq(net_features(all), always | guest);
	cr_assert_eq(net_features(TUN_F_CSUM), always | BIT(VIRTIO_NET_F_GUEST_CSUM));
	/* TSO without checksum offload cannot be used; ECN without TSO neither. */
	cr_assert_eq(net_features(TUN_F_TSO4 | TUN_F_TSO6), always);
	cr_assert_eq(net_features(TUN_F_CSUM | TUN_F_TSO_ECN), always | BIT(VIRTIO_NET_F_GUEST_CSUM));
	cr_assert_eq(net_features(TUN_F_CSUM | TUN_F_TSO6),
		     always | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO6));

	cr_assert_eq(net_tun_offloads(0), 0);
	cr_assert_eq(net_tun_offloads(always), 0, "HOST_* features ask nothing of the host's sends");
	cr_assert_eq(net_tun_offloads(guest), all);
	cr_assert_eq(net_tun_offloads(BIT(VIRTIO_NET_F_GUEST_CSUM)), TUN_F_CSUM);
	cr_assert_eq(net_tun_offloads(BIT(VIRTIO_NET_F_GUEST_TSO4)), 0, "TSO only with CSUM");
	cr_assert_eq(net_tun_offloads(BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_ECN)), TUN_F_CSUM,
		     "ECN only with TSO");
}

static struct virtio_net_hdr_v1 mkhdr(uint8_t flags, uint8_t gso, uint16_t gso_size, uint16_t cs, uint16_t co)
{
	return (struct virtio_net_hdr_v1){ .flags = flags, .gso_type = gso, .gso_size = htole16(gso_size),
					   .csum_start = htole16(cs), .csum_offset = htole16(co) };
}

Test(net, tx_header_check_table)
{
	const uint64_t none = 0;
	const uint64_t all = BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) |
			     BIT(VIRTIO_NET_F_HOST_ECN) | BIT(VIRTIO_NET_F_HOST_UFO);
	const uint8_t NC = VIRTIO_NET_HDR_F_NEEDS_CSUM, ECN = VIRTIO_NET_HDR_GSO_ECN;
	static const struct {
		uint8_t flags, gso;
		uint16_t gso_size, cs, co;
		uint64_t len;
		int feat;   /* 0: none, 1: all, 2: all but HOST_ECN, 3: CSUM only */
		int want;
	} t[] = {
		{ 0, 0, 0, 0, 0, 60, 0, 0 },                     /* plain frame, nothing negotiated */
		{ 0, 0, 0, 0, 0, 0, 0, 0 },                      /* empty frame: the header is fine */
		{ NC, 0, 0, 34, 16, 60, 3, 0 },                  /* TCP checksum inside the frame */
		{ NC, 0, 0, 34, 16, 52, 3, 0 },                  /* ends exactly at the end */
		{ NC, 0, 0, 34, 16, 51, 3, -EINVAL },            /* one byte past the end */
		{ NC, 0, 0, 0xffff, 0xffff, 65550, 1, -EINVAL }, /* no 16-bit overflow */
		{ NC, 0, 0, 34, 16, 60, 0, -EINVAL },            /* NEEDS_CSUM without CSUM */
		{ 2, 0, 0, 0, 0, 60, 1, -EINVAL },               /* DATA_VALID is not for the driver */
		{ 4, 0, 0, 0, 0, 60, 1, -EINVAL },               /* RSC_INFO */
		{ 0x80, 0, 0, 0, 0, 60, 1, -EINVAL },            /* unknown flag */
		{ NC, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 9000, 1, 0 },
		{ NC, VIRTIO_NET_HDR_GSO_TCPV6, 1428, 54, 16, 9000, 1, 0 },
		{ NC, VIRTIO_NET_HDR_GSO_UDP, 1472, 34, 6, 9000, 1, 0 },
		{ NC, VIRTIO_NET_HDR_GSO_TCPV4 | ECN, 1448, 34, 16, 9000, 1, 0 },
		{ NC, VIRTIO_NET_HDR_GSO_TCPV4 | ECN, 1448, 34, 16, 9000, 2, -EINVAL }, /* no HOST_ECN */
		{ NC, VIRTIO_NET_HDR_GSO_UDP | ECN, 1472, 34, 6, 9000, 1, -EINVAL },    /* ECN is TCP's */
		{ 0, ECN, 0, 0, 0, 60, 1, -EINVAL },                                     /* ECN alone */
		{ NC, VIRTIO_NET_HDR_GSO_TCPV4, 0, 34, 16, 9000, 1, -EINVAL },          /* gso_size 0 */
		{ NC, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16, 9000, 3, -EINVAL },       /* no HOST_TSO4 */
		{ NC, VIRTIO_NET_HDR_GSO_TCPV6, 1448, 34, 16, 9000, 3, -EINVAL },
		{ NC, VIRTIO_NET_HDR_GSO_UDP, 1448, 34, 16, 9000, 3, -EINVAL },
		{ NC, 5, 1448, 34, 16, 9000, 1, -EINVAL },                               /* UDP_L4: not offered */
		{ NC, 2, 1448, 34, 16, 9000, 1, -EINVAL },
		{ 0, 0xff, 1448, 0, 0, 9000, 1, -EINVAL },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t f = t[i].feat == 0 ? none : t[i].feat == 1 ? all
			   : t[i].feat == 2 ? all & ~BIT(VIRTIO_NET_F_HOST_ECN) : BIT(VIRTIO_NET_F_CSUM);
		struct virtio_net_hdr_v1 h = mkhdr(t[i].flags, t[i].gso, t[i].gso_size, t[i].cs, t[i].co);
		cr_assert_eq(net_tx_hdr_check(&h, t[i].len, f), t[i].want, "case %zu", i);
	}
}

Test(net, rx_header_check)
{
	uint64_t csum = BIT(VIRTIO_NET_F_GUEST_CSUM);
	uint64_t tso4 = csum | BIT(VIRTIO_NET_F_GUEST_TSO4);
	struct virtio_net_hdr_v1 h;

	h = mkhdr(0, 0, 0, 0, 0);
	cr_assert_eq(net_rx_hdr_check(&h, 0), 0);
	/* DATA_VALID is only a hint: cleared for a driver without GUEST_CSUM, kept with it. */
	h = mkhdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0);
	cr_assert_eq(net_rx_hdr_check(&h, 0), 0);
	cr_assert_eq(h.flags, 0);
	h = mkhdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0);
	cr_assert_eq(net_rx_hdr_check(&h, csum), 0);
	cr_assert_eq(h.flags, VIRTIO_NET_HDR_F_DATA_VALID);
	/* A partial checksum only for GUEST_CSUM. */
	h = mkhdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16);
	cr_assert_eq(net_rx_hdr_check(&h, 0), -EINVAL);
	cr_assert_eq(net_rx_hdr_check(&h, csum), 0);
	/* GSO types only with the matching GUEST_* feature. */
	h = mkhdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16);
	cr_assert_eq(net_rx_hdr_check(&h, csum), -EINVAL);
	cr_assert_eq(net_rx_hdr_check(&h, tso4), 0);
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
	cr_assert_eq(net_rx_hdr_check(&h, tso4), -EINVAL);
	h.gso_type = VIRTIO_NET_HDR_GSO_UDP;
	cr_assert_eq(net_rx_hdr_check(&h, tso4), -EINVAL);
	cr_assert_eq(net_rx_hdr_check(&h, csum | BIT(VIRTIO_NET_F_GUEST_UFO)), 0);
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
	cr_assert_eq(net_rx_hdr_check(&h, tso4), -EINVAL);
	cr_assert_eq(net_rx_hdr_check(&h, tso4 | BIT(VIRTIO_NET_F_GUEST_ECN)), 0);
	h = mkhdr(0x40, 0, 0, 0, 0);
	cr_assert_eq(net_rx_hdr_check(&h, tso4), -EINVAL, "unknown flag");
	h = mkhdr(0, 9, 0, 0, 0);
	cr_assert_eq(net_rx_hdr_check(&h, tso4), -EINVAL, "unknown GSO type");
}

Test(net, rx_accounting)
{
	uint32_t take[8];
	uint32_t one[] = { 1526 };
	uint32_t pages[] = { 1024, 1024, 1024, 1024 };

	/* One buffer, without and with mergeable buffers. */
	cr_assert_eq(net_rx_account(12 + 60, one, 1, false, take), 1);
	cr_assert_eq(take[0], 72);
	cr_assert_eq(net_rx_account(1526, one, 1, false, take), 1);
	cr_assert_eq(take[0], 1526);
	cr_assert_eq(net_rx_account(12 + 60, one, 1, true, take), 1);
	cr_assert_eq(take[0], 72);
	/* Does not fit one buffer without MRG_RXBUF, whatever else is available. */
	cr_assert_eq(net_rx_account(1527, one, 1, false, take), NET_RX_NO_FIT);
	cr_assert_eq(net_rx_account(2000, pages, 4, false, take), NET_RX_NO_FIT);
	/* With MRG_RXBUF over several buffers: each filled before the next. */
	memset(take, 0xee, sizeof(take));
	cr_assert_eq(net_rx_account(3000, pages, 4, true, take), 3);
	cr_assert_eq(take[0], 1024);
	cr_assert_eq(take[1], 1024);
	cr_assert_eq(take[2], 952);
	cr_assert_eq(take[3], 0xeeeeeeee, "chain 3 untouched");
	cr_assert_eq(net_rx_account(4096, pages, 4, true, take), 4);
	/* Not enough yet: all full, more needed. */
	cr_assert_eq(net_rx_account(5000, pages, 4, true, take), 0);
	cr_assert_eq(take[3], 1024);
	cr_assert_eq(net_rx_account(100, pages, 0, true, take), 0);
	cr_assert_eq(net_rx_account(100, pages, 0, false, take), 0);
	/* Zero-length and tiny buffers: no room for the header. */
	uint32_t zero[] = { 0, 2048 };
	uint32_t tiny[] = { 11, 2048 };
	cr_assert_eq(net_rx_account(100, zero, 2, true, take), NET_RX_BAD_BUF);
	cr_assert_eq(net_rx_account(100, tiny, 2, false, take), NET_RX_BAD_BUF);
	/* A later zero-length chain (mergeable) is taken, with nothing in it. */
	uint32_t gap[] = { 1024, 0, 1024 };
	cr_assert_eq(net_rx_account(1500, gap, 3, true, take), 3);
	cr_assert_eq(take[1], 0);
	cr_assert_eq(take[2], 476);
	/* Frames that can never be delivered. */
	cr_assert_eq(net_rx_account(11, pages, 4, true, take), NET_RX_NO_FIT);
	cr_assert_eq(net_rx_account(0, pages, 4, true, take), NET_RX_NO_FIT);
	cr_assert_eq(net_rx_account(12 + NET_MAX_FRAME + 1, pages, 4, true, take), NET_RX_NO_FIT);
	/* Header only: an empty frame. */
	cr_assert_eq(net_rx_account(12, one, 1, false, take), 1);
	cr_assert_eq(take[0], 12);
}

/* ---- the device over a socketpair, rings in a fake guest RAM, a real I/O loop ---- */

#define RAM_SIZE (4u << 20)
#define QSIZE 256
#define RING_GPA(q, part) (0x4000u * (q) + 0x1000u * (part)) /* part 0 desc, 1 avail, 2 used */
#define RXBUF_GPA 0x100000u
#define TXBUF_GPA 0x200000u

struct rig {
	uint8_t *ram;
	struct guest_mem mem;
	struct io_loop *loop;
	struct net *net;
	struct virtio_dev *dev;
	int sv[2];                      /* sv[0]: the device's back end, sv[1]: the "host" */
	atomic_int notified[2];
	atomic_int broken;
	uint16_t avail[2];
	uint16_t next_desc[2];
	uint64_t rx_next, tx_next;      /* bump allocators in guest RAM */
	int offload_calls;
	unsigned int offload_flags;
};

static void t_notify(struct virtio_dev *dev, uint16_t q)
{
	struct rig *r = dev->transport;
	if (q < 2)
		atomic_fetch_add(&r->notified[q], 1);
}

static void t_needs_reset(struct virtio_dev *dev, const char *why)
{
	struct rig *r = dev->transport;
	(void)why;
	atomic_fetch_add(&r->broken, 1);
}

static int t_set_offload(void *ctx, unsigned int flags)
{
	struct rig *r = ctx;
	r->offload_calls++;
	r->offload_flags = flags;
	return 0;
}

static void init_queues(struct rig *r)
{
	for (int q = 0; q < 2; q++) {
		struct virtq *vq = &r->dev->vq[q];
		*vq = (struct virtq){ .mem = &r->mem, .size = QSIZE, .ready = true, .desc = RING_GPA(q, 0),
				      .avail = RING_GPA(q, 1), .used = RING_GPA(q, 2) };
		cr_assert_eq(virtq_validate(vq), 0);
		memset(r->ram + RING_GPA(q, 0), 0, 0x3000);
		r->avail[q] = 0;
		r->next_desc[q] = 0;
	}
}

static void activate(struct rig *r, uint64_t features)
{
	r->dev->driver_features = features | BIT(VIRTIO_F_VERSION_1);
	cr_assert_eq(r->dev->ops->activate(r->dev), 0);
}

static bool rig_setup(struct rig *r, enum io_engine e, unsigned int offloads, uint64_t features)
{
	memset(r, 0, sizeof(*r));
	signal(SIGPIPE, SIG_IGN);
	r->ram = aligned_alloc(4096, RAM_SIZE);
	memset(r->ram, 0, RAM_SIZE);
	r->mem.nr = 1;
	r->mem.region[0] = (struct guest_region){ .gpa = 0, .size = RAM_SIZE, .host = r->ram };
	r->rx_next = RXBUF_GPA;
	r->tx_next = TXBUF_GPA;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, r->sv), 0);
	if (io_loop_create(&r->loop, e) < 0)
		return false;
	struct net_backend be = { .fd = r->sv[0], .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 },
				  .offloads = offloads, .set_offload = t_set_offload, .ctx = r, .name = "sp0" };
	cr_assert_eq(net_create(&r->net, &be, r->loop), 0, "%s", err_msg());
	r->dev = net_virtio_dev(r->net);
	cr_assert_eq(r->dev->ops->num_queues, 2);
	r->dev->transport = r;
	r->dev->notify_used = t_notify;
	r->dev->needs_reset = t_needs_reset;
	init_queues(r);
	cr_assert_eq(io_loop_start(r->loop), 0, "%s", err_msg());
	activate(r, features);
	return true;
}

static void rig_teardown(struct rig *r)
{
	io_loop_destroy(r->loop);
	net_destroy(r->net);
	close(r->sv[0]);
	if (r->sv[1] >= 0)
		close(r->sv[1]);
	free(r->ram);
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

/* Put a chain of n descriptors on queue q and publish it. Returns its head. */
static uint16_t add_chain(struct rig *r, int q, const struct seg *s, int n)
{
	uint16_t head = r->next_desc[q];

	for (int i = 0; i < n; i++) {
		uint16_t d = (uint16_t)((head + i) % QSIZE);
		struct virtq_desc desc = {
			.addr = s[i].gpa, .len = s[i].len,
			.flags = (uint16_t)((i + 1 < n ? VIRTQ_DESC_F_NEXT : 0) | (s[i].writable ? VIRTQ_DESC_F_WRITE : 0)),
			.next = (uint16_t)((d + 1) % QSIZE),
		};
		memcpy(r->ram + RING_GPA(q, 0) + 16 * d, &desc, sizeof(desc));
	}
	r->next_desc[q] = (uint16_t)((head + n) % QSIZE);
	memcpy(r->ram + RING_GPA(q, 1) + 4 + 2 * (r->avail[q] % QSIZE), &head, 2);
	r->avail[q]++;
	__atomic_store_n((uint16_t *)(void *)(r->ram + RING_GPA(q, 1) + 2), r->avail[q], __ATOMIC_RELEASE);
	return head;
}

/* An RX buffer of len bytes (one writable descriptor). Returns its guest address. */
static uint64_t rx_post(struct rig *r, uint32_t len)
{
	struct seg s = { .gpa = r->rx_next, .len = len, .writable = true };

	r->rx_next += (len + 63) & ~63u;
	cr_assert_lt(r->rx_next, TXBUF_GPA);
	add_chain(r, 0, &s, 1);
	return s.gpa;
}

/* Copy bytes into the TX area of guest RAM. */
static uint64_t tx_put(struct rig *r, const void *p, uint32_t len)
{
	uint64_t gpa = r->tx_next;

	memcpy(r->ram + gpa, p, len);
	r->tx_next += (len + 63) & ~63u;
	cr_assert_lt(r->tx_next, RAM_SIZE);
	return gpa;
}

/* A TX chain: the header in its own descriptor, the frame split in two. */
static void tx_frame(struct rig *r, const struct virtio_net_hdr_v1 *h, const uint8_t *frame, uint32_t len)
{
	struct seg s[3] = {
		{ .gpa = tx_put(r, h, sizeof(*h)), .len = sizeof(*h) },
		{ .gpa = tx_put(r, frame, len / 3), .len = len / 3 },
		{ .gpa = tx_put(r, frame + len / 3, len - len / 3), .len = len - len / 3 },
	};
	add_chain(r, 1, s, len ? 3 : 1);
}

struct kick {
	struct rig *r;
	uint16_t q;
};

static void kick_fn(void *arg)
{
	struct kick *k = arg;
	k->r->dev->ops->queue_notify(k->r->dev, k->q);
}

static void kick(struct rig *r, uint16_t q)
{
	struct kick k = { r, q };
	io_loop_call(r->loop, kick_fn, &k);
}

static uint16_t used_idx(struct rig *r, int q)
{
	return __atomic_load_n((uint16_t *)(void *)(r->ram + RING_GPA(q, 2) + 2), __ATOMIC_ACQUIRE);
}

static void used_elem(struct rig *r, int q, uint16_t i, uint32_t *id, uint32_t *len)
{
	uint8_t *e = r->ram + RING_GPA(q, 2) + 4 + 8 * (i % QSIZE);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

static void wait_used(struct rig *r, int q, uint16_t want)
{
	for (int i = 0; i < 5000 && used_idx(r, q) != want; i++)
		usleep(1000);
	cr_assert_eq(used_idx(r, q), want, "queue %d: used idx %u, want %u", q, used_idx(r, q), want);
}

static void noop(void *arg)
{
	(void)arg;
}

/* Let the I/O thread go round a few times (for "nothing happens" checks). */
static void settle(struct rig *r)
{
	for (int i = 0; i < 3; i++) {
		usleep(10000);
		io_loop_call(r->loop, noop, NULL);
	}
}

/* Receive one frame on the host side, waiting up to 5 s. Returns its length. */
static ssize_t host_recv(struct rig *r, void *buf, size_t len)
{
	struct pollfd p = { .fd = r->sv[1], .events = POLLIN };

	cr_assert_eq(poll(&p, 1, 5000), 1, "no frame from the guest within 5 s");
	return recv(r->sv[1], buf, len, MSG_DONTWAIT);
}

static void host_send(struct rig *r, const struct virtio_net_hdr_v1 *h, const uint8_t *frame, size_t len)
{
	static uint8_t buf[NET_HDR_LEN + NET_MAX_FRAME];

	memcpy(buf, h, NET_HDR_LEN);
	memcpy(buf + NET_HDR_LEN, frame, len);
	cr_assert_eq(send(r->sv[1], buf, NET_HDR_LEN + len, MSG_DONTWAIT), (ssize_t)(NET_HDR_LEN + len));
}

static void pattern(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

static struct net_stats stats(struct rig *r)
{
	struct net_stats s;
	net_get_stats(r->net, &s);
	return s;
}

static const uint64_t BASIC = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS);

Test(net_device, config_and_activation)
{
	struct rig r;
	uint8_t cfg[32];

	rig_setup(&r, IO_ENGINE_SYNC, TUN_F_CSUM | TUN_F_TSO4,
		  BASIC | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4));
	cr_assert_eq(r.dev->ops->device_id, VIRTIO_ID_NET);
	cr_assert_eq(r.dev->ops->features(r.dev), net_features(TUN_F_CSUM | TUN_F_TSO4));
	cr_assert_eq(r.offload_calls, 1);
	cr_assert_eq(r.offload_flags, TUN_F_CSUM | TUN_F_TSO4, "the host may send what was negotiated");
	r.dev->ops->config_read(r.dev, 0, cfg, 6);
	cr_assert_arr_eq(cfg, ((uint8_t[]){ 0x52, 0x54, 0, 0x12, 0x34, 0x56 }), 6);
	r.dev->ops->config_read(r.dev, 6, cfg, 2);
	cr_assert_eq(cfg[0] | cfg[1] << 8, VIRTIO_NET_S_LINK_UP);
	r.dev->ops->config_read(r.dev, 8, cfg, 4);
	cr_assert_eq(cfg[0] | cfg[1] | cfg[2] | cfg[3], 0);
	memset(cfg, 0xaa, sizeof(cfg));
	r.dev->ops->config_read(r.dev, 22, cfg, 4); /* crosses the end: zeroes */
	cr_assert_eq(cfg[0] | cfg[3], 0);
	r.dev->ops->config_read(r.dev, 1000, cfg, 4);
	cr_assert_eq(cfg[0], 0);
	/* Read-only: a write changes nothing. */
	uint8_t mac[6] = { 1, 2, 3, 4, 5, 6 };
	r.dev->ops->config_write(r.dev, 0, mac, 6);
	r.dev->ops->config_read(r.dev, 0, cfg, 1);
	cr_assert_eq(cfg[0], 0x52);

	/* Reset, then a driver without receive offloads: the host is told to send none. */
	r.dev->ops->reset(r.dev);
	init_queues(&r);
	activate(&r, BASIC);
	cr_assert_eq(r.offload_calls, 2);
	cr_assert_eq(r.offload_flags, 0);
	rig_teardown(&r);
}

static void test_tx(enum io_engine e)
{
	struct rig r;
	uint8_t frame[1000], got[2000];
	struct virtio_net_hdr_v1 h = mkhdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16);

	if (!rig_setup(&r, e, 0, BASIC | BIT(VIRTIO_NET_F_CSUM)))
		cr_skip_test("io_uring unavailable here");
	pattern(frame, sizeof(frame), 1);
	tx_frame(&r, &h, frame, sizeof(frame));
	pattern(frame, 60, 2);
	struct virtio_net_hdr_v1 plain = mkhdr(0, 0, 0, 0, 0);
	tx_frame(&r, &plain, frame, 60);
	kick(&r, 1);
	wait_used(&r, 1, 2);

	cr_assert_eq(host_recv(&r, got, sizeof(got)), 12 + 1000);
	cr_assert_eq(memcmp(got, &h, 12), 0, "the header as the guest wrote it");
	pattern(frame, sizeof(frame), 1);
	cr_assert_eq(memcmp(got + 12, frame, 1000), 0);
	cr_assert_eq(host_recv(&r, got, sizeof(got)), 12 + 60);
	pattern(frame, 60, 2);
	cr_assert_eq(memcmp(got + 12, frame, 60), 0);

	uint32_t id, len;
	used_elem(&r, 1, 0, &id, &len);
	cr_assert_eq(id, 0);
	cr_assert_eq(len, 0, "TX: the device writes nothing");
	used_elem(&r, 1, 1, &id, &len);
	cr_assert_eq(id, 3);
	cr_assert_gt(atomic_load(&r.notified[1]), 0);
	struct net_stats s = stats(&r);
	cr_assert_eq(s.tx_frames, 2);
	cr_assert_eq(s.tx_bytes, 1060);
	cr_assert_eq(s.tx_dropped, 0);
	rig_teardown(&r);
}

Test(net_device_sync, tx) { test_tx(IO_ENGINE_SYNC); }
Test(net_device_uring, tx) { test_tx(IO_ENGINE_URING); }

static void test_rx_one_buffer(enum io_engine e)
{
	struct rig r;
	uint8_t frame[1514];
	struct virtio_net_hdr_v1 h = mkhdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0);

	if (!rig_setup(&r, e, 0, BASIC))
		cr_skip_test("io_uring unavailable here");
	uint64_t b0 = rx_post(&r, 1526);
	uint64_t b1 = rx_post(&r, 1526);
	memset(r.ram + b0, 0xee, 1526);
	kick(&r, 0);
	pattern(frame, sizeof(frame), 3);
	host_send(&r, &h, frame, sizeof(frame));
	host_send(&r, &h, frame, 100);
	wait_used(&r, 0, 2);

	struct virtio_net_hdr_v1 got;
	memcpy(&got, r.ram + b0, 12);
	cr_assert_eq(le16toh(got.num_buffers), 1);
	cr_assert_eq(got.flags, 0, "DATA_VALID cleared: the driver has no GUEST_CSUM");
	cr_assert_eq(memcmp(r.ram + b0 + 12, frame, sizeof(frame)), 0);
	cr_assert_eq(memcmp(r.ram + b1 + 12, frame, 100), 0);
	uint32_t id, len;
	used_elem(&r, 0, 0, &id, &len);
	cr_assert_eq(id, 0);
	cr_assert_eq(len, 12 + 1514);
	used_elem(&r, 0, 1, &id, &len);
	cr_assert_eq(id, 1);
	cr_assert_eq(len, 12 + 100);
	cr_assert_gt(atomic_load(&r.notified[0]), 0);
	struct net_stats s = stats(&r);
	cr_assert_eq(s.rx_frames, 2);
	cr_assert_eq(s.rx_bytes, 1614);
	cr_assert_eq(s.rx_dropped, 0);
	rig_teardown(&r);
}

Test(net_device_sync, rx_one_buffer) { test_rx_one_buffer(IO_ENGINE_SYNC); }
Test(net_device_uring, rx_one_buffer) { test_rx_one_buffer(IO_ENGINE_URING); }

/* A 64 KiB GSO frame over 1 KiB mergeable buffers, delivered once enough are posted. */
static void test_rx_mergeable(enum io_engine e)
{
	struct rig r;
	static uint8_t frame[NET_MAX_FRAME];
	const uint32_t flen = 5000, blen = 1024;
	uint64_t buf[8];
	struct virtio_net_hdr_v1 h = mkhdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16);

	if (!rig_setup(&r, e, TUN_F_CSUM | TUN_F_TSO4,
		       BASIC | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_GUEST_CSUM) |
			       BIT(VIRTIO_NET_F_GUEST_TSO4)))
		cr_skip_test("io_uring unavailable here");
	/* 5012 bytes need 5 buffers of 1 KiB; post 2 first. */
	for (int i = 0; i < 2; i++)
		buf[i] = rx_post(&r, blen);
	kick(&r, 0);
	pattern(frame, flen, 4);
	host_send(&r, &h, frame, flen);
	settle(&r);
	cr_assert_eq(used_idx(&r, 0), 0, "not enough buffers: nothing delivered yet");
	cr_assert_eq(stats(&r).rx_dropped, 0, "and nothing dropped");
	uint16_t flags;
	memcpy(&flags, r.ram + RING_GPA(0, 2), 2);
	cr_assert_eq(flags & VIRTQ_USED_F_NO_NOTIFY, 0, "RX kicks wanted while waiting");
	for (int i = 2; i < 6; i++)
		buf[i] = rx_post(&r, blen);
	kick(&r, 0);
	wait_used(&r, 0, 5);

	struct virtio_net_hdr_v1 got;
	memcpy(&got, r.ram + buf[0], 12);
	cr_assert_eq(le16toh(got.num_buffers), 5);
	cr_assert_eq(got.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	cr_assert_eq(got.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	/* The frame, reassembled from the five buffers in used-ring order. */
	static uint8_t back[NET_HDR_LEN + NET_MAX_FRAME];
	uint32_t off = 0;
	for (uint16_t i = 0; i < 5; i++) {
		uint32_t id, len;
		used_elem(&r, 0, i, &id, &len);
		cr_assert_eq(id, i);
		cr_assert_eq(len, i < 4 ? blen : 5012 - 4 * blen);
		memcpy(back + off, r.ram + buf[i], len);
		off += len;
	}
	cr_assert_eq(off, 12 + flen);
	cr_assert_eq(memcmp(back + 12, frame, flen), 0);
	cr_assert_eq(used_idx(&r, 0), 5, "the sixth buffer is left for the next frame");

	/* A full 64 KiB frame over 4 KiB buffers. */
	uint64_t big[17];
	for (int i = 0; i < 17; i++)
		big[i] = rx_post(&r, 4096);
	kick(&r, 0);
	pattern(frame, NET_MAX_FRAME, 9);
	host_send(&r, &h, frame, NET_MAX_FRAME);
	/* buf[5] (1 KiB) + 16 x 4 KiB = 66560 >= 65562: 17 buffers. */
	wait_used(&r, 0, 5 + 17);
	memcpy(&got, r.ram + buf[5], 12);
	cr_assert_eq(le16toh(got.num_buffers), 17);
	off = 0;
	for (uint16_t i = 5; i < 22; i++) {
		uint32_t id, len;
		used_elem(&r, 0, i, &id, &len);
		memcpy(back + off, r.ram + (i == 5 ? buf[5] : big[i - 6]), len);
		off += len;
	}
	cr_assert_eq(off, 12 + NET_MAX_FRAME);
	cr_assert_eq(memcmp(back + 12, frame, NET_MAX_FRAME), 0);
	cr_assert_eq(stats(&r).rx_frames, 2);
	rig_teardown(&r);
}

Test(net_device_sync, rx_mergeable) { test_rx_mergeable(IO_ENGINE_SYNC); }
Test(net_device_uring, rx_mergeable) { test_rx_mergeable(IO_ENGINE_URING); }

/* No RX buffers: one frame is held, the rest stays in the host's queue; nothing is lost. */
static void test_rx_backpressure(enum io_engine e)
{
	struct rig r;
	uint8_t frame[200], peek[300];
	struct virtio_net_hdr_v1 h = mkhdr(0, 0, 0, 0, 0);
	const int N = 20;

	if (!rig_setup(&r, e, 0, BASIC))
		cr_skip_test("io_uring unavailable here");
	for (int i = 0; i < N; i++) {
		pattern(frame, sizeof(frame), (uint8_t)i);
		frame[0] = (uint8_t)i;
		host_send(&r, &h, frame, sizeof(frame));
	}
	settle(&r);
	cr_assert_eq(used_idx(&r, 0), 0);
	/* Frame 0 is with the device; frame 1 is still queued on the socket. */
	cr_assert_eq(recv(r.sv[0], peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT), 212);
	cr_assert_eq(peek[12], 1, "the device read exactly one frame ahead");
	cr_assert_eq(stats(&r).rx_dropped, 0);

	/* Buffers for 5 frames: 5 delivered, then it waits again. */
	uint64_t b[N];
	for (int i = 0; i < 5; i++)
		b[i] = rx_post(&r, 1526);
	kick(&r, 0);
	wait_used(&r, 0, 5);
	settle(&r);
	cr_assert_eq(used_idx(&r, 0), 5);
	for (int i = 5; i < N; i++)
		b[i] = rx_post(&r, 1526);
	kick(&r, 0);
	wait_used(&r, 0, (uint16_t)N);
	for (int i = 0; i < N; i++) {
		uint32_t id, len;
		used_elem(&r, 0, (uint16_t)i, &id, &len);
		cr_assert_eq(len, 212);
		cr_assert_eq(r.ram[b[i] + 12], i, "frame %d in order", i);
	}
	struct net_stats s = stats(&r);
	cr_assert_eq(s.rx_frames, (uint64_t)N);
	cr_assert_eq(s.rx_dropped, 0);
	rig_teardown(&r);
}

Test(net_device_sync, rx_backpressure) { test_rx_backpressure(IO_ENGINE_SYNC); }
Test(net_device_uring, rx_backpressure) { test_rx_backpressure(IO_ENGINE_URING); }

/* Frames the driver cannot take are dropped and counted; the buffers stay for the next ones. */
Test(net_device, rx_drops)
{
	struct rig r;
	uint8_t frame[3000];

	rig_setup(&r, IO_ENGINE_SYNC, 0, BASIC);
	uint64_t b = rx_post(&r, 1526);
	kick(&r, 0);
	pattern(frame, sizeof(frame), 5);
	struct virtio_net_hdr_v1 gso = mkhdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16);
	struct virtio_net_hdr_v1 csum = mkhdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16);
	struct virtio_net_hdr_v1 plain = mkhdr(0, 0, 0, 0, 0);
	host_send(&r, &gso, frame, 2000);   /* GSO not negotiated */
	host_send(&r, &csum, frame, 100);   /* partial checksum not negotiated */
	host_send(&r, &plain, frame, 2000); /* larger than the only (non-mergeable) buffer */
	cr_assert_eq(send(r.sv[1], "short", 5, MSG_DONTWAIT), 5); /* no room for a header */
	host_send(&r, &plain, frame, 64);   /* fits */
	wait_used(&r, 0, 1);
	uint32_t id, len;
	used_elem(&r, 0, 0, &id, &len);
	cr_assert_eq(id, 0);
	cr_assert_eq(len, 12 + 64);
	cr_assert_eq(memcmp(r.ram + b + 12, frame, 64), 0);
	struct net_stats s = stats(&r);
	cr_assert_eq(s.rx_dropped, 4);
	cr_assert_eq(s.rx_frames, 1);

	/* A buffer too small for the header is handed back unused; the frame goes to the next. */
	struct seg tiny = { .gpa = RXBUF_GPA + 0x80000, .len = 8, .writable = true };
	add_chain(&r, 0, &tiny, 1);
	b = rx_post(&r, 1526);
	kick(&r, 0);
	host_send(&r, &plain, frame, 70);
	wait_used(&r, 0, 3);
	used_elem(&r, 0, 1, &id, &len);
	cr_assert_eq(len, 0);
	used_elem(&r, 0, 2, &id, &len);
	cr_assert_eq(len, 12 + 70);
	cr_assert_eq(memcmp(r.ram + b + 12, frame, 70), 0);
	cr_assert_eq(atomic_load(&r.broken), 0);
	rig_teardown(&r);
}

/* The host side is full: the chain waits for POLLOUT, order is kept, nothing is lost. */
static void test_tx_backpressure(enum io_engine e)
{
	struct rig r;
	static uint8_t frame[30000], got[40000];
	struct virtio_net_hdr_v1 h = mkhdr(0, 0, 0, 0, 0);
	const int N = 40;

	if (!rig_setup(&r, e, 0, BASIC))
		cr_skip_test("io_uring unavailable here");
	for (int i = 0; i < N; i++) {
		pattern(frame, sizeof(frame), (uint8_t)i);
		frame[0] = (uint8_t)i;
		tx_frame(&r, &h, frame, sizeof(frame));
	}
	kick(&r, 1);
	settle(&r);
	uint16_t first = used_idx(&r, 1);
	cr_assert_lt(first, N, "40 x 30 KB do not fit the socket buffer at once");
	cr_assert_eq(stats(&r).tx_dropped, 0);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(host_recv(&r, got, sizeof(got)), 12 + (ssize_t)sizeof(frame), "frame %d", i);
		cr_assert_eq(got[12], i, "frame %d in order", i);
		pattern(frame, sizeof(frame), (uint8_t)i);
		frame[0] = (uint8_t)i;
		cr_assert_eq(memcmp(got + 12, frame, sizeof(frame)), 0);
	}
	wait_used(&r, 1, (uint16_t)N);
	struct net_stats s = stats(&r);
	cr_assert_eq(s.tx_frames, (uint64_t)N);
	cr_assert_eq(s.tx_dropped, 0);
	rig_teardown(&r);
}

Test(net_device_sync, tx_backpressure) { test_tx_backpressure(IO_ENGINE_SYNC); }
Test(net_device_uring, tx_backpressure) { test_tx_backpressure(IO_ENGINE_URING); }

/* More chains than one round takes (NET_TX_BATCH): the rest goes on its own, without a kick. */
Test(net_device, tx_batches)
{
	struct rig r;
	uint8_t frame[64], got[128];
	struct virtio_net_hdr_v1 h = mkhdr(0, 0, 0, 0, 0);
	const int N = 3 * NET_TX_BATCH + 5;

	rig_setup(&r, IO_ENGINE_SYNC, 0, BASIC);
	cr_assert_leq(N, QSIZE);
	for (int i = 0; i < N; i++) {
		/* One descriptor per chain (header and frame together), so N chains fit the ring. */
		uint8_t one[12 + sizeof(frame)];
		memcpy(one, &h, 12);
		memset(one + 12, i, sizeof(frame));
		struct seg s = { .gpa = tx_put(&r, one, sizeof(one)), .len = sizeof(one) };
		add_chain(&r, 1, &s, 1);
	}
	kick(&r, 1);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(host_recv(&r, got, sizeof(got)), 12 + 64, "frame %d", i);
		cr_assert_eq(got[12], (uint8_t)i);
	}
	wait_used(&r, 1, (uint16_t)N);
	cr_assert_eq(stats(&r).tx_frames, (uint64_t)N);
	rig_teardown(&r);
}

/* Hostile transmit chains: dropped and counted (or NEEDS_RESET), never a crash or a stray byte. */
Test(net_device, tx_hostile_chains)
{
	struct rig r;
	uint8_t frame[100], got[200];
	struct virtio_net_hdr_v1 plain = mkhdr(0, 0, 0, 0, 0);
	struct virtio_net_hdr_v1 tso = mkhdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16);
	struct virtio_net_hdr_v1 csum_out = mkhdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 90, 16);

	rig_setup(&r, IO_ENGINE_SYNC, 0, BASIC | BIT(VIRTIO_NET_F_CSUM));
	memset(frame, 0x77, sizeof(frame));
	uint64_t hg = tx_put(&r, &plain, 12);
	uint64_t fg = tx_put(&r, frame, sizeof(frame));

	/* 1: too long (2 x 40000 bytes). */
	struct seg lng[2] = { { .gpa = hg, .len = 40000 }, { .gpa = hg, .len = 40000 } };
	add_chain(&r, 1, lng, 2);
	/* 2: a zero-length chain. */
	struct seg zero = { .gpa = hg, .len = 0 };
	add_chain(&r, 1, &zero, 1);
	/* 3: shorter than the header. */
	struct seg shrt = { .gpa = hg, .len = 11 };
	add_chain(&r, 1, &shrt, 1);
	/* 4: a device-writable descriptor after the frame. */
	struct seg wr[3] = { { .gpa = hg, .len = 12 }, { .gpa = fg, .len = 100 },
			     { .gpa = fg, .len = 10, .writable = true } };
	add_chain(&r, 1, wr, 3);
	/* 5: GSO that was not negotiated; 6: a checksum offset past the frame. */
	tx_frame(&r, &tso, frame, sizeof(frame));
	tx_frame(&r, &csum_out, frame, sizeof(frame));
	/* 7: a good one. */
	tx_frame(&r, &plain, frame, sizeof(frame));
	kick(&r, 1);
	wait_used(&r, 1, 7);
	cr_assert_eq(host_recv(&r, got, sizeof(got)), 112, "only the good frame reaches the host");
	cr_assert_eq(recv(r.sv[1], got, sizeof(got), MSG_DONTWAIT), -1);
	for (uint16_t i = 0; i < 7; i++) {
		uint32_t id, len;
		used_elem(&r, 1, i, &id, &len);
		cr_assert_eq(len, 0);
	}
	struct net_stats s = stats(&r);
	cr_assert_eq(s.tx_dropped, 6);
	cr_assert_eq(s.tx_frames, 1);
	cr_assert_eq(atomic_load(&r.broken), 0);

	/* A buffer outside guest RAM: the ring is malformed, the device asks for a reset. */
	struct seg out[2] = { { .gpa = hg, .len = 12 }, { .gpa = RAM_SIZE - 16, .len = 100 } };
	add_chain(&r, 1, out, 2);
	kick(&r, 1);
	cr_assert_eq(atomic_load(&r.broken), 1);
	/* Broken: further kicks are ignored. */
	tx_frame(&r, &plain, frame, sizeof(frame));
	kick(&r, 1);
	settle(&r);
	cr_assert_eq(used_idx(&r, 1), 7);
	cr_assert_eq(recv(r.sv[1], got, sizeof(got), MSG_DONTWAIT), -1);

	/* After a reset and a new activation the device works again. */
	r.dev->ops->reset(r.dev);
	init_queues(&r);
	activate(&r, BASIC);
	tx_frame(&r, &plain, frame, sizeof(frame));
	kick(&r, 1);
	wait_used(&r, 1, 1);
	cr_assert_eq(host_recv(&r, got, sizeof(got)), 112);
	rig_teardown(&r);
}

/* A malformed receive ring: NEEDS_RESET, and the device stops reading. */
Test(net_device, rx_malformed_ring)
{
	struct rig r;
	uint8_t frame[64];
	struct virtio_net_hdr_v1 plain = mkhdr(0, 0, 0, 0, 0);

	rig_setup(&r, IO_ENGINE_SYNC, 0, BASIC);
	uint16_t bad = 300; /* head index >= queue size */
	memcpy(r.ram + RING_GPA(0, 1) + 4, &bad, 2);
	__atomic_store_n((uint16_t *)(void *)(r.ram + RING_GPA(0, 1) + 2), 1, __ATOMIC_RELEASE);
	memset(frame, 1, sizeof(frame));
	host_send(&r, &plain, frame, sizeof(frame));
	host_send(&r, &plain, frame, sizeof(frame));
	for (int i = 0; i < 5000 && atomic_load(&r.broken) == 0; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&r.broken), 1);
	settle(&r);
	cr_assert_eq(used_idx(&r, 0), 0);
	uint8_t peek[100];
	cr_assert_eq(recv(r.sv[0], peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT), 76,
		     "the second frame stays with the host");
	rig_teardown(&r);
}

/* Reset forgets the pending frame; frames after the new activation are delivered. */
Test(net_device, reset_forgets_pending)
{
	struct rig r;
	uint8_t frame[64];
	struct virtio_net_hdr_v1 plain = mkhdr(0, 0, 0, 0, 0);

	rig_setup(&r, IO_ENGINE_SYNC, 0, BASIC);
	memset(frame, 1, sizeof(frame));
	host_send(&r, &plain, frame, sizeof(frame)); /* held: no buffers */
	settle(&r);
	r.dev->ops->reset(r.dev);
	/* Reset: nothing is read while the device is down. */
	memset(frame, 2, sizeof(frame));
	host_send(&r, &plain, frame, sizeof(frame));
	settle(&r);
	uint8_t peek[100];
	cr_assert_eq(recv(r.sv[0], peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT), 76);
	cr_assert_eq(peek[12], 2);

	init_queues(&r);
	activate(&r, BASIC);
	uint64_t b = rx_post(&r, 1526);
	kick(&r, 0);
	wait_used(&r, 0, 1);
	cr_assert_eq(r.ram[b + 12], 2, "frame 1 was forgotten with the reset");
	rig_teardown(&r);
}

/* The host side hangs up: the device stops reading (no spin), TX errors are counted. */
Test(net_device, host_hangup)
{
	struct rig r;
	uint8_t frame[64];
	struct virtio_net_hdr_v1 plain = mkhdr(0, 0, 0, 0, 0);

	rig_setup(&r, IO_ENGINE_SYNC, 0, BASIC);
	rx_post(&r, 1526);
	kick(&r, 0);
	close(r.sv[1]);
	r.sv[1] = -1;
	settle(&r);
	memset(frame, 3, sizeof(frame));
	tx_frame(&r, &plain, frame, sizeof(frame));
	kick(&r, 1);
	wait_used(&r, 1, 1);
	struct net_stats s = stats(&r);
	cr_assert_eq(s.tx_dropped, 1);
	cr_assert_eq(s.rx_frames, 0);
	cr_assert_eq(used_idx(&r, 0), 0);
	rig_teardown(&r);
}

/* ---- rate limits ---- */

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_limits(enum io_engine e)
{
	struct rig r;
	uint8_t frame[100], got[2000];
	struct virtio_net_hdr_v1 h = mkhdr(0, 0, 0, 0, 0);
	struct rl_config none = { 0 }, tx = { .ops = { .size = 2, .refill_ms = 200 } };

	if (!rig_setup(&r, e, 0, BASIC))
		cr_skip_test("io_uring unavailable here");
	/* TX: two frames at once (the full bucket), then one per 100 ms, in order. */
	cr_assert_eq(net_set_limits(r.net, &none, &tx), 0);
	for (int i = 0; i < 5; i++) {
		pattern(frame, sizeof(frame), (uint8_t)i);
		tx_frame(&r, &h, frame, sizeof(frame));
	}
	double t0 = mono_s();
	kick(&r, 1);
	settle(&r);
	cr_assert_eq(used_idx(&r, 1), 2, "the bucket's two frames, the rest wait in the ring");
	wait_used(&r, 1, 5);
	double took = mono_s() - t0;
	cr_assert_geq(took, 0.29, "three frames at 10 a second: %.3f s", took);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(host_recv(&r, got, sizeof(got)), 12 + 100);
		pattern(frame, sizeof(frame), (uint8_t)i);
		cr_assert_eq(memcmp(got + 12, frame, 100), 0, "frame %d in order", i);
	}
	struct rate_limiter rrx, rtx;
	net_get_limits(r.net, &rrx, &rtx);
	cr_assert_geq(rtx.throttled, 3);
	cr_assert_eq(rrx.throttled, 0);

	/* RX: 100 bytes a second, 100-byte frames: one at once, the next waits; lifting the limit delivers it. */
	struct rl_config rx = { .bytes = { .size = 100, .refill_ms = 1000 } };
	cr_assert_eq(net_set_limits(r.net, &rx, &none), 0);
	for (int i = 0; i < 3; i++)
		rx_post(&r, 2048);
	kick(&r, 0);
	pattern(frame, sizeof(frame), 7);
	host_send(&r, &h, frame, sizeof(frame));
	host_send(&r, &h, frame, sizeof(frame));
	wait_used(&r, 0, 1);
	settle(&r);
	cr_assert_eq(used_idx(&r, 0), 1, "the second frame waits for tokens");
	cr_assert_eq(net_set_limits(r.net, &none, &none), 0, "as PATCH does");
	wait_used(&r, 0, 2);
	net_get_limits(r.net, &rrx, &rtx);
	cr_assert_eq(rrx.bytes.cfg.size, 0);
	struct net_stats st;
	net_get_stats(r.net, &st);
	cr_assert_eq(st.rx_frames, 2);
	cr_assert_eq(st.rx_dropped, 0);
	cr_assert_eq(atomic_load(&r.broken), 0);
	rig_teardown(&r);
}

Test(net_limit, uring, .timeout = 30) { test_limits(IO_ENGINE_URING); }
Test(net_limit, sync, .timeout = 30) { test_limits(IO_ENGINE_SYNC); }

/* One timer serves both directions: a long TX wait must not delay a short RX wait set before it. */
static void test_limits_share_the_timer(enum io_engine e)
{
	struct rig r;
	uint8_t frame[100];
	struct virtio_net_hdr_v1 h = mkhdr(0, 0, 0, 0, 0);
	struct rl_config rx = { .ops = { .size = 1, .refill_ms = 1000 } };
	struct rl_config tx = { .ops = { .size = 1, .refill_ms = 3600000 } };

	if (!rig_setup(&r, e, 0, BASIC))
		cr_skip_test("io_uring unavailable here");
	cr_assert_eq(net_set_limits(r.net, &rx, &tx), 0);
	for (int i = 0; i < 2; i++)
		rx_post(&r, 2048);
	kick(&r, 0);
	pattern(frame, sizeof(frame), 3);
	host_send(&r, &h, frame, sizeof(frame));
	host_send(&r, &h, frame, sizeof(frame));
	wait_used(&r, 0, 1);
	/* RX now waits ~1 s; TX's second frame would wait an hour. */
	double t0 = mono_s();
	tx_frame(&r, &h, frame, sizeof(frame));
	tx_frame(&r, &h, frame, sizeof(frame));
	kick(&r, 1);
	wait_used(&r, 1, 1);
	wait_used(&r, 0, 2);
	cr_assert_lt(mono_s() - t0, 3.0, "the RX frame came after its own wait");
	settle(&r);
	cr_assert_eq(used_idx(&r, 1), 1, "the TX frame still waits");
	rig_teardown(&r);
}

Test(net_limit, shared_timer_uring, .timeout = 30) { test_limits_share_the_timer(IO_ENGINE_URING); }
Test(net_limit, shared_timer_sync, .timeout = 30) { test_limits_share_the_timer(IO_ENGINE_SYNC); }
