/* test_run.c - the --run disk image, its temporary file and command-line key, and the host check. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/cmdline.h"
#include "vmm/config.h"
#include "base/err.h"
#include "vmm/cli/run.h"

Test(run, image_layout)
{
	const char script[] = "#!/bin/sh\nexit 7\n";
	size_t len = sizeof(script) - 1;
	size_t size = run_image_size(len);
	uint8_t *img = malloc(size);

	cr_assert_eq(size, 512);
	run_image_format(img, (const uint8_t *)script, len);
	const char hdr[] = "MICROVM-RUN v1 17\n";
	cr_assert_eq(memcmp(img, hdr, sizeof(hdr) - 1), 0, "%.*s", 20, img);
	cr_assert_eq(memcmp(img + sizeof(hdr) - 1, script, len), 0);
	for (size_t i = sizeof(hdr) - 1 + len; i < size; i++)
		cr_assert_eq(img[i], 0, "padding byte %zu", i);
	free(img);
}

Test(run, image_sizes)
{
	cr_assert_eq(run_image_size(0), 512);              /* "MICROVM-RUN v1 0\n" */
	cr_assert_eq(run_image_size(493), 512);            /* "MICROVM-RUN v1 493\n" is 19 bytes: 512 */
	cr_assert_eq(run_image_size(494), 1024);           /* 513 */
	cr_assert_eq(run_image_size(100000), 100352);
	uint8_t *img = malloc(run_image_size(0));
	run_image_format(img, NULL, 0);
	cr_assert_eq(memcmp(img, "MICROVM-RUN v1 0\n", 17), 0);
	free(img);
}

static char tmpdir[] = "/tmp/microvm-test-run-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(tmpdir));
	setenv("TMPDIR", tmpdir, 1);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

static void write_text(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(s, f);
	fclose(f);
}

Test(run, prepare_adds_a_disk_and_the_key, .init = setup, .fini = teardown)
{
	struct vmm_config cfg = { .cmdline = "console=ttyS0", .nr_disks = 2 };
	struct run_disk r;
	char script[256];
	struct stat st;

	snprintf(script, sizeof(script), "%s/s.sh", tmpdir);
	write_text(script, "exit 3\n");
	cfg.run = script;
	cr_assert_eq(run_prepare(&r, &cfg), 0, "%s", err_msg());
	cr_assert_eq(cfg.nr_disks, 3);
	cr_assert_str_eq(cfg.disks[2].path, r.path);
	cr_assert(cfg.disks[2].ro);
	cr_assert_str_eq(cfg.disks[2].id, "microvm-run");
	cr_assert_str_eq(cfg.run_dev, "/dev/vdc");
	cr_assert_str_eq(cfg.cmdline, "console=ttyS0", "the user's part stays as given");
	char *guest_line;
	struct cmdline_parts parts = cmdline_parts(&cfg, NULL);
	cr_assert_eq(cmdline_compose(&parts, SIZE_MAX, &guest_line), 0);
	cr_assert_str_eq(guest_line, "console=ttyS0 microvm.run=/dev/vdc");
	free(guest_line);
	cr_assert_eq(strncmp(r.path, tmpdir, strlen(tmpdir)), 0, "made in $TMPDIR: %s", r.path);
	cr_assert_eq(stat(r.path, &st), 0);
	cr_assert_eq(st.st_size, 512);
	FILE *f = fopen(r.path, "r");
	char line[64] = "";
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert_str_eq(line, "MICROVM-RUN v1 7\n");
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert_str_eq(line, "exit 3\n");
	fclose(f);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", r.path);
	run_remove_image(&r);
	cr_assert_neq(stat(path, &st), 0, "removed");
	run_cleanup(&r);
	run_cleanup(&r); /* idempotent */
}

