/* test_cli.c - command-line and size parsing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "firmware/machine.h"
#include "vmm/cli/cli.h"
#include "base/err.h"

static int parse(struct vmm_config *cfg, int argc, char *const argv[])
{
	FILE *null = fopen("/dev/null", "w");
	int ret = cli_parse(argc, argv, cfg, null);
	fclose(null);
	return ret;
}

Test(size, suffixes)
{
	uint64_t v;

	cr_assert_eq(parse_size("512M", &v), 0);
	cr_assert_eq(v, 512ULL << 20);
	cr_assert_eq(parse_size("2G", &v), 0);
	cr_assert_eq(v, 2ULL << 30);
	cr_assert_eq(parse_size("2gib", &v), 0);
	cr_assert_eq(v, 2ULL << 30);
	cr_assert_eq(parse_size("64KB", &v), 0);
	cr_assert_eq(v, 64ULL << 10);
	cr_assert_eq(parse_size("1T", &v), 0);
	cr_assert_eq(v, 1ULL << 40);
	cr_assert_eq(parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
}

Test(size, rejects_garbage)
{
	uint64_t v = 7;

	cr_assert_eq(parse_size("", &v), -EINVAL);
	cr_assert_eq(parse_size("M", &v), -EINVAL);
	cr_assert_eq(parse_size("-1M", &v), -EINVAL);
	cr_assert_eq(parse_size("12X", &v), -EINVAL);
	cr_assert_eq(parse_size("12MM", &v), -EINVAL);
	cr_assert_eq(parse_size("1.5G", &v), -EINVAL);
	cr_assert_eq(parse_size("99999999999999999999", &v), -ERANGE);
	cr_assert_eq(parse_size("20000000000T", &v), -ERANGE);
	cr_assert_eq(v, 7, "failed parses must not write the result");
}

Test(cli, defaults)
{
	struct vmm_config cfg;
	char *argv[] = { "microvm", "--kernel", "k.elf", NULL };

	cr_assert_eq(parse(&cfg, 3, argv), 0);
	cr_assert_str_eq(cfg.kernel, "k.elf");
	cr_assert_null(cfg.initrd);
	cr_assert_str_eq(cfg.cmdline, CFG_DEFAULT_CMDLINE);
	cr_assert_eq(cfg.mem, MV_MEM_DEFAULT);
	cr_assert_eq(cfg.cpus, 1);
	cr_assert_eq(cfg.verbosity, 0);
}

Test(cli, all_flags_both_forms)
{
	struct vmm_config cfg;
	char *argv[] = { "microvm", "--kernel=k", "--initrd", "i", "--cmdline", "a b=c",
			 "--mem=1G", "--cpus", "4", "-q", NULL };

	cr_assert_eq(parse(&cfg, 10, argv), 0);
	cr_assert_str_eq(cfg.kernel, "k");
	cr_assert_str_eq(cfg.initrd, "i");
	cr_assert_str_eq(cfg.cmdline, "a b=c");
	cr_assert_eq(cfg.mem, 1ULL << 30);
	cr_assert_eq(cfg.cpus, 4);
	cr_assert_eq(cfg.verbosity, -1);
}

Test(cli, empty_cmdline_allowed)
{
	struct vmm_config cfg;
	char *argv[] = { "microvm", "--kernel", "k", "--cmdline=", NULL };

	cr_assert_eq(parse(&cfg, 4, argv), 0);
	cr_assert_str_eq(cfg.cmdline, "");
}

Test(cli, help_and_version)
{
	struct vmm_config cfg;
	char *h[] = { "microvm", "--help", NULL };
	char *v[] = { "microvm", "--version", NULL };

	cr_assert_eq(parse(&cfg, 2, h), 1);
	cr_assert_eq(parse(&cfg, 2, v), 1);

	/* --version: "microvm VERSION (git REVISION)", one line (tests/docs/check-docs checks the
	 * revision against git). */
	char buf[256] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
	cr_assert_eq(cli_parse(2, v, &cfg, f), 1);
	fclose(f);
	const char *want = "microvm " MICROVM_VERSION " (git ";
	cr_assert_eq(strncmp(buf, want, strlen(want)), 0, "--version printed '%s'", buf);
	size_t n = strlen(buf);
	cr_assert(n > strlen(want) + 2 && !strcmp(buf + n - 2, ")\n") && !strchr(buf, '\n')[1],
		  "--version printed '%s'", buf);
}

Test(cli, help_mentions_every_flag)
{
	char buf[8192] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	cli_usage(f);
	fclose(f);
	const char *flags[] = { "--kernel", "--initrd", "--cmdline", "--mem", "--cpus",
				"--quiet", "--verbose", "--help", "--version", "Example" };
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		cr_assert_not_null(strstr(buf, flags[i]), "help lacks %s", flags[i]);
}

struct bad_case {
	int argc;
	char *argv[6];
	const char *msg;
};

