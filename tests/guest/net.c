/*
 * net.c - a minimal virtio-mmio virtio-net driver for the net.* checks.
 *
 * Written from the virtio 1.2 specification: 2.1-2.7 (status, features,
 * split virtqueues), 4.2 (virtio-mmio), 5.1 (network device). VERSION_1 and
 * MAC are required; MRG_RXBUF is accepted with net.mrg=1, STATUS whenever it
 * is offered; no checksum or segmentation offload, so every frame carries a
 * 12-byte virtio_net_hdr_v1 with flags 0 and gso_type NONE, and frames from
 * the host arrive fully checksummed. Queue 0 receives, queue 1 transmits; no
 * interrupts (the IOAPIC pins stay masked): the used rings are polled with
 * bounded waits.
 *
 * The peer is the host kernel on the other end of the tap: the guest sends an
 * ARP request for the peer's address and ICMP echo requests, and checks the
 * replies the host's own network stack makes. It answers ARP requests for its
 * own address (the host may ask before it replies) and ignores every other
 * frame (IPv6 neighbour discovery, multicast listener reports, ...).
 */
#include "virtio.h"

/* Feature bits (5.1.3). */
#define F_CSUM       0
#define F_GUEST_CSUM 1
#define F_MAC        5
#define F_MRG_RXBUF  15
#define F_STATUS     16

/* Config (5.1.4): mac[6], status (u16). */
#define CFG_MAC    0
#define CFG_STATUS 6
#define LINK_UP    1

/* virtio_net_hdr_v1 (5.1.6): always 12 bytes with VERSION_1. */
#define HDR_LEN 12
#define HDR_F_NEEDS_CSUM 1
#define GSO_NONE 0

struct net_hdr {
	uint8_t flags, gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset, num_buffers;
} __attribute__((packed));

#define RXQ 0
#define TXQ 1
#define QSIZE     16     /* descriptors per queue (at most; smaller if QueueNumMax is) */
#define BUF_SIZE  2048   /* one RX buffer: header + a full 1514-byte frame, and then some */
#define MAX_NICS  3
#define MAX_OPS   16
#define ETH_HLEN  14
#define ETH_MAX   1514
#define PING_MAX  1472   /* ICMP payload that fits a 1500-byte IP packet */
#define PING_DEFAULT 56
#define NET_WAIT_TSC  8000000000ULL  /* bounded wait for a reply (the host answers in microseconds) */
#define NET_WAIT_SPINS 20000000u
#define ICMP_ID   0x4d56 /* "MV" */

struct vq {
	struct desc desc[QSIZE];                                   /* align 16 */
	struct { uint16_t flags, idx, ring[QSIZE], used_event; } avail __attribute__((aligned(16)));
	struct { uint16_t flags, idx; struct { uint32_t id, len; } ring[QSIZE]; uint16_t avail_event; }
		used __attribute__((aligned(16)));
} __attribute__((aligned(64)));

struct nic_mem {
	struct vq rx, tx;
	uint8_t rxbuf[QSIZE][BUF_SIZE] __attribute__((aligned(64)));
	uint8_t txbuf[HDR_LEN + ETH_MAX] __attribute__((aligned(64)));
};

struct queue {
	uint16_t size;
	uint16_t avail_idx;        /* our next avail index */
	uint16_t used_seen;        /* used entries consumed */
};

struct nic {
	uint64_t base;
	uint32_t irq;
	uint64_t features;         /* offered */
	uint64_t accepted;         /* what we wrote back */
	uint8_t mac[6];
	uint16_t status;           /* config status, if F_STATUS */
	struct queue rxq, txq;
	bool ok, irq_checked;
	uint32_t ip, peer_ip;      /* host order; 0: not yet set */
	uint8_t peer_mac[6];
	bool peer_known;
	uint32_t tx_frames, rx_frames, rx_ignored, arp_answered;
};

enum op_kind { OP_MAC, OP_ARP, OP_PING, OP_LINK };

struct op {
	enum op_kind kind;
	int nic;
	uint8_t mac[6];
	uint32_t ip, peer;
	uint32_t count, size;
	bool noarp;                /* ping: no ARP first, to the Ethernet broadcast address */
};

static struct {
	bool any;
	enum vfind find;
	bool want_count;
	uint64_t count;
	bool mrg;
	int nr_ops;
	struct op ops[MAX_OPS];
} cfg;

