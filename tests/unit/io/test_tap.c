/* test_tap.c - tap_open() against the real tun driver, each test in its own network namespace; MAC rules. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "io/tap.h"

/*
 * Criterion runs every test in its own process, so unsharing the network
 * namespace there gives each test an empty world (only a down "lo") that
 * vanishes with it, whatever the test leaves behind.
 */
static void enter_netns(void)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		cr_skip_test("/dev/net/tun: %s: cannot test taps here", strerror(errno));
	close(fd);
	if (unshare(CLONE_NEWNET) < 0)
		cr_skip_test("unshare(CLONE_NEWNET): %s: tap tests need CAP_SYS_ADMIN (run as root)",
			     strerror(errno));
	log_set_level(LOG_ERROR);
}

/* Create a persistent tun/tap the way `ip tuntap add` does; owner -1: none. */
static void make_persistent(const char *name, short flags, long owner)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = flags;
	cr_assert_eq(ioctl(fd, TUNSETIFF, &ifr), 0, "TUNSETIFF %s: %s", name, strerror(errno));
	if (owner >= 0)
		cr_assert_eq(ioctl(fd, TUNSETOWNER, owner), 0);
	cr_assert_eq(ioctl(fd, TUNSETPERSIST, 1), 0);
	close(fd);
}

static short if_flags(const char *name)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(s, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0, "%s: %s", name, strerror(errno));
	close(s);
	return ifr.ifr_flags;
}

/* Drop CAP_NET_ADMIN from this (test) process, as for an ordinary user. */
static void drop_net_admin(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	unsigned int bit = 1u << (CAP_NET_ADMIN % 32);

	cr_assert_eq(syscall(SYS_capget, &h, d), 0);
	d[CAP_NET_ADMIN / 32].effective &= ~bit;
	d[CAP_NET_ADMIN / 32].permitted &= ~bit;
	cr_assert_eq(syscall(SYS_capset, &h, d), 0, "capset: %s", strerror(errno));
}

static void expect_error(const char *name, int want, const char *msg)
{
	struct tap t;

	err_clear();
	int ret = tap_open(&t, name);
	cr_assert_eq(ret, -want, "tap_open(%s) = %d (%s), want %d", name, ret, err_msg(), -want);
	/* What is wrong, from the first character: the caller (vmm/devices.c) prefixes "--net tap=NAME: ". */
	cr_assert_eq(strncmp(err_msg(), msg, strlen(msg)), 0, "got '%s', want '%s...'", err_msg(), msg);
	cr_assert_eq(t.fd, -1);
}

