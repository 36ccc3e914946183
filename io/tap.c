/* tap.c - open or create a tap for virtio-net, with the checks a user needs to hear about before the guest starts (see tap.h). */
#include "io/tap.h"
#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define TUN_DEVICE "/dev/net/tun"
#define HOWTO_CREATE "ip tuntap add dev %s mode tap user $USER"

_Static_assert(TAP_NAME_MAX + 1 == IFNAMSIZ, "tap names are interface names");

enum link_kind { LINK_MISSING, LINK_TAP, LINK_TUN, LINK_OTHER };

/* A socket for interface ioctls; they work on any family, AF_INET is the usual one. */
static int ctl_socket(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return s;
}

/*
 * What is `name` in our network namespace? The tun driver answers ethtool's
 * driver query with driver "tun" and bus "tap" or "tun". Asked through a
 * socket, not /sys/class/net, because sysfs shows the namespace it was
 * mounted in, not necessarily ours.
 */
static enum link_kind link_kind(const char *name, char *driver, size_t dlen)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr = { 0 };
	enum link_kind k = LINK_OTHER;
	int s;

	driver[0] = '\0';
	if (!if_nametoindex(name))
		return LINK_MISSING; /* ENODEV; on any other failure TUNSETIFF will tell */
	s = ctl_socket();
	if (s < 0)
		return LINK_OTHER;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_data = (void *)&info;
	if (ioctl(s, SIOCETHTOOL, &ifr) == 0) {
		snprintf(driver, dlen, "%.*s", (int)sizeof(info.driver), info.driver);
		if (!strcmp(info.driver, "tun"))
			k = !strcmp(info.bus_info, "tap") ? LINK_TAP : LINK_TUN;
	} else if (errno == ENODEV) {
		k = LINK_MISSING;
	}
	close(s);
	return k;
}

/* Read (and with set, or in) the interface flags; 0 or -errno. */
static int link_flags(const char *name, short set, short *flags)
{
	struct ifreq ifr = { 0 };
	int s = ctl_socket(), ret = 0;

	if (s < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		ret = -errno;
	} else if (set && (ifr.ifr_flags & set) != set) {
		ifr.ifr_flags |= set;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			ret = -errno;
	}
	if (flags)
		*flags = ifr.ifr_flags;
	close(s);
	return ret;
}

/* Find what the tap accepts, from the richest set down; then leave it at 0 until the guest negotiates. */
static int probe_offloads(struct tap *t)
{
	static const unsigned int tries[] = {
		TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
		TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
		TUN_F_CSUM,
	};
	unsigned int ok = 0;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		if (ioctl(t->fd, TUNSETOFFLOAD, tries[i]) == 0) {
			ok = tries[i];
			break;
		}
	}
	/* Newer kernels may refuse UFO; it is asked for on its own so the rest stands. */
	if (ok && ioctl(t->fd, TUNSETOFFLOAD, ok | TUN_F_UFO) == 0)
		ok |= TUN_F_UFO;
	if (ioctl(t->fd, TUNSETOFFLOAD, 0) < 0)
		return err_set(errno, "cannot turn the tap's offloads off (TUNSETOFFLOAD): %s",
			       strerror(errno));
	t->offloads = ok;
	return 0;
}

static int attach_error(int e, const char *name, enum link_kind kind)
{
	if (e == EBUSY)
		return err_set(EBUSY, "tap is busy: another process has it open");
	if ((e == EPERM || e == EACCES) && kind == LINK_MISSING)
		return err_set(EPERM,
			       "no such tap, and creating it needs CAP_NET_ADMIN (create it first: " HOWTO_CREATE ")",
			       name);
	if (e == EPERM || e == EACCES)
		return err_set(EPERM,
			       "not allowed to attach: the tap belongs to another user or group (recreate it: ip tuntap del dev %s mode tap; " HOWTO_CREATE "; or run as root)",
			       name, name);
	if (e == EINVAL && kind == LINK_TAP)
		return err_set(EINVAL,
			       "cannot attach: the tap is multi_queue, microvm needs a single-queue tap (recreate it: ip tuntap del dev %s mode tap multi_queue; " HOWTO_CREATE ")",
			       name, name);
	return err_set(e, "cannot attach (TUNSETIFF): %s", strerror(e));
}

