/* test_cmdline.c - the guest kernel's command line: its parts in order, "--", the word scanner, the length limit (vmm/cmdline.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "firmware/machine.h"
#include "vmm/cmdline.h"
#include "vmm/config.h"

#define DEV0 "virtio_mmio.device=4K@0xd0000000:5"
#define DEV1 "virtio_mmio.device=4K@0xd0001000:6"

/* A machine with a disk and a NIC: the two device words above. */
static struct machine two_devices(void)
{
	struct machine m;

	cr_assert_eq(machine_init(&m, 256ULL << 20, 1), 0, "%s", err_msg());
	cr_assert_eq(machine_add_mmio_dev(&m, MMIO_DEV_VIRTIO_BLK), 0);
	cr_assert_eq(machine_add_mmio_dev(&m, MMIO_DEV_VIRTIO_NET), 1);
	return m;
}

/* cmdline_compose(p) with no limit; the string, to be freed. */
static char *compose(const struct cmdline_parts *p)
{
	char *s = NULL;

	cr_assert_eq(cmdline_compose(p, SIZE_MAX, &s), 0, "%s", err_msg());
	cr_assert_not_null(s);
	return s;
}

#define ASSERT_COMPOSES(want, ...)                                            \
	do {                                                                  \
		char *got_ = compose(&(struct cmdline_parts){ __VA_ARGS__ }); \
		cr_assert_str_eq(got_, want);                                 \
		free(got_);                                                   \
	} while (0)

/* ---- the scanner ---- */

Test(has_word, whole_words)
{
	cr_assert(cmdline_has_word("acpi=off", "acpi=off", CMDLINE_WORD));
	cr_assert(cmdline_has_word("console=ttyS0 acpi=off quiet", "acpi=off", CMDLINE_WORD));
	cr_assert(!cmdline_has_word("xacpi=off", "acpi=off", CMDLINE_WORD), "inside a word");
	cr_assert(!cmdline_has_word("acpi=offline", "acpi=off", CMDLINE_WORD), "a longer word");
	cr_assert(!cmdline_has_word("acpi=of", "acpi=off", CMDLINE_WORD), "a shorter word");
	cr_assert(!cmdline_has_word("", "acpi=off", CMDLINE_WORD));
	cr_assert(!cmdline_has_word("   ", "acpi=off", CMDLINE_WORD));
}

Test(has_word, prefixes)
{
	cr_assert(cmdline_has_word("acpi=offline", "acpi=off", CMDLINE_PREFIX), "prefix");
	cr_assert(cmdline_has_word("a microvm.run=/dev/vdb", "microvm.run=", CMDLINE_PREFIX));
	cr_assert(cmdline_has_word("microvm.run=", "microvm.run=", CMDLINE_PREFIX), "the prefix alone");
	cr_assert(!cmdline_has_word("a xmicrovm.run=/dev/vdb", "microvm.run=", CMDLINE_PREFIX));
	cr_assert(!cmdline_has_word("a microvm.run", "microvm.run=", CMDLINE_PREFIX));
}

Test(has_word, keys)
{
	cr_assert(cmdline_has_word("nopv", "nopv", CMDLINE_KEY));
	cr_assert(cmdline_has_word("a nopv=1", "nopv", CMDLINE_KEY), "a value of the user's");
	cr_assert(cmdline_has_word("tsc_early_khz=7", "tsc_early_khz=5", CMDLINE_KEY), "any value");
	cr_assert(cmdline_has_word("tsc_early_khz", "tsc_early_khz=5", CMDLINE_KEY), "no value");
	cr_assert(cmdline_has_word("clearcpuid=1,2 x", "clearcpuid=cx16", CMDLINE_KEY));
	/* Not the same keys: a longer one, a prefix, one in a value. */
	cr_assert(!cmdline_has_word("nopvspin", "nopv", CMDLINE_KEY));
	cr_assert(!cmdline_has_word("xclearcpuid=1", "clearcpuid=cx16", CMDLINE_KEY));
	cr_assert(!cmdline_has_word("foo=nopv", "nopv", CMDLINE_KEY));
	cr_assert(!cmdline_has_word("cryptomgr.notestsx", "cryptomgr.notests", CMDLINE_KEY));
	cr_assert(!cmdline_has_word("tsc_early_kh=1", "tsc_early_khz=5", CMDLINE_KEY));
}

Test(has_word, white_space_separates)
{
	cr_assert(cmdline_has_word("console=ttyS0\tacpi=off", "acpi=off", CMDLINE_WORD));
	cr_assert(cmdline_has_word("a\nacpi=off\n", "acpi=off", CMDLINE_WORD));
	cr_assert(cmdline_has_word("  acpi=off  ", "acpi=off", CMDLINE_WORD));
	cr_assert(cmdline_has_word("a\r\v\fnopv=1", "nopv", CMDLINE_KEY));
	cr_assert(!cmdline_has_word("a,acpi=off", "acpi=off", CMDLINE_WORD), "a comma is part of the word");
}

