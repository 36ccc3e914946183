/* test_privdrop.c - --user: resolving users and groups, and dropping root for good in every thread. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "vmm/sandbox/privdrop.h"

Test(priv_resolve, names_ids_and_groups)
{
	struct priv_target t;
	struct passwd *nobody = getpwnam("nobody");
	/* getpwnam's result is overwritten by the next lookup: copy it. */
	uid_t nu = nobody ? nobody->pw_uid : 0;
	gid_t ng = nobody ? nobody->pw_gid : 0;

	cr_assert_eq(priv_resolve("root", &t), 0);
	cr_assert_eq(t.uid, 0);
	cr_assert_eq(t.gid, 0);
	cr_assert_str_eq(t.name, "root");
	cr_assert_eq(priv_resolve("0", &t), 0, "a uid with a passwd entry: %s", err_msg());
	cr_assert_eq(t.uid, 0);
	cr_assert_eq(priv_resolve("12345:23456", &t), 0, "UID:GID needs no entries: %s", err_msg());
	cr_assert_eq(t.uid, 12345);
	cr_assert_eq(t.gid, 23456);
	cr_assert_eq(priv_resolve("root:12", &t), 0);
	cr_assert_eq(t.uid, 0);
	cr_assert_eq(t.gid, 12);
	if (nobody) {
		cr_assert_eq(priv_resolve("nobody", &t), 0);
		cr_assert_eq(t.uid, nu);
		cr_assert_eq(t.gid, ng, "USER alone: its primary group");
		cr_assert_eq(priv_resolve("nobody:root", &t), 0);
		cr_assert_eq(t.uid, nu);
		cr_assert_eq(t.gid, 0);
	}
}

Test(priv_resolve, bad_values_are_named)
{
	struct priv_target t;
	static const struct { const char *spec, *msg; } bad[] = {
		{ "", "--user '': give USER, USER:GROUP or UID:GID" },
		{ ":0", "--user :0: give USER, USER:GROUP or UID:GID" },
		{ "root:", "--user root:: give USER, USER:GROUP or UID:GID" },
		{ "no-such-user-here", "--user no-such-user-here: no such user" },
		{ "root:no-such-group-here", "--user root:no-such-group-here: no such group 'no-such-group-here'" },
		{ "54321", "--user 54321: uid 54321 has no passwd entry; give its group too (UID:GID)" },
		{ "4294967295:0", "--user 4294967295:0: no such user" },
		{ "-1:0", "--user -1:0: no such user" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(priv_resolve(bad[i].spec, &t), -EINVAL, "'%s' accepted", bad[i].spec);
		cr_assert_str_eq(err_msg(), bad[i].msg);
	}
}

static void *thread_ids(void *arg)
{
	uid_t *out = arg;
	uid_t r, e, s;

	/* The raw system call: this thread's own credentials, not a cached value. */
	syscall(SYS_getresuid, &r, &e, &s);
	out[0] = r, out[1] = e, out[2] = s;
	return NULL;
}

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

static void *waiting_thread(void *arg)
{
	pthread_mutex_lock(&gate); /* runs on once the main thread has dropped */
	pthread_mutex_unlock(&gate);
	return thread_ids(arg);
}

/* Child: drop to 12345:23456 with a thread already running; exit 0 if everything holds. */
static int drop_child(void)
{
	struct priv_target t;
	pthread_t th;
	uid_t ids[3] = { 1, 1, 1 };
	gid_t groups[4];

	pthread_mutex_lock(&gate);
	if (pthread_create(&th, NULL, waiting_thread, ids))
		return 10;
	if (priv_resolve("12345:23456", &t) < 0 || priv_drop(&t) < 0)
		return 11;
	pthread_mutex_unlock(&gate);
	pthread_join(th, NULL);
	if (ids[0] != 12345 || ids[1] != 12345 || ids[2] != 12345)
		return 12; /* the thread that existed before the drop kept other ids */
	if (getuid() != 12345 || geteuid() != 12345 || getgid() != 23456 || getegid() != 23456)
		return 13;
	if (getgroups(4, groups) != 1 || groups[0] != 23456)
		return 14;
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
		return 15;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 16;
	if (open("/proc/1/environ", O_RDONLY) >= 0)
		return 17; /* root's files are out of reach */
	return 0;
}

Test(priv_drop, root_becomes_the_user_for_good_in_every_thread)
{
	if (geteuid() != 0)
		cr_skip_test("needs root (to switch users)");
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(drop_child());
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child died (0x%x)", st);
	cr_assert_eq(WEXITSTATUS(st), 0, "check %d failed (see drop_child)", WEXITSTATUS(st));
}

/* Child: not root, asked for another user: refused, nothing changed. */
static int refuse_child(void)
{
	struct priv_target t;

	if (geteuid() == 0) {
		/* Become an ordinary user first, the way a user would run microvm. */
		if (setgroups(0, NULL) < 0 || setresgid(23456, 23456, 23456) < 0 || setresuid(12345, 12345, 12345) < 0)
			return 20;
	}
	if (priv_resolve("root", &t) < 0)
		return 21;
	if (priv_drop(&t) != -EPERM)
		return 22;
	if (!strstr(err_msg(), "--user root: only root can switch users (microvm runs as uid "))
		return 23;
	/* Asked to stay who it is: fine, and no new privileges from now on. */
	t.uid = getuid(), t.gid = getgid();
	if (priv_drop(&t) < 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 24;
	return 0;
}

Test(priv_drop, refused_without_root)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(refuse_child());
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child died (0x%x)", st);
	cr_assert_eq(WEXITSTATUS(st), 0, "check %d failed (see refuse_child)", WEXITSTATUS(st));
}