static struct nic_mem mem[MAX_NICS] __attribute__((aligned(4096)));
static struct nic nics[MAX_NICS];
static int nr_nics;

/* ---- parsing ---- */

bool net_wanted(void)
{
	return cfg.any;
}

bool net_wants_fdt(int mode)
{
	return cfg.any && vfind_fdt(cfg.find, mode);
}

bool net_wants_acpi(int mode)
{
	return cfg.any && vfind_acpi(cfg.find, mode);
}

/* eth0, eth1, ... or 0, 1, ... */
static bool parse_nic(const char *v, size_t n, int *nic)
{
	uint64_t d;

	if (n == 4 && !memcmp(v, "eth", 3) && v[3] >= '0' && v[3] < '0' + MAX_NICS) {
		*nic = v[3] - '0';
		return true;
	}
	if (!parse_num(v, n, false, &d) || d >= MAX_NICS)
		return false;
	*nic = (int)d;
	return true;
}

static bool parse_ip(const char *v, size_t n, uint32_t *out)
{
	uint32_t ip = 0;
	size_t s = 0;
	int parts = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] != '.')
			continue;
		uint64_t b;
		if (parts == 4 || i - s > 3 || !parse_num(v + s, i - s, false, &b) || b > 255)
			return false;
		ip = ip << 8 | (uint32_t)b;
		parts++;
		s = i + 1;
	}
	*out = ip;
	return parts == 4;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool parse_mac(const char *v, size_t n, uint8_t mac[6])
{
	if (n != 17)
		return false;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(v[3 * i]), lo = hexval(v[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && v[3 * i + 2] != ':'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* Split v at ':' into at most max fields (starts and lengths); returns the count, -1 if more. */
static int split(const char *v, size_t n, const char **f, size_t *fl, int max)
{
	int k = 0;
	size_t s = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] != ':')
			continue;
		if (k == max)
			return -1;
		f[k] = v + s;
		fl[k++] = i - s;
		s = i + 1;
	}
	return k;
}

bool net_parse(const char *key, size_t klen, const char *v, size_t n)
{
	uint64_t num;

	cfg.any = true;
	if (mem_eq_str(key, klen, "count"))
		return (cfg.want_count = parse_num(v, n, false, &cfg.count));
	if (mem_eq_str(key, klen, "find"))
		return vfind_parse(v, n, &cfg.find);
	if (mem_eq_str(key, klen, "mrg")) {
		if (!parse_num(v, n, false, &num) || num > 1)
			return false;
		cfg.mrg = num;
		return true;
	}
	if (cfg.nr_ops == MAX_OPS)
		return false;
	struct op *o = &cfg.ops[cfg.nr_ops];
	const char *f[5];
	size_t fl[5];
	int k;

	if (mem_eq_str(key, klen, "mac")) {            /* IF:XX:XX:XX:XX:XX:XX */
		size_t c = 0;
		while (c < n && v[c] != ':')
			c++;
		if (c == n || !parse_nic(v, c, &o->nic) || !parse_mac(v + c + 1, n - c - 1, o->mac))
			return false;
		o->kind = OP_MAC;
	} else if (mem_eq_str(key, klen, "link")) {    /* IF */
		if (!parse_nic(v, n, &o->nic))
			return false;
		o->kind = OP_LINK;
	} else if (mem_eq_str(key, klen, "arp") || mem_eq_str(key, klen, "ping") ||
		   mem_eq_str(key, klen, "ping_noarp")) {
		/* arp=IF:GUEST_IP:PEER_IP, ping[_noarp]=IF:GUEST_IP:PEER_IP[:COUNT[:SIZE]] */
		bool ping = key[0] == 'p';
		o->noarp = klen > 4;
		k = split(v, n, f, fl, ping ? 5 : 3);
		if (k < 3 || !parse_nic(f[0], fl[0], &o->nic) || !parse_ip(f[1], fl[1], &o->ip) ||
		    !parse_ip(f[2], fl[2], &o->peer))
			return false;
		o->count = 1;
		o->size = PING_DEFAULT;
		if (k > 3 && (!parse_num(f[3], fl[3], false, &num) || !num || num > 1000))
			return false;
		if (k > 3)
			o->count = (uint32_t)num;
		if (k > 4 && (!parse_num(f[4], fl[4], false, &num) || num > PING_MAX))
			return false;
		if (k > 4)
			o->size = (uint32_t)num;
		o->kind = ping ? OP_PING : OP_ARP;
	} else {
		return false;
	}
	cfg.nr_ops++;
	return true;
}

