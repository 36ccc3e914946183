/* net_bench.c - microvm's virtio-net TX/RX path on a real tap in a private network namespace, or the tap alone as the limit (docs/benchmarks.md). */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sched.h>
#include <unistd.h>

#include "bench/vdrv.h"
#include "devices/virtio/net.h"
#include "base/err.h"
#include "io/ioloop.h"
#include "base/log.h"
#include "io/tap.h"

#define TAP_NAME "mvbench0"
#define HOST_IP "192.0.2.1"             /* documentation range (RFC 5737) */
#define GUEST_IP "192.0.2.2"
#define TX_PORT 9000                    /* guest -> host */
#define RX_PORT 9001                    /* host -> guest */
#define MAGIC 0x6d76626eu
#define BUF_SIZE 2048                   /* one guest buffer per frame, as Linux's small RX buffers */
#define ETH_IP_UDP 42                   /* Ethernet + IPv4 + UDP headers */

static const uint8_t guest_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };

struct opts {
	bool tx;
	int impl;                       /* 0 raw tap, else microvm with engine IO_ENGINE_URING/SYNC */
	enum io_engine engine;
	int frame;                      /* Ethernet frame length without FCS */
	double seconds;
};

static struct opts o = { .tx = true, .impl = 1, .engine = IO_ENGINE_URING, .frame = 64, .seconds = 2 };
static atomic_bool stop_flag;
static atomic_ullong sink_frames, sink_bad, sender_frames;
static uint8_t host_mac[6];

static void die(const char *what)
{
	fprintf(stderr, "net_bench: %s: %s\n", what, errno ? strerror(errno) : err_msg());
	exit(1);
}

