/* test_readfile.c - base/readfile.c: opening and reading a file the user named, and what is said when it is wrong. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/readfile.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/mv-readfile-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(readfile, .init = setup, .fini = teardown);

static const char *put(const char *name, const char *text, size_t len)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

Test(readfile, reads_a_regular_file_whole)
{
	uint8_t *data;
	size_t len;

	err_clear();
	cr_assert_eq(read_user_file(put("k", "kernel", 6), "a file", 1 << 20, &data, &len), 0);
	cr_assert_eq(len, 6);
	cr_assert_str_eq((char *)data, "kernel", "NUL-terminated");
	free(data);
}

Test(readfile, says_what_is_wrong_without_naming_the_file)
{
	uint8_t *data = (uint8_t *)1;
	size_t len = 1;
	struct stat st;

	cr_assert_eq(read_user_file(dir, "a file", 1 << 20, &data, &len), -EISDIR);
	cr_assert_str_eq(err_msg(), "is a directory, not a file");
	cr_assert_null(data);
	cr_assert_eq(len, 0);
	cr_assert_eq(read_user_file(put("e", "", 0), "a file", 1 << 20, &data, &len), -EINVAL);
	cr_assert_str_eq(err_msg(), "file is empty");
	cr_assert_eq(read_user_file(put("big", "0123456789", 10), "a file", 9, &data, &len), -EFBIG);
	cr_assert(strstr(err_msg(), "file is larger than"), "%s", err_msg());
	cr_assert_eq(read_user_file("/nonexistent/x", "a file", 9, &data, &len), -ENOENT);
	cr_assert_str_eq(err_msg(), strerror(ENOENT));
	cr_assert_eq(open_user_file("/dev/null", "a script", false, &st), -EINVAL);
	cr_assert_str_eq(err_msg(), "not a regular file");
	cr_assert_eq(open_user_file(dir, "a JSON file", true, &st), -EISDIR);
	cr_assert_str_eq(err_msg(), "is a directory, not a JSON file");
}

Test(readfile, any_kind_opens_a_pipe)
{
	char path[128];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/fifo", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	/* A writer first, so opening the read end does not wait. */
	int w = open(path, O_RDWR);
	cr_assert_geq(w, 0);
	fd = open_user_file(path, "a JSON file", true, &st);
	cr_assert_geq(fd, 0, "%s", err_msg());
	cr_assert(S_ISFIFO(st.st_mode));
	cr_assert_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);
	close(w);
}