/* ---- helpers ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* The Internet checksum (RFC 1071) of n bytes: 0 when a received header or message checks out. */
static uint16_t inet_csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* "a.b.c.d" and "xx:xx:xx:xx:xx:xx" into static buffers (two and six in turn, for one printf). */
static const char *ip_str(uint32_t ip)
{
	static char bufs[2][16];
	static int w;
	char *b = bufs[w++ & 1], *p = b;

	for (int i = 3; i >= 0; i--) {
		unsigned v = (ip >> (8 * i)) & 0xff;
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		if (i)
			*p++ = '.';
	}
	*p = '\0';
	return b;
}

static const char *mac_str(const uint8_t *m)
{
	static char bufs[6][18];
	static unsigned w;
	static const char hex[] = "0123456789abcdef";
	char *b = bufs[w++ % 6];

	for (int i = 0; i < 6; i++) {
		b[3 * i] = hex[m[i] >> 4];
		b[3 * i + 1] = hex[m[i] & 15];
		b[3 * i + 2] = i < 5 ? ':' : '\0';
	}
	return b;
}

static bool mac_eq(const uint8_t *a, const uint8_t *b)
{
	return !memcmp(a, b, 6);
}

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* ---- queues ---- */

static bool queue_setup(struct nic *n, int i, int q, struct vq *vq, struct queue *qs)
{
	vm_wr(n->base, VM_QUEUE_SEL, (uint32_t)q);
	uint32_t ready = vm_rd(n->base, VM_QUEUE_READY), max = vm_rd(n->base, VM_QUEUE_NUM_MAX);
	if (ready || !max) {
		fail(FAIL_NET_INIT, "net: eth%d: queue %d: QueueReady %u, QueueNumMax %u", i, q, ready, max);
		return false;
	}
	uint16_t size = QSIZE;
	while (size > max)
		size >>= 1;
	qs->size = size;
	qs->avail_idx = qs->used_seen = 0;
	memset(vq, 0, sizeof(*vq));
	vm_wr(n->base, VM_QUEUE_NUM, size);
	vm_wr64(n->base, VM_QUEUE_DESC, (uint64_t)(uintptr_t)vq->desc);
	vm_wr64(n->base, VM_QUEUE_DRIVER, (uint64_t)(uintptr_t)&vq->avail);
	vm_wr64(n->base, VM_QUEUE_DEVICE, (uint64_t)(uintptr_t)&vq->used);
	vm_wr(n->base, VM_QUEUE_READY, 1);
	if (vm_rd(n->base, VM_QUEUE_READY) != 1) {
		fail(FAIL_NET_INIT, "net: eth%d: queue %d: QueueReady reads 0 after setting it", i, q);
		return false;
	}
	return true;
}

static void publish(struct nic *n, int q, struct vq *vq, struct queue *qs)
{
	compiler_barrier();
	*(volatile uint16_t *)&vq->avail.idx = qs->avail_idx;
	compiler_barrier();
	vm_wr(n->base, VM_QUEUE_NOTIFY, (uint32_t)q);
}

/* Offer RX buffer id (descriptor id -> rxbuf[id]); published by the caller. */
static void rx_post(int i, uint16_t id)
{
	struct nic *n = &nics[i];
	struct vq *vq = &mem[i].rx;

	vq->desc[id] = (struct desc){ (uint64_t)(uintptr_t)mem[i].rxbuf[id], BUF_SIZE, DESC_F_WRITE, 0 };
	vq->avail.ring[n->rxq.avail_idx % n->rxq.size] = id;
	n->rxq.avail_idx++;
}

/* ---- set-up ---- */