Test(run, prepare_empty_cmdline, .init = setup, .fini = teardown)
{
	struct vmm_config cfg = { .cmdline = "" };
	struct run_disk r;
	char script[256];

	snprintf(script, sizeof(script), "%s/empty.sh", tmpdir);
	write_text(script, "");
	cfg.run = script;
	cr_assert_eq(run_prepare(&r, &cfg), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.run_dev, "/dev/vda");
	char *line;
	struct cmdline_parts parts = cmdline_parts(&cfg, NULL);
	cr_assert_eq(cmdline_compose(&parts, SIZE_MAX, &line), 0);
	cr_assert_str_eq(line, "microvm.run=/dev/vda");
	free(line);
	run_cleanup(&r);
}

Test(run, prepare_errors, .init = setup, .fini = teardown)
{
	struct vmm_config cfg = { .cmdline = "" };
	struct run_disk r;
	char p[256];

	snprintf(p, sizeof(p), "%s/missing.sh", tmpdir);
	cfg.run = p;
	cr_assert_eq(run_prepare(&r, &cfg), -ENOENT);
	cr_assert_not_null(strstr(err_msg(), "missing.sh: No such file or directory"), "%s", err_msg());
	run_cleanup(&r);

	cfg.run = tmpdir;
	cr_assert_eq(run_prepare(&r, &cfg), -EISDIR);
	cr_assert_not_null(strstr(err_msg(), ": is a directory, not a script"), "%s", err_msg());
	run_cleanup(&r);

	snprintf(p, sizeof(p), "%s/s.sh", tmpdir);
	write_text(p, "exit 0\n");
	cfg.run = p;
	cfg.cmdline = "console=ttyS0 microvm.run=/dev/vda";
	cr_assert_eq(run_prepare(&r, &cfg), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "already has microvm.run="), "%s", err_msg());
	run_cleanup(&r);
	/* Among init's words too: init reads microvm.run= from the whole /proc/cmdline. */
	cfg.cmdline = "console=ttyS0 -- microvm.run=/dev/vda";
	cr_assert_eq(run_prepare(&r, &cfg), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "already has microvm.run="), "%s", err_msg());
	run_cleanup(&r);
	cr_assert_str_empty(cfg.run_dev);

	cfg.cmdline = "";
	cfg.nr_disks = CFG_MAX_DISKS;
	cr_assert_eq(run_prepare(&r, &cfg), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "needs a disk slot"), "%s", err_msg());
	run_cleanup(&r);

	if (geteuid() != 0) { /* root reads anything */
		cfg.nr_disks = 0;
		cr_assert_eq(chmod(p, 0), 0);
		cr_assert_eq(run_prepare(&r, &cfg), -EACCES);
		cr_assert_not_null(strstr(err_msg(), "Permission denied"), "%s", err_msg());
		run_cleanup(&r);
	}
}

Test(run, host_check)
{
	struct host_profile hw = { .probed = true, .user_syscalls = true };
	struct host_profile pvm = { .probed = true, .user_syscalls = false };
	struct host_profile unknown = { .probed = false };
	bool over;

	cr_assert_eq(run_check_host(&hw, NULL, &over), 0);
	cr_assert_not(over);
	cr_assert_eq(run_check_host(&unknown, NULL, &over), 0);
	err_clear();
	cr_assert_eq(run_check_host(&pvm, NULL, &over), -EPERM);
	cr_assert_str_eq(err_msg(),
		"--run: this host cannot run guest user programs (guest user mode has no system "
		"calls here: see docs/host-quirks.md); the script would never run, so microvm "
		"does not start the guest. Run it on a host with VT-x/AMD-V");
	cr_assert_eq(run_check_host(&pvm, "0", &over), -EPERM);
	cr_assert_eq(run_check_host(&pvm, "1", &over), 0);
	cr_assert(over);
	err_clear();
	cr_assert_eq(run_check_host(&hw, "0", &over), -EPERM, "=0 refuses on any host");
	cr_assert_not_null(strstr(err_msg(), "(MICROVM_TEST_RUN_ANYWAY=0: refused for a test)"), "%s",
			   err_msg());
}