Test(cli, errors_name_the_problem)
{
	static struct bad_case cases[] = {
		{ 1, { "microvm" }, "--kernel is required" },
		{ 4, { "microvm", "--kernel", "k", "--bogus" }, "unknown option '--bogus'" },
		{ 4, { "microvm", "--bogus", "--kernel", "k" }, "unknown option '--bogus'" },
		{ 2, { "microvm", "--kernel" }, "--kernel needs a value" },
		{ 4, { "microvm", "--kernel", "k", "--mem" }, "--mem needs a value" },
		{ 5, { "microvm", "--kernel", "k", "--mem", "1K" }, "--mem 1K: must be" },
		{ 5, { "microvm", "--kernel", "k", "--mem", "lots" }, "--mem lots: not a size" },
		{ 5, { "microvm", "--kernel", "k", "--mem", "2T" }, "--mem 2T: must be" },
		{ 5, { "microvm", "--kernel", "k", "--mem", "1025K" }, "--mem 1025K: must be" },
		{ 5, { "microvm", "--kernel", "k", "--cpus", "0" }, "--cpus 0: must be" },
		{ 5, { "microvm", "--kernel", "k", "--cpus", "65" }, "--cpus 65: must be" },
		{ 5, { "microvm", "--kernel", "k", "--cpus", "2x" }, "--cpus 2x: must be" },
		{ 3, { "microvm", "--kernel", "" }, "--kernel: empty path" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vmm_config cfg;
		int argc = cases[i].argc;
		err_clear();
		cr_assert_eq(parse(&cfg, argc, cases[i].argv), -EINVAL, "case %zu", i);
		cr_assert_not_null(strstr(err_msg(), cases[i].msg), "case %zu: got '%s', want '%s'", i,
				   err_msg(), cases[i].msg);
	}
}

Test(cli, disks_in_order_with_options)
{
	static struct vmm_config cfg;
	char *argv[] = { "microvm", "--kernel", "k", "--disk", "root.img", "--disk=data.img,ro,id=data-1",
			 "--disk", "/x/fast.raw,direct,ro", NULL };

	cr_assert_eq(parse(&cfg, 8, argv), 0, "%s", err_msg());
	cr_assert_eq(cfg.nr_disks, 3);
	cr_assert_str_eq(cfg.disks[0].path, "root.img");
	cr_assert_not(cfg.disks[0].ro);
	cr_assert_not(cfg.disks[0].direct);
	cr_assert_str_eq(cfg.disks[0].id, "");
	cr_assert_str_eq(cfg.disks[1].path, "data.img");
	cr_assert(cfg.disks[1].ro);
	cr_assert_str_eq(cfg.disks[1].id, "data-1");
	cr_assert_str_eq(cfg.disks[2].path, "/x/fast.raw");
	cr_assert(cfg.disks[2].direct);
	cr_assert(cfg.disks[2].ro);
	cr_assert_eq(cfg.io_engine, IO_ENGINE_AUTO);
	cr_assert_not(cfg.cmdline_devices);
}

Test(cli, disk_errors)
{
	static struct vmm_config cfg;
	char *bad[] = { "", ",ro", "a.img,rw", "a.img,id=", "a.img,id=123456789012345678901",
			      "a.img,id=a b", "a.img,", "a.img,ro,bogus", "a.img,overlay,ro", "a.img,ro,overlay=o",
			      "a.img,overlay=", "a.img,direct,overlay", "a.img,overlays" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "microvm", "--kernel", "k", "--disk", bad[i], NULL };
		cr_assert_eq(parse(&cfg, 5, argv), -EINVAL, "--disk '%s' accepted", bad[i]);
		cr_assert(strstr(err_msg(), "--disk"), "%s", err_msg());
	}
	char *argv[] = { "microvm", "--kernel", "k", "--disk", NULL };
	cr_assert_eq(parse(&cfg, 4, argv), -EINVAL);
	cr_assert(strstr(err_msg(), "needs a value"));

	/* overlay: no file (throw-away) or one; with ro it says why. */
	struct disk_config o;
	cr_assert_eq(parse_disk("base.img,overlay,id=x", &o), 0);
	cr_assert(o.overlay);
	cr_assert_str_eq(o.overlay_path, "");
	cr_assert_not(o.ro);
	cr_assert_eq(parse_disk("base.img,overlay=/v/a.ovl", &o), 0);
	cr_assert(o.overlay);
	cr_assert_str_eq(o.overlay_path, "/v/a.ovl");
	cr_assert_str_eq(o.path, "base.img");
	cr_assert_eq(parse_disk("base.img,overlay,ro", &o), -EINVAL);
	cr_assert(strstr(err_msg(), "overlay and ro exclude each other"), "%s", err_msg());

	/* 20-byte ids are the maximum virtio-blk carries. */
	struct disk_config d;
	cr_assert_eq(parse_disk("a.img,id=12345678901234567890", &d), 0);
	cr_assert_str_eq(d.id, "12345678901234567890");
}