/* The kernel stops parsing its parameters at "--": the words after it are init's. */
Test(has_word, kernel_words_end_at_dashdash)
{
	cr_assert(!cmdline_has_word("console=ttyS0 -- acpi=off", "acpi=off", CMDLINE_WORD));
	cr_assert(!cmdline_has_word("-- acpi=off", "acpi=off", CMDLINE_WORD));
	cr_assert(!cmdline_has_word("a\t--\tnopv", "nopv", CMDLINE_KEY));
	cr_assert(!cmdline_has_word("a -- microvm.run=/dev/vda", "microvm.run=", CMDLINE_PREFIX));
	cr_assert(cmdline_has_word("acpi=off -- x", "acpi=off", CMDLINE_WORD), "before it");
	/* Only a word that is exactly "--". */
	cr_assert(cmdline_has_word("a --x acpi=off", "acpi=off", CMDLINE_WORD));
	cr_assert(cmdline_has_word("a x-- acpi=off", "acpi=off", CMDLINE_WORD));
	cr_assert(cmdline_has_word("a --- acpi=off", "acpi=off", CMDLINE_WORD));
	/* A second "--" is one of init's words like any other. */
	cr_assert(!cmdline_has_word("a -- b -- acpi=off", "acpi=off", CMDLINE_WORD));
}

Test(has_word, with_init_looks_past_dashdash)
{
	cr_assert(cmdline_has_word("a -- microvm.run=/dev/vda", "microvm.run=", CMDLINE_PREFIX | CMDLINE_WITH_INIT));
	cr_assert(cmdline_has_word("a -- acpi=off", "acpi=off", CMDLINE_WORD | CMDLINE_WITH_INIT));
	cr_assert(cmdline_has_word("-- nopv=1", "nopv", CMDLINE_KEY | CMDLINE_WITH_INIT));
	cr_assert(cmdline_has_word("microvm.run=x -- b", "microvm.run=", CMDLINE_PREFIX | CMDLINE_WITH_INIT));
	cr_assert(!cmdline_has_word("a -- xmicrovm.run=", "microvm.run=", CMDLINE_PREFIX | CMDLINE_WITH_INIT));
}

/* ---- composing ---- */

Test(compose, user_line_alone)
{
	ASSERT_COMPOSES("console=ttyS0 quiet", .user = "console=ttyS0 quiet");
	ASSERT_COMPOSES("", .user = "");
	ASSERT_COMPOSES("a  b\t", .user = "a  b\t", .run_dev = "", .host_opts = "");
}

Test(compose, all_parts_in_order)
{
	struct machine m = two_devices();

	ASSERT_COMPOSES("console=ttyS0 microvm.run=/dev/vdc " DEV0 " " DEV1 " nopv x=1", .user = "console=ttyS0",
			.run_dev = "/dev/vdc", .devices = true, .machine = &m, .host_opts = "nopv x=1");
	/* Any of them may be missing; no space at the start. */
	ASSERT_COMPOSES("microvm.run=/dev/vda " DEV0 " " DEV1 " nopv", .user = "", .run_dev = "/dev/vda",
			.devices = true, .machine = &m, .host_opts = "nopv");
	ASSERT_COMPOSES(DEV0 " " DEV1, .user = "", .devices = true, .machine = &m);
	ASSERT_COMPOSES("microvm.run=/dev/vda", .user = "", .run_dev = "/dev/vda");
	ASSERT_COMPOSES("nopv", .user = "", .host_opts = "nopv");
	ASSERT_COMPOSES("console=ttyS0 microvm.run=/dev/vdc", .user = "console=ttyS0", .run_dev = "/dev/vdc");
	ASSERT_COMPOSES("console=ttyS0 nopv a=b", .user = "console=ttyS0", .host_opts = "nopv a=b");
}

Test(compose, device_words_with_acpi_off)
{
	struct machine m = two_devices();
	struct machine none;

	cr_assert_eq(machine_init(&none, 256ULL << 20, 1), 0);
	ASSERT_COMPOSES("acpi=off " DEV0 " " DEV1, .user = "acpi=off", .machine = &m);
	ASSERT_COMPOSES("x acpi=off microvm.run=/dev/vdb " DEV0 " " DEV1, .user = "x acpi=off", .machine = &m,
			.run_dev = "/dev/vdb");
	ASSERT_COMPOSES("console=ttyS0", .user = "console=ttyS0", .machine = &m);
	ASSERT_COMPOSES("acpi=offline", .user = "acpi=offline", .machine = &m);
	/* acpi=off among init's words turns nothing off in the kernel. */
	ASSERT_COMPOSES("x -- acpi=off", .user = "x -- acpi=off", .machine = &m);
	/* No machine or no devices: no words. */
	ASSERT_COMPOSES("acpi=off", .user = "acpi=off", .devices = true);
	ASSERT_COMPOSES("acpi=off", .user = "acpi=off", .devices = true, .machine = &none);
}

