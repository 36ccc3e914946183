/* fuzz_net.c - libFuzzer harness: virtio-net vnet headers, RX buffer accounting, RX and TX over a socketpair on hostile rings. */
#include <errno.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "fake_ioloop.h"
#include "fuzz.h"

/*
 * Input:
 *   u8  offloads  TUN_F_* bits the host side accepts
 *   u64 features  what the driver accepts (masked with what the device offers, + VERSION_1)
 *   u8  flags     bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 set_offload() fails
 *   per queue (RX, TX): u8 qsize (1 << (qsize % 9)), u32 desc, u32 avail, u32 used
 *   u16 image_len, then that many bytes loaded at guest address 0
 *   then a script of operations (below).
 * Guest RAM is 0x00000..0x1ffff (two regions). The back end is an AF_UNIX
 * SOCK_SEQPACKET socketpair, as in tests/unit/net; the harness plays the host
 * on the other end, and the fake I/O loop reports the fd's readiness only
 * when the script says so.
 */

#define REGION_SIZE 0x10000ULL
#define MAX_OPS 256
#define BIG_FRAME (NET_HDR_LEN + NET_MAX_FRAME + 16)

enum op {
	OP_KICK,          /* u8 queue */
	OP_FD_READY,      /* the loop polls the tap fd for what the device armed */
	OP_HOST_SEND,     /* u16 len, bytes: one frame (vnet header included) from the host */
	OP_HOST_SEND_BIG, /* 12 header bytes, u32 len: a long frame of pattern bytes */
	OP_HOST_DRAIN,    /* the host reads every frame the guest sent */
	OP_HOST_CLOSE,    /* the host side hangs up */
	OP_GUEST_WRITE,   /* u32 gpa, u8 len, bytes */
	OP_GUEST_AVAIL,   /* u8 queue, u16 head */
	OP_RESET,         /* the driver resets the device */
	OP_ACTIVATE,      /* u64 features: DRIVER_OK again after a reset */
	OP_PURE,          /* the pure helpers on values from the input */
	OP_LIMIT,         /* 4 x (u8 size, u8 burst): rx bytes, rx frames, tx bytes, tx frames (PATCH /vm/nets/ID) */
	OP_TIMER,         /* the limiters' timer fires */
	OP_COUNT
};

struct rig {
	struct fz_ram ram;
	struct virtio_dev *dev;
	struct virtq cfg[2];
	unsigned int offloads;
	bool fail_offload;
	bool broken, active;
	int sv[2];
};

static uint8_t frame[BIG_FRAME];

static void t_notify(struct virtio_dev *dev, uint16_t q)
{
	FZ_CHECK(q < 2);
	(void)virtq_should_notify(&dev->vq[q]);
}

static void t_needs_reset(struct virtio_dev *dev, const char *why)
{
	struct rig *r = dev->transport;

	(void)why;
	r->broken = true;
}

static int t_set_offload(void *ctx, unsigned int tun)
{
	struct rig *r = ctx;

	/* Never more than the back end said it accepts. */
	FZ_CHECK((tun & ~r->offloads) == 0);
	return r->fail_offload ? -EINVAL : 0;
}

static int64_t no_requests(struct io_loop *loop, struct io_request *req)
{
	(void)loop, (void)req;
	FZ_CHECK(!"virtio-net submits no block requests");
	return -EINVAL;
}

static void setup_queues(struct rig *r)
{
	for (int i = 0; i < 2; i++) {
		struct virtq *q = &r->dev->vq[i];

		virtq_reset(q);
		*q = r->cfg[i];
		q->ready = virtq_validate(q) == 0;
	}
}