Test(cli, too_many_disks)
{
	static struct vmm_config cfg;
	char *argv[3 + 2 * (CFG_MAX_DISKS + 1) + 1] = { "microvm", "--kernel", "k" };
	int argc = 3;

	for (int i = 0; i <= CFG_MAX_DISKS; i++) {
		argv[argc++] = "--disk";
		argv[argc++] = "d.img";
	}
	cr_assert_eq(parse(&cfg, argc, argv), -EINVAL);
	cr_assert(strstr(err_msg(), "at most"), "%s", err_msg());
}

Test(cli, io_engine_and_cmdline_devices)
{
	static struct vmm_config cfg;
	char *a1[] = { "microvm", "--kernel", "k", "--io-engine", "sync", "--cmdline-devices", NULL };
	char *a2[] = { "microvm", "--kernel", "k", "--io-engine=uring", NULL };
	char *a3[] = { "microvm", "--kernel", "k", "--io-engine", "aio", NULL };

	cr_assert_eq(parse(&cfg, 6, a1), 0);
	cr_assert_eq(cfg.io_engine, IO_ENGINE_SYNC);
	cr_assert(cfg.cmdline_devices);
	cr_assert_eq(parse(&cfg, 4, a2), 0);
	cr_assert_eq(cfg.io_engine, IO_ENGINE_URING);
	cr_assert_eq(parse(&cfg, 5, a3), -EINVAL);
	cr_assert(strstr(err_msg(), "auto, uring or sync"), "%s", err_msg());
}

Test(cli, help_mentions_disks)
{
	char buf[8192] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	cli_usage(f);
	fclose(f);
	cr_assert(strstr(buf, "--disk PATH[,ro][,direct][,id=NAME][,overlay[=FILE]]"));
	cr_assert(strstr(buf, "--io-engine"));
	cr_assert(strstr(buf, "--cmdline-devices"));
}

Test(cli, nics_in_order_with_macs)
{
	static struct vmm_config cfg;
	char *argv[] = { "microvm", "--kernel", "k", "--net", "tap=tap0", "--net=tap=vm-1.b_2,mac=02:AB:cd:00:00:01",
			 "--net", "mac=random,tap=x", "--disk", "d.img", NULL };

	cr_assert_eq(parse(&cfg, 10, argv), 0, "%s", err_msg());
	cr_assert_eq(cfg.nr_nics, 3);
	cr_assert_eq(cfg.nr_disks, 1);
	cr_assert_str_eq(cfg.nics[0].tap, "tap0");
	cr_assert_not(cfg.nics[0].has_mac);
	cr_assert_not(cfg.nics[0].random_mac);
	cr_assert_str_eq(cfg.nics[1].tap, "vm-1.b_2");
	cr_assert(cfg.nics[1].has_mac);
	const uint8_t want[6] = { 0x02, 0xab, 0xcd, 0x00, 0x00, 0x01 };
	cr_assert_arr_eq(cfg.nics[1].mac, want, 6);
	cr_assert_str_eq(cfg.nics[2].tap, "x");
	cr_assert(cfg.nics[2].random_mac);
	cr_assert_not(cfg.nics[2].has_mac);

	/* 15 characters is the longest interface name. */
	struct net_config n;
	cr_assert_eq(parse_net("tap=123456789012345", &n), 0, "%s", err_msg());
	cr_assert_str_eq(n.tap, "123456789012345");
	/* A locally administered unicast MAC other than 02:.. */
	cr_assert_eq(parse_net("tap=t,mac=fe:ff:ff:ff:ff:ff", &n), 0, "%s", err_msg());
}

