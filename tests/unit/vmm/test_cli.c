/* test_cli.c - command-line and size parsing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "firmware/machine.h"
#include "vmm/cli.h"
#include "vmm/err.h"

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
	cr_assert_str_eq(cfg.cmdline, CLI_DEFAULT_CMDLINE);
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
	const char *bad[] = { "", ",ro", "a.img,rw", "a.img,id=", "a.img,id=123456789012345678901",
			      "a.img,id=a b", "a.img,", "a.img,ro,bogus" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "microvm", "--kernel", "k", "--disk", (char *)bad[i], NULL };
		cr_assert_eq(parse(&cfg, 5, argv), -EINVAL, "--disk '%s' accepted", bad[i]);
		cr_assert(strstr(err_msg(), "--disk"), "%s", err_msg());
	}
	char *argv[] = { "microvm", "--kernel", "k", "--disk", NULL };
	cr_assert_eq(parse(&cfg, 4, argv), -EINVAL);
	cr_assert(strstr(err_msg(), "needs a value"));

	/* 20-byte ids are the maximum virtio-blk carries. */
	struct disk_config d;
	cr_assert_eq(parse_disk("a.img,id=12345678901234567890", &d), 0);
	cr_assert_str_eq(d.id, "12345678901234567890");
}

Test(cli, too_many_disks)
{
	static struct vmm_config cfg;
	char *argv[3 + 2 * (CLI_MAX_DISKS + 1) + 1] = { "microvm", "--kernel", "k" };
	int argc = 3;

	for (int i = 0; i <= CLI_MAX_DISKS; i++) {
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
	cr_assert(strstr(buf, "--disk PATH[,ro][,direct][,id=NAME]"));
	cr_assert(strstr(buf, "--io-engine"));
	cr_assert(strstr(buf, "--cmdline-devices"));
}