/* The host's options stay the kernel's: before the first "--" word. */
Test(compose, host_options_before_init_arguments)
{
	struct machine m = two_devices();

	ASSERT_COMPOSES("console=ttyS0 nopv -- single x=1", .user = "console=ttyS0 -- single x=1", .host_opts = "nopv");
	ASSERT_COMPOSES("nopv -- single", .user = "-- single", .host_opts = "nopv");
	ASSERT_COMPOSES("a --b nopv -- c", .user = "a --b -- c", .host_opts = "nopv");
	ASSERT_COMPOSES("a nopv --", .user = "a --", .host_opts = "nopv");
	ASSERT_COMPOSES("a nopv -- b -- c", .user = "a -- b -- c", .host_opts = "nopv", .run_dev = "");
	/* The white space before "--" becomes one space on each side of the options. */
	ASSERT_COMPOSES("a nopv --  b", .user = "a   --  b", .host_opts = "nopv");
	ASSERT_COMPOSES("a nopv --\tb", .user = "a\t--\tb", .host_opts = "nopv");
	ASSERT_COMPOSES("nopv -- b", .user = "  -- b", .host_opts = "nopv");
	/* --run's and the devices' words go at the end, after the user's "--" (init's arguments). */
	ASSERT_COMPOSES("console=ttyS0 nopv tsc_early_khz=1 -- x microvm.run=/dev/vdc " DEV0 " " DEV1,
			.user = "console=ttyS0 -- x", .run_dev = "/dev/vdc", .devices = true, .machine = &m,
			.host_opts = "nopv tsc_early_khz=1");
	/* Without host options the line is as given. */
	ASSERT_COMPOSES("a -- b microvm.run=/dev/vda", .user = "a -- b", .run_dev = "/dev/vda");
}

Test(compose, length_limit_leaves_out_the_host_options)
{
	const struct cmdline_parts p = { .user = "console=ttyS0", .run_dev = "/dev/vda", .host_opts = "nopv" };
	const char *all = "console=ttyS0 microvm.run=/dev/vda nopv";
	char *s;

	cr_assert_eq(cmdline_compose(&p, strlen(all), &s), 0, "exactly the limit fits");
	cr_assert_str_eq(s, all);
	free(s);
	cr_assert_eq(cmdline_compose(&p, strlen(all) - 1, &s), 1, "one byte over");
	cr_assert_str_eq(s, "console=ttyS0 microvm.run=/dev/vda");
	free(s);
	/* The rest is never cut: refusing it is the caller's (boot_check_cmdline()). */
	cr_assert_eq(cmdline_compose(&p, 3, &s), 1);
	cr_assert_str_eq(s, "console=ttyS0 microvm.run=/dev/vda");
	free(s);
	const struct cmdline_parts q = { .user = "console=ttyS0", .run_dev = "/dev/vda" };
	cr_assert_eq(cmdline_compose(&q, 3, &s), 0, "no host options: nothing left out");
	cr_assert_str_eq(s, "console=ttyS0 microvm.run=/dev/vda");
	free(s);
	/* Before "--" too. */
	const struct cmdline_parts r = { .user = "a -- b", .host_opts = "nopv" };
	cr_assert_eq(cmdline_compose(&r, strlen("a nopv -- b"), &s), 0);
	cr_assert_str_eq(s, "a nopv -- b");
	free(s);
	cr_assert_eq(cmdline_compose(&r, strlen("a nopv -- b") - 1, &s), 1);
	cr_assert_str_eq(s, "a -- b");
	free(s);
}

Test(compose, parts_of_a_configuration)
{
	struct vmm_config cfg;
	struct machine m = two_devices();
	char *s;

	config_defaults(&cfg);
	struct cmdline_parts p = cmdline_parts(&cfg, &m);
	cr_assert_eq(p.user, cfg.cmdline);
	cr_assert_eq(p.machine, &m);
	cr_assert_null(p.host_opts);
	cr_assert_eq(cmdline_compose(&p, SIZE_MAX, &s), 0);
	cr_assert_str_eq(s, CFG_DEFAULT_CMDLINE, "no --run, no --cmdline-devices");
	free(s);

	strcpy(cfg.run_dev, "/dev/vdb");
	cfg.cmdline_devices = true;
	p = cmdline_parts(&cfg, &m);
	cr_assert_eq(cmdline_compose(&p, SIZE_MAX, &s), 0);
	cr_assert_str_eq(s, CFG_DEFAULT_CMDLINE " microvm.run=/dev/vdb " DEV0 " " DEV1);
	free(s);
}
