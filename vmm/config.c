/* config.c - the monitor's configuration: defaults, one setter for every source, the checks (see config.h). */
#include "vmm/config.h"
#include "firmware/machine.h"
#include "base/err.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
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
	if (errno || end == s || *end || !(v > 0) || v > CFG_TIMEOUT_MAX_S)
		return -EINVAL;
	double m = v * 1000.0;
	*ms = m < 1.0 ? 1 : (uint64_t)(m + 0.5);
	return 0;
}

/* A number of tokens: parse_size() for bytes, else digits only. */
static int parse_tokens(const char *s, size_t len, bool bytes, uint64_t *out)
{
	char buf[32];

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (bytes)
		return parse_size(buf, out);
	if (strspn(buf, "0123456789") != len)
		return -EINVAL;
	errno = 0;
	*out = strtoull(buf, NULL, 10);
	return errno ? -ERANGE : 0;
}

int parse_limit(const char *s, size_t len, bool bytes, struct tb_config *out)
{
	const char *end = s + len;
	const char *slash = memchr(s, '/', len);
	const char *plus = memchr(s, '+', len);
	struct tb_config c = { .refill_ms = TB_DEFAULT_REFILL_MS };

	if ((slash && plus && plus < slash))
		return -EINVAL;
	const char *size_end = slash ? slash : plus ? plus : end;
	if (parse_tokens(s, (size_t)(size_end - s), bytes, &c.size) < 0)
		return -EINVAL;
	if (slash) {
		const char *ms_end = plus ? plus : end;
		if (parse_tokens(slash + 1, (size_t)(ms_end - slash - 1), false, &c.refill_ms) < 0)
			return -EINVAL;
	}
	if (plus && parse_tokens(plus + 1, (size_t)(end - plus - 1), bytes, &c.burst) < 0)
		return -EINVAL;
	if (c.size == 0) {
		/* "0" alone: no limit; a refill time or burst on it means a mistake. */
		if (slash || plus)
			return -EINVAL;
		c.refill_ms = 0;
	}
	if (!tb_config_valid(&c))
		return -EINVAL;
	*out = c;
	return 0;
}

void format_limit(const struct tb_config *c, char *buf, size_t size)
{
	if (!c->size)
		snprintf(buf, size, "0");
	else if (c->burst)
		snprintf(buf, size, "%llu/%llu+%llu", (unsigned long long)c->size,
			 (unsigned long long)c->refill_ms, (unsigned long long)c->burst);
	else
		snprintf(buf, size, "%llu/%llu", (unsigned long long)c->size, (unsigned long long)c->refill_ms);
}

/* "NAME=" at opt (n bytes long): the value's offset, else 0. */
static size_t opt_is(const char *opt, size_t n, const char *name)
{
	size_t l = strlen(name);

	return n > l && !strncmp(opt, name, l) && opt[l] == '=' ? l + 1 : 0;
}

/*
 * If opt is one of the limits names[i]=LIMIT, parse it into *dst[i]: 1 when
 * done, 0 when opt is none of them, -EINVAL with err_msg() on a bad value.
 */
static int limit_opt(const char *flag, const char *val, const char *opt, size_t n,
		     const char *const *names, struct tb_config *const *dst, const bool *bytes)
{
	for (int i = 0; names[i]; i++) {
		size_t off = opt_is(opt, n, names[i]);
		if (!off)
			continue;
		if (parse_limit(opt + off, n - off, bytes[i], dst[i]) < 0)
			return err_set(EINVAL, "%s %s: bad %s= '%.*s' (%s%s)", flag, val, names[i],
				       (int)(n - off), opt + off, LIMIT_SYNTAX,
				       bytes[i] ? "" : "; plain numbers, no suffix");
		return 1;
	}
	return 0;
}