Test(tap, creates_a_missing_tap_up_and_it_goes_away_on_close)
{
	struct tap t;
	int hdr = 0;

	enter_netns();
	cr_assert_eq(if_nametoindex("mvt0"), 0);
	cr_assert_eq(tap_open(&t, "mvt0"), 0, "%s", err_msg());
	cr_assert(t.created);
	cr_assert_eq(t.up_error, 0);
	cr_assert_not(t.down);
	cr_assert_str_eq(t.name, "mvt0");
	cr_assert_neq(if_nametoindex("mvt0"), 0);
	cr_assert(if_flags("mvt0") & IFF_UP, "a created tap is brought up");
	cr_assert(fcntl(t.fd, F_GETFL) & O_NONBLOCK);
	cr_assert(fcntl(t.fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(ioctl(t.fd, TUNGETVNETHDRSZ, &hdr), 0);
	cr_assert_eq(hdr, TAP_VNET_HDR_LEN);

	struct ifreq ifr = { 0 };
	cr_assert_eq(ioctl(t.fd, TUNGETIFF, &ifr), 0);
	cr_assert_eq(ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN),
		     IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);

	tap_close(&t);
	cr_assert_eq(t.fd, -1);
	cr_assert_eq(if_nametoindex("mvt0"), 0, "a tap we created is removed on close");
	tap_close(&t); /* twice is harmless */
}

Test(tap, attaches_an_existing_persistent_tap_and_leaves_it)
{
	struct tap t;

	enter_netns();
	make_persistent("mvt1", IFF_TAP | IFF_NO_PI, -1);
	cr_assert_not(if_flags("mvt1") & IFF_UP);
	cr_assert_eq(tap_open(&t, "mvt1"), 0, "%s", err_msg());
	cr_assert_not(t.created);
	cr_assert(t.down, "found down: the caller warns (tap_open() itself logs nothing)");
	cr_assert_not(if_flags("mvt1") & IFF_UP, "an existing tap is not reconfigured");
	int hdr = 0;
	cr_assert_eq(ioctl(t.fd, TUNGETVNETHDRSZ, &hdr), 0);
	cr_assert_eq(hdr, TAP_VNET_HDR_LEN);
	tap_close(&t);
	cr_assert_neq(if_nametoindex("mvt1"), 0, "a persistent tap stays");
	/* and it can be attached again */
	cr_assert_eq(tap_open(&t, "mvt1"), 0, "%s", err_msg());
	tap_close(&t);
}

Test(tap, busy)
{
	struct tap a;

	enter_netns();
	cr_assert_eq(tap_open(&a, "mvt2"), 0, "%s", err_msg());
	expect_error("mvt2", EBUSY, "tap is busy: another process has it open");
	tap_close(&a);

	make_persistent("mvt3", IFF_TAP | IFF_NO_PI, -1);
	cr_assert_eq(tap_open(&a, "mvt3"), 0, "%s", err_msg());
	expect_error("mvt3", EBUSY, "tap is busy");
	tap_close(&a);
}

Test(tap, lo_is_not_a_tap)
{
	enter_netns();
	expect_error("lo", ENODEV, "lo exists and is not a tap device");
}

Test(tap, tun_device_is_not_a_tap)
{
	enter_netns();
	make_persistent("mvtun0", IFF_TUN | IFF_NO_PI, -1);
	expect_error("mvtun0", EINVAL, "mvtun0 is a tun device (IP packets), not a tap");
}

Test(tap, multi_queue_tap_is_refused)
{
	enter_netns();
	make_persistent("mvt4", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE, -1);
	expect_error("mvt4", EINVAL, "cannot attach: the tap is multi_queue");
}

Test(tap, missing_tap_without_cap_net_admin)
{
	enter_netns();
	drop_net_admin();
	expect_error("mvt5", EPERM,
		     "no such tap, and creating it needs CAP_NET_ADMIN (create it first: "
		     "ip tuntap add dev mvt5 mode tap user $USER)");
}

Test(tap, tap_of_another_user_without_cap_net_admin)
{
	enter_netns();
	make_persistent("mvt6", IFF_TAP | IFF_NO_PI, (long)getuid() + 4242);
	drop_net_admin();
	expect_error("mvt6", EPERM, "not allowed to attach");
}

Test(tap, tap_of_this_user_without_cap_net_admin)
{
	struct tap t;

	enter_netns();
	make_persistent("mvt7", IFF_TAP | IFF_NO_PI, (long)getuid());
	drop_net_admin();
	cr_assert_eq(tap_open(&t, "mvt7"), 0, "%s", err_msg());
	cr_assert_not(t.created);
	tap_close(&t);
}

Test(tap, offloads_probed_then_off_until_negotiated)
{
	struct tap t;

	enter_netns();
	cr_assert_eq(tap_open(&t, "mvt8"), 0, "%s", err_msg());
	/* Every kernel with IFF_VNET_HDR takes checksum offload and TSO. */
	cr_assert_eq(t.offloads & (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6),
		     TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, "offloads 0x%x", t.offloads);
	cr_assert_eq(t.offloads & ~(unsigned int)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN |
						  TUN_F_UFO),
		     0);
	cr_assert_eq(tap_set_offload(&t, TUN_F_CSUM | TUN_F_TSO4), 0, "%s", err_msg());
	cr_assert_eq(tap_set_offload(&t, t.offloads), 0, "%s", err_msg());
	/* Bits the probe refused are never passed on. */
	unsigned int saved = t.offloads;
	t.offloads = TUN_F_CSUM;
	cr_assert_eq(tap_set_offload(&t, 0xff), 0, "%s", err_msg());
	t.offloads = saved;
	cr_assert_eq(tap_set_offload(&t, 0), 0, "%s", err_msg());
	tap_close(&t);
}