static uint16_t ip_csum(const uint8_t *p, int len)
{
	uint32_t s = 0;

	for (int i = 0; i < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* A guest -> host UDP frame of o.frame bytes; payload: magic, seq, filler. */
static void build_frame(uint8_t *f, uint64_t seq)
{
	int ip_len = o.frame - 14, udp_len = ip_len - 20;

	memcpy(f, host_mac, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08, f[13] = 0x00;
	uint8_t *ip = f + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(ip_len >> 8), ip[3] = (uint8_t)ip_len;
	ip[8] = 64, ip[9] = 17;
	inet_pton(AF_INET, GUEST_IP, ip + 12);
	inet_pton(AF_INET, HOST_IP, ip + 16);
	uint16_t c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	uint8_t *udp = ip + 20;
	udp[0] = TX_PORT >> 8, udp[1] = TX_PORT & 0xff, udp[2] = TX_PORT >> 8, udp[3] = TX_PORT & 0xff;
	udp[4] = (uint8_t)(udp_len >> 8), udp[5] = (uint8_t)udp_len, udp[6] = udp[7] = 0;
	uint32_t m = MAGIC;
	memcpy(udp + 8, &m, 4);
	memcpy(udp + 12, &seq, 8);
	for (int i = 20; i < udp_len - 8; i++)
		udp[8 + i] = (uint8_t)i;
}

/*
 * Classify a frame the host sent towards the guest (len bytes, no vnet
 * header): 1 the sender's frame, intact; 0 other traffic the kernel sends on
 * a new link (IPv6 neighbour discovery, MLD), not counted; -1 the sender's
 * frame, damaged.
 */
static int frame_check(const uint8_t *f, uint32_t len)
{
	uint32_t m;

	if (len < ETH_IP_UDP + 12 || f[12] != 0x08 || f[13] != 0x00 || f[14 + 9] != 17 ||
	    f[36] != RX_PORT >> 8 || f[37] != (RX_PORT & 0xff))
		return 0;
	memcpy(&m, f + ETH_IP_UDP, 4);
	return len == (uint32_t)o.frame && m == MAGIC ? 1 : -1;
}

/* Host side of TX: a UDP socket on the tap's address counts and checks what arrives. */
static void *sink(void *arg)
{
	int s = *(int *)arg;
	uint8_t buf[64][2048];
	struct mmsghdr mm[64];
	struct iovec iov[64];

	for (int i = 0; i < 64; i++) {
		iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	while (!atomic_load(&stop_flag)) {
		int n = recvmmsg(s, mm, 64, 0, NULL);
		for (int i = 0; i < n; i++) {
			uint32_t m;
			memcpy(&m, buf[i], 4);
			if (mm[i].msg_len != (unsigned)(o.frame - ETH_IP_UDP) || m != MAGIC)
				atomic_fetch_add(&sink_bad, 1);
			else
				atomic_fetch_add(&sink_frames, 1);
		}
	}
	return NULL;
}

/* Host side of RX: a UDP socket sends to the guest's address as fast as it can (the tap drops the excess). */
static void *sender(void *arg)
{
	int s = *(int *)arg;
	int plen = o.frame - ETH_IP_UDP;
	uint8_t buf[32][2048];
	struct mmsghdr mm[32];
	struct iovec iov[32];
	uint64_t seq = 0;

	for (int i = 0; i < 32; i++) {
		uint32_t m = MAGIC;
		memcpy(buf[i], &m, 4);
		memset(buf[i] + 12, 0xa5, (size_t)plen - 12);
		iov[i] = (struct iovec){ buf[i], (size_t)plen };
		mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	while (!atomic_load(&stop_flag)) {
		for (int i = 0; i < 32; i++, seq++)
			memcpy(buf[i] + 4, &seq, 8);
		int n = sendmmsg(s, mm, 32, 0);
		if (n > 0)
			atomic_fetch_add(&sender_frames, (unsigned long long)n);
	}
	return NULL;
}

static int udp_socket(int port, bool connect_guest)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int big = 8 << 20;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_usec = 100000 };

	if (s < 0)
		die("socket");
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind " HOST_IP);
	if (connect_guest) {
		inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("connect " GUEST_IP);
	}
	return s;
}

static void sh(const char *cmd)
{
	if (system(cmd) != 0) {
		fprintf(stderr, "net_bench: '%s' failed\n", cmd);
		exit(1);
	}
}

/* Never touch the host's own network: the tap, its address and the sockets live in a namespace of our own. */
static void private_netns(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "net_bench: skipped: unshare(CLONE_NEWNET): %s (needs root)\n", strerror(errno));
		exit(77);
	}
}

struct result {
	double secs;
	uint64_t frames, bad, kicks, irqs;
};

/* ---- the limit: the tap fd alone, no virtqueue, no I/O thread ---- */

static void raw_tx(struct tap *t, struct result *r)
{
	uint8_t buf[BUF_SIZE] = { 0 };
	double t0 = vdrv_now(), end = t0 + o.seconds;

	build_frame(buf + NET_HDR_LEN, 0);
	for (uint64_t seq = 0;; seq++) {
		if ((seq & 63) == 0 && vdrv_now() >= end)
			break;
		memcpy(buf + NET_HDR_LEN + ETH_IP_UDP + 4, &seq, 8);
		ssize_t w = write(t->fd, buf, (size_t)(NET_HDR_LEN + o.frame));
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = t->fd, .events = POLLOUT };
			poll(&p, 1, 100);
			seq--;
			continue;
		}
		if (w != NET_HDR_LEN + o.frame)
			die("tap write");
		r->frames++;
	}
	r->secs = vdrv_now() - t0;
}

static void raw_rx(struct tap *t, struct result *r)
{
	uint8_t buf[BUF_SIZE];
	double t0 = vdrv_now(), end = t0 + o.seconds;

	while (vdrv_now() < end) {
		for (int i = 0; i < 64; i++) {
			ssize_t n = read(t->fd, buf, sizeof(buf));
			if (n < 0 && errno == EAGAIN) {
				struct pollfd p = { .fd = t->fd, .events = POLLIN };
				poll(&p, 1, 100);
				break;
			}
			if (n < 0)
				die("tap read");
			int k = n < NET_HDR_LEN ? -1 : frame_check(buf + NET_HDR_LEN, (uint32_t)(n - NET_HDR_LEN));
			if (k < 0)
				r->bad++;
			r->frames += k > 0;
		}
	}
	r->secs = vdrv_now() - t0;
}

/* ---- microvm: virtio-net on the tap, driven by a fake guest ---- */

static gpa_t slot_gpa(int q, int i)
{
	return VDRV_DATA_GPA + ((gpa_t)q * VDRV_QSIZE + (gpa_t)i) * BUF_SIZE;
}