int parse_disk(const char *val, struct disk_config *d)
{
	static const char *const lnames[] = { "bw", "iops", NULL };
	static const bool lbytes[] = { true, false };
	const char *comma = strchr(val, ',');
	size_t plen = comma ? (size_t)(comma - val) : strlen(val);

	memset(d, 0, sizeof(*d));
	if (plen == 0)
		return err_set(EINVAL, "--disk %s: empty path (use --disk PATH[,ro][,direct][,id=NAME][,overlay[=FILE]])",
			       val);
	if (plen >= sizeof(d->path))
		return err_set(EINVAL, "--disk: path longer than %zu bytes", sizeof(d->path) - 1);
	memcpy(d->path, val, plen);
	while (comma) {
		const char *opt = comma + 1;
		comma = strchr(opt, ',');
		size_t n = comma ? (size_t)(comma - opt) : strlen(opt);

		struct tb_config *const ldst[] = { &d->limit.bytes, &d->limit.ops };
		int l = limit_opt("--disk", val, opt, n, lnames, ldst, lbytes);

		if (l < 0)
			return l;
		if (l > 0) {
			continue;
		} else if (n == 2 && !strncmp(opt, "ro", 2)) {
			d->ro = true;
		} else if (n == 6 && !strncmp(opt, "direct", 6)) {
			d->direct = true;
		} else if (n == 7 && !strncmp(opt, "overlay", 7)) {
			d->overlay = true;
		} else if (n >= 8 && !strncmp(opt, "overlay=", 8)) {
			if (n == 8)
				return err_set(EINVAL, "--disk %s: overlay= needs a file name (or plain overlay for a throw-away one)",
					       val);
			if (n - 8 >= sizeof(d->overlay_path))
				return err_set(EINVAL, "--disk: overlay path longer than %zu bytes",
					       sizeof(d->overlay_path) - 1);
			d->overlay = true;
			memcpy(d->overlay_path, opt + 8, n - 8);
			d->overlay_path[n - 8] = '\0';
		} else if (n >= 3 && !strncmp(opt, "id=", 3)) {
			if (n == 3 || n - 3 > CFG_DISK_ID_MAX)
				return err_set(EINVAL, "--disk %s: id must be 1 to %d characters", val,
					       CFG_DISK_ID_MAX);
			for (size_t i = 3; i < n; i++)
				if (!isgraph((unsigned char)opt[i]))
					return err_set(EINVAL,
						       "--disk %s: id must be printable ASCII without spaces",
						       val);
			memcpy(d->id, opt + 3, n - 3);
			d->id[n - 3] = '\0';
		} else {
			return err_set(EINVAL, "--disk %s: unknown option '%.*s' (use ro, direct, id=NAME, overlay[=FILE], bw=LIMIT, iops=LIMIT)",
				       val, (int)n, opt);
		}
	}
	if (d->overlay && d->ro)
		return err_set(EINVAL, "--disk %s: overlay and ro exclude each other (the base is never written; drop ,ro)",
			       val);
	if (d->overlay && d->direct)
		return err_set(EINVAL, "--disk %s: overlay and direct exclude each other (drop ,direct)", val);
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
	static const char *const lnames[] = { "rx_bw", "rx_pps", "tx_bw", "tx_pps", NULL };
	static const bool lbytes[] = { true, false, true, false };
	bool have_tap = false, have_mac = false;
	const char *opt = val;

	memset(n, 0, sizeof(*n));
	if (!*val)
		return err_set(EINVAL, "--net: empty value (%s)", NET_USE);
	for (;;) {
		const char *comma = strchr(opt, ',');
		size_t len = comma ? (size_t)(comma - opt) : strlen(opt);
		struct tb_config *const ldst[] = { &n->rx.bytes, &n->rx.ops, &n->tx.bytes, &n->tx.ops };
		int l = limit_opt("--net", val, opt, len, lnames, ldst, lbytes);

		if (l < 0)
			return l;
		if (l > 0) {
			/* parsed */
		} else if (len >= 4 && !strncmp(opt, "tap=", 4)) {
			const char *name = opt + 4;
			size_t nlen = len - 4;
			if (have_tap)
				return err_set(EINVAL, "--net %s: tap= given twice (one tap per --net)", val);
			have_tap = true;
			if (nlen == 0)
				return err_set(EINVAL, "--net %s: empty tap name (%s)", val, NET_USE);
			if (nlen > CFG_TAP_NAME_MAX)
				return err_set(EINVAL, "--net %s: tap name longer than %d characters", val,
					       CFG_TAP_NAME_MAX);
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
			return err_set(EINVAL, "--net %s: unknown option '%.*s' (%s, limits rx_bw=, rx_pps=, tx_bw=, tx_pps=)",
				       val, (int)len, opt, NET_USE);
		}
		if (!comma)
			break;
		opt = comma + 1;
	}
	if (!have_tap)
		return err_set(EINVAL, "--net %s: missing tap=NAME (%s)", val, NET_USE);
	return 0;
}

