/* test_jail.c - --cgroup's parser, --jail's directory checks and the socket path inside the jail. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "vmm/sandbox/cgroup.h"
#include "vmm/sandbox/jail.h"

Test(cgroup, parse_good)
{
	struct cgroup_config c;

	cr_assert_eq(cgroup_parse("--cgroup", "microvm/vm1", &c), 0, "%s", err_msg());
	cr_assert(c.set);
	cr_assert_str_eq(c.path, "microvm/vm1");
	cr_assert_str_eq(c.memory_max, "");
	cr_assert_str_eq(c.cpu_max, "");
	cr_assert_str_eq(c.pids_max, "");

	cr_assert_eq(cgroup_parse("--cgroup", "/a.b/c-d_e@f:g,memory.max=256M,cpu.max=50000/100000,pids.max=64",
				  &c), 0, "%s", err_msg());
	cr_assert_str_eq(c.path, "a.b/c-d_e@f:g", "a leading '/' is dropped");
	cr_assert_str_eq(c.memory_max, "268435456");
	cr_assert_str_eq(c.cpu_max, "50000 100000");
	cr_assert_str_eq(c.pids_max, "64");

	cr_assert_eq(cgroup_parse("--cgroup", "g,pids.max=max,cpu.max=max,memory.max=max", &c), 0, "%s", err_msg());
	cr_assert_str_eq(c.memory_max, "max");
	cr_assert_str_eq(c.cpu_max, "max 100000");
	cr_assert_str_eq(c.pids_max, "max");

	cr_assert_eq(cgroup_parse("--cgroup", "g,cpu.max=20000,memory.max=1048576,pids.max=4194304", &c), 0);
	cr_assert_str_eq(c.cpu_max, "20000 100000", "the period defaults to 100000 us");
	cr_assert_str_eq(c.memory_max, "1048576");
	cr_assert_eq(cgroup_parse("--cgroup", "g,cpu.max=max/1000000,memory.max=2g", &c), 0);
	cr_assert_str_eq(c.cpu_max, "max 1000000");
	cr_assert_str_eq(c.memory_max, "2147483648");
}

Test(cgroup, parse_bad)
{
	static const struct { const char *val, *msg; } cases[] = {
		{ "", "give a group below /sys/fs/cgroup" },
		{ "/", "give a group below" },
		{ ",memory.max=1G", "give a group below" },
		{ "a//b", "an empty, '.' or '..' component" },
		{ "a/", "an empty, '.' or '..' component" },
		{ "a/../b", "an empty, '.' or '..' component" },
		{ "..", "an empty, '.' or '..' component" },
		{ "a/./b", "an empty, '.' or '..' component" },
		{ "a b", "letters, digits" },
		{ "a\n", "letters, digits" },
		{ "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q", "more than 16 components" },
		{ "g,memory.max=12", "memory.max=12: must be a size of at least 1M" },
		{ "g,memory.max=1023K", "memory.max=1023K: must be a size" },
		{ "g,memory.max=-1", "memory.max=-1: must be" },
		{ "g,memory.max=2000000T", "memory.max=2000000T: must be" },
		{ "g,memory.max=99999999999999999999999", "must be a size" },
		{ "g,memory.max=", "memory.max=: must be" },
		{ "g,memory.max", "memory.max needs a value" },
		{ "g,cpu.max=999", "cpu.max=999: must be QUOTA[/PERIOD]" },
		{ "g,cpu.max=5000/999", "cpu.max=5000/999: must be" },
		{ "g,cpu.max=5000/1000001", "must be QUOTA" },
		{ "g,cpu.max=5000/", "must be QUOTA" },
		{ "g,cpu.max=/100000", "must be QUOTA" },
		{ "g,cpu.max=5000 100000", "must be QUOTA" },
		{ "g,pids.max=0", "pids.max=0: must be a number from 1 to 4194304" },
		{ "g,pids.max=4194305", "pids.max=4194305: must be" },
		{ "g,pids.max=many", "must be a number" },
		{ "g,io.max=1", "unknown option 'io.max=1'" },
		{ "g,", "unknown option ''" },
		{ "g,pids.max=5,pids.max=6", "pids.max given twice" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cgroup_config c;
		err_clear();
		cr_assert_eq(cgroup_parse("--cgroup", cases[i].val, &c), -EINVAL, "accepted '%s'", cases[i].val);
		cr_assert_not_null(strstr(err_msg(), cases[i].msg), "'%s': got '%s', want '%s'", cases[i].val,
				   err_msg(), cases[i].msg);
		cr_assert_eq(strncmp(err_msg(), "--cgroup", 8), 0, "names the flag: %s", err_msg());
		cr_assert_null(strchr(err_msg(), '\n'), "one line: %s", err_msg());
	}
	char long_path[400];
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	struct cgroup_config c;
	cr_assert_eq(cgroup_parse("--cgroup", long_path, &c), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "longer than 255 bytes"), "%s", err_msg());
}

Test(jail, rebase)
{
	char out[64];

	cr_assert_eq(jail_rebase("/srv/j", "/srv/j/api.sock", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "/api.sock");
	cr_assert_eq(jail_rebase("/srv/j", "/srv/j/a/b", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "/a/b");
	cr_assert_eq(jail_rebase("/srv/j", "/srv/j", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "/");
	cr_assert_eq(jail_rebase("/srv/j", "/srv/jx/api.sock", out, sizeof(out)), -EXDEV, "a sibling with the same prefix");
	cr_assert_eq(jail_rebase("/srv/j", "/srv", out, sizeof(out)), -EXDEV);
	cr_assert_eq(jail_rebase("/srv/j", "/tmp/api.sock", out, sizeof(out)), -EXDEV);
	cr_assert_eq(jail_rebase("/srv/j", "/srv/j/abcdefgh", out, 4), -ENAMETOOLONG);
}

static char base[64];

static void mkbase(void)
{
	strcpy(base, "/tmp/microvm-jail.XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	/* The checks want canonical paths: /tmp may itself be a link somewhere. */
	char *r = realpath(base, NULL);
	cr_assert_not_null(r);
	snprintf(base, sizeof(base), "%s", r);
	free(r);
}

