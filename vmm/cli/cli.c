/* cli.c - command-line parsing for microvm (see cli.h). */
#include "vmm/cli/cli.h"
#include "firmware/machine.h"
#include "vmm/cli/config_file.h"
#include "vmm/api/client.h"
#include "vmm/cli/version.h"
#include "base/err.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void cli_usage(FILE *out)
{
	fprintf(out,
		"Usage: microvm --kernel PATH [options]\n"
		"\n"
		"Boot a Linux kernel (or any kernel in one of the formats below) in a KVM\n"
		"virtual machine with a serial console on stdin/stdout.\n"
		"\n"
		"  --config FILE    read these settings from a JSON file (docs/config.md);\n"
		"                   flags replace its values, --disk/--net come after its\n"
		"                   own; its relative paths start from its directory\n"
		"  --kernel PATH    kernel to boot (required): a bzImage, an ELF vmlinux, an\n"
		"                   ELF with a PVH entry note, or a gzip/zstd/xz/lz4-compressed\n"
		"                   ELF. A bzImage's payload is decompressed on the host.\n"
		"  --initrd PATH    initial ramdisk, loaded high in RAM\n"
		"  --cmdline STR    kernel command line (default \"%s\")\n"
		"  --mem SIZE       guest RAM, e.g. 512M or 2G (default %lluM, %lluM..%lluG)\n"
		"  --cpus N         number of vCPUs (default 1, at most %d)\n"
		"  --disk PATH[,ro][,direct][,id=NAME][,overlay[=FILE]][,bw=LIMIT][,iops=LIMIT]\n"
		"                   raw disk image as a virtio-blk device; repeatable (at most\n"
		"                   %d), in order /dev/vda, vdb, ... ro: read-only; direct:\n"
		"                   O_DIRECT; id: serial the guest sees (at most 20 bytes);\n"
		"                   overlay=FILE: PATH is a read-only base shared by any VMs,\n"
		"                   writes go to copy-on-write FILE (created if missing);\n"
		"                   overlay alone: a throw-away overlay, gone at exit;\n"
		"                   bw=, iops=: rate limits in bytes and requests (below)\n"
		"  --net tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random][,rx_bw=|rx_pps=|tx_bw=|tx_pps=LIMIT]\n"
		"                   a virtio-net interface on host tap NAME; repeatable (at\n"
		"                   most %d), in order eth0, eth1, ... An existing tap is\n"
		"                   attached; a missing one is created (needs CAP_NET_ADMIN)\n"
		"                   and removed at exit. Default MAC: 02:.. derived from NAME\n"
		"                   and the interface's position (stable across boots);\n"
		"                   rx_bw=, tx_bw= (bytes), rx_pps=, tx_pps= (frames): limits\n"
		"                   LIMIT: SIZE[/MS][+BURST], a token bucket of SIZE refilled in\n"
		"                   MS ms (default 1000: SIZE per second) plus a one-time BURST,\n"
		"                   e.g. bw=50M, iops=2000+10000, tx_bw=1M/100; 0: no limit.\n"
		"                   Changed at run time with PATCH /vm/disks/vdX, /vm/nets/ethN\n"
		"                   (see docs/rate-limits.md)\n"
		"  --io-engine E    how disk and tap I/O is done: auto (io_uring if the host\n"
		"                   allows it, else sync), uring, or sync (thread pool)\n"
		"                   (default auto)\n"
		"  --cmdline-devices\n"
		"                   also list the virtio-mmio devices on the kernel command\n"
		"                   line (virtio_mmio.device=...); automatic with acpi=off\n"
		"  --host-info      print what kind of KVM host this is (a probe VM checks\n"
		"                   whether guest kernel code is emulated and whether guest\n"
		"                   user mode can make system calls) and the guest options\n"
		"                   microvm would add, then exit\n"
		"  --no-host-quirks never add host-specific options to a Linux command line\n"
		"                   (see docs/host-quirks.md)\n"
		"  --run SCRIPT     run SCRIPT in the guest and exit with its status: it goes\n"
		"                   to the guest on an extra read-only disk named by\n"
		"                   microvm.run=/dev/vdX on the kernel command line, for the\n"
		"                   image's init (see docs/cli-runs.md)\n"
		"  --timeout SECS   stop the VM after SECS seconds (e.g. 30 or 0.5) and exit\n"
		"                   with status 124\n"
		"  --stats[=text|json|off]\n"
		"                   at exit, print to stderr the time to the first guest\n"
		"                   output, to Linux's \"Run /init\" line and to exit, and\n"
		"                   the VM exits by kind and device (json: one line for\n"
		"                   scripts)\n"
		"  --user USER[:GROUP]\n"
		"                   once /dev/kvm, the disks and the taps are open, run as\n"
		"                   USER (name or uid; GROUP: its primary group by default)\n"
		"                   with no way back to root (needs root to start)\n"
		"  --api-sock PATH  serve the control API (HTTP/1.1, JSON) on a Unix socket at\n"
		"                   PATH, owner-only: state, pause, resume, shutdown (the\n"
		"                   guest's power button), stop, metrics, snapshot\n"
		"                   (see docs/api.md)\n"
		"  --restore DIR    resume the VM saved in the snapshot directory DIR (made\n"
		"                   by POST /vm/snapshot); the snapshot defines memory,\n"
		"                   vCPUs and devices; --disk PATH[,id=ID] gives each disk\n"
		"                   its image (by id, else in order), --net tap=NAME each\n"
		"                   NIC its tap, both required (see docs/snapshot.md)\n"
		"  --verify-memory  with --restore: check every memory extent's checksum\n"
		"                   before the guest runs (reads the whole memory file);\n"
		"                   by default pages load when the guest first touches them\n"
		"  --paused         build the VM (or restore it) but run no vCPU until\n"
		"                   POST /vm/resume on --api-sock (a pre-warmed pool)\n"
		"  --record-working-set SECS\n"
		"                   with --restore: record which pages of the memory file\n"
		"                   the guest touches in its first SECS seconds (or until\n"
		"                   POST /vm/working-set) into DIR/workingset; later\n"
		"                   restores prefetch them while the vCPUs start\n"
		"  --no-working-set with --restore: do not prefetch DIR/workingset\n"
		"  --jail DIR       once everything is open, run the VMM in new mount, PID,\n"
		"                   IPC and UTS namespaces with DIR as its root (pivot_root),\n"
		"                   open files, processes and core dumps limited, then\n"
		"                   --user and the seccomp filters; snapshots and the\n"
		"                   --api-sock (which must be inside DIR) live in DIR; DIR:\n"
		"                   absolute, yours or --user's, writable by no one else\n"
		"                   (see docs/jail.md)\n"
		"  --netns PATH     join the network namespace PATH (e.g. /run/netns/NAME)\n"
		"                   before the taps are opened\n"
		"  --cgroup PATH[,memory.max=SIZE][,cpu.max=QUOTA[/PERIOD]][,pids.max=N]\n"
		"                   run the VM in the cgroup v2 group /sys/fs/cgroup/PATH\n"
		"                   (created if missing, removed at exit if microvm made\n"
		"                   it), with these limits; guest RAM counts against\n"
		"                   memory.max; a VM over it is killed: exit status 125\n"
		"  --shutdown SOCKET\n"
		"                   instead of running a VM: press the ACPI power button of\n"
		"                   the VM whose --api-sock is SOCKET and wait for it to\n"
		"                   exit, at most --timeout SECS (default 30, at most\n"
		"                   3600); exit 0 once it has, 124 if it still runs, 1 if\n"
		"                   nothing answers on SOCKET or the VM refuses (paused)\n"
		"  --no-seccomp     run without the seccomp filters that limit each thread\n"
		"                   to the system calls it needs (for debugging; see\n"
		"                   docs/seccomp.md)\n"
		"  -q, --quiet      only print warnings and errors from microvm itself\n"
		"  -v, --verbose    print debug messages\n"
		"  -h, --help       print this help and exit\n"
		"  -V, --version    print the version and the git revision, and exit\n"
		"\n"
		"Console: the guest's COM1 is connected to stdin/stdout. On a terminal,\n"
		"type Ctrl-A x to quit, Ctrl-A Ctrl-A to send Ctrl-A.\n"
		"\n"
		"Exit status: 0 guest power-off or reset; N what the guest wrote to the\n"
		"exit-status port 0x%x; 1 microvm error; 2 bad command line;\n"
		"120 guest triple fault; 121 guest stopped on an error KVM cannot handle;\n"
		"122 guest kernel panic (pvpanic); 123 --run: the guest ended without\n"
		"reporting the script's status; 124 --timeout (or a shutdown\n"
		"request's deadline) expired; 125 --cgroup: the VM went over memory.max.\n"
		"\n"
		"Example:\n"
		"  microvm --kernel bzImage --mem 512M --cpus 2 --cmdline \"console=ttyS0\"\n",
		CFG_DEFAULT_CMDLINE, (unsigned long long)(MV_MEM_DEFAULT >> 20),
		(unsigned long long)(MV_MEM_MIN >> 20), (unsigned long long)(MV_MEM_MAX >> 30),
		MV_MAX_VCPUS, CFG_MAX_DISKS, CFG_MAX_NICS, MV_PORT_EXIT);
}

