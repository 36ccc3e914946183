/* cli.c - command-line parsing for microvm (see cli.h). */
#include "vmm/cli.h"
#include "firmware/machine.h"
#include "vmm/config.h"
#include "vmm/err.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned int shift = 0;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end) {
		end++;
		if (!strcasecmp(end, "iB"))
			end += 2;
		else if (!strcasecmp(end, "B"))
			end += 1;
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int parse_timeout(const char *s, uint64_t *ms)
{
	char *end;

	/* Digits and at most one '.': no sign, exponent, hex, inf or nan from strtod. */
	if (!s || !*s || strspn(s, "0123456789.") != strlen(s) || strchr(s, '.') != strrchr(s, '.'))
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > CLI_TIMEOUT_MAX_S)
		return -EINVAL;
	double m = v * 1000.0;
	*ms = m < 1.0 ? 1 : (uint64_t)(m + 0.5);
	return 0;
}

int parse_disk(const char *val, struct disk_config *d)
{
	const char *comma = strchr(val, ',');
	size_t plen = comma ? (size_t)(comma - val) : strlen(val);

	memset(d, 0, sizeof(*d));
	if (plen == 0)
		return err_set(EINVAL, "--disk %s: empty path (use --disk PATH[,ro][,direct][,id=NAME])",
			       val);
	if (plen >= sizeof(d->path))
		return err_set(EINVAL, "--disk: path longer than %zu bytes", sizeof(d->path) - 1);
	memcpy(d->path, val, plen);
	while (comma) {
		const char *opt = comma + 1;
		comma = strchr(opt, ',');
		size_t n = comma ? (size_t)(comma - opt) : strlen(opt);

		if (n == 2 && !strncmp(opt, "ro", 2)) {
			d->ro = true;
		} else if (n == 6 && !strncmp(opt, "direct", 6)) {
			d->direct = true;
		} else if (n >= 3 && !strncmp(opt, "id=", 3)) {
			if (n == 3 || n - 3 > CLI_DISK_ID_MAX)
				return err_set(EINVAL, "--disk %s: id must be 1 to %d characters", val,
					       CLI_DISK_ID_MAX);
			for (size_t i = 3; i < n; i++)
				if (!isgraph((unsigned char)opt[i]))
					return err_set(EINVAL,
						       "--disk %s: id must be printable ASCII without spaces",
						       val);
			memcpy(d->id, opt + 3, n - 3);
			d->id[n - 3] = '\0';
		} else {
			return err_set(EINVAL, "--disk %s: unknown option '%.*s' (use ro, direct, id=NAME)",
				       val, (int)n, opt);
		}
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int parse_mac(const char *s, size_t len, uint8_t mac[6])
{
	uint8_t m[6];

	if (len != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		const char *p = s + 3 * i;
		int hi = hexval(p[0]), lo = hexval(p[1]);
		if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(mac, m, 6);
	return 0;
}

/* Linux accepts almost any byte in a name; we take the portable subset, so names survive shells and logs. */
static bool ifname_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

#define NET_USE "use --net tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random]"

int parse_net(const char *val, struct net_config *n)
{
	bool have_tap = false, have_mac = false;
	const char *opt = val;

	memset(n, 0, sizeof(*n));
	if (!*val)
		return err_set(EINVAL, "--net: empty value (%s)", NET_USE);
	for (;;) {
		const char *comma = strchr(opt, ',');
		size_t len = comma ? (size_t)(comma - opt) : strlen(opt);

		if (len >= 4 && !strncmp(opt, "tap=", 4)) {
			const char *name = opt + 4;
			size_t nlen = len - 4;
			if (have_tap)
				return err_set(EINVAL, "--net %s: tap= given twice (one tap per --net)", val);
			have_tap = true;
			if (nlen == 0)
				return err_set(EINVAL, "--net %s: empty tap name (%s)", val, NET_USE);
			if (nlen > CLI_TAP_NAME_MAX)
				return err_set(EINVAL, "--net %s: tap name longer than %d characters", val,
					       CLI_TAP_NAME_MAX);
			for (size_t i = 0; i < nlen; i++)
				if (!ifname_char_ok(name[i]))
					return err_set(EINVAL,
						       "--net %s: tap name '%.*s' may only contain letters, digits, '-', '_' and '.'",
						       val, (int)nlen, name);
			if ((nlen == 1 && name[0] == '.') || (nlen == 2 && !strncmp(name, "..", 2)))
				return err_set(EINVAL, "--net %s: '%.*s' is not a valid interface name", val,
					       (int)nlen, name);
			memcpy(n->tap, name, nlen);
			n->tap[nlen] = '\0';
		} else if (len >= 4 && !strncmp(opt, "mac=", 4)) {
			const char *m = opt + 4;
			size_t mlen = len - 4;
			if (have_mac)
				return err_set(EINVAL, "--net %s: mac= given twice", val);
			have_mac = true;
			if (mlen == 6 && !strncmp(m, "random", 6)) {
				n->random_mac = true;
			} else if (parse_mac(m, mlen, n->mac) < 0) {
				return err_set(EINVAL,
					       "--net %s: bad MAC '%.*s' (use six hex pairs like 02:00:00:00:00:01, or mac=random)",
					       val, (int)mlen, m);
			} else if (n->mac[0] & 1) {
				return err_set(EINVAL,
					       "--net %s: MAC %.*s is a multicast address (the first octet must be even, e.g. 02)",
					       val, (int)mlen, m);
			} else if (!(n->mac[0] | n->mac[1] | n->mac[2] | n->mac[3] | n->mac[4] | n->mac[5])) {
				return err_set(EINVAL, "--net %s: MAC %.*s is all zeros, not a usable address", val,
					       (int)mlen, m);
			} else {
				n->has_mac = true;
			}
		} else {
			return err_set(EINVAL, "--net %s: unknown option '%.*s' (%s)", val, (int)len, opt,
				       NET_USE);
		}
		if (!comma)
			break;
		opt = comma + 1;
	}
	if (!have_tap)
		return err_set(EINVAL, "--net %s: missing tap=NAME (%s)", val, NET_USE);
	return 0;
}

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
		"  --disk PATH[,ro][,direct][,id=NAME]\n"
		"                   raw disk image as a virtio-blk device; repeatable (at most\n"
		"                   %d), in order /dev/vda, vdb, ... ro: read-only; direct:\n"
		"                   O_DIRECT; id: serial the guest sees (at most 20 bytes)\n"
		"  --net tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random]\n"
		"                   a virtio-net interface on host tap NAME; repeatable (at\n"
		"                   most %d), in order eth0, eth1, ... An existing tap is\n"
		"                   attached; a missing one is created (needs CAP_NET_ADMIN)\n"
		"                   and removed at exit. Default MAC: 02:.. derived from NAME\n"
		"                   and the interface's position (stable across boots)\n"
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
		"  --no-seccomp     run without the seccomp filters that limit each thread\n"
		"                   to the system calls it needs (for debugging; see\n"
		"                   docs/seccomp.md)\n"
		"  -q, --quiet      only print warnings and errors from microvm itself\n"
		"  -v, --verbose    print debug messages\n"
		"  -h, --help       print this help and exit\n"
		"  -V, --version    print the version and exit\n"
		"\n"
		"Console: the guest's COM1 is connected to stdin/stdout. On a terminal,\n"
		"type Ctrl-A x to quit, Ctrl-A Ctrl-A to send Ctrl-A.\n"
		"\n"
		"Exit status: 0 guest power-off or reset; N what the guest wrote to the\n"
		"exit-status port 0x%x; 1 microvm error; 2 bad command line;\n"
		"120 guest triple fault; 121 guest stopped on an error KVM cannot handle;\n"
		"122 guest kernel panic (pvpanic); 123 --run: the guest ended without\n"
		"reporting the script's status; 124 --timeout (or a shutdown\n"
		"request's deadline) expired.\n"
		"\n"
		"Example:\n"
		"  microvm --kernel bzImage --mem 512M --cpus 2 --cmdline \"console=ttyS0\"\n",
		CLI_DEFAULT_CMDLINE, (unsigned long long)(MV_MEM_DEFAULT >> 20),
		(unsigned long long)(MV_MEM_MIN >> 20), (unsigned long long)(MV_MEM_MAX >> 30),
		MV_MAX_VCPUS, CLI_MAX_DISKS, CLI_MAX_NICS, MV_PORT_EXIT);
}

void cli_defaults(struct vmm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cmdline = CLI_DEFAULT_CMDLINE;
	cfg->mem = MV_MEM_DEFAULT;
	cfg->cpus = 1;
	cfg->io_engine = IO_ENGINE_AUTO;
}

void cli_free(struct vmm_config *cfg)
{
	for (int i = 0; i < cfg->nr_owned; i++)
		free(cfg->owned[i]);
	cfg->nr_owned = 0;
}

static int add_disk(struct vmm_config *cfg, const char *val)
{
	int ret;

	if (cfg->nr_disks >= CLI_MAX_DISKS)
		return err_set(EINVAL, "--disk %s: at most %d disks", val, CLI_MAX_DISKS);
	if ((ret = parse_disk(val, &cfg->disks[cfg->nr_disks])) < 0)
		return ret;
	cfg->nr_disks++;
	return 0;
}

static int add_net(struct vmm_config *cfg, const char *val)
{
	int ret;

	if (cfg->nr_nics >= CLI_MAX_NICS)
		return err_set(EINVAL, "--net %s: at most %d interfaces", val, CLI_MAX_NICS);
	struct net_config *n = &cfg->nics[cfg->nr_nics];
	if ((ret = parse_net(val, n)) < 0)
		return ret;
	for (int j = 0; j < cfg->nr_nics; j++) {
		const struct net_config *o = &cfg->nics[j];
		if (!strcmp(o->tap, n->tap))
			return err_set(EINVAL, "--net %s: tap %s is already used by an earlier --net", val,
				       n->tap);
		if (o->has_mac && n->has_mac && !memcmp(o->mac, n->mac, 6))
			return err_set(EINVAL, "--net %s: same MAC as --net tap=%s", val, o->tap);
	}
	cfg->nr_nics++;
	return 0;
}

int cli_set(struct vmm_config *cfg, enum cli_key key, const char *name, const char *val)
{
	/* --disk and --net name a restored VM's back ends (vmm/vm.c); the rest is the snapshot's. */
	if (key == CLI_KERNEL || key == CLI_INITRD || key == CLI_CMDLINE || key == CLI_MEM ||
	    key == CLI_CPUS || key == CLI_RUN)
		cfg->machine_set = true;
	switch (key) {
	case CLI_RESTORE:
		if (!*val)
			return err_set(EINVAL, "%s: empty path", name);
		cfg->restore = val;
		return 0;
	case CLI_KERNEL:
	case CLI_INITRD:
	case CLI_RUN:
	case CLI_USER:
	case CLI_API_SOCK:
		if (!*val)
			return err_set(EINVAL, "%s: empty %s", name, key == CLI_USER ? "user" : "path");
		*(key == CLI_KERNEL ? &cfg->kernel : key == CLI_INITRD ? &cfg->initrd :
		  key == CLI_RUN ? &cfg->run : key == CLI_USER ? &cfg->user : &cfg->api_sock) = val;
		return 0;
	case CLI_CMDLINE:
		cfg->cmdline = val;
		return 0;
	case CLI_MEM: {
		uint64_t sz;
		if (parse_size(val, &sz) < 0)
			return err_set(EINVAL, "%s %s: not a size (use e.g. 512M or 2G)", name, val);
		if (sz < MV_MEM_MIN || sz > MV_MEM_MAX || sz % (1 << 20))
			return err_set(EINVAL,
				       "%s %s: must be a whole number of MiB between %llu MiB and %llu GiB",
				       name, val, (unsigned long long)(MV_MEM_MIN >> 20),
				       (unsigned long long)(MV_MEM_MAX >> 30));
		cfg->mem = sz;
		return 0;
	}
	case CLI_CPUS: {
		char *end;
		errno = 0;
		long n = strtol(val, &end, 10);
		if (errno || end == val || *end || n < 1 || n > MV_MAX_VCPUS)
			return err_set(EINVAL, "%s %s: must be a number from 1 to %d", name, val, MV_MAX_VCPUS);
		cfg->cpus = (int)n;
		return 0;
	}
	case CLI_DISK:
		return add_disk(cfg, val);
	case CLI_NET:
		return add_net(cfg, val);
	case CLI_IO_ENGINE:
		if (!strcmp(val, "auto"))
			cfg->io_engine = IO_ENGINE_AUTO;
		else if (!strcmp(val, "uring") || !strcmp(val, "io_uring"))
			cfg->io_engine = IO_ENGINE_URING;
		else if (!strcmp(val, "sync"))
			cfg->io_engine = IO_ENGINE_SYNC;
		else
			return err_set(EINVAL, "%s %s: must be auto, uring or sync", name, val);
		return 0;
	case CLI_TIMEOUT:
		if (parse_timeout(val, &cfg->timeout_ms) < 0)
			return err_set(EINVAL,
				       "%s %s: must be a positive number of seconds (e.g. 30 or 0.5), at most %.0f",
				       name, val, CLI_TIMEOUT_MAX_S);
		return 0;
	case CLI_STATS:
		if (!strcmp(val, "text"))
			cfg->stats = STATS_TEXT;
		else if (!strcmp(val, "json"))
			cfg->stats = STATS_JSON;
		else if (!strcmp(val, "off"))
			cfg->stats = STATS_OFF;
		else
			return err_set(EINVAL, "%s=%s: the format must be text or json, or off (--stats=json)",
				       name, val);
		return 0;
	}
	return err_set(EINVAL, "%s: unknown setting", name);
}

int cli_check(const struct vmm_config *cfg)
{
	if (cfg->restore && cfg->machine_set)
		return err_set(EINVAL, "--restore %s: the snapshot defines the machine: no --kernel, --initrd, "
			       "--cmdline, --mem, --cpus or --run with it (--disk and --net name its back ends)",
			       cfg->restore);
	if (!cfg->kernel && !cfg->host_info && !cfg->restore)
		return err_set(EINVAL, "--kernel is required (see microvm --help)");
	/* The script travels on one more disk after the user's. */
	if (cfg->run && cfg->nr_disks >= CLI_MAX_DISKS)
		return err_set(EINVAL, "--run %s: needs a disk slot of its own: at most %d --disk with --run",
			       cfg->run, CLI_MAX_DISKS - 1);
	return 0;
}

/* The flags: a name, then what it does (a setting with a value, or one of the switches). */
enum flag_kind { F_SET, F_HELP, F_VERSION, F_QUIET, F_VERBOSE, F_CMDLINE_DEVICES, F_HOST_INFO,
		 F_NO_HOST_QUIRKS, F_NO_SECCOMP, F_STATS, F_CONFIG };

static const struct flag {
	const char *name, *alias;
	enum flag_kind kind;
	enum cli_key key;       /* F_SET */
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
	{ "--kernel", NULL, F_SET, CLI_KERNEL },
	{ "--initrd", NULL, F_SET, CLI_INITRD },
	{ "--cmdline", NULL, F_SET, CLI_CMDLINE },
	{ "--mem", NULL, F_SET, CLI_MEM },
	{ "--cpus", NULL, F_SET, CLI_CPUS },
	{ "--disk", NULL, F_SET, CLI_DISK },
	{ "--net", NULL, F_SET, CLI_NET },
	{ "--io-engine", NULL, F_SET, CLI_IO_ENGINE },
	{ "--timeout", NULL, F_SET, CLI_TIMEOUT },
	{ "--run", NULL, F_SET, CLI_RUN },
	{ "--user", NULL, F_SET, CLI_USER },
	{ "--api-sock", NULL, F_SET, CLI_API_SOCK },
	{ "--restore", NULL, F_SET, CLI_RESTORE },
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
		bool takes_value = flags[k].kind == F_SET || flags[k].kind == F_CONFIG;

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
	int ret;

	cli_defaults(cfg);

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
	if (cfg->config && !help && (ret = config_load(cfg->config, cfg)) < 0)
		return ret;

	for (int i = 1; i < argc; i++) {
		if ((ret = next_flag(argc, argv, &i, &f, &val)) < 0)
			return ret;
		switch (f->kind) {
		case F_HELP:
			cli_usage(out);
			return 1;
		case F_VERSION:
			fprintf(out, "microvm %s\n", MICROVM_VERSION);
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
			if ((ret = cli_set(cfg, CLI_STATS, "--stats", val ? val : "text")) < 0)
				return ret;
			break;
		case F_CONFIG:
			break;   /* loaded above */
		case F_SET:
			if ((ret = cli_set(cfg, f->key, f->name, val)) < 0)
				return ret;
			break;
		}
	}
	return cli_check(cfg);
}

bool cmdline_has_word(const char *s, const char *word, bool prefix)
{
	size_t n = strlen(word);

	for (const char *p = s; (p = strstr(p, word)); p++)
		if ((p == s || p[-1] == ' ') && (prefix || p[n] == '\0' || p[n] == ' '))
			return true;
	return false;
}