static bool nic_init(int i)
{
	struct nic *n = &nics[i];
	uint64_t b = n->base;
	uint32_t st;

	n->ok = false;
	vm_wr(b, VM_STATUS, 0);
	if ((st = vm_wait_status(b, 0xff, 0)) != 0) {
		fail(FAIL_NET_INIT, "net: eth%d: status 0x%x after reset, expected 0", i, st);
		return false;
	}
	vm_wr(b, VM_STATUS, ST_ACK);
	vm_wr(b, VM_STATUS, ST_ACK | ST_DRIVER);
	uint64_t f = n->features = vm_device_features(b);
	if (!(f & (1ULL << F_VERSION_1)) || !(f & (1ULL << F_MAC))) {
		fail(FAIL_NET_INIT, "net: eth%d: device does not offer VIRTIO_F_VERSION_1 and "
		     "VIRTIO_NET_F_MAC (features 0x%lx)", i, f);
		vm_wr(b, VM_STATUS, ST_FAILED);
		return false;
	}
	if (cfg.mrg && !(f & (1ULL << F_MRG_RXBUF))) {
		fail(FAIL_NET_INIT, "net: eth%d: net.mrg=1 but VIRTIO_NET_F_MRG_RXBUF is not offered "
		     "(features 0x%lx)", i, f);
		vm_wr(b, VM_STATUS, ST_FAILED);
		return false;
	}
	uint64_t drv = (1ULL << F_VERSION_1) | (1ULL << F_MAC) | (f & (1ULL << F_STATUS)) |
		       (cfg.mrg ? 1ULL << F_MRG_RXBUF : 0);
	n->accepted = drv;
	vm_driver_features(b, drv);
	vm_wr(b, VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	st = vm_rd(b, VM_STATUS);
	if (!(st & ST_FEATURES_OK)) {
		fail(FAIL_NET_INIT, "net: eth%d: FEATURES_OK not kept (status 0x%x, features 0x%lx)", i,
		     st, drv);
		vm_wr(b, VM_STATUS, ST_FAILED);
		return false;
	}
	/* The MAC byte by byte, as Linux reads it, within one ConfigGeneration. */
	for (int tries = 0; tries < 4; tries++) {
		uint32_t gen = vm_rd(b, VM_CONFIG_GEN);
		for (int k = 0; k < 6; k++)
			n->mac[k] = vm_rd8(b, VM_CONFIG + CFG_MAC + (uint32_t)k);
		if (f & (1ULL << F_STATUS))
			n->status = vm_rd16(b, VM_CONFIG + CFG_STATUS);
		if (vm_rd(b, VM_CONFIG_GEN) == gen)
			break;
	}
	if (!queue_setup(n, i, RXQ, &mem[i].rx, &n->rxq) || !queue_setup(n, i, TXQ, &mem[i].tx, &n->txq)) {
		vm_wr(b, VM_STATUS, ST_FAILED);
		return false;
	}
	vm_wr(b, VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	st = vm_rd(b, VM_STATUS);
	if (st != (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK)) {
		fail(FAIL_NET_INIT, "net: eth%d: status 0x%x after DRIVER_OK", i, st);
		return false;
	}
	for (uint16_t id = 0; id < n->rxq.size; id++)
		rx_post(i, id);
	publish(n, RXQ, &mem[i].rx, &n->rxq);
	n->ok = true;
	vm_wr(b, VM_QUEUE_SEL, RXQ);
	uint32_t rxmax = vm_rd(b, VM_QUEUE_NUM_MAX);
	vm_wr(b, VM_QUEUE_SEL, TXQ);
	uint32_t txmax = vm_rd(b, VM_QUEUE_NUM_MAX);
	gprintf("net: eth%d at 0x%lx irq %u: mac %s, features 0x%lx (mrg_rxbuf %u status %u), ",
		i, b, n->irq, mac_str(n->mac), f, (unsigned)(drv >> F_MRG_RXBUF) & 1,
		(unsigned)(f >> F_STATUS) & 1);
	if (f & (1ULL << F_STATUS))
		gprintf("link %s, ", n->status & LINK_UP ? "up" : "down");
	gprintf("rx queue %u of %u, tx queue %u of %u\n", n->rxq.size, rxmax, n->txq.size, txmax);
	return true;
}

/* ---- transmit ---- */

/*
 * Send the frame in txbuf + HDR_LEN (len bytes) with a zeroed header: as one
 * descriptor (header and frame together) or as two (header, frame). Waits
 * (bounded) for the device to use it.
 */
static bool tx_send(int i, uint32_t len, bool split_hdr)
{
	struct nic *n = &nics[i];
	struct vq *vq = &mem[i].tx;
	uint8_t *p = mem[i].txbuf;

	memset(p, 0, HDR_LEN);
	if (split_hdr) {
		vq->desc[0] = (struct desc){ (uint64_t)(uintptr_t)p, HDR_LEN, DESC_F_NEXT, 1 };
		vq->desc[1] = (struct desc){ (uint64_t)(uintptr_t)(p + HDR_LEN), len, 0, 0 };
	} else {
		vq->desc[0] = (struct desc){ (uint64_t)(uintptr_t)p, HDR_LEN + len, 0, 0 };
	}
	vq->avail.ring[n->txq.avail_idx % n->txq.size] = 0;
	n->txq.avail_idx++;
	publish(n, TXQ, vq, &n->txq);

	struct wait_clock clock;
	wait_clock_start(&clock, WAIT_USED_TSC);
	for (uint32_t spins = 0;; spins++) {
		uint16_t used = *(volatile uint16_t *)&vq->used.idx;
		if (used != n->txq.used_seen)
			break;
		if (wait_clock_expired(&clock) || spins > WAIT_SPINS) {
			fail(FAIL_NET_TX, "net: eth%d: a %u-byte frame was not sent in the bounded wait "
			     "(tx used idx %u, device status 0x%x)", i, len, used, vm_rd(n->base, VM_STATUS));
			return false;
		}
	}
	compiler_barrier();
	uint32_t id = vq->used.ring[n->txq.used_seen % n->txq.size].id;
	uint32_t ulen = vq->used.ring[n->txq.used_seen % n->txq.size].len;
	n->txq.used_seen++;
	if (id != 0 || ulen != 0) {
		fail(FAIL_NET_TX, "net: eth%d: tx used entry id %u len %u, expected id 0 len 0 (the "
		     "device writes nothing into a transmit buffer)", i, id, ulen);
		return false;
	}
	n->tx_frames++;
	return true;
}

static uint8_t *eth_start(int i, const uint8_t *dst, uint16_t type)
{
	uint8_t *f = mem[i].txbuf + HDR_LEN;

	memcpy(f, dst, 6);
	memcpy(f + 6, nics[i].mac, 6);
	put16(f + 12, type);
	return f + ETH_HLEN;
}

/* ARP (RFC 826) for IPv4 over Ethernet: 28 bytes after the Ethernet header. */
static bool send_arp(int i, uint16_t oper, const uint8_t *dst_mac, const uint8_t *tha, uint32_t tpa)
{
	uint8_t *a = eth_start(i, dst_mac, 0x0806);

	put16(a, 1);             /* htype Ethernet */
	put16(a + 2, 0x0800);    /* ptype IPv4 */
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, oper);
	memcpy(a + 8, nics[i].mac, 6);
	put32(a + 14, nics[i].ip);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	return tx_send(i, ETH_HLEN + 28, true);
}

static uint8_t ping_byte(uint32_t k, uint32_t seq)
{
	return (uint8_t)(k * 7 + seq * 13 + 1);
}

static bool send_ping(int i, uint32_t seq, uint32_t size)
{
	struct nic *n = &nics[i];
	uint8_t *ip = eth_start(i, n->peer_known ? n->peer_mac : bcast, 0x0800);
	uint8_t *icmp = ip + 20;

	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(20 + 8 + size));
	put16(ip + 4, (uint16_t)seq);     /* identification */
	put16(ip + 6, 0x4000);            /* DF */
	ip[8] = 64;
	ip[9] = 1;                        /* ICMP */
	put16(ip + 10, 0);
	put32(ip + 12, n->ip);
	put32(ip + 16, n->peer_ip);
	put16(ip + 10, inet_csum(ip, 20));
	icmp[0] = 8;                      /* echo request */
	icmp[1] = 0;
	put16(icmp + 2, 0);
	put16(icmp + 4, (uint16_t)(ICMP_ID + i));
	put16(icmp + 6, (uint16_t)seq);
	for (uint32_t k = 0; k < size; k++)
		icmp[8 + k] = ping_byte(k, seq);
	put16(icmp + 2, inet_csum(icmp, 8 + size));
	return tx_send(i, ETH_HLEN + 20 + 8 + size, false);
}