Test(cli, net_errors_name_the_value)
{
	static struct vmm_config cfg;
	static const struct {
		char *val; const char *msg;
	} bad[] = {
		{ "", "--net: empty value (use --net tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random])" },
		{ "tap0", "--net tap0: unknown option 'tap0'" },
		{ "mac=02:00:00:00:00:01", "--net mac=02:00:00:00:00:01: missing tap=NAME" },
		{ "tap=", "--net tap=: empty tap name" },
		{ "tap=,mac=random", "--net tap=,mac=random: empty tap name" },
		{ "tap=1234567890123456", "--net tap=1234567890123456: tap name longer than 15 characters" },
		{ "tap=a/b", "--net tap=a/b: tap name 'a/b' may only contain letters, digits, '-', '_' and '.'" },
		{ "tap=a b", "may only contain" },
		{ "tap=a:1", "may only contain" },
		{ "tap=tap%d", "may only contain" },
		{ "tap=..", "--net tap=..: '..' is not a valid interface name" },
		{ "tap=t,mac=02:00:00:00:00", "--net tap=t,mac=02:00:00:00:00: bad MAC '02:00:00:00:00' (use six hex pairs" },
		{ "tap=t,mac=02:00:00:00:00:0g", "bad MAC '02:00:00:00:00:0g'" },
		{ "tap=t,mac=02-00-00-00-00-01", "bad MAC" },
		{ "tap=t,mac=2:0:0:0:0:1", "bad MAC" },
		{ "tap=t,mac=02:00:00:00:00:01:", "bad MAC" },
		{ "tap=t,mac=", "bad MAC ''" },
		{ "tap=t,mac=01:00:5e:00:00:01", "--net tap=t,mac=01:00:5e:00:00:01: MAC 01:00:5e:00:00:01 is a multicast address" },
		{ "tap=t,mac=ff:ff:ff:ff:ff:ff", "is a multicast address" },
		{ "tap=t,mac=00:00:00:00:00:00", "--net tap=t,mac=00:00:00:00:00:00: MAC 00:00:00:00:00:00 is all zeros" },
		{ "tap=t,mtu=9000", "--net tap=t,mtu=9000: unknown option 'mtu=9000'" },
		{ "tap=t,", "--net tap=t,: unknown option ''" },
		{ "tap=a,tap=b", "tap= given twice" },
		{ "tap=a,mac=random,mac=random", "mac= given twice" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "microvm", "--kernel", "k", "--net", bad[i].val, NULL };
		err_clear();
		cr_assert_eq(parse(&cfg, 5, argv), -EINVAL, "--net '%s' accepted", bad[i].val);
		cr_assert_not_null(strstr(err_msg(), bad[i].msg), "--net '%s': got '%s', want '%s'", bad[i].val,
				   err_msg(), bad[i].msg);
	}
	char *argv[] = { "microvm", "--kernel", "k", "--net", NULL };
	cr_assert_eq(parse(&cfg, 4, argv), -EINVAL);
	cr_assert(strstr(err_msg(), "--net needs a value"), "%s", err_msg());
}

Test(cli, net_duplicates_across_flags)
{
	static struct vmm_config cfg;
	char *dup_tap[] = { "microvm", "--kernel", "k", "--net", "tap=t0", "--net", "tap=t0,mac=random", NULL };
	char *dup_mac[] = { "microvm", "--kernel", "k", "--net", "tap=a,mac=02:00:00:00:00:01",
			    "--net", "tap=b,mac=02:00:00:00:00:01", NULL };

	cr_assert_eq(parse(&cfg, 7, dup_tap), -EINVAL);
	cr_assert_str_eq(err_msg(), "--net tap=t0,mac=random: tap t0 is already used by an earlier --net");
	cr_assert_eq(parse(&cfg, 7, dup_mac), -EINVAL);
	cr_assert_str_eq(err_msg(), "--net tap=b,mac=02:00:00:00:00:01: same MAC as --net tap=a");
}

Test(cli, too_many_nics)
{
	static struct vmm_config cfg;
	static char names[CFG_MAX_NICS + 1][16];
	char *argv[3 + 2 * (CFG_MAX_NICS + 1) + 1] = { "microvm", "--kernel", "k" };
	int argc = 3;

	for (int i = 0; i <= CFG_MAX_NICS; i++) {
		snprintf(names[i], sizeof(names[i]), "tap=t%d", i);
		argv[argc++] = "--net";
		argv[argc++] = names[i];
	}
	cr_assert_eq(parse(&cfg, argc - 2, argv), 0, "%s", err_msg());
	cr_assert_eq(cfg.nr_nics, CFG_MAX_NICS);
	cr_assert_eq(parse(&cfg, argc, argv), -EINVAL);
	cr_assert(strstr(err_msg(), "at most 4 interfaces"), "%s", err_msg());
}

Test(cli, help_mentions_net)
{
	char buf[8192] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	cli_usage(f);
	fclose(f);
	cr_assert(strstr(buf, "--net tap=NAME[,mac=XX:XX:XX:XX:XX:XX|mac=random]"));
}

Test(cli, timeout_stats_run)
{
	struct vmm_config cfg;
	char *a[] = { "microvm", "--kernel", "k", "--timeout", "2.5", "--stats", "--run", "s.sh" };
	char *b[] = { "microvm", "--kernel", "k", "--timeout=30", "--stats=json", "--run=t.sh" };
	char *c[] = { "microvm", "--kernel", "k", "--stats=text" };

	cr_assert_eq(parse(&cfg, 8, a), 0, "%s", err_msg());
	cr_assert_eq(cfg.timeout_ms, 2500);
	cr_assert_eq(cfg.stats, STATS_TEXT);
	cr_assert_str_eq(cfg.run, "s.sh");
	cr_assert_eq(parse(&cfg, 6, b), 0, "%s", err_msg());
	cr_assert_eq(cfg.timeout_ms, 30000);
	cr_assert_eq(cfg.stats, STATS_JSON);
	cr_assert_str_eq(cfg.run, "t.sh");
	cr_assert_eq(parse(&cfg, 4, c), 0, "%s", err_msg());
	cr_assert_eq(cfg.stats, STATS_TEXT);
	cr_assert_eq(cfg.timeout_ms, 0, "no --timeout: none");
	cr_assert_null(cfg.run);
	cr_assert_null(cfg.user, "no --user: stay who we are");
	cr_assert_null(cfg.api_sock, "no --api-sock: no control API");
}