Test(tap, one_frame_per_write_with_a_vnet_header)
{
	struct tap t;
	uint8_t buf[TAP_VNET_HDR_LEN + 60] = { 0 };

	enter_netns();
	cr_assert_eq(tap_open(&t, "mvt9"), 0, "%s", err_msg());
	/* A broadcast frame behind an all-zero header (no offload): the tap takes it whole. */
	memset(buf + TAP_VNET_HDR_LEN, 0xff, 6);
	buf[TAP_VNET_HDR_LEN + 12] = 0x88;
	buf[TAP_VNET_HDR_LEN + 13] = 0xb5; /* local experimental ethertype */
	cr_assert_eq(write(t.fd, buf, sizeof(buf)), (ssize_t)sizeof(buf), "%s", strerror(errno));
	/* Nothing for us: a non-blocking read says so. */
	cr_assert_eq(read(t.fd, buf, sizeof(buf)), -1);
	cr_assert_eq(errno, EAGAIN);
	tap_close(&t);
}

Test(mac, default_is_stable_local_unicast_and_differs)
{
	uint8_t a[6], b[6], c[6], d[6];

	tap_default_mac("tap0", 0, a);
	tap_default_mac("tap0", 0, b);
	tap_default_mac("tap1", 0, c);
	tap_default_mac("tap0", 1, d);
	cr_assert_arr_eq(a, b, 6);
	cr_assert_arr_neq(a, c, 6);
	cr_assert_arr_neq(a, d, 6);
	cr_assert_eq(a[0], 0x02, "locally administered unicast");
	cr_assert_eq(c[0], 0x02);

	/* The documented rule, computed by hand: fmix64(FNV-1a 64 of "tap0" then byte 0). */
	uint64_t h = 0xcbf29ce484222325ULL;
	const uint8_t in[] = { 't', 'a', 'p', '0', 0 };
	for (size_t i = 0; i < sizeof(in); i++)
		h = (h ^ in[i]) * 0x100000001b3ULL;
	h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdULL;
	h = (h ^ (h >> 33)) * 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	for (int i = 1; i < 6; i++)
		cr_assert_eq(a[i], (uint8_t)(h >> (8 * (i - 1))));
	/* The value docs/virtio-net.md quotes. */
	char s[18];
	cr_assert_str_eq(mac_format(a, s), "02:04:93:33:ea:74");

	/* Similar names still differ in every byte but the first (well mixed). */
	int same = 0;
	for (int i = 1; i < 6; i++)
		same += a[i] == c[i];
	cr_assert_leq(same, 1);
}

Test(mac, random_is_local_unicast_and_fresh)
{
	uint8_t a[6], b[6];

	cr_assert_eq(tap_random_mac(a), 0);
	cr_assert_eq(tap_random_mac(b), 0);
	cr_assert_eq(a[0] & 3, 2, "first octet 0x%02x", a[0]);
	cr_assert_eq(b[0] & 3, 2);
	cr_assert_arr_neq(a, b, 6, "two random MACs are (practically) never equal");
}

Test(mac, format)
{
	const uint8_t m[6] = { 0x02, 0x00, 0xab, 0xcd, 0xef, 0x01 };
	char s[18];

	cr_assert_str_eq(mac_format(m, s), "02:00:ab:cd:ef:01");
}