/* The flags: a name, then what it does (a setting with a value, or one of the switches). */
enum flag_kind { F_SET, F_HELP, F_VERSION, F_QUIET, F_VERBOSE, F_CMDLINE_DEVICES, F_HOST_INFO,
		 F_NO_HOST_QUIRKS, F_NO_SECCOMP, F_STATS, F_CONFIG, F_SWITCH, F_SHUTDOWN };

static const struct flag {
	const char *name, *alias;
	enum flag_kind kind;
	enum config_key key;       /* F_SET, F_SWITCH (set to "true") */
} flags[] = {
	{ "--help", "-h", F_HELP, 0 },
	{ "--version", "-V", F_VERSION, 0 },
	{ "--quiet", "-q", F_QUIET, 0 },
	{ "--verbose", "-v", F_VERBOSE, 0 },
	{ "--cmdline-devices", NULL, F_CMDLINE_DEVICES, 0 },
	{ "--host-info", NULL, F_HOST_INFO, 0 },
	{ "--no-host-quirks", NULL, F_NO_HOST_QUIRKS, 0 },
	{ "--no-seccomp", NULL, F_NO_SECCOMP, 0 },
	{ "--stats", NULL, F_STATS, 0 },        /* no separate value: only --stats=FORMAT */
	{ "--config", NULL, F_CONFIG, 0 },
	{ "--kernel", NULL, F_SET, CFG_KERNEL },
	{ "--initrd", NULL, F_SET, CFG_INITRD },
	{ "--cmdline", NULL, F_SET, CFG_CMDLINE },
	{ "--mem", NULL, F_SET, CFG_MEM },
	{ "--cpus", NULL, F_SET, CFG_CPUS },
	{ "--disk", NULL, F_SET, CFG_DISK },
	{ "--net", NULL, F_SET, CFG_NET },
	{ "--io-engine", NULL, F_SET, CFG_IO_ENGINE },
	{ "--timeout", NULL, F_SET, CFG_TIMEOUT },
	{ "--run", NULL, F_SET, CFG_RUN },
	{ "--user", NULL, F_SET, CFG_USER },
	{ "--api-sock", NULL, F_SET, CFG_API_SOCK },
	{ "--restore", NULL, F_SET, CFG_RESTORE },
	{ "--verify-memory", NULL, F_SWITCH, CFG_VERIFY_MEMORY },
	{ "--paused", NULL, F_SWITCH, CFG_PAUSED },
	{ "--no-working-set", NULL, F_SWITCH, CFG_NO_WORKING_SET },
	{ "--record-working-set", NULL, F_SET, CFG_RECORD_WORKING_SET },
	{ "--jail", NULL, F_SET, CFG_JAIL },
	{ "--netns", NULL, F_SET, CFG_NETNS },
	{ "--cgroup", NULL, F_SET, CFG_CGROUP },
	{ "--shutdown", NULL, F_SHUTDOWN, 0 },
};