Test(cli, user)
{
	struct vmm_config cfg;
	char *a[] = { "microvm", "--kernel", "k", "--user", "nobody:nogroup" };
	char *b[] = { "microvm", "--kernel", "k", "--user=1000:1000" };

	cr_assert_eq(parse(&cfg, 5, a), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.user, "nobody:nogroup");
	cr_assert_eq(parse(&cfg, 4, b), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.user, "1000:1000");
}

Test(cli, jail_netns_cgroup)
{
	struct vmm_config cfg;
	char *a[] = { "microvm", "--kernel", "k", "--jail", "/srv/j", "--netns=/run/netns/t1",
		      "--cgroup", "microvm/vm1,memory.max=256M,cpu.max=50000/100000,pids.max=64" };
	char *b[] = { "microvm", "--kernel", "k" };

	cr_assert_eq(parse(&cfg, 8, a), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.jail, "/srv/j");
	cr_assert_str_eq(cfg.netns, "/run/netns/t1");
	cr_assert(cfg.cgroup.set);
	cr_assert_str_eq(cfg.cgroup.path, "microvm/vm1");
	cr_assert_str_eq(cfg.cgroup.memory_max, "268435456");
	cr_assert_str_eq(cfg.cgroup.cpu_max, "50000 100000");
	cr_assert_str_eq(cfg.cgroup.pids_max, "64");
	cr_assert_eq(parse(&cfg, 3, b), 0, "%s", err_msg());
	cr_assert_null(cfg.jail, "no jail by default");
	cr_assert_null(cfg.netns);
	cr_assert_not(cfg.cgroup.set, "no cgroup by default");

	char buf[16384] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
	cli_usage(f);
	fclose(f);
	cr_assert(strstr(buf, "--jail DIR") && strstr(buf, "--netns PATH") && strstr(buf, "--cgroup PATH") &&
		  strstr(buf, "125 --cgroup"), "--help names the new flags and status 125");
}