static void rmbase(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	cr_assert_eq(system(cmd), 0);
}

Test(jail, check_dir, .init = mkbase, .fini = rmbase)
{
	char d[128], link[128], file[128], sub[160];

	snprintf(d, sizeof(d), "%s/j", base);
	cr_assert_eq(mkdir(d, 0700), 0);
	cr_assert_eq(jail_check_dir(d, false, 0), 0, "%s", err_msg());

	static const struct { const char *dir, *msg; } rel[] = {
		{ "j", "must be an absolute path" },
		{ "/", "the jail must be a directory below /" },
	};
	for (size_t i = 0; i < 2; i++) {
		cr_assert_lt(jail_check_dir(rel[i].dir, false, 0), 0);
		cr_assert_not_null(strstr(err_msg(), rel[i].msg), "%s", err_msg());
	}
	snprintf(sub, sizeof(sub), "%s/", d);
	cr_assert_lt(jail_check_dir(sub, false, 0), 0);
	cr_assert_not_null(strstr(err_msg(), "must be a canonical path"), "%s", err_msg());
	snprintf(sub, sizeof(sub), "%s/../j", d);
	cr_assert_lt(jail_check_dir(sub, false, 0), 0, "'..'");
	snprintf(link, sizeof(link), "%s/link", base);
	cr_assert_eq(symlink(d, link), 0);
	cr_assert_lt(jail_check_dir(link, false, 0), 0, "a symbolic link");
	cr_assert_not_null(strstr(err_msg(), "resolves to"), "%s", err_msg());
	snprintf(file, sizeof(file), "%s/f", base);
	fclose(fopen(file, "w"));
	cr_assert_eq(jail_check_dir(file, false, 0), -ENOTDIR);
	cr_assert_not_null(strstr(err_msg(), "not a directory"), "%s", err_msg());
	snprintf(sub, sizeof(sub), "%s/missing", base);
	cr_assert_eq(jail_check_dir(sub, false, 0), -ENOENT);

	cr_assert_eq(chmod(d, 0770), 0);
	cr_assert_eq(jail_check_dir(d, false, 0), -EPERM);
	cr_assert_not_null(strstr(err_msg(), "writable by its group (mode 0770)"), "%s", err_msg());
	cr_assert_eq(chmod(d, 0757), 0);
	cr_assert_eq(jail_check_dir(d, false, 0), -EPERM);
	cr_assert_not_null(strstr(err_msg(), "writable by others"), "%s", err_msg());
	cr_assert_eq(chmod(d, 0755), 0);
	cr_assert_eq(jail_check_dir(d, false, 0), 0, "%s", err_msg());

	/* Another user's directory: only when it is --user's (needs root to make one). */
	if (geteuid() == 0) {
		cr_assert_eq(chown(d, 64123, 64123), 0);
		cr_assert_eq(jail_check_dir(d, false, 0), -EPERM);
		cr_assert_not_null(strstr(err_msg(), "owned by uid 64123"), "%s", err_msg());
		cr_assert_eq(jail_check_dir(d, true, 64124), -EPERM);
		cr_assert_eq(jail_check_dir(d, true, 64123), 0, "%s", err_msg());

		/* A directory above DIR that another user owns, or that others may write to: its
		 * owner could swap DIR's path for a link between the check and the jail. */
		char inner[160];
		snprintf(inner, sizeof(inner), "%s/inner", d);
		cr_assert_eq(mkdir(inner, 0700), 0);
		cr_assert_eq(jail_check_dir(inner, false, 0), -EPERM);
		cr_assert_not_null(strstr(err_msg(), "above it is not root's"), "%s", err_msg());
		cr_assert_eq(chown(d, 0, 0), 0);
		cr_assert_eq(chmod(d, 0777), 0);
		cr_assert_eq(jail_check_dir(inner, false, 0), -EPERM);
		cr_assert_not_null(strstr(err_msg(), "above it is writable by others"), "%s", err_msg());
		cr_assert_eq(chmod(d, 01777), 0);   /* sticky, as /tmp: accepted */
		cr_assert_eq(jail_check_dir(inner, false, 0), 0, "%s", err_msg());
	}
}