/*
 * Find argv[*i]'s flag and its value ("--flag=VAL", or the next argument for
 * flags that take one; *i then moves past it). Returns 0 or -EINVAL.
 */
static int next_flag(int argc, char *const argv[], int *i, const struct flag **f, const char **val)
{
	const char *a = argv[*i];

	for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
		size_t n = strlen(flags[k].name);
		bool takes_value = flags[k].kind == F_SET || flags[k].kind == F_CONFIG || flags[k].kind == F_SHUTDOWN;

		if (flags[k].alias && !strcmp(a, flags[k].alias)) {
			*f = &flags[k], *val = NULL;
			return 0;
		}
		if (strncmp(a, flags[k].name, n) || (a[n] && a[n] != '='))
			continue;
		*f = &flags[k];
		*val = a[n] == '=' ? a + n + 1 : NULL;
		if (!takes_value && flags[k].kind != F_STATS && *val)
			break;  /* --quiet=x */
		if (takes_value && !*val) {
			if (*i + 1 >= argc)
				return err_set(EINVAL, "%s needs a value (see microvm --help)", flags[k].name);
			*val = argv[++*i];
		}
		return 0;
	}
	return err_set(EINVAL, "unknown option '%s' (see microvm --help)", a);
}

int cli_parse(int argc, char *const argv[], struct vmm_config *cfg, FILE *out)
{
	const struct flag *f;
	const char *val;
	const char *other = NULL;  /* a flag that does not go with --shutdown */
	int ret;

	config_defaults(cfg);

	/* First the --config file, so the flags replace its values wherever they are. */
	bool help = false;
	for (int i = 1; i < argc && !help; i++) {
		if (next_flag(argc, argv, &i, &f, &val) < 0)
			break;   /* reported in order below */
		if (f->kind == F_HELP || f->kind == F_VERSION)
			help = true;   /* --help and --version even with a bad file */
		if (f->kind != F_CONFIG)
			continue;
		if (cfg->config)
			return err_set(EINVAL, "--config %s: only one --config (already %s)", val, cfg->config);
		if (!*val)
			return err_set(EINVAL, "--config: empty path");
		cfg->config = val;
	}
	err_clear();
	if (cfg->config && !help && (ret = config_file_load(cfg->config, cfg)) < 0)
		return ret;

	for (int i = 1; i < argc; i++) {
		if ((ret = next_flag(argc, argv, &i, &f, &val)) < 0)
			return ret;
		if (!other && f->kind != F_SHUTDOWN && f->kind != F_QUIET && f->kind != F_VERBOSE &&
		    f->kind != F_HELP && f->kind != F_VERSION && !(f->kind == F_SET && f->key == CFG_TIMEOUT))
			other = f->name;
		switch (f->kind) {
		case F_HELP:
			cli_usage(out);
			return 1;
		case F_VERSION:
			fprintf(out, "microvm %s (git %s)\n", MICROVM_VERSION, MICROVM_GIT_REVISION);
			return 1;
		case F_QUIET:
			cfg->verbosity = -1;
			break;
		case F_VERBOSE:
			cfg->verbosity = 1;
			break;
		case F_CMDLINE_DEVICES:
			cfg->cmdline_devices = true;
			break;
		case F_HOST_INFO:
			cfg->host_info = true;
			break;
		case F_NO_HOST_QUIRKS:
			cfg->no_host_quirks = true;
			break;
		case F_NO_SECCOMP:
			cfg->no_seccomp = true;
			break;
		case F_STATS:
			if ((ret = config_set(cfg, CFG_STATS, "--stats", val ? val : "text")) < 0)
				return ret;
			break;
		case F_CONFIG:
			break;   /* loaded above */
		case F_SHUTDOWN:
			if (!*val)
				return err_set(EINVAL, "--shutdown: empty socket path");
			cfg->shutdown_sock = val;
			break;
		case F_SWITCH:
			if ((ret = config_set(cfg, f->key, f->name, "true")) < 0)
				return ret;
			break;
		case F_SET:
			if ((ret = config_set(cfg, f->key, f->name, val)) < 0)
				return ret;
			break;
		}
	}
	if (cfg->shutdown_sock) {
		if (other)
			return err_set(EINVAL, "--shutdown %s: a client of another microvm's API: only --timeout, -q "
				       "and -v go with it, not %s", cfg->shutdown_sock, other);
		if (cfg->timeout_ms > API_CLIENT_SHUTDOWN_MAX_MS)
			return err_set(EINVAL, "--shutdown %s: --timeout at most 3600 seconds (the API's longest "
				       "shutdown deadline)", cfg->shutdown_sock);
		return 0;
	}
	return config_check(cfg);
}
