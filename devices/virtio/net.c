/* net.c - virtio-net over a tap-like fd: checked vnet headers, mergeable RX buffers, zero-copy TX, back-pressure both ways. */
#include "devices/virtio/net.h"
#include "base/err.h"
#include "base/log.h"

#include <endian.h>
#include <errno.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BIT(b) (1ULL << (b))

/* ---- pure parts: features, header checks, RX accounting ---- */

uint64_t net_features(unsigned int offloads)
{
	uint64_t f = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_MRG_RXBUF) |
		     BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) |
		     BIT(VIRTIO_NET_F_HOST_ECN) | BIT(VIRTIO_NET_F_HOST_UFO);

	/* Every receive offload needs partial checksums first (virtio 1.2, 5.1.3.1). */
	if (!(offloads & TUN_F_CSUM))
		return f;
	f |= BIT(VIRTIO_NET_F_GUEST_CSUM);
	if (offloads & TUN_F_TSO4)
		f |= BIT(VIRTIO_NET_F_GUEST_TSO4);
	if (offloads & TUN_F_TSO6)
		f |= BIT(VIRTIO_NET_F_GUEST_TSO6);
	if (offloads & TUN_F_UFO)
		f |= BIT(VIRTIO_NET_F_GUEST_UFO);
	if ((offloads & TUN_F_TSO_ECN) && (offloads & (TUN_F_TSO4 | TUN_F_TSO6)))
		f |= BIT(VIRTIO_NET_F_GUEST_ECN);
	return f;
}

