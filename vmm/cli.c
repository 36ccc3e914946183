/* cli.c - command-line parsing for microvm (see cli.h). */
#include "vmm/cli.h"
#include "firmware/machine.h"
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

void cli_usage(FILE *out)
{
	fprintf(out,
		"Usage: microvm --kernel PATH [options]\n"
		"\n"
		"Boot a Linux kernel (or any kernel in one of the formats below) in a KVM\n"
		"virtual machine with a serial console on stdin/stdout.\n"
		"\n"
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
		"  --io-engine E    disk I/O engine: auto (io_uring if the host allows it,\n"
		"                   else sync), uring, or sync (thread pool) (default auto)\n"
		"  --cmdline-devices\n"
		"                   also list the virtio-mmio devices on the kernel command\n"
		"                   line (virtio_mmio.device=...); automatic with acpi=off\n"
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
		"120 guest triple fault; 121 guest stopped on an error KVM cannot handle.\n"
		"\n"
		"Example:\n"
		"  microvm --kernel bzImage --mem 512M --cpus 2 --cmdline \"console=ttyS0\"\n",
		CLI_DEFAULT_CMDLINE, (unsigned long long)(MV_MEM_DEFAULT >> 20),
		(unsigned long long)(MV_MEM_MIN >> 20), (unsigned long long)(MV_MEM_MAX >> 30),
		MV_MAX_VCPUS, CLI_MAX_DISKS, MV_PORT_EXIT);
}

static bool flag_is(const char *arg, const char *name, const char **inline_val)
{
	size_t n = strlen(name);

	if (strncmp(arg, name, n))
		return false;
	if (arg[n] == '\0') {
		*inline_val = NULL;
		return true;
	}
	if (arg[n] == '=') {
		*inline_val = arg + n + 1;
		return true;
	}
	return false;
}

int cli_parse(int argc, char *const argv[], struct vmm_config *cfg, FILE *out)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cmdline = CLI_DEFAULT_CMDLINE;
	cfg->mem = MV_MEM_DEFAULT;
	cfg->cpus = 1;
	cfg->io_engine = IO_ENGINE_AUTO;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		const char **target = NULL;
		enum { V_NONE, V_STR, V_MEM, V_CPUS, V_DISK, V_ENGINE } kind = V_NONE;
		const char *name = a;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			cli_usage(out);
			return 1;
		}
		if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			fprintf(out, "microvm %s\n", MICROVM_VERSION);
			return 1;
		}
		if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			cfg->verbosity = -1;
			continue;
		}
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			cfg->verbosity = 1;
			continue;
		}
		if (!strcmp(a, "--cmdline-devices")) {
			cfg->cmdline_devices = true;
			continue;
		}
		if (flag_is(a, "--kernel", &val)) {
			name = "--kernel", target = &cfg->kernel, kind = V_STR;
		} else if (flag_is(a, "--initrd", &val)) {
			name = "--initrd", target = &cfg->initrd, kind = V_STR;
		} else if (flag_is(a, "--cmdline", &val)) {
			name = "--cmdline", target = &cfg->cmdline, kind = V_STR;
		} else if (flag_is(a, "--mem", &val)) {
			name = "--mem", kind = V_MEM;
		} else if (flag_is(a, "--cpus", &val)) {
			name = "--cpus", kind = V_CPUS;
		} else if (flag_is(a, "--disk", &val)) {
			name = "--disk", kind = V_DISK;
		} else if (flag_is(a, "--io-engine", &val)) {
			name = "--io-engine", kind = V_ENGINE;
		} else {
			return err_set(EINVAL, "unknown option '%s' (see microvm --help)", a);
		}
		if (!val) {
			if (i + 1 >= argc)
				return err_set(EINVAL, "%s needs a value (see microvm --help)", name);
			val = argv[++i];
		}
		switch (kind) {
		case V_STR:
			if (!*val && target != &cfg->cmdline)
				return err_set(EINVAL, "%s: empty path", name);
			*target = val;
			break;
		case V_MEM: {
			uint64_t sz;
			if (parse_size(val, &sz) < 0)
				return err_set(EINVAL, "--mem %s: not a size (use e.g. 512M or 2G)", val);
			if (sz < MV_MEM_MIN || sz > MV_MEM_MAX || sz % (1 << 20))
				return err_set(EINVAL,
					       "--mem %s: must be a whole number of MiB between %llu MiB and %llu GiB",
					       val, (unsigned long long)(MV_MEM_MIN >> 20),
					       (unsigned long long)(MV_MEM_MAX >> 30));
			cfg->mem = sz;
			break;
		}
		case V_CPUS: {
			char *end;
			errno = 0;
			long n = strtol(val, &end, 10);
			if (errno || end == val || *end || n < 1 || n > MV_MAX_VCPUS)
				return err_set(EINVAL, "--cpus %s: must be a number from 1 to %d", val,
					       MV_MAX_VCPUS);
			cfg->cpus = (int)n;
			break;
		}
		case V_DISK: {
			int ret;
			if (cfg->nr_disks >= CLI_MAX_DISKS)
				return err_set(EINVAL, "--disk %s: at most %d disks", val, CLI_MAX_DISKS);
			if ((ret = parse_disk(val, &cfg->disks[cfg->nr_disks])) < 0)
				return ret;
			cfg->nr_disks++;
			break;
		}
		case V_ENGINE:
			if (!strcmp(val, "auto"))
				cfg->io_engine = IO_ENGINE_AUTO;
			else if (!strcmp(val, "uring") || !strcmp(val, "io_uring"))
				cfg->io_engine = IO_ENGINE_URING;
			else if (!strcmp(val, "sync"))
				cfg->io_engine = IO_ENGINE_SYNC;
			else
				return err_set(EINVAL, "--io-engine %s: must be auto, uring or sync", val);
			break;
		default:
			break;
		}
	}
	if (!cfg->kernel)
		return err_set(EINVAL, "--kernel is required (see microvm --help)");
	return 0;
}