/* ---- receive ---- */

enum want { W_ARP_REPLY, W_ECHO_REPLY };

struct wait_ctx {
	enum want want;
	uint32_t seq, size;
	int result;        /* 0: still waiting, 1: got it, -1: got it and it is wrong (failure reported) */
};

/* An ARP frame: answer requests for our address; take the reply we wait for. */
static void rx_arp(int i, const uint8_t *f, uint32_t len, struct wait_ctx *w)
{
	struct nic *n = &nics[i];
	const uint8_t *a = f + ETH_HLEN;

	if (len < ETH_HLEN + 28 || get16(a) != 1 || get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4) {
		n->rx_ignored++;
		return;
	}
	uint16_t oper = get16(a + 6);
	uint32_t spa = get32(a + 14), tpa = get32(a + 24);
	if (oper == 1 && n->ip && tpa == n->ip) {
		/* The host asks for us (it may, before it answers our echo request): reply. */
		uint8_t sha[6];
		memcpy(sha, a + 8, 6);
		if (send_arp(i, 2, sha, sha, spa))
			n->arp_answered++;
		return;
	}
	if (oper != 2 || w->want != W_ARP_REPLY || spa != n->peer_ip || tpa != n->ip) {
		n->rx_ignored++;
		return;
	}
	w->result = 1;
	if (!mac_eq(f, n->mac) || !mac_eq(a + 18, n->mac) || !mac_eq(f + 6, a + 8)) {
		fail(FAIL_NET_ARP, "net: eth%d: ARP reply from %s: Ethernet %s -> %s, target MAC %s, sender "
		     "MAC %s; expected our MAC %s as destination and target", i, ip_str(spa),
		     mac_str(f + 6), mac_str(f), mac_str(a + 18), mac_str(a + 8), mac_str(n->mac));
		w->result = -1;
		return;
	}
	memcpy(n->peer_mac, a + 8, 6);
	n->peer_known = true;
}