static void vm_tx(struct vdrv *d, struct result *r)
{
	struct vdrv_q *q = &d->q[NET_TXQ];
	uint32_t len = NET_HDR_LEN + (uint32_t)o.frame;
	uint64_t seq = 0;
	int inflight = 0;
	bool stop = false;
	double t0 = vdrv_now(), end = t0 + o.seconds;

	/* Header and frame in one buffer, as Linux sends with VERSION_1 (any layout). */
	for (int i = 0; i < VDRV_QSIZE; i++) {
		uint8_t *p = vdrv_ptr(d, slot_gpa(NET_TXQ, i), BUF_SIZE);
		memset(p, 0, NET_HDR_LEN);
		build_frame(p + NET_HDR_LEN, 0);
		vdrv_set_desc(d, q, (uint16_t)i, slot_gpa(NET_TXQ, i), len, 0, 0);
	}
	for (int i = 0; i < VDRV_QSIZE; i++, inflight++, seq++) {
		memcpy((uint8_t *)vdrv_ptr(d, slot_gpa(NET_TXQ, i), BUF_SIZE) + NET_HDR_LEN + ETH_IP_UDP + 4, &seq, 8);
		vdrv_add(d, q, (uint16_t)i);
	}
	vdrv_publish(d, q);
	while (inflight) {
		uint32_t id, ulen;
		int got = 0;

		while (vdrv_get_used(d, q, &id, &ulen)) {
			got++;
			inflight--;
			r->frames++;
			if (id >= VDRV_QSIZE)
				r->bad++;
			if (!stop && (r->frames & 63) == 0 && vdrv_now() >= end)
				stop = true;
			if (!stop && id < VDRV_QSIZE) {
				memcpy((uint8_t *)vdrv_ptr(d, slot_gpa(NET_TXQ, (int)id), BUF_SIZE) + NET_HDR_LEN +
					       ETH_IP_UDP + 4, &seq, 8);
				seq++;
				vdrv_add(d, q, (uint16_t)id);
				inflight++;
			}
		}
		vdrv_publish(d, q);
		if (got || !inflight)
			continue;
		if (vdrv_enable_cb(d, q))
			continue;
		if (vdrv_wait_irq(d, 10000) < 0) {
			fprintf(stderr, "net_bench: no TX interrupt for 10 s with %d frames queued\n", inflight);
			exit(3);
		}
	}
	r->secs = vdrv_now() - t0;
	r->kicks = q->kicks;
}

static void vm_rx(struct vdrv *d, struct result *r)
{
	struct vdrv_q *q = &d->q[NET_RXQ];
	double t0 = vdrv_now(), end = t0 + o.seconds;

	for (int i = 0; i < VDRV_QSIZE; i++) {
		vdrv_set_desc(d, q, (uint16_t)i, slot_gpa(NET_RXQ, i), BUF_SIZE, VIRTQ_DESC_F_WRITE, 0);
		vdrv_add(d, q, (uint16_t)i);
	}
	vdrv_publish(d, q);
	while (vdrv_now() < end) {
		uint32_t id, len;
		int got = 0;

		while (got < 256 && vdrv_get_used(d, q, &id, &len)) {
			got++;
			const uint8_t *p = vdrv_ptr(d, slot_gpa(NET_RXQ, (int)(id % VDRV_QSIZE)), BUF_SIZE);
			struct virtio_net_hdr_v1 h;
			memcpy(&h, p, sizeof(h));
			int k = id >= VDRV_QSIZE || len < NET_HDR_LEN || le16toh(h.num_buffers) != 1 ? -1
				: frame_check(p + NET_HDR_LEN, len - NET_HDR_LEN);
			if (k < 0)
				r->bad++;
			r->frames += k > 0;
			vdrv_add(d, q, (uint16_t)(id % VDRV_QSIZE));
		}
		vdrv_publish(d, q);
		if (got)
			continue;
		if (vdrv_enable_cb(d, q))
			continue;
		vdrv_wait_irq(d, 100);  /* a timeout is fine: the sender may be starved */
	}
	r->secs = vdrv_now() - t0;
	r->kicks = q->kicks;
}