unsigned int net_tun_offloads(uint64_t features)
{
	unsigned int t;

	if (!(features & BIT(VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	t = TUN_F_CSUM;
	if (features & BIT(VIRTIO_NET_F_GUEST_TSO4))
		t |= TUN_F_TSO4;
	if (features & BIT(VIRTIO_NET_F_GUEST_TSO6))
		t |= TUN_F_TSO6;
	if (features & BIT(VIRTIO_NET_F_GUEST_UFO))
		t |= TUN_F_UFO;
	if ((features & BIT(VIRTIO_NET_F_GUEST_ECN)) && (t & (TUN_F_TSO4 | TUN_F_TSO6)))
		t |= TUN_F_TSO_ECN;
	return t;
}

/*
 * The feature a GSO type needs, one table for both directions: tcp4, tcp6,
 * udp and ecn are the HOST_* (TX) or GUEST_* (RX) bits. -1: unknown type or
 * ECN where it makes no sense.
 */
static int gso_check(uint8_t gso_type, uint64_t f, int tcp4, int tcp6, int udp, int ecn)
{
	bool has_ecn = gso_type & VIRTIO_NET_HDR_GSO_ECN;
	int need;

	switch (gso_type & ~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return has_ecn ? -1 : 0;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		need = tcp4;
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		need = tcp6;
		break;
	case VIRTIO_NET_HDR_GSO_UDP:
		if (has_ecn)
			return -1;
		need = udp;
		break;
	default:
		return -1;
	}
	if (!(f & BIT(need)) || (has_ecn && !(f & BIT(ecn))))
		return -1;
	return 1;
}

int net_tx_hdr_check(const struct virtio_net_hdr_v1 *h, uint64_t frame_len, uint64_t features)
{
	int gso;

	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return -EINVAL;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint32_t end = (uint32_t)le16toh(h->csum_start) + le16toh(h->csum_offset) + 2;

		if (!(features & BIT(VIRTIO_NET_F_CSUM)) || end > frame_len)
			return -EINVAL;
	}
	gso = gso_check(h->gso_type, features, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
			VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_HOST_ECN);
	if (gso < 0 || (gso > 0 && le16toh(h->gso_size) == 0))
		return -EINVAL;
	return 0;
}

int net_rx_hdr_check(struct virtio_net_hdr_v1 *h, uint64_t features)
{
	if (h->flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		return -EINVAL;
	if (!(features & BIT(VIRTIO_NET_F_GUEST_CSUM))) {
		if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return -EINVAL;
		h->flags = 0; /* the driver must see flags 0 (virtio 1.2, 5.1.6.4.1) */
	}
	if (gso_check(h->gso_type, features, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
		      VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_GUEST_ECN) < 0)
		return -EINVAL;
	return 0;
}

int net_rx_account(uint64_t frame_len, const uint32_t *wlen, int n, bool mergeable, uint32_t *take)
{
	uint64_t left = frame_len;

	if (frame_len < NET_HDR_LEN || frame_len > NET_HDR_LEN + NET_MAX_FRAME)
		return NET_RX_NO_FIT;
	if (n <= 0)
		return 0;
	/* num_buffers lives in the header: it must sit whole in the first chain. */
	if (wlen[0] < NET_HDR_LEN)
		return NET_RX_BAD_BUF;
	if (!mergeable) {
		if (frame_len > wlen[0])
			return NET_RX_NO_FIT;
		take[0] = (uint32_t)frame_len;
		return 1;
	}
	for (int i = 0; i < n; i++) {
		take[i] = left < wlen[i] ? (uint32_t)left : wlen[i];
		left -= take[i];
		if (left == 0)
			return i + 1;
	}
	return 0;
}

/* ---- the device ---- */

struct net {
	struct virtio_dev dev;
	struct net_backend be;
	char name[48];                  /* for logs */
	struct io_loop *loop;
	int watch;
	int timer;                      /* the rate limiters' wait (io_loop_timer), shared by RX and TX */
	uint64_t timer_due;             /* I/O thread: when it fires (CLOCK_MONOTONIC ns); 0: not set */

	/*
	 * I/O thread only. activate and reset reach it through io_loop_call(),
	 * which runs on the caller's thread only while no I/O thread runs.
	 */
	bool active;                    /* DRIVER_OK, not reset, rings not broken */
	bool frozen_active;             /* active when freeze() stopped it */
	uint64_t features;              /* negotiated, copied at activation */
	bool rx_wait;                   /* a frame waits for guest buffers: no POLLIN, RX kicks on */
	bool rx_dead;                   /* the host side hung up or failed: no more reads */
	bool tx_have;                   /* tx_chain was popped and is not answered yet */
	bool tx_blocked;                /* the host said EAGAIN: tx_chain waits for POLLOUT */
	bool tx_more;                   /* a TX round hit its cap: go on at the next POLLOUT */
	bool rx_throttled;              /* the pending frame waits for the RX limiter's timer: no POLLIN */
	bool rx_paid;                   /* the pending frame's tokens are taken */
	bool tx_throttled;              /* the next TX chain (left in the ring) waits for the timer */
	uint64_t tx_round_frames, tx_round_bytes; /* sent in this TX round, added to stats at its end */
	uint32_t rx_len;                /* bytes in rx_buf (header + frame); 0: none pending */
	int rx_n;                       /* chains held for the pending frame: rx_first, then rx_cur ones */
	uint16_t rx_head[VIRTQ_MAX_SIZE];
	uint32_t rx_wlen[VIRTQ_MAX_SIZE];
	uint32_t rx_take[VIRTQ_MAX_SIZE];
	unsigned long rx_bad, tx_bad, rx_err, tx_err; /* for "log once, then at debug level" */
	struct virtq_chain rx_first;    /* chain 0 of the pending frame, written last (num_buffers) */
	struct virtq_chain rx_cur;      /* chains 1.. are filled as soon as they are popped */
	struct virtq_chain tx_chain;
	struct iovec tx_iov[VIRTQ_MAX_SIZE + 1];
	uint8_t rx_buf[NET_HDR_LEN + NET_MAX_FRAME];

	pthread_mutex_t stats_lock;     /* stats, and the limiters (changed on the I/O thread) */
	struct net_stats stats;
	struct rate_limiter rx_rl, tx_rl; /* frame bytes (without the vnet header) and frames */
};

#define STAT_ADD(n, field, v)                                                                      \
	do {                                                                                       \
		pthread_mutex_lock(&(n)->stats_lock);                                              \
		(n)->stats.field += (v);                                                           \
		pthread_mutex_unlock(&(n)->stats_lock);                                            \
	} while (0)

/* A warning the first time, debug lines after that: a guest cannot flood the log. */
#define LOG_ONCE(n, counter, ...)                                                                  \
	do {                                                                                       \
		if ((n)->counter++ == 0)                                                           \
			log_warn(__VA_ARGS__);                                                     \
		else                                                                               \
			log_debug(__VA_ARGS__);                                                    \
	} while (0)

static bool has(const struct net *n, unsigned int bit)
{
	return (n->features >> bit) & 1;
}

/* (io) Wait for what the device needs now: POLLIN unless RX waits, POLLOUT while TX does. */
static void update_watch(struct net *n)
{
	short want = 0;

	if (n->active) {
		if (!n->rx_wait && !n->rx_dead && !n->rx_throttled)
			want |= POLLIN;
		if (n->tx_blocked || n->tx_more)
			want |= POLLOUT;
	}
	/* The loop disarms the watch before each callback: always say it again (cheap). */
	io_loop_arm(n->loop, n->watch, want);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * (io) May a frame of `bytes` go now through limiter rl? No: the timer is
 * set, unless it fires earlier already (for the other direction: when it
 * does, this one looks again and sets it for what is left of its wait).
 */
static bool admit(struct net *n, struct rate_limiter *rl, uint64_t bytes)
{
	uint64_t wait = 0, now;
	bool ok;

	/* Limits change on this thread only (set_limits_io): no lock needed to see there are none. */
	if (!rl_enabled(rl))
		return true;
	now = now_ns();
	pthread_mutex_lock(&n->stats_lock);
	ok = rl_try(rl, bytes, now, &wait);
	pthread_mutex_unlock(&n->stats_lock);
	/* Saturated: a tiny bucket with a long refill can ask for more than UINT64_MAX - now. */
	uint64_t due = wait > UINT64_MAX - now ? UINT64_MAX : now + wait;
	if (!ok && (!n->timer_due || due < n->timer_due)) {
		n->timer_due = due;
		io_loop_timer_set(n->loop, n->timer, wait);
	}
	return ok;
}

/* (io) Cancel the limiters' timer. */
static void timer_cancel(struct net *n)
{
	n->timer_due = 0;
	io_loop_timer_set(n->loop, n->timer, 0);
}

static void broken(struct net *n, const char *why)
{
	n->active = false;
	n->dev.needs_reset(&n->dev, why);
}

/* ---- RX: host -> guest ---- */

/* Give every held chain back unused (length 0). */
static void rx_release(struct net *n)
{
	for (int i = 0; i < n->rx_n; i++)
		n->rx_take[i] = 0;
	if (n->rx_n)
		virtq_push_n(&n->dev.vq[NET_RXQ], n->rx_head, n->rx_take, n->rx_n);
	n->rx_n = 0;
}

static void rx_drop(struct net *n, const char *why)
{
	STAT_ADD(n, rx_dropped, 1);
	LOG_ONCE(n, rx_bad, "%s: frame of %u bytes for the guest dropped: %s", n->name,
		 n->rx_len - NET_HDR_LEN, why);
	n->rx_len = 0;
}

/*
 * Read one frame into rx_buf. Returns true while the round may go on (a frame
 * was read, or dropped), false at EAGAIN or when the host side is gone.
 */
static bool rx_read(struct net *n)
{
	ssize_t r;

	do
		r = read(n->be.fd, n->rx_buf, sizeof(n->rx_buf));
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return false;
	if (r <= 0) {
		/* Not worth polling again: a hang-up or a broken fd would only spin. */
		if (r < 0)
			STAT_ADD(n, rx_dropped, 1);
		log_warn("%s: %s; the guest receives nothing more", n->name,
			 r < 0 ? strerror(errno) : "the host side hung up");
		n->rx_dead = true;
		return false;
	}
	n->rx_len = (uint32_t)r;
	n->rx_paid = false;
	if (r < NET_HDR_LEN) {
		n->rx_len = NET_HDR_LEN; /* for the log line: a frame of 0 bytes */
		rx_drop(n, "shorter than the vnet header");
	} else if (net_rx_hdr_check((struct virtio_net_hdr_v1 *)(void *)n->rx_buf, n->features) < 0) {
		rx_drop(n, "offloads the driver did not accept");
	}
	return true;
}

/* All of the pending frame fits the k held chains: fill chain 0, publish them at once. */
static void rx_complete(struct net *n, int k)
{
	struct virtq *vq = &n->dev.vq[NET_RXQ];
	struct virtio_net_hdr_v1 *h = (struct virtio_net_hdr_v1 *)(void *)n->rx_buf;

	h->num_buffers = htole16((uint16_t)k);
	virtq_chain_write(&n->rx_first, 0, n->rx_buf, n->rx_take[0]);
	/* k == rx_n always (a frame completes in the chain just popped); extra chains go back empty. */
	for (int i = k; i < n->rx_n; i++)
		n->rx_take[i] = 0;
	virtq_push_n(vq, n->rx_head, n->rx_take, n->rx_n);
	pthread_mutex_lock(&n->stats_lock);
	n->stats.rx_frames++;
	n->stats.rx_bytes += n->rx_len - NET_HDR_LEN;
	pthread_mutex_unlock(&n->stats_lock);
	n->rx_n = 0;
	n->rx_len = 0;
}

/*
 * Deliver the pending frame. Returns 1 when it is done with (delivered or
 * dropped; *pushed set if the used ring changed), 0 when the guest has too
 * few buffers (RX notifications are then on, the chains popped so far are
 * held), -1 when the ring is malformed.
 */
static int rx_deliver(struct net *n, bool *pushed)
{
	struct virtq *vq = &n->dev.vq[NET_RXQ];
	bool mrg = has(n, VIRTIO_NET_F_MRG_RXBUF);

	for (;;) {
		if (n->rx_n > 0) {
			int k = net_rx_account(n->rx_len, n->rx_wlen, n->rx_n, mrg, n->rx_take);

			if (k == NET_RX_BAD_BUF) {
				LOG_ONCE(n, rx_bad, "%s: receive buffer of %u bytes cannot hold a header; returned unused",
					 n->name, n->rx_wlen[0]);
				rx_release(n);
				*pushed = true;
				continue;
			}
			if (k == NET_RX_NO_FIT) {
				/* The chain stays held for the next frame. */
				rx_drop(n, "larger than the guest's receive buffer");
				return 1;
			}
			if (k > 0) {
				rx_complete(n, k);
				*pushed = true;
				return 1;
			}
			if (n->rx_n >= vq->size) {
				/* Every descriptor is already ours: the guest cannot add more. */
				rx_release(n);
				*pushed = true;
				rx_drop(n, "larger than the whole receive queue");
				return 1;
			}
		}
		struct virtq_chain *c = n->rx_n == 0 ? &n->rx_first : &n->rx_cur;
		int r = virtq_pop(vq, c);
		if (r < 0) {
			broken(n, "malformed receive queue");
			return -1;
		}
		if (r == 0) {
			if (!virtq_enable_notify(vq, true))
				return 0;
			virtq_enable_notify(vq, false); /* buffers arrived meanwhile */
			continue;
		}
		int i = n->rx_n++;
		n->rx_head[i] = c->head;
		n->rx_wlen[i] = c->writable_len > UINT32_MAX ? UINT32_MAX : (uint32_t)c->writable_len;
		if (i > 0) {
			/* Only chain 0 is kept whole: fill this one now. Chains 0..i-1 are full. */
			uint64_t off = 0;

			net_rx_account(n->rx_len, n->rx_wlen, n->rx_n, true, n->rx_take);
			for (int j = 0; j < i; j++)
				off += n->rx_take[j];
			virtq_chain_write(c, 0, n->rx_buf + off, n->rx_take[i]);
		}
	}
}

/* (io) Move frames from the host to the guest: one round, at most NET_RX_BATCH frames. */
static void rx_process(struct net *n)
{
	bool pushed = false;
	int frames = 0;

	while (n->active && !n->rx_wait && !n->rx_throttled) {
		if (!n->rx_len) {
			if (n->rx_dead || frames >= NET_RX_BATCH || !rx_read(n))
				break; /* POLLIN stays armed: a capped round goes on next time */
			frames++;
			if (!n->rx_len)
				continue;
		}
		if (!n->rx_paid) {
			/* Read already (its size is known only now): it waits in rx_buf, the tap keeps the rest. */
			if (!admit(n, &n->rx_rl, n->rx_len - NET_HDR_LEN)) {
				n->rx_throttled = true;
				break;
			}
			n->rx_paid = true;
		}
		int r = rx_deliver(n, &pushed);
		if (r < 0)
			break;
		if (r == 0) {
			/* Keep this one frame; the tap's queue holds the rest until the guest kicks. */
			n->rx_wait = true;
			break;
		}
	}
	if (pushed)
		n->dev.notify_used(&n->dev, NET_RXQ);
	update_watch(n);
}

/* ---- TX: guest -> host ---- */

/* Send tx_chain (or drop it). Returns 0 when it was answered, -EAGAIN when the host is full. */
static int tx_send(struct net *n)
{
	const struct virtq_chain *c = &n->tx_chain;
	struct virtq *vq = &n->dev.vq[NET_TXQ];
	struct virtio_net_hdr_v1 h;
	const char *why = NULL;
	uint64_t frame_len = 0, skip = NET_HDR_LEN;
	int cnt = 0;
	ssize_t r;

	if (c->writable_len) {
		why = "it has a device-writable buffer";
	} else if (c->readable_len < NET_HDR_LEN) {
		why = "shorter than the 12-byte header";
	} else if (c->readable_len > NET_HDR_LEN + NET_MAX_FRAME) {
		why = "frame longer than 65550 bytes";
	} else {
		frame_len = c->readable_len - NET_HDR_LEN;
		if (virtq_chain_read(c, 0, &h, sizeof(h)) != sizeof(h) ||
		    net_tx_hdr_check(&h, frame_len, n->features) < 0)
			why = "bad vnet header (flags, GSO or checksum offsets)";
	}
	if (why) {
		STAT_ADD(n, tx_dropped, 1);
		LOG_ONCE(n, tx_bad, "%s: transmit chain of %llu bytes dropped: %s", n->name,
			 (unsigned long long)(c->readable_len + c->writable_len), why);
		virtq_push(vq, c->head, 0);
		return 0;
	}
	/* Our checked copy of the header (the guest may rewrite its own), then the frame in place. */
	n->tx_iov[cnt++] = (struct iovec){ .iov_base = &h, .iov_len = sizeof(h) };
	for (uint16_t i = 0; i < c->n; i++) {
		const struct virtq_buf *b = &c->buf[i];

		if (skip >= b->len) {
			skip -= b->len;
			continue;
		}
		n->tx_iov[cnt++] = (struct iovec){ .iov_base = (uint8_t *)b->host + skip,
						   .iov_len = b->len - skip };
		skip = 0;
	}
	do
		r = writev(n->be.fd, n->tx_iov, cnt);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -EAGAIN;
	if (r < 0) {
		STAT_ADD(n, tx_dropped, 1);
		LOG_ONCE(n, tx_err, "%s: sending a frame: %s (dropped)", n->name, strerror(errno));
	} else {
		n->tx_round_frames++;
		n->tx_round_bytes += frame_len;
	}
	virtq_push(vq, c->head, 0);
	return 0;
}

/* (io) Send what the guest queued: one round, at most NET_TX_BATCH chains. */
static void tx_process(struct net *n)
{
	struct virtq *vq = &n->dev.vq[NET_TXQ];
	bool pushed = false;
	int done = 0;

	n->tx_more = false;
	/* While blocked, the held chain goes first: kicks wait for POLLOUT. */
	if (n->active && !n->tx_blocked && !n->tx_throttled)
		virtq_enable_notify(vq, false);
	while (n->active && !n->tx_blocked && !n->tx_throttled) {
		if (!n->tx_have) {
			if (done >= NET_TX_BATCH) {
				/* Let RX and other devices run; POLLOUT on a writable fd brings us back at once. */
				n->tx_more = true;
				break;
			}
			int r = virtq_pop(vq, &n->tx_chain);
			if (r < 0) {
				broken(n, "malformed transmit queue");
				break;
			}
			if (r == 0) {
				if (!virtq_enable_notify(vq, true))
					break;
				virtq_enable_notify(vq, false);
				continue;
			}
			uint64_t len = n->tx_chain.readable_len;
			if (!admit(n, &n->tx_rl, len > NET_HDR_LEN ? len - NET_HDR_LEN : 0)) {
				/* Back into the ring: order kept, nothing held at a snapshot; kicks not needed. */
				virtq_unpop(vq);
				n->tx_throttled = true;
				break;
			}
			n->tx_have = true;
		}
		if (tx_send(n) == -EAGAIN) {
			n->tx_blocked = true;
			break;
		}
		n->tx_have = false;
		pushed = true;
		done++;
	}
	if (n->tx_round_frames) {
		/* The round's frames counted at once: one lock per round, not per frame. */
		pthread_mutex_lock(&n->stats_lock);
		n->stats.tx_frames += n->tx_round_frames;
		n->stats.tx_bytes += n->tx_round_bytes;
		pthread_mutex_unlock(&n->stats_lock);
		n->tx_round_frames = n->tx_round_bytes = 0;
	}
	if (pushed)
		n->dev.notify_used(&n->dev, NET_TXQ);
	update_watch(n);
}

/* ---- glue: the fd watch and the virtio ops ---- */

static void net_fd_ready(void *arg, short revents)
{
	struct net *n = arg;

	if (!n->active)
		return;
	if ((revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)) && (n->tx_blocked || n->tx_more)) {
		n->tx_blocked = false;
		tx_process(n);
	}
	if (revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL))
		rx_process(n);
	update_watch(n);
}

/* (io) A limiter's wait is over: go on in both directions (each one re-arms the timer if it must wait again). */
static void net_timer(void *arg)
{
	struct net *n = arg;

	n->timer_due = 0;
	if (!n->active)
		return;
	if (n->tx_throttled) {
		n->tx_throttled = false;
		tx_process(n);
	}
	if (n->rx_throttled) {
		n->rx_throttled = false;
		rx_process(n);
	}
	update_watch(n);
}

static void net_queue_notify(struct virtio_dev *dev, uint16_t q)
{
	struct net *n = dev->priv;

	if (!n->active)
		return;
	if (q == NET_TXQ) {
		tx_process(n);
	} else if (q == NET_RXQ && n->rx_wait) {
		n->rx_wait = false;
		virtq_enable_notify(&dev->vq[NET_RXQ], false);
		rx_process(n);
	}
}

/* (io) Forget every frame and chain in progress; the watch follows (disarmed unless active). */
static void forget(struct net *n)
{
	n->rx_wait = n->tx_have = n->tx_blocked = n->tx_more = false;
	n->rx_throttled = n->tx_throttled = n->rx_paid = false;
	n->rx_len = 0;
	n->rx_n = 0;
	timer_cancel(n);
}

static void net_start(void *arg)
{
	struct net *n = arg;

	forget(n);
	n->features = n->dev.driver_features;
	n->active = true;
	/* RX kicks only matter while a frame waits for buffers. */
	virtq_enable_notify(&n->dev.vq[NET_RXQ], false);
	tx_process(n);  /* anything queued before DRIVER_OK; arms the watch */
}

static void net_quiesce(void *arg)
{
	struct net *n = arg;

	n->active = false;
	forget(n);
	update_watch(n);
}

/*
 * (io) Snapshot: stop, and give back to the rings what is held: the chains
 * of a frame not yet delivered (the frame is dropped, as a full queue would)
 * and a TX chain not yet sent (it is sent again after thaw or restore).
 */
static void net_freeze_io(void *arg)
{
	struct net *n = arg;

	n->frozen_active = n->active;
	if (n->active) {
		n->dev.vq[NET_RXQ].last_avail -= (uint16_t)n->rx_n;
		if (n->tx_have)
			n->dev.vq[NET_TXQ].last_avail--;
		if (n->rx_len)
			STAT_ADD(n, rx_dropped, 1);
	}
	net_quiesce(n);
}

static void net_thaw_io(void *arg)
{
	struct net *n = arg;

	if (n->frozen_active)
		net_start(n);
	n->frozen_active = false;
}

static int net_freeze(struct virtio_dev *dev)
{
	struct net *n = dev->priv;

	io_loop_call(n->loop, net_freeze_io, n);
	return 0;
}

static void net_thaw(struct virtio_dev *dev)
{
	struct net *n = dev->priv;

	io_loop_call(n->loop, net_thaw_io, n);
}

static int net_activate(struct virtio_dev *dev)
{
	struct net *n = dev->priv;
	unsigned int tun = net_tun_offloads(dev->driver_features) & n->be.offloads;

	/* Before any frame is read: the host must never send what the guest did not accept. */
	if (n->be.set_offload) {
		int ret = n->be.set_offload(n->be.ctx, tun);

		if (ret < 0) {
			log_warn("%s: setting the host offloads to 0x%x: %s", n->name, tun, strerror(-ret));
			return ret;
		}
	}
	io_loop_call(n->loop, net_start, n);
	return 0;
}

static void net_reset(struct virtio_dev *dev)
{
	struct net *n = dev->priv;

	/* Reads and writes are synchronous on the I/O thread: once this returns, none touches guest RAM. */
	io_loop_call(n->loop, net_quiesce, n);
}

static uint64_t net_dev_features(struct virtio_dev *dev)
{
	return net_features(((struct net *)dev->priv)->be.offloads);
}

static void net_config_read(struct virtio_dev *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct net *n = dev->priv;
	struct virtio_net_config cfg = { .status = htole16(VIRTIO_NET_S_LINK_UP) };

	memcpy(cfg.mac, n->be.mac, sizeof(cfg.mac));
	memset(data, 0, len);
	if (offset < sizeof(cfg) && len <= sizeof(cfg) - offset)
		memcpy(data, (uint8_t *)&cfg + offset, len);
}

static void net_config_write(struct virtio_dev *dev, uint64_t offset, const uint8_t *data, uint32_t len)
{
	(void)dev, (void)offset, (void)data, (void)len; /* read-only (no CTRL_MAC_ADDR) */
}

static const struct virtio_dev_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.num_queues = 2,
	.features = net_dev_features,
	.config_read = net_config_read,
	.config_write = net_config_write,
	.activate = net_activate,
	.queue_notify = net_queue_notify,
	.reset = net_reset,
	.freeze = net_freeze,
	.thaw = net_thaw,
};

struct set_limits {
	struct net *n;
	const struct rl_config *rx, *tx;
};

/* (io) Through io_loop_call(): new limits (full buckets); a throttled direction looks again at once. */
static void set_limits_io(void *arg)
{
	struct set_limits *s = arg;
	struct net *n = s->n;
	uint64_t now = now_ns();

	pthread_mutex_lock(&n->stats_lock);
	rl_init(&n->rx_rl, s->rx, now);
	rl_init(&n->tx_rl, s->tx, now);
	pthread_mutex_unlock(&n->stats_lock);
	if (n->rx_throttled || n->tx_throttled) {
		timer_cancel(n);
		net_timer(n);
	}
}

int net_set_limits(struct net *n, const struct rl_config *rx, const struct rl_config *tx)
{
	if (!tb_config_valid(&rx->bytes) || !tb_config_valid(&rx->ops) || !tb_config_valid(&tx->bytes) ||
	    !tb_config_valid(&tx->ops))
		return err_set(EINVAL, "%s: rate limit out of range", n->name);
	io_loop_call(n->loop, set_limits_io, &(struct set_limits){ .n = n, .rx = rx, .tx = tx });
	return 0;
}

void net_get_limits(struct net *n, struct rate_limiter *rx, struct rate_limiter *tx)
{
	uint64_t now = now_ns();

	pthread_mutex_lock(&n->stats_lock);
	rl_peek(&n->rx_rl, now, rx);
	rl_peek(&n->tx_rl, now, tx);
	pthread_mutex_unlock(&n->stats_lock);
}

int net_create(struct net **out, const struct net_backend *be, struct io_loop *loop)
{
	struct net *n = calloc(1, sizeof(*n));
	int ret;

	*out = NULL;
	if (!n)
		return err_set(ENOMEM, "virtio-net: out of memory");
	n->be = *be;
	n->be.name = NULL; /* the caller's string; our copy is n->name */
	snprintf(n->name, sizeof(n->name), "virtio-net%s%s", be->name ? " " : "",
		 be->name ? be->name : "");
	n->loop = loop;
	n->dev.ops = &net_ops;
	n->dev.priv = n;
	pthread_mutex_init(&n->stats_lock, NULL);
	ret = io_loop_watch_fd(loop, be->fd, net_fd_ready, n);
	if (ret < 0) {
		err_prefix(-ret, "%s", n->name);
		net_destroy(n);
		return ret;
	}
	n->watch = ret;
	ret = io_loop_timer(loop, net_timer, n);
	if (ret < 0) {
		err_prefix(-ret, "%s", n->name);
		net_destroy(n);
		return ret;
	}
	n->timer = ret;
	*out = n;
	return 0;
}

struct virtio_dev *net_virtio_dev(struct net *n)
{
	return &n->dev;
}

void net_get_stats(struct net *n, struct net_stats *out)
{
	pthread_mutex_lock(&n->stats_lock);
	*out = n->stats;
	pthread_mutex_unlock(&n->stats_lock);
}

void net_destroy(struct net *n)
{
	if (!n)
		return;
	pthread_mutex_destroy(&n->stats_lock);
	free(n);
}
