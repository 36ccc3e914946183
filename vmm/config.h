/* config.h - the monitor's configuration: one checked structure, filled from the command line
 * (vmm/cli/cli.h) or a --config file (vmm/cli/config_file.h) through the same setter. */
#ifndef MICROVM_CONFIG_H
#define MICROVM_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/ratelimit.h"
#include "io/ioloop.h"
#include "vmm/sandbox/cgroup.h"

#define CFG_DEFAULT_CMDLINE "console=ttyS0"
#define CFG_MAX_DISKS 8
#define CFG_DISK_ID_MAX 20     /* virtio-blk serial: 20 bytes */
#define CFG_MAX_NICS 4
#define CFG_TAP_NAME_MAX 15    /* IFNAMSIZ - 1 */
#define CFG_MAX_OWNED 10       /* kernel, initrd, cmdline, run, user, api_sock, restore, jail, netns from a --config file */

/* One --disk PATH[,ro][,direct][,id=NAME][,overlay[=FILE]][,bw=LIMIT][,iops=LIMIT]. */
struct disk_config {
	char path[PATH_MAX];
	bool ro;               /* opened read-only, advertised VIRTIO_BLK_F_RO */
	bool direct;           /* O_DIRECT */
	bool overlay;          /* path is a read-only base; writes go to a copy-on-write overlay (io/overlay.h) */
	char overlay_path[PATH_MAX]; /* overlay=FILE; "" with overlay: a throw-away overlay */
	bool overlay_fresh;    /* --restore: overlay_path must not exist yet (a new overlay per clone) */
	bool has_overlay_src;  /* --restore: the new overlay starts as a copy of overlay_src_fd */
	int overlay_src_fd;    /* the snapshot's saved layer (owned by the snapshot) */
	char id[CFG_DISK_ID_MAX + 1]; /* "" : derived from the file name */
	struct rl_config limit; /* bw= (bytes of reads and writes), iops= (requests); zero: no limit */
};

/* One --net tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random][,rx_bw=|rx_pps=|tx_bw=|tx_pps=LIMIT]. */
struct net_config {
	char tap[CFG_TAP_NAME_MAX + 1]; /* host interface name */
	bool has_mac;          /* mac= given: use mac[] */
	bool random_mac;       /* mac=random: a fresh locally administered unicast MAC */
	uint8_t mac[6];        /* valid with has_mac: unicast, not all zero */
	struct rl_config rx, tx; /* rx_bw=/rx_pps=, tx_bw=/tx_pps=: bytes and frames; zero: no limit */
};

/* --stats: what microvm prints to stderr at exit. */
enum stats_mode { STATS_OFF, STATS_TEXT, STATS_JSON };

#define CFG_TIMEOUT_MAX_S 31536000.0  /* --timeout: at most a year */

struct vmm_config {
	const char *kernel;    /* required */
	const char *initrd;    /* NULL: none */
	const char *cmdline;   /* never NULL after cli_parse() */
	uint64_t mem;          /* bytes */
	int cpus;
	int verbosity;         /* -1 quiet, 0 normal, 1 verbose */
	int nr_disks;          /* --disk, in order: vda, vdb, ... */
	struct disk_config disks[CFG_MAX_DISKS];
	int nr_nics;           /* --net, in order: eth0, eth1, ... (after the disks) */
	struct net_config nics[CFG_MAX_NICS];
	enum io_engine io_engine;  /* --io-engine, default AUTO */
	bool cmdline_devices;  /* --cmdline-devices: virtio_mmio.device= on the command line */
	bool host_info;        /* --host-info: print the host profile and exit (no --kernel needed) */
	bool no_host_quirks;   /* --no-host-quirks: never add host-specific guest options */
	bool no_seccomp;       /* --no-seccomp: no per-thread seccomp filters (vmm/sandbox/sandbox.h) */
	uint64_t timeout_ms;   /* --timeout: 0 none; else stop the VM (exit 124) this long after start */
	enum stats_mode stats; /* --stats[=text|json] */
	const char *run;       /* --run SCRIPT (vmm/cli/run.h), NULL: none */
	char run_dev[16];      /* --run: the script's disk, "/dev/vdX" (run_prepare()); "": none */
	const char *user;      /* --user USER[:GROUP] (vmm/sandbox/privdrop.h), NULL: stay who we are */
	const char *api_sock;  /* --api-sock PATH (vmm/api/control.h), NULL: no control API */
	const char *shutdown_sock; /* --shutdown SOCKET: be a client of that VM's API (vmm/api/client.h), not a VMM */
	uint64_t start_ns;     /* when microvm started (CLOCK_MONOTONIC ns); 0: when vmm_build() began */
	const char *config;    /* --config FILE (vmm/cli/config_file.h), NULL: none */
	const char *restore;   /* --restore DIR (vmm/snapshot.h), NULL: boot --kernel */
	bool verify_memory;    /* --verify-memory: check every memory extent's CRC before the guest runs */
	bool paused;           /* --paused: build everything, run the vCPUs only at POST /vm/resume */
	bool no_working_set;   /* --no-working-set: do not prefetch DIR/workingset */
	uint64_t record_ws_ms; /* --record-working-set SECS: record the pages touched this long; 0: no */
	const char *jail;      /* --jail DIR (vmm/sandbox/jail.h), NULL: no jail */
	const char *netns;     /* --netns PATH: the network namespace to join before the taps open */
	struct cgroup_config cgroup; /* --cgroup PATH[,...] (vmm/sandbox/cgroup.h); .set false: none */
	bool machine_set;      /* --kernel, --initrd, --cmdline, --mem, --cpus or --run given */
	int nr_owned;          /* strings from the --config file that the pointers above use */
	char *owned[CFG_MAX_OWNED];
};