/* The transport accepts only offered features, and VERSION_1 always. */
static uint64_t negotiate(struct rig *r, uint64_t want)
{
	uint64_t offered = net_features(r->offloads) | (1ULL << VIRTIO_F_VERSION_1) |
			   (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

	return (want & offered) | (1ULL << VIRTIO_F_VERSION_1);
}

static void activate(struct rig *r, uint64_t want)
{
	r->dev->driver_features = negotiate(r, want);
	for (int i = 0; i < 2; i++) {
		r->dev->vq[i].event_idx = virtio_has_feature(r->dev, VIRTIO_RING_F_EVENT_IDX);
		r->dev->vq[i].indirect = virtio_has_feature(r->dev, VIRTIO_RING_F_INDIRECT_DESC);
	}
	if (r->dev->ops->activate(r->dev) == 0)
		r->active = true;
	else
		r->broken = true;   /* mmio: activate failed -> DEVICE_NEEDS_RESET */
}

static void host_drain(struct rig *r)
{
	if (r->sv[1] < 0)
		return;
	for (;;) {
		ssize_t n = recv(r->sv[1], frame, sizeof(frame), MSG_DONTWAIT);

		if (n < 0)
			break;
		/* What the guest sends: a checked header, then at most a maximum frame. */
		FZ_CHECK(n >= NET_HDR_LEN && n <= NET_HDR_LEN + NET_MAX_FRAME);
	}
}

static void pure_checks(struct fz *f)
{
	struct virtio_net_hdr_v1 h;
	uint32_t wlen[8], take[8];
	int n = fz_u8(f) % 9;
	bool mrg = fz_u8(f) & 1;
	uint64_t features = fz_u64(f);
	uint64_t frame_len = fz_u32(f) % (BIG_FRAME + 1);

	fz_bytes(f, &h, sizeof(h));
	(void)net_tx_hdr_check(&h, frame_len, features);
	if (net_rx_hdr_check(&h, features) == 0 && !(features & (1ULL << VIRTIO_NET_F_GUEST_CSUM)))
		FZ_CHECK(h.flags == 0);
	(void)net_tun_offloads(features);
	for (int i = 0; i < n; i++)
		wlen[i] = fz_u8(f) & 1 ? fz_u16(f) : fz_u32(f);
	int k = net_rx_account(frame_len, wlen, n, mrg, take);
	FZ_CHECK(k >= NET_RX_BAD_BUF && k <= n);
	if (k > 0) {
		uint64_t sum = 0;

		FZ_CHECK(mrg || k == 1);
		for (int i = 0; i < k; i++) {
			FZ_CHECK(take[i] <= wlen[i]);
			sum += take[i];
		}
		FZ_CHECK(sum == frame_len);
	}
}

/*
 * Rate limits from the input: tiny buckets that never refill within a run (one-hour refill), so what
 * passes depends on the input alone; size 0 lifts a limit.
 */
static struct tb_config fz_limit(struct fz *f)
{
	uint8_t size = fz_u8(f), burst = fz_u8(f);

	if (size % 4 == 0)
		return (struct tb_config){ 0 };
	return (struct tb_config){ .size = size, .refill_ms = TB_MAX_REFILL_MS, .burst = burst };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const gpa_t starts[2] = { 0, REGION_SIZE };
	static const uint64_t sizes[2] = { REGION_SIZE, REGION_SIZE };
	struct fz f = { data, size };
	struct rig r;
	struct net *n;

	fz_quiet();
	signal(SIGPIPE, SIG_IGN);   /* a write after the host hung up */
	memset(&r, 0, sizeof(r));
	fz_ram_init(&r.ram, starts, sizes, 2);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, r.sv) < 0)
		abort();

	r.offloads = fz_u8(&f) & (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO);
	uint64_t want = fz_u64(&f);
	uint8_t flags = fz_u8(&f);
	r.fail_offload = flags & 4;
	for (int i = 0; i < 2; i++) {
		r.cfg[i].mem = &r.ram.mem;
		r.cfg[i].size = (uint16_t)(1u << (fz_u8(&f) % 9));
		r.cfg[i].desc = fz_u32(&f);
		r.cfg[i].avail = fz_u32(&f);
		r.cfg[i].used = fz_u32(&f);
	}
	(void)flags;
	fz_ram_load_image(&r.ram, &f);

	struct io_loop *loop = fake_loop_new(no_requests, &r);
	struct net_backend be = { .fd = r.sv[0], .mac = { 0x02, 0, 0, 0, 0, 1 }, .offloads = r.offloads,
				  .set_offload = t_set_offload, .ctx = &r, .name = "fuzz0" };
	FZ_CHECK(net_create(&n, &be, loop) == 0);
	r.dev = net_virtio_dev(n);
	r.dev->transport = &r;
	r.dev->notify_used = t_notify;
	r.dev->needs_reset = t_needs_reset;
	setup_queues(&r);
	/* The ring features follow the flags byte; the rest of the negotiation follows `want`. */
	want &= ~((1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	want |= (flags & 1 ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0) |
		(flags & 2 ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0);
	activate(&r, want);

	for (int ops = 0; ops < MAX_OPS && !fz_empty(&f); ops++) {
		switch (fz_u8(&f) % OP_COUNT) {
		case OP_KICK: {
			uint8_t q = fz_u8(&f) % 3;

			if (r.active && !r.broken)
				r.dev->ops->queue_notify(r.dev, q);
			break;
		}
		case OP_FD_READY:
			fake_loop_fd_ready(loop);
			break;
		case OP_HOST_SEND: {
			uint16_t len = fz_u16(&f);
			size_t got = fz_bytes(&f, frame, len);

			if (r.sv[1] >= 0)
				(void)send(r.sv[1], frame, got, MSG_DONTWAIT);
			break;
		}
		case OP_HOST_SEND_BIG: {
			fz_bytes(&f, frame, NET_HDR_LEN);
			uint32_t len = fz_u32(&f) % (BIG_FRAME - NET_HDR_LEN);

			for (uint32_t i = 0; i < len; i++)
				frame[NET_HDR_LEN + i] = (uint8_t)(i * 7);
			if (r.sv[1] >= 0)
				(void)send(r.sv[1], frame, NET_HDR_LEN + len, MSG_DONTWAIT);
			break;
		}
		case OP_HOST_DRAIN:
			host_drain(&r);
			break;
		case OP_HOST_CLOSE:
			if (r.sv[1] >= 0)
				close(r.sv[1]);
			r.sv[1] = -1;
			break;
		case OP_GUEST_WRITE: {
			uint8_t buf[255];
			uint32_t gpa = fz_u32(&f);
			uint8_t len = fz_u8(&f);

			fz_ram_load(&r.ram, gpa, buf, fz_bytes(&f, buf, len));
			break;
		}
		case OP_GUEST_AVAIL: {
			uint8_t q = fz_u8(&f) & 1;

			fz_publish(&r.dev->vq[q], fz_u16(&f));
			break;
		}
		case OP_RESET:
			r.dev->ops->reset(r.dev);
			setup_queues(&r);
			r.broken = false;
			r.active = false;
			break;
		case OP_ACTIVATE: {
			uint64_t w = fz_u64(&f);

			if (!r.active && !r.broken)
				activate(&r, w);
			break;
		}
		case OP_PURE:
			pure_checks(&f);
			break;
		case OP_LIMIT: {
			struct rl_config rx = { .bytes = fz_limit(&f), .ops = fz_limit(&f) };
			struct rl_config tx = { .bytes = fz_limit(&f), .ops = fz_limit(&f) };

			FZ_CHECK(net_set_limits(n, &rx, &tx) == 0);
			break;
		}
		case OP_TIMER:
			fake_loop_fire_timer(loop);
			break;
		}
	}
	r.dev->ops->reset(r.dev);
	host_drain(&r);
	net_destroy(n);
	fake_loop_free(loop);
	close(r.sv[0]);
	if (r.sv[1] >= 0)
		close(r.sv[1]);
	fz_ram_free(&r.ram);
	return 0;
}