static void usage(void)
{
	fprintf(stderr, "usage: net_bench --dir tx|rx --impl uring|sync|raw --frame 64..1514 --time SECONDS\n"
			"(as root: it makes its own network namespace)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dir", 1, 0, 'd' }, { "impl", 1, 0, 'i' }, { "frame", 1, 0, 'f' }, { "time", 1, 0, 't' },
		{ 0, 0, 0, 0 },
	};
	const char *impl = "uring";
	struct result r = { 0 };
	struct tap t;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': o.tx = !strcmp(optarg, "tx"); if (!o.tx && strcmp(optarg, "rx")) usage(); break;
		case 'i': impl = optarg; break;
		case 'f': o.frame = atoi(optarg); break;
		case 't': o.seconds = atof(optarg); break;
		default: usage();
		}
	}
	if (o.frame < 64 || o.frame > 1514)
		usage();
	if (!strcmp(impl, "raw"))
		o.impl = 0;
	else if (!strcmp(impl, "sync"))
		o.engine = IO_ENGINE_SYNC;
	else if (strcmp(impl, "uring"))
		usage();
	log_set_level(LOG_WARN);
	private_netns();

	errno = 0;
	if (tap_open(&t, TAP_NAME) < 0)
		die("tap");
	sh("ip link set lo up && ip addr add " HOST_IP "/24 dev " TAP_NAME " && ip neigh replace " GUEST_IP
	   " lladdr 02:00:00:00:00:02 dev " TAP_NAME " nud permanent");
	struct ifreq ifr = { 0 };
	int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", TAP_NAME);
	if (ioctl(ctl, SIOCGIFHWADDR, &ifr) < 0)
		die("SIOCGIFHWADDR");
	memcpy(host_mac, ifr.ifr_hwaddr.sa_data, 6);
	close(ctl);

	int sock = udp_socket(o.tx ? TX_PORT : RX_PORT, !o.tx);
	pthread_t peer;
	struct io_loop *loop = NULL;
	struct net *n = NULL;
	struct vdrv *d = calloc(1, sizeof(*d));

	if (o.impl) {
		struct net_backend be = { .fd = t.fd, .offloads = t.offloads, .set_offload = tap_set_offload,
					  .ctx = &t, .name = t.name };
		memcpy(be.mac, guest_mac, 6);
		errno = 0;
		if (io_loop_create(&loop, o.engine) < 0) {
			fprintf(stderr, "net_bench: skipped: %s\n", err_msg());
			exit(77);
		}
		if (net_create(&n, &be, loop) < 0 ||
		    vdrv_init(d, net_virtio_dev(n), loop, VDRV_DATA_GPA + 2ULL * VDRV_QSIZE * BUF_SIZE) < 0 ||
		    io_loop_start(loop) < 0 ||
		    vdrv_start(d, (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
				      (1ULL << VIRTIO_NET_F_MRG_RXBUF), 2) < 0)
			die("microvm set-up");
	}
	if (o.tx) {
		pthread_create(&peer, NULL, sink, &sock);
		o.impl ? vm_tx(d, &r) : raw_tx(&t, &r);
		usleep(200000);  /* let the stack deliver what is queued */
	} else {
		pthread_create(&peer, NULL, sender, &sock);
		o.impl ? vm_rx(d, &r) : raw_rx(&t, &r);
	}
	atomic_store(&stop_flag, true);
	pthread_join(peer, NULL);
	if (o.impl) {
		uint64_t left;
		if (read(d->mmio.irq_fd, &left, sizeof(left)) == sizeof(left))
			d->irqs += left;
		r.irqs = d->irqs;
	}
	struct net_stats ns = { 0 };
	if (n)
		net_get_stats(n, &ns);
	io_loop_destroy(loop);
	if (o.impl)
		vdrv_destroy(d);
	net_destroy(n);
	tap_close(&t);

	uint64_t delivered = o.tx ? atomic_load(&sink_frames) : r.frames;
	uint64_t bad = r.bad + atomic_load(&sink_bad);
	double pps = (double)r.frames / r.secs;
	printf("{\"bench\":\"net\",\"impl\":\"%s\",\"dir\":\"%s\",\"frame\":%d,\"seconds\":%.4f,"
	       "\"frames\":%llu,\"pps\":%.1f,\"mbps\":%.2f,\"delivered\":%llu,\"sent_by_host\":%llu,"
	       "\"bad\":%llu,\"kicks\":%llu,\"irqs\":%llu,\"dev_rx_dropped\":%llu,\"dev_tx_dropped\":%llu}\n",
	       o.impl ? (o.engine == IO_ENGINE_SYNC ? "microvm-sync" : "microvm-uring") : "raw-tap",
	       o.tx ? "tx" : "rx", o.frame, r.secs, (unsigned long long)r.frames, pps,
	       pps * o.frame * 8 / 1e6, (unsigned long long)delivered,
	       (unsigned long long)atomic_load(&sender_frames), (unsigned long long)bad,
	       (unsigned long long)r.kicks, (unsigned long long)r.irqs,
	       (unsigned long long)ns.rx_dropped, (unsigned long long)ns.tx_dropped);
	free(d);
	/* Wrong results, not slow ones, fail: a bad frame, or nothing got through at all. */
	return bad || delivered == 0 ? 4 : 0;
}