/*
 * The settings with a value, shared by the command line and the --config
 * file (vmm/cli/config_file.h): both hand every value to config_set(), so both
 * accept exactly the same values with the same checks.
 */
enum config_key {
	CFG_KERNEL, CFG_INITRD, CFG_CMDLINE, CFG_MEM, CFG_CPUS, CFG_DISK, CFG_NET,
	CFG_IO_ENGINE, CFG_TIMEOUT, CFG_STATS, CFG_RUN, CFG_USER, CFG_API_SOCK, CFG_RESTORE,
	CFG_VERIFY_MEMORY, CFG_PAUSED, CFG_NO_WORKING_SET, CFG_RECORD_WORKING_SET,
	CFG_JAIL, CFG_NETNS, CFG_CGROUP,
};

/* Fill cfg with the defaults (no kernel, console=ttyS0, 256M, 1 vCPU, ...). */
void config_defaults(struct vmm_config *cfg);

/*
 * Apply one setting: a string value exactly as on the command line ("512M",
 * "root.ext4,ro", "tap=tap0", "json"). A scalar replaces the current value,
 * The switches (CFG_VERIFY_MEMORY, CFG_PAUSED, CFG_NO_WORKING_SET) take
 * "true" or "false". CFG_DISK and CFG_NET append (at most CFG_MAX_DISKS / CFG_MAX_NICS, no tap
 * or MAC twice). String settings keep the pointer: val must outlive cfg.
 * name starts the error message ("--mem" on the command line). Returns 0 or
 * -EINVAL with err_msg() ("NAME VAL: must be ...").
 */
int config_set(struct vmm_config *cfg, enum config_key key, const char *name, const char *val);

/*
 * The checks on the whole configuration once every source is applied: a
 * kernel (unless --host-info), a disk slot left for --run. Returns 0 or
 * -EINVAL with err_msg().
 */
int config_check(const struct vmm_config *cfg);

/* Free what cfg owns (the --config file's strings); safe after any cli_parse() result. */
void config_free(struct vmm_config *cfg);

/*
 * Parse a --disk value "PATH[,ro][,direct][,id=NAME][,overlay[=FILE]][,bw=LIMIT][,iops=LIMIT]"
 * into d (overlay refused with ro or direct; LIMIT: parse_limit()). Returns 0 or
 * -EINVAL with err_msg() (empty path, unknown option, id empty, longer than
 * 20 bytes or not printable ASCII, path too long).
 */
int parse_disk(const char *val, struct disk_config *d);

/*
 * Parse a --net value "tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random]" plus
 * rate limits rx_bw=, rx_pps=, tx_bw=, tx_pps= (parse_limit(); options in any
 * order) into n. Returns 0 or -EINVAL with err_msg() (tap= missing,
 * name empty, longer than 15 bytes or with characters other than letters,
 * digits, '-', '_', '.'; bad MAC syntax, a multicast or all-zero MAC; an
 * unknown or repeated option). Duplicates across flags are cli_parse()'s.
 */
int parse_net(const char *val, struct net_config *n);

/*
 * Parse a rate limit (base/ratelimit.h), s[0..len): "SIZE[/MS][+BURST]" -
 * a bucket of SIZE tokens refilled in MS milliseconds (default 1000, so
 * SIZE alone is a rate per second, 1 to 3600000) plus a one-time BURST.
 * bytes: SIZE and BURST take the K, M, G, T suffixes of parse_size();
 * otherwise (operations, frames) plain numbers. "0": no limit. Sizes up
 * to TB_MAX_TOKENS. Returns 0 or -EINVAL; no message (LIMIT_SYNTAX is the hint).
 */
int parse_limit(const char *s, size_t len, bool bytes, struct tb_config *out);
#define LIMIT_SYNTAX "SIZE[/MS][+BURST], e.g. 10M, 1M/100, 10M+100M, 1000; 0 = no limit"

/* Write c in the syntax parse_limit() reads ("0" for no limit). */
void format_limit(const struct tb_config *c, char *buf, size_t size);

/*
 * Parse "XX:XX:XX:XX:XX:XX" (hex, either case, exactly two digits per
 * octet) into mac. Returns 0 or -EINVAL; no message, no check of the bits.
 */
int parse_mac(const char *s, size_t len, uint8_t mac[6]);

/*
 * Parse a size: a decimal number with an optional suffix K, M, G, T (powers of
 * 1024, case-insensitive, optional trailing "B" or "iB"); a plain number is bytes.
 * Returns 0 or -EINVAL/-ERANGE.
 */
int parse_size(const char *s, uint64_t *out);

/*
 * Parse a --timeout value: a positive decimal number of seconds (fractions
 * allowed, e.g. 0.5), at most CFG_TIMEOUT_MAX_S. Returns 0 with *ms (at least
 * 1) or -EINVAL; no message.
 */
int parse_timeout(const char *s, uint64_t *ms);

#endif