static void rx_ipv4(int i, const uint8_t *f, uint32_t len, struct wait_ctx *w)
{
	struct nic *n = &nics[i];
	const uint8_t *ip = f + ETH_HLEN;
	uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;

	if (len < ETH_HLEN + 20 || ip[0] >> 4 != 4 || ihl < 20 || len < ETH_HLEN + ihl || ip[9] != 1 ||
	    get32(ip + 16) != n->ip || get32(ip + 12) != n->peer_ip || w->want != W_ECHO_REPLY) {
		n->rx_ignored++;
		return;
	}
	uint32_t tot = get16(ip + 2);
	const uint8_t *icmp = ip + ihl;
	if (tot < ihl + 8 || ETH_HLEN + tot > len || icmp[0] != 0 ||
	    get16(icmp + 4) != (uint16_t)(ICMP_ID + i)) {
		n->rx_ignored++;      /* not an echo reply to us (e.g. an ICMP error) */
		return;
	}
	uint32_t seq = get16(icmp + 6), size = tot - ihl - 8;
	if (seq != w->seq) {
		n->rx_ignored++;      /* a late reply to an earlier request */
		return;
	}
	w->result = -1;
	if (inet_csum(ip, ihl) != 0) {
		fail(FAIL_NET_PING, "net: eth%d: echo reply seq %u: bad IPv4 header checksum 0x%04x", i,
		     seq, get16(ip + 10));
		return;
	}
	if (inet_csum(icmp, tot - ihl) != 0) {
		fail(FAIL_NET_PING, "net: eth%d: echo reply seq %u: bad ICMP checksum 0x%04x", i, seq,
		     get16(icmp + 2));
		return;
	}
	if (icmp[1] != 0 || size != w->size) {
		fail(FAIL_NET_PING, "net: eth%d: echo reply seq %u: code %u, %u bytes of data, expected "
		     "code 0 and %u bytes", i, seq, icmp[1], size, w->size);
		return;
	}
	for (uint32_t k = 0; k < size; k++)
		if (icmp[8 + k] != ping_byte(k, seq)) {
			fail(FAIL_NET_PING, "net: eth%d: echo reply seq %u: data byte %u is 0x%02x, expected "
			     "0x%02x", i, seq, k, icmp[8 + k], ping_byte(k, seq));
			return;
		}
	if (!n->peer_known) {
		/* net.ping_noarp: the host found our MAC with its own ARP request; take its MAC from here. */
		memcpy(n->peer_mac, f + 6, 6);
		n->peer_known = true;
	}
	if (!mac_eq(f, n->mac) || !mac_eq(f + 6, n->peer_mac)) {
		fail(FAIL_NET_PING, "net: eth%d: echo reply seq %u: Ethernet %s -> %s, expected %s -> %s",
		     i, seq, mac_str(f + 6), mac_str(f), mac_str(n->peer_mac), mac_str(n->mac));
		return;
	}
	w->result = 1;
}

