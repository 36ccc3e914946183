/* test_err.c - the thread-local message: set, prefixed by a caller, a hint appended. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "base/err.h"

Test(err, set_prefix_append)
{
	cr_assert_eq(err_set(EISDIR, "is a directory, not a %s", "disk image"), -EISDIR);
	cr_assert_str_eq(err_msg(), "is a directory, not a disk image");
	/* Either sign of errno gives -errno back. */
	cr_assert_eq(err_prefix(-EISDIR, "--disk %s", "d.img"), -EISDIR);
	cr_assert_eq(err_prefix(EISDIR, "vm.json"), -EISDIR);
	cr_assert_str_eq(err_msg(), "vm.json: --disk d.img: is a directory, not a disk image");
	cr_assert_eq(err_append(-EISDIR, " (%s)", "hint"), -EISDIR);
	cr_assert_eq(err_append(EISDIR, "; more"), -EISDIR);
	cr_assert_str_eq(err_msg(), "vm.json: --disk d.img: is a directory, not a disk image (hint); more");
	err_clear();
	cr_assert_str_eq(err_msg(), "");
	err_append(EINVAL, "only this");
	cr_assert_str_eq(err_msg(), "only this");
}

Test(err, long_messages_are_cut_not_overrun)
{
	char big[2000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_set(EINVAL, "%s", big);
	size_t n = strlen(err_msg());
	cr_assert_lt(n, sizeof(big) - 1);
	err_append(EINVAL, "; tail");
	cr_assert_eq(strlen(err_msg()), n, "a full buffer takes nothing more");
	err_prefix(EINVAL, "--kernel k");
	cr_assert_eq(strlen(err_msg()), n);
	cr_assert_eq(strncmp(err_msg(), "--kernel k: aaa", 15), 0);
}
