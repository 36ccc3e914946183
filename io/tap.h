/* tap.h - the host end of a virtio-net interface: open or create a tap with virtio-net headers, probe its offloads, pick MACs. */
#ifndef MICROVM_TAP_H
#define MICROVM_TAP_H

#include <stdbool.h>
#include <stdint.h>

#define TAP_VNET_HDR_LEN 12     /* virtio_net_hdr_v1 (with num_buffers) */
#define TAP_NAME_MAX 15         /* IFNAMSIZ - 1 */

struct tap {
	int fd;                     /* /dev/net/tun, non-blocking, one frame per read/write; -1: closed */
	char name[TAP_NAME_MAX + 1];
	bool created;               /* we created it: it disappears when fd is closed */
	int up_error;               /* created, but bringing it up failed with this errno; 0: it is up */
	bool down;                  /* an existing tap that is down: frames to it are dropped until it is up */
	/*
	 * TUN_F_* bits (linux/if_tun.h) the tap accepted in the probe. The tap
	 * is left with offloads 0 (plain frames only) until the guest
	 * negotiates: see tap_set_offload().
	 */
	unsigned int offloads;
};

/*
 * Open tap `name` for a VM: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, vnet header
 * size 12, O_NONBLOCK | O_CLOEXEC. An existing interface must be a
 * single-queue tap; it is attached as it is (one that is down: t->down). A
 * missing one is created (needs CAP_NET_ADMIN), not persistent, so it
 * disappears when the fd is closed, even if microvm is killed; it is brought
 * up (t->created; t->up_error if that failed). Then the offloads are probed
 * (t->offloads) and reset to 0. Nothing is logged: the caller tells the user
 * about t->created, t->up_error and t->down. Each failure is one line saying
 * what is wrong and the fix, returned as -errno with err_msg(); it does not
 * start with the tap's name, the caller prefixes what the user asked for:
 *   exists, not a tap (e.g. lo)  -ENODEV   "NAME exists and is not a tap device ..."
 *   tun (layer 3) device         -EINVAL   "NAME is a tun device ..."
 *   another process has it       -EBUSY    "tap is busy: another process has it open"
 *   owner/group refuses us       -EPERM    "not allowed to attach ..."
 *   missing, no CAP_NET_ADMIN    -EPERM    "no such tap, and creating it needs CAP_NET_ADMIN ..."
 * On failure *t is closed (fd -1).
 */
int tap_open(struct tap *t, const char *name);

/* Close the tap (a tap we created goes away). Safe on a closed or zeroed-then-closed tap. */
void tap_close(struct tap *t);

/*
 * net_backend.set_offload: ctx is the struct tap. Tell the tap which
 * offloaded frames (TUN_F_* bits) it may hand us, i.e. the guest accepts;
 * bits the probe refused are dropped. 0 or -errno with err_msg() ("tap NAME: ...").
 */
int tap_set_offload(void *ctx, unsigned int tun_flags);

/*
 * The default MAC of the index-th --net (0-based) on tap `name`: a locally
 * administered unicast address 02:h0:h1:h2:h3:h4, where h0..h4 are the low
 * five bytes (least significant first) of h = fmix64(FNV-1a-64(the name's
 * bytes, then one byte holding index)), fmix64 being MurmurHash3's 64-bit
 * finalizer. Stable across boots and hosts; different taps give different MACs.
 */
void tap_default_mac(const char *name, unsigned int index, uint8_t mac[6]);

/* A random locally administered unicast MAC (getrandom). 0 or -errno with err_msg(). */
int tap_random_mac(uint8_t mac[6]);

/* "xx:xx:xx:xx:xx:xx" into buf (at least 18 bytes); returns buf. */
char *mac_format(const uint8_t mac[6], char *buf);

#endif