/* Check one used RX entry's header and length; false (after fail()) if malformed. */
static bool rx_check(int i, uint32_t id, uint32_t len, uint32_t *frame_len)
{
	struct nic *n = &nics[i];

	if (id >= n->rxq.size || len > BUF_SIZE || len < HDR_LEN + ETH_HLEN) {
		fail(FAIL_NET_RX, "net: eth%d: rx used entry id %u len %u (queue size %u, %u-byte buffers)",
		     i, id, len, n->rxq.size, BUF_SIZE);
		return false;
	}
	const struct net_hdr *h = (const struct net_hdr *)mem[i].rxbuf[id];
	if ((h->flags & HDR_F_NEEDS_CSUM) || h->gso_type != GSO_NONE ||
	    ((n->accepted & (1ULL << F_MRG_RXBUF)) && h->num_buffers != 1)) {
		fail(FAIL_NET_RX, "net: eth%d: rx header flags 0x%x gso_type %u num_buffers %u; expected no "
		     "NEEDS_CSUM, GSO_NONE%s (no offloads negotiated)", i, h->flags, h->gso_type,
		     h->num_buffers, n->accepted & (1ULL << F_MRG_RXBUF) ? ", 1 buffer" : "");
		return false;
	}
	*frame_len = len - HDR_LEN;
	return true;
}

/*
 * Take frames until w is satisfied or the bounded wait ends; every buffer
 * goes back to the device. Returns w->result (0: timed out, not reported).
 */
static int rx_wait(int i, struct wait_ctx *w)
{
	struct nic *n = &nics[i];
	struct vq *vq = &mem[i].rx;
	struct wait_clock clock;

	wait_clock_start(&clock, NET_WAIT_TSC);
	w->result = 0;
	for (uint32_t spins = 0; !w->result; spins++) {
		uint16_t used = *(volatile uint16_t *)&vq->used.idx;
		if (used == n->rxq.used_seen) {
			if (wait_clock_expired(&clock) || spins > NET_WAIT_SPINS)
				break;
			continue;
		}
		compiler_barrier();
		uint32_t id = vq->used.ring[n->rxq.used_seen % n->rxq.size].id;
		uint32_t len = vq->used.ring[n->rxq.used_seen % n->rxq.size].len;
		uint32_t flen;
		n->rxq.used_seen++;
		if (!rx_check(i, id, len, &flen)) {
			w->result = -1;
			break;
		}
		n->rx_frames++;
		if (!n->irq_checked) {
			/* Interrupts were not suppressed: the device must set InterruptStatus bit 0 (right after the used entry). */
			uint32_t is = vm_rd(n->base, VM_IRQ_STATUS);
			uint64_t deadline = rdtsc() + WAIT_TSC;
			for (uint32_t spins = 0; !(is & 1) && rdtsc() < deadline && spins < WAIT_SPINS; spins++)
				is = vm_rd(n->base, VM_IRQ_STATUS);
			n->irq_checked = true;
			if (!(is & 1)) {
				fail(FAIL_NET_RX, "net: eth%d: InterruptStatus 0x%x after a received frame, "
				     "expected bit 0", i, is);
				w->result = -1;
				break;
			}
			vm_wr(n->base, VM_IRQ_ACK, is);
		}
		const uint8_t *f = mem[i].rxbuf[id] + HDR_LEN;
		uint16_t type = get16(f + 12);
		if (!mac_eq(f, n->mac) && !mac_eq(f, bcast))
			n->rx_ignored++;
		else if (type == 0x0806)
			rx_arp(i, f, flen, w);
		else if (type == 0x0800)
			rx_ipv4(i, f, flen, w);
		else
			n->rx_ignored++;
		rx_post(i, (uint16_t)id);
		publish(n, RXQ, vq, &n->rxq);
	}
	return w->result;
}

/* ---- operations ---- */

static bool set_addrs(int i, const struct op *o)
{
	struct nic *n = &nics[i];

	if (n->ip != o->ip || n->peer_ip != o->peer) {
		n->ip = o->ip;
		n->peer_ip = o->peer;
		n->peer_known = false;
	}
	return true;
}

static bool do_arp(int i, const struct op *o)
{
	struct nic *n = &nics[i];
	static const uint8_t zero[6];
	struct wait_ctx w = { .want = W_ARP_REPLY };

	set_addrs(i, o);
	if (!send_arp(i, 1, bcast, zero, n->peer_ip))
		return false;
	int r = rx_wait(i, &w);
	if (r == 0)
		fail(FAIL_NET_ARP, "net: eth%d: no ARP reply from %s in the bounded wait (%u frames received, "
		     "%u ignored)", i, ip_str(n->peer_ip), n->rx_frames, n->rx_ignored);
	if (r != 1)
		return false;
	gprintf("net: eth%d: arp reply from %s: is at %s\n", i, ip_str(n->peer_ip), mac_str(n->peer_mac));
	return true;
}