Test(jail, api_path, .init = mkbase, .fini = rmbase)
{
	char d[128], sock[192], inside[128], cwd[4096];

	snprintf(d, sizeof(d), "%s/j", base);
	cr_assert_eq(mkdir(d, 0700), 0);
	snprintf(sock, sizeof(sock), "%s/j/api.sock", base);
	cr_assert_eq(jail_api_path(d, sock, inside, sizeof(inside)), 0, "%s", err_msg());
	cr_assert_str_eq(inside, "/api.sock");
	snprintf(sock, sizeof(sock), "%s/j/../j/x.sock", base);
	cr_assert_eq(jail_api_path(d, sock, inside, sizeof(inside)), 0, "%s", err_msg());
	cr_assert_str_eq(inside, "/x.sock");
	snprintf(sock, sizeof(sock), "%s/api.sock", base);
	cr_assert_eq(jail_api_path(d, sock, inside, sizeof(inside)), -EXDEV);
	cr_assert_not_null(strstr(err_msg(), "must be inside --jail"), "%s", err_msg());
	snprintf(sock, sizeof(sock), "%s/j/nodir/api.sock", base);
	cr_assert_eq(jail_api_path(d, sock, inside, sizeof(inside)), -ENOENT);
	/* Relative: from the working directory. */
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(d), 0);
	cr_assert_eq(jail_api_path(d, "rel.sock", inside, sizeof(inside)), 0, "%s", err_msg());
	cr_assert_str_eq(inside, "/rel.sock");
	cr_assert_eq(chdir(cwd), 0);
}
