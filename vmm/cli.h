/* cli.h - the microvm command line: flags, sizes, help text. */
#ifndef MICROVM_CLI_H
#define MICROVM_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/ioloop.h"

#define CLI_DEFAULT_CMDLINE "console=ttyS0"
#define CLI_MAX_DISKS 8
#define CLI_DISK_ID_MAX 20     /* virtio-blk serial: 20 bytes */
#define CLI_MAX_NICS 4
#define CLI_TAP_NAME_MAX 15    /* IFNAMSIZ - 1 */
#define CLI_MAX_OWNED 8        /* kernel, initrd, cmdline, run, user, api_sock, restore from a --config file */

/* One --disk PATH[,ro][,direct][,id=NAME]. */
struct disk_config {
	char path[PATH_MAX];
	bool ro;               /* opened read-only, advertised VIRTIO_BLK_F_RO */
	bool direct;           /* O_DIRECT */
	char id[CLI_DISK_ID_MAX + 1]; /* "" : derived from the file name */
};

/* One --net tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random]. */
struct net_config {
	char tap[CLI_TAP_NAME_MAX + 1]; /* host interface name */
	bool has_mac;          /* mac= given: use mac[] */
	bool random_mac;       /* mac=random: a fresh locally administered unicast MAC */
	uint8_t mac[6];        /* valid with has_mac: unicast, not all zero */
};

/* --stats: what microvm prints to stderr at exit. */
enum stats_mode { STATS_OFF, STATS_TEXT, STATS_JSON };

#define CLI_TIMEOUT_MAX_S 31536000.0  /* --timeout: at most a year */

struct vmm_config {
	const char *kernel;    /* required */
	const char *initrd;    /* NULL: none */
	const char *cmdline;   /* never NULL after cli_parse() */
	uint64_t mem;          /* bytes */
	int cpus;
	int verbosity;         /* -1 quiet, 0 normal, 1 verbose */
	int nr_disks;          /* --disk, in order: vda, vdb, ... */
	struct disk_config disks[CLI_MAX_DISKS];
	int nr_nics;           /* --net, in order: eth0, eth1, ... (after the disks) */
	struct net_config nics[CLI_MAX_NICS];
	enum io_engine io_engine;  /* --io-engine, default AUTO */
	bool cmdline_devices;  /* --cmdline-devices: virtio_mmio.device= on the command line */
	bool host_info;        /* --host-info: print the host profile and exit (no --kernel needed) */
	bool no_host_quirks;   /* --no-host-quirks: never add host-specific guest options */
	bool no_seccomp;       /* --no-seccomp: no per-thread seccomp filters (vmm/sandbox.h) */
	uint64_t timeout_ms;   /* --timeout: 0 none; else stop the VM (exit 124) this long after start */
	enum stats_mode stats; /* --stats[=text|json] */
	const char *run;       /* --run SCRIPT (vmm/run.h), NULL: none */
	const char *user;      /* --user USER[:GROUP] (vmm/privdrop.h), NULL: stay who we are */
	const char *api_sock;  /* --api-sock PATH (vmm/control.h), NULL: no control API */
	uint64_t start_ns;     /* when microvm started (CLOCK_MONOTONIC ns); 0: when vmm_build() began */
	const char *config;    /* --config FILE (vmm/config.h), NULL: none */
	const char *restore;   /* --restore DIR (vmm/snapshot.h), NULL: boot --kernel */
	bool machine_set;      /* --kernel, --initrd, --cmdline, --mem, --cpus or --run given */
	int nr_owned;          /* strings from the --config file that the pointers above use */
	char *owned[CLI_MAX_OWNED];
};

/*
 * The settings with a value, shared by the command line and the --config
 * file (vmm/config.h): both hand every value to cli_set(), so both accept
 * exactly the same values with the same checks.
 */
enum cli_key {
	CLI_KERNEL, CLI_INITRD, CLI_CMDLINE, CLI_MEM, CLI_CPUS, CLI_DISK, CLI_NET,
	CLI_IO_ENGINE, CLI_TIMEOUT, CLI_STATS, CLI_RUN, CLI_USER, CLI_API_SOCK, CLI_RESTORE,
};

/* Fill cfg with the defaults (no kernel, console=ttyS0, 256M, 1 vCPU, ...). */
void cli_defaults(struct vmm_config *cfg);

/*
 * Apply one setting: a string value exactly as on the command line ("512M",
 * "root.ext4,ro", "tap=tap0", "json"). A scalar replaces the current value,
 * CLI_DISK and CLI_NET append (at most CLI_MAX_DISKS / CLI_MAX_NICS, no tap
 * or MAC twice). String settings keep the pointer: val must outlive cfg.
 * name starts the error message ("--mem" on the command line). Returns 0 or
 * -EINVAL with err_msg() ("NAME VAL: must be ...").
 */
int cli_set(struct vmm_config *cfg, enum cli_key key, const char *name, const char *val);

/*
 * The checks on the whole configuration once every source is applied: a
 * kernel (unless --host-info), a disk slot left for --run. Returns 0 or
 * -EINVAL with err_msg().
 */
int cli_check(const struct vmm_config *cfg);

/* Free what cfg owns (the --config file's strings); safe after any cli_parse() result. */
void cli_free(struct vmm_config *cfg);

/*
 * Is `word` one of the space-separated words of s (prefix: does one of
 * them start with it, as "key=" does for "key=value")? Pure.
 */
bool cmdline_has_word(const char *s, const char *word, bool prefix);

/*
 * Parse argv into cfg: the defaults, then the --config FILE if one is given
 * (wherever it is on the command line), then every other flag, so a flag
 * replaces the file's value and --disk/--net come after the file's. Returns
 * 0 to run the VM, 1 when --help or --version was printed to out, or -EINVAL
 * with err_msg() for an unknown flag, a missing or bad value, a bad --config
 * file or a missing --kernel. Call cli_free(cfg) afterwards, whatever the result.
 */
int cli_parse(int argc, char *const argv[], struct vmm_config *cfg, FILE *out);

/*
 * Parse a --disk value "PATH[,ro][,direct][,id=NAME]" into d. Returns 0 or
 * -EINVAL with err_msg() (empty path, unknown option, id empty, longer than
 * 20 bytes or not printable ASCII, path too long).
 */
int parse_disk(const char *val, struct disk_config *d);

/*
 * Parse a --net value "tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random]" (options
 * in any order) into n. Returns 0 or -EINVAL with err_msg() (tap= missing,
 * name empty, longer than 15 bytes or with characters other than letters,
 * digits, '-', '_', '.'; bad MAC syntax, a multicast or all-zero MAC; an
 * unknown or repeated option). Duplicates across flags are cli_parse()'s.
 */
int parse_net(const char *val, struct net_config *n);

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
 * allowed, e.g. 0.5), at most CLI_TIMEOUT_MAX_S. Returns 0 with *ms (at least
 * 1) or -EINVAL; no message.
 */
int parse_timeout(const char *s, uint64_t *ms);

/* Print the help text. */
void cli_usage(FILE *out);

#endif