static void do_ping(int i, const struct op *o)
{
	struct nic *n = &nics[i];

	set_addrs(i, o);
	if (!n->peer_known && !o->noarp && !do_arp(i, o))
		return;
	for (uint32_t seq = 1; seq <= o->count; seq++) {
		struct wait_ctx w = { .want = W_ECHO_REPLY, .seq = seq, .size = o->size };
		if (!send_ping(i, seq, o->size))
			return;
		int r = rx_wait(i, &w);
		if (r == 0)
			fail(FAIL_NET_PING, "net: eth%d: no echo reply from %s to seq %u in the bounded wait "
			     "(%u frames received, %u ignored)", i, ip_str(n->peer_ip), seq, n->rx_frames,
			     n->rx_ignored);
		if (r != 1)
			return;
		gprintf("net: eth%d: ping %s seq %u: reply ok (%u bytes)%s\n", i, ip_str(n->peer_ip), seq,
			o->size, o->noarp && seq == 1 ? ", sent without ARP to ff:ff:ff:ff:ff:ff" : "");
	}
}

static void do_mac(int i, const struct op *o)
{
	if (!mac_eq(nics[i].mac, o->mac))
		fail(FAIL_NET_MAC, "net: eth%d: config MAC is %s, expected %s", i, mac_str(nics[i].mac),
		     mac_str(o->mac));
	else
		gprintf("net: eth%d: mac %s as expected\n", i, mac_str(o->mac));
}

static void do_link(int i)
{
	struct nic *n = &nics[i];

	if (!(n->features & (1ULL << F_STATUS)))
		fail(FAIL_NET_LINK, "net: eth%d: VIRTIO_NET_F_STATUS not offered", i);
	else if (!(n->status & LINK_UP))
		fail(FAIL_NET_LINK, "net: eth%d: config status 0x%x: link is down", i, n->status);
	else
		gprintf("net: eth%d: link up\n", i);
}

void net_run(const struct boot_info *bi, const struct fdt_info *fi, const struct acpi_info *ai)
{
	const struct virtio_mmio_loc *locs;
	const char *from;

	int nw = virtio_locate(bi, fi, ai, cfg.find, &locs, &from);
	if (nw < 0) {
		fail(FAIL_NET_FIND, "net: no valid %s to find the devices in",
		     cfg.find == VFIND_FDT ? "device tree" : "ACPI DSDT");
		return;
	}
	for (int k = 0; k < nw; k++) {
		if (virtio_window_id(&locs[k], FAIL_NET_FIND, "net") != VIRTIO_ID_NET || nr_nics == MAX_NICS)
			continue;
		nics[nr_nics++] = (struct nic){ .base = locs[k].base, .irq = locs[k].irq };
	}
	gprintf("net: %d network devices among %d virtio-mmio devices from the %s\n", nr_nics, nw, from);
	if (cfg.want_count && (uint64_t)nr_nics != cfg.count)
		fail(FAIL_NET_FIND, "net: %d network devices, expected %lu", nr_nics, cfg.count);
	/* Set up every NIC (each gets its line, with its MAC). */
	for (int i = 0; i < nr_nics; i++)
		nic_init(i);
	for (int k = 0; k < cfg.nr_ops; k++) {
		const struct op *o = &cfg.ops[k];
		if (o->nic >= nr_nics) {
			fail(FAIL_NET_FIND, "net: no eth%d (%d network devices)", o->nic, nr_nics);
			continue;
		}
		if (!nics[o->nic].ok)
			continue;
		switch (o->kind) {
		case OP_MAC: do_mac(o->nic, o); break;
		case OP_LINK: do_link(o->nic); break;
		case OP_ARP: do_arp(o->nic, o); break;
		case OP_PING: do_ping(o->nic, o); break;
		}
	}
	for (int i = 0; i < nr_nics; i++)
		if (nics[i].ok && (nics[i].tx_frames || nics[i].rx_frames))
			gprintf("net: eth%d: sent %u frames, received %u (%u ignored), answered %u ARP "
				"requests\n", i, nics[i].tx_frames, nics[i].rx_frames, nics[i].rx_ignored,
				nics[i].arp_answered);
}