int tap_open(struct tap *t, const char *name)
{
	char driver[40];
	struct ifreq ifr = { 0 };
	unsigned int features = 0;
	int ret, hdr = TAP_VNET_HDR_LEN;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	if (!*name || strlen(name) > TAP_NAME_MAX)
		return err_set(EINVAL, "not a valid interface name");
	snprintf(t->name, sizeof(t->name), "%s", name);

	enum link_kind kind = link_kind(name, driver, sizeof(driver));
	if (kind == LINK_OTHER)
		return err_set(ENODEV, "%s exists and is not a tap device%s%s%s; pick another name",
			       name, driver[0] ? " (driver " : "", driver, driver[0] ? ")" : "");
	if (kind == LINK_TUN)
		return err_set(EINVAL,
			       "%s is a tun device (IP packets), not a tap (Ethernet frames); recreate it: ip tuntap del dev %s mode tun; " HOWTO_CREATE,
			       name, name, name);

	t->fd = open(TUN_DEVICE, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		int e = errno;
		return err_set(e, TUN_DEVICE ": %s%s", strerror(e),
			       e == ENOENT || e == ENODEV ? " (load the tun module: modprobe tun)" : "");
	}
	if (ioctl(t->fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR)) {
		ret = err_set(EOPNOTSUPP,
			      "this kernel's tun driver does not support virtio-net headers (IFF_VNET_HDR)");
		goto fail;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		ret = attach_error(errno, name, kind);
		goto fail;
	}
	t->created = kind == LINK_MISSING;
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		ret = err_set(errno, "cannot set the virtio-net header size to %d: %s", hdr,
			      strerror(errno));
		goto fail;
	}
	if ((ret = probe_offloads(t)) < 0)
		goto fail;

	short flags = 0;
	if (t->created) {
		/* We hold CAP_NET_ADMIN (we could create it), so a created tap is usable at once. */
		if ((ret = link_flags(name, IFF_UP, NULL)) < 0)
			t->up_error = -ret;
	} else if (link_flags(name, 0, &flags) == 0 && !(flags & IFF_UP)) {
		t->down = true;
	}
	return 0;
fail:
	close(t->fd);
	t->fd = -1;
	return ret;
}

void tap_close(struct tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

int tap_set_offload(void *ctx, unsigned int tun_flags)
{
	struct tap *t = ctx;
	unsigned int f = tun_flags & t->offloads;

	if (ioctl(t->fd, TUNSETOFFLOAD, f) < 0)
		return err_set(errno, "tap %s: TUNSETOFFLOAD 0x%x: %s", t->name, f, strerror(errno));
	return 0;
}

void tap_default_mac(const char *name, unsigned int index, uint8_t mac[6])
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	h = (h ^ (uint8_t)index) * 0x100000001b3ULL;
	/* FNV mixes upwards only: similar names would share high bytes. MurmurHash3's fmix64 spreads every bit. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	mac[0] = 0x02; /* locally administered, unicast */
	for (int i = 1; i < 6; i++)
		mac[i] = (uint8_t)(h >> (8 * (i - 1)));
}

int tap_random_mac(uint8_t mac[6])
{
	size_t got = 0;

	while (got < 6) {
		ssize_t n = getrandom(mac + got, 6 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(errno, "getrandom: %s", strerror(errno));
		got += (size_t)n;
	}
	mac[0] = (uint8_t)((mac[0] & ~1u) | 2u); /* unicast, locally administered */
	return 0;
}

char *mac_format(const uint8_t mac[6], char *buf)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
	return buf;
}