Test(cli, jail_errors)
{
	static struct bad_case cases[] = {
		{ 5, { "microvm", "--kernel", "k", "--jail", "srv/j" }, "--jail srv/j: must be an absolute path" },
		{ 5, { "microvm", "--kernel", "k", "--jail", "" }, "--jail : must be an absolute path" },
		{ 4, { "microvm", "--kernel", "k", "--jail" }, "--jail needs a value" },
		{ 5, { "microvm", "--kernel", "k", "--netns", "t1" }, "--netns t1: must be an absolute path" },
		{ 5, { "microvm", "--kernel", "k", "--cgroup", "" }, "--cgroup : give a group below /sys/fs/cgroup" },
		{ 5, { "microvm", "--kernel", "k", "--cgroup", "g,pids.max=0" }, "--cgroup g,pids.max=0: pids.max=0: must be" },
		{ 6, { "microvm", "--restore=s", "--jail", "/j", "--record-working-set", "5" },
		  "--record-working-set: not with --jail" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vmm_config cfg;
		err_clear();
		cr_assert_eq(parse(&cfg, cases[i].argc, cases[i].argv), -EINVAL, "case %zu", i);
		cr_assert_not_null(strstr(err_msg(), cases[i].msg), "case %zu: got '%s', want '%s'", i,
				   err_msg(), cases[i].msg);
	}
}

Test(cli, no_seccomp)
{
	struct vmm_config cfg;
	char *a[] = { "microvm", "--kernel", "k" };
	char *b[] = { "microvm", "--no-seccomp", "--kernel", "k" };
	char *c[] = { "microvm", "--kernel", "k", "--no-seccomp=1" };
	char buf[8192] = { 0 };

	cr_assert_eq(parse(&cfg, 3, a), 0, "%s", err_msg());
	cr_assert_not(cfg.no_seccomp, "the filters are on by default");
	cr_assert_eq(parse(&cfg, 4, b), 0, "%s", err_msg());
	cr_assert(cfg.no_seccomp);
	cr_assert_lt(parse(&cfg, 4, c), 0);
	cr_assert(strstr(err_msg(), "--no-seccomp=1"), "%s", err_msg());
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
	cli_usage(f);
	fclose(f);
	cr_assert(strstr(buf, "--no-seccomp"));
}

Test(cli, parse_timeout_values)
{
	uint64_t ms = 0;

	cr_assert_eq(parse_timeout("1", &ms), 0);
	cr_assert_eq(ms, 1000);
	cr_assert_eq(parse_timeout("0.001", &ms), 0);
	cr_assert_eq(ms, 1);
	cr_assert_eq(parse_timeout("0.0001", &ms), 0);
	cr_assert_eq(ms, 1, "rounded up to 1 ms, never 0 (0 means no timeout)");
	cr_assert_eq(parse_timeout(".5", &ms), 0);
	cr_assert_eq(ms, 500);
	cr_assert_eq(parse_timeout("31536000", &ms), 0);
	const char *bad[] = { "", "0", "0.0", "-1", "+1", "1e3", "inf", "nan", "0x10", "1.2.3", "5s",
			      " 5", "31536001" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse_timeout(bad[i], &ms), -EINVAL, "'%s' accepted", bad[i]);
}

Test(cli, timeout_stats_run_errors)
{
	static struct bad_case cases[] = {
		{ 5, { "microvm", "--kernel", "k", "--timeout", "0" }, "--timeout 0: must be a positive number" },
		{ 5, { "microvm", "--kernel", "k", "--timeout", "soon" }, "--timeout soon: must be" },
		{ 4, { "microvm", "--kernel", "k", "--timeout" }, "--timeout needs a value" },
		{ 4, { "microvm", "--kernel", "k", "--stats=xml" }, "--stats=xml: the format must be text or json" },
		{ 4, { "microvm", "--kernel", "k", "--run" }, "--run needs a value" },
		{ 5, { "microvm", "--kernel", "k", "--run", "" }, "--run: empty path" },
		{ 5, { "microvm", "--kernel", "k", "--user", "" }, "--user: empty user" },
		{ 5, { "microvm", "--kernel", "k", "--api-sock", "" }, "--api-sock: empty path" },
		{ 4, { "microvm", "--kernel", "k", "--api-sock" }, "--api-sock needs a value" },
		{ 4, { "microvm", "--kernel", "k", "--user" }, "--user needs a value" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vmm_config cfg;
		err_clear();
		cr_assert_eq(parse(&cfg, cases[i].argc, cases[i].argv), -EINVAL, "case %zu", i);
		cr_assert_not_null(strstr(err_msg(), cases[i].msg), "case %zu: got '%s', want '%s'", i,
				   err_msg(), cases[i].msg);
	}
}

Test(cli, run_needs_a_free_disk_slot)
{
	char *argv[5 + 2 * CFG_MAX_DISKS];
	int argc = 0;
	struct vmm_config cfg;

	argv[argc++] = "microvm";
	argv[argc++] = "--kernel";
	argv[argc++] = "k";
	argv[argc++] = "--run";
	argv[argc++] = "s.sh";
	for (int i = 0; i < CFG_MAX_DISKS - 1; i++) {
		argv[argc++] = "--disk";
		argv[argc++] = "d.img";
	}
	cr_assert_eq(parse(&cfg, argc, argv), 0, "%s", err_msg());
	argv[argc++] = "--disk";
	argv[argc++] = "d.img";
	cr_assert_eq(parse(&cfg, argc, argv), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "--run s.sh: needs a disk slot of its own: at most 7 --disk"),
			   "%s", err_msg());
}

Test(cli, help_mentions_runs_and_exit_codes)
{
	char buf[8192] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	cli_usage(f);
	fclose(f);
	const char *words[] = { "--run SCRIPT", "--timeout SECS", "--stats[=text|json|off]", "--config FILE", "docs/config.md", "122", "123",
				"124", "docs/cli-runs.md" };
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		cr_assert_not_null(strstr(buf, words[i]), "help lacks %s", words[i]);
}

/* --restore: --disk and --net name the restored VM's back ends; what describes a machine is refused. */
Test(cli, restore_takes_back_ends_only)
{
	struct vmm_config cfg;
	char *ok[] = { "microvm", "--restore", "/srv/snap", "--disk", "/srv/c1.img,id=root", "--net", "tap=c1" };

	err_clear();
	cr_assert_eq(parse(&cfg, 7, ok), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.restore, "/srv/snap");
	cr_assert_eq(cfg.nr_disks, 1);
	cr_assert_str_eq(cfg.disks[0].id, "root");
	cr_assert_eq(cfg.nr_nics, 1);
	cr_assert_str_eq(cfg.nics[0].tap, "c1");
	char *machine[][2] = { { "--kernel", "k" }, { "--mem", "128M" }, { "--cpus", "2" },
				     { "--cmdline", "x" }, { "--initrd", "i" }, { "--run", "s.sh" } };
	for (size_t i = 0; i < sizeof(machine) / sizeof(machine[0]); i++) {
		char *argv[] = { "microvm", "--restore", "/srv/snap", machine[i][0], machine[i][1] };
		err_clear();
		cr_assert_eq(parse(&cfg, 5, argv), -EINVAL, "%s with --restore", machine[i][0]);
		cr_assert(strstr(err_msg(), "the snapshot defines the machine"), "%s", err_msg());
	}
}

/* The restore's switches: --verify-memory, --paused (needs --api-sock), the working set's. */
Test(cli, restore_switches)
{
	struct vmm_config cfg;
	char *ok[] = { "microvm", "--restore", "/srv/snap", "--verify-memory", "--paused", "--api-sock", "a.sock",
		       "--record-working-set", "2.5", "--no-working-set" };

	err_clear();
	cr_assert_eq(parse(&cfg, 10, ok), 0, "%s", err_msg());
	cr_assert(cfg.verify_memory && cfg.paused && cfg.no_working_set);
	cr_assert_eq(cfg.record_ws_ms, 2500);
	char *boot_paused[] = { "microvm", "--kernel", "k", "--paused", "--api-sock", "a.sock" };
	cr_assert_eq(parse(&cfg, 6, boot_paused), 0, "--paused with a boot: %s", err_msg());
	struct { int argc; char *argv[6]; const char *msg; } bad[] = {
		{ 4, { "microvm", "--restore", "/s", "--paused" }, "--paused: needs --api-sock" },
		{ 4, { "microvm", "--kernel", "k", "--verify-memory" }, "--verify-memory: only with --restore" },
		{ 5, { "microvm", "--kernel", "k", "--record-working-set", "5" }, "--record-working-set: only with --restore" },
		{ 4, { "microvm", "--kernel", "k", "--no-working-set" }, "--no-working-set: only with --restore" },
		{ 5, { "microvm", "--restore", "/s", "--record-working-set", "0" }, "--record-working-set 0: must be" },
		{ 5, { "microvm", "--restore", "/s", "--record-working-set", "3601" }, "at most 3600" },
		{ 4, { "microvm", "--restore", "/s", "--paused=1" }, "unknown option" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear();
		cr_assert_eq(parse(&cfg, bad[i].argc, bad[i].argv), -EINVAL, "case %zu", i);
		cr_assert(strstr(err_msg(), bad[i].msg), "case %zu: '%s' lacks '%s'", i, err_msg(), bad[i].msg);
	}
}

/* --host-info and --no-host-quirks (vmm/quirks.h) on the command line. */
Test(cli_host, host_info_needs_no_kernel)
{
	struct vmm_config cfg;
	char *argv[] = { "microvm", "--host-info", NULL };

	cr_assert_eq(cli_parse(2, argv, &cfg, stdout), 0);
	cr_assert(cfg.host_info);
	cr_assert_not(cfg.no_host_quirks);
}

Test(cli_host, no_host_quirks)
{
	struct vmm_config cfg;
	char *argv[] = { "microvm", "--kernel", "k", "--no-host-quirks", NULL };

	cr_assert_eq(cli_parse(4, argv, &cfg, stdout), 0);
	cr_assert(cfg.no_host_quirks);
	cr_assert_not(cfg.host_info);
}

Test(cli_host, kernel_still_required_otherwise)
{
	struct vmm_config cfg;
	char *argv[] = { "microvm", "--no-host-quirks", NULL };

	cr_assert_lt(cli_parse(2, argv, &cfg, stdout), 0);
}

Test(cli, rate_limits)
{
	struct disk_config d;
	struct net_config n;

	cr_assert_eq(parse_disk("a.img,bw=10M,iops=1000/500+200", &d), 0, "%s", err_msg());
	cr_assert_eq(d.limit.bytes.size, 10ULL << 20);
	cr_assert_eq(d.limit.bytes.refill_ms, 1000);
	cr_assert_eq(d.limit.bytes.burst, 0);
	cr_assert_eq(d.limit.ops.size, 1000);
	cr_assert_eq(d.limit.ops.refill_ms, 500);
	cr_assert_eq(d.limit.ops.burst, 200);
	cr_assert_eq(parse_disk("a.img,bw=1M/100+50M,ro", &d), 0, "%s", err_msg());
	cr_assert_eq(d.limit.bytes.size, 1ULL << 20);
	cr_assert_eq(d.limit.bytes.refill_ms, 100);
	cr_assert_eq(d.limit.bytes.burst, 50ULL << 20);
	cr_assert(d.ro);
	cr_assert_eq(parse_disk("a.img,bw=0", &d), 0, "%s", err_msg());
	cr_assert_eq(d.limit.bytes.size, 0, "0: no limit");
	cr_assert_eq(parse_disk("a.img", &d), 0);
	cr_assert_eq(d.limit.bytes.size | d.limit.ops.size, 0, "no limit by default");

	cr_assert_eq(parse_net("rx_bw=2M,tap=t0,tx_pps=5000+1000,rx_pps=10/10,tx_bw=4G", &n), 0, "%s", err_msg());
	cr_assert_str_eq(n.tap, "t0");
	cr_assert_eq(n.rx.bytes.size, 2ULL << 20);
	cr_assert_eq(n.rx.ops.size, 10);
	cr_assert_eq(n.rx.ops.refill_ms, 10);
	cr_assert_eq(n.tx.bytes.size, 4ULL << 30);
	cr_assert_eq(n.tx.ops.size, 5000);
	cr_assert_eq(n.tx.ops.burst, 1000);

	/* format_limit() writes what parse_limit() reads. */
	char buf[80];
	struct tb_config back;
	format_limit(&d.limit.bytes, buf, sizeof(buf));
	cr_assert_str_eq(buf, "0");
	format_limit(&n.tx.ops, buf, sizeof(buf));
	cr_assert_str_eq(buf, "5000/1000+1000");
	cr_assert_eq(parse_limit(buf, strlen(buf), false, &back), 0);
	cr_assert_eq(memcmp(&back, &n.tx.ops, sizeof(back)), 0);
}

Test(cli, rate_limit_errors)
{
	static struct vmm_config cfg;
	static struct {
		char *flag, *val;
		const char *msg;
	} bad[] = {
		{ "--disk", "a.img,bw=", "bad bw= ''" },
		{ "--disk", "a.img,bw=fast", "bad bw= 'fast'" },
		{ "--disk", "a.img,bw=-1", "bad bw=" },
		{ "--disk", "a.img,bw=10M/0", "bad bw=" },
		{ "--disk", "a.img,bw=10M/3600001", "bad bw=" },
		{ "--disk", "a.img,bw=10M/", "bad bw=" },
		{ "--disk", "a.img,bw=10M+", "bad bw=" },
		{ "--disk", "a.img,bw=10M+5M/100", "bad bw=" },
		{ "--disk", "a.img,bw=0+5M", "bad bw=" },
		{ "--disk", "a.img,bw=0/100", "bad bw=" },
		{ "--disk", "a.img,bw=99999999999999999999", "bad bw=" },
		{ "--disk", "a.img,bw=5000000T", "bad bw=" },
		{ "--disk", "a.img,bw=1M+5000000T", "bad bw=" },
		{ "--disk", "a.img,bw=4611686018427387905", "bad bw=" },
		{ "--disk", "a.img,iops=10K", "plain numbers, no suffix" },
		{ "--disk", "a.img,iops=1.5", "bad iops=" },
		{ "--disk", "a.img,bandwidth=1M", "unknown option 'bandwidth=1M'" },
		{ "--net", "tap=t,rx_bw=1X", "bad rx_bw= '1X'" },
		{ "--net", "tap=t,tx_pps=1M", "plain numbers, no suffix" },
		{ "--net", "tap=t,rx-bw=1M", "unknown option 'rx-bw=1M'" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "microvm", "--kernel", "k", bad[i].flag, bad[i].val, NULL };
		cr_assert_eq(parse(&cfg, 5, argv), -EINVAL, "%s '%s' accepted", bad[i].flag, bad[i].val);
		cr_assert_not_null(strstr(err_msg(), bad[i].msg), "%s '%s': got '%s', want '%s'", bad[i].flag,
				   bad[i].val, err_msg(), bad[i].msg);
		cr_assert_null(strchr(err_msg(), '\n'), "one line: %s", err_msg());
	}
}

Test(cli, shutdown_client)
{
	struct vmm_config cfg;

	char *ok[] = { "microvm", "--shutdown", "/run/microvm/vm1.sock", "--timeout", "2.5", "-q" };
	cr_assert_eq(parse(&cfg, 6, ok), 0, "no --kernel needed: %s", err_msg());
	cr_assert_str_eq(cfg.shutdown_sock, "/run/microvm/vm1.sock");
	cr_assert_eq(cfg.timeout_ms, 2500);
	config_free(&cfg);

	char *other[] = { "microvm", "--shutdown=/s.sock", "--kernel", "k" };
	cr_assert_eq(parse(&cfg, 4, other), -EINVAL);
	cr_assert_str_eq(err_msg(), "--shutdown /s.sock: a client of another microvm's API: only --timeout, -q and "
				    "-v go with it, not --kernel");
	config_free(&cfg);

	char *cfgfile[] = { "microvm", "--config", "/nonexistent.json", "--shutdown", "/s.sock" };
	cr_assert_lt(parse(&cfg, 5, cfgfile), 0, "a --config file is never a --shutdown's");
	config_free(&cfg);

	char *longer[] = { "microvm", "--shutdown", "/s.sock", "--timeout", "3601" };
	cr_assert_eq(parse(&cfg, 5, longer), -EINVAL);
	cr_assert(strstr(err_msg(), "--timeout at most 3600 seconds"), "%s", err_msg());
	config_free(&cfg);

	char *empty[] = { "microvm", "--shutdown=" };
	cr_assert_eq(parse(&cfg, 2, empty), -EINVAL);
	cr_assert_str_eq(err_msg(), "--shutdown: empty socket path");
	config_free(&cfg);

	char *novalue[] = { "microvm", "--shutdown" };
	cr_assert_eq(parse(&cfg, 2, novalue), -EINVAL);
	cr_assert(strstr(err_msg(), "--shutdown needs a value"), "%s", err_msg());
	config_free(&cfg);
}