void config_defaults(struct vmm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cmdline = CFG_DEFAULT_CMDLINE;
	cfg->mem = MV_MEM_DEFAULT;
	cfg->cpus = 1;
	cfg->io_engine = IO_ENGINE_AUTO;
}

void config_free(struct vmm_config *cfg)
{
	for (int i = 0; i < cfg->nr_owned; i++)
		free(cfg->owned[i]);
	cfg->nr_owned = 0;
}

static int add_disk(struct vmm_config *cfg, const char *val)
{
	int ret;

	if (cfg->nr_disks >= CFG_MAX_DISKS)
		return err_set(EINVAL, "--disk %s: at most %d disks", val, CFG_MAX_DISKS);
	if ((ret = parse_disk(val, &cfg->disks[cfg->nr_disks])) < 0)
		return ret;
	cfg->nr_disks++;
	return 0;
}

static int add_net(struct vmm_config *cfg, const char *val)
{
	int ret;

	if (cfg->nr_nics >= CFG_MAX_NICS)
		return err_set(EINVAL, "--net %s: at most %d interfaces", val, CFG_MAX_NICS);
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

int config_set(struct vmm_config *cfg, enum config_key key, const char *name, const char *val)
{
	/* --disk and --net name a restored VM's back ends (vmm/vm.c); the rest is the snapshot's. */
	if (key == CFG_KERNEL || key == CFG_INITRD || key == CFG_CMDLINE || key == CFG_MEM ||
	    key == CFG_CPUS || key == CFG_RUN)
		cfg->machine_set = true;
	switch (key) {
	case CFG_RESTORE:
		if (!*val)
			return err_set(EINVAL, "%s: empty path", name);
		cfg->restore = val;
		return 0;
	case CFG_KERNEL:
	case CFG_INITRD:
	case CFG_RUN:
	case CFG_USER:
	case CFG_API_SOCK:
		if (!*val)
			return err_set(EINVAL, "%s: empty %s", name, key == CFG_USER ? "user" : "path");
		*(key == CFG_KERNEL ? &cfg->kernel : key == CFG_INITRD ? &cfg->initrd :
		  key == CFG_RUN ? &cfg->run : key == CFG_USER ? &cfg->user : &cfg->api_sock) = val;
		return 0;
	case CFG_CMDLINE:
		cfg->cmdline = val;
		return 0;
	case CFG_JAIL:
	case CFG_NETNS:
		if (val[0] != '/')
			return err_set(EINVAL, "%s %s: must be an absolute path", name, val);
		if (strlen(val) >= PATH_MAX)
			return err_set(EINVAL, "%s: the path is longer than %d bytes", name, PATH_MAX - 1);
		*(key == CFG_JAIL ? &cfg->jail : &cfg->netns) = val;
		return 0;
	case CFG_CGROUP:
		return cgroup_parse(name, val, &cfg->cgroup);
	case CFG_MEM: {
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
	case CFG_CPUS: {
		char *end;
		errno = 0;
		long n = strtol(val, &end, 10);
		if (errno || end == val || *end || n < 1 || n > MV_MAX_VCPUS)
			return err_set(EINVAL, "%s %s: must be a number from 1 to %d", name, val, MV_MAX_VCPUS);
		cfg->cpus = (int)n;
		return 0;
	}
	case CFG_DISK:
		return add_disk(cfg, val);
	case CFG_NET:
		return add_net(cfg, val);
	case CFG_IO_ENGINE:
		if (!strcmp(val, "auto"))
			cfg->io_engine = IO_ENGINE_AUTO;
		else if (!strcmp(val, "uring") || !strcmp(val, "io_uring"))
			cfg->io_engine = IO_ENGINE_URING;
		else if (!strcmp(val, "sync"))
			cfg->io_engine = IO_ENGINE_SYNC;
		else
			return err_set(EINVAL, "%s %s: must be auto, uring or sync", name, val);
		return 0;
	case CFG_TIMEOUT:
		if (parse_timeout(val, &cfg->timeout_ms) < 0)
			return err_set(EINVAL,
				       "%s %s: must be a positive number of seconds (e.g. 30 or 0.5), at most %.0f",
				       name, val, CFG_TIMEOUT_MAX_S);
		return 0;
	case CFG_VERIFY_MEMORY:
	case CFG_PAUSED:
	case CFG_NO_WORKING_SET: {
		bool on = !strcmp(val, "true");
		if (!on && strcmp(val, "false"))
			return err_set(EINVAL, "%s: must be true or false", name);
		*(key == CFG_VERIFY_MEMORY ? &cfg->verify_memory : key == CFG_PAUSED ? &cfg->paused
										      : &cfg->no_working_set) = on;
		return 0;
	}
	case CFG_RECORD_WORKING_SET:
		if (parse_timeout(val, &cfg->record_ws_ms) < 0 || cfg->record_ws_ms > 3600000)
			return err_set(EINVAL, "%s %s: must be a positive number of seconds (e.g. 5 or 0.5), at most 3600",
				       name, val);
		return 0;
	case CFG_STATS:
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

int config_check(const struct vmm_config *cfg)
{
	if (cfg->restore && cfg->machine_set)
		return err_set(EINVAL, "--restore %s: the snapshot defines the machine: no --kernel, --initrd, "
			       "--cmdline, --mem, --cpus or --run with it (--disk and --net name its back ends)",
			       cfg->restore);
	if (!cfg->restore && (cfg->verify_memory || cfg->record_ws_ms || cfg->no_working_set))
		return err_set(EINVAL, "%s: only with --restore DIR", cfg->verify_memory ? "--verify-memory" :
			       cfg->record_ws_ms ? "--record-working-set" : "--no-working-set");
	/* The working set is written to DIR/workingset while the VM runs: outside the jail by then. */
	if (cfg->jail && cfg->record_ws_ms)
		return err_set(EINVAL, "--record-working-set: not with --jail (DIR/workingset is written while the "
			       "VM runs, when the snapshot's directory is out of the jail's reach)");
	/* Only the control API can let a paused VM run. */
	if (cfg->paused && !cfg->api_sock)
		return err_set(EINVAL, "--paused: needs --api-sock PATH (the VM runs at POST /vm/resume)");
	if (!cfg->kernel && !cfg->host_info && !cfg->restore)
		return err_set(EINVAL, "--kernel is required (see microvm --help)");
	/* The script travels on one more disk after the user's. */
	if (cfg->run && cfg->nr_disks >= CFG_MAX_DISKS)
		return err_set(EINVAL, "--run %s: needs a disk slot of its own: at most %d --disk with --run",
			       cfg->run, CFG_MAX_DISKS - 1);
	return 0;
}
