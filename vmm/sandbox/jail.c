/* jail.c - --jail, --netns and the supervisor process (see jail.h, docs/jail.md). */
#include "vmm/sandbox/jail.h"
#include "base/err.h"
#include "base/exit_codes.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* The directory jail_check_dir() accepted, checked again by jail_enter() once inside it. */
static dev_t jail_dev;
static ino_t jail_ino;

int jail_check_dir(const char *dir, bool has_user, uid_t user_uid)
{
	char real[PATH_MAX], up[PATH_MAX];
	struct stat st;

	if (dir[0] != '/')
		return err_set(EINVAL, "--jail %s: must be an absolute path", dir);
	if (!realpath(dir, real))
		return err_set(errno, "--jail %s: %s", dir, strerror(errno));
	if (strcmp(real, dir))
		return err_set(EINVAL, "--jail %s: must be a canonical path (it resolves to %s: no symbolic "
			       "link, '.', '..', '//' or trailing '/')", dir, real);
	if (!strcmp(real, "/"))
		return err_set(EINVAL, "--jail /: the jail must be a directory below /");
	if (stat(real, &st) < 0)
		return err_set(errno, "--jail %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(ENOTDIR, "--jail %s: not a directory", dir);
	if (st.st_uid != geteuid() && !(has_user && st.st_uid == user_uid))
		return err_set(EPERM, "--jail %s: owned by uid %u: it must belong to microvm's user (uid %u)%s",
			       dir, (unsigned)st.st_uid, (unsigned)geteuid(),
			       has_user ? " or to --user's" : "");
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return err_set(EPERM, "--jail %s: writable by %s (mode %04o): no one but its owner may write to it",
			       dir, st.st_mode & S_IWOTH ? "others" : "its group", (unsigned)(st.st_mode & 07777));
	jail_dev = st.st_dev;
	jail_ino = st.st_ino;
	/*
	 * Every directory above it must be root's and writable by no one else (or sticky):
	 * otherwise its owner could replace DIR's path with a link to / between this check and
	 * the jail. jail_enter() also checks that it entered the directory checked here, which
	 * catches DIR's own owner renaming it away.
	 */
	snprintf(up, sizeof(up), "%s", real);
	for (char *slash = strrchr(up, '/'); slash; slash = strrchr(up, '/')) {
		if (slash == up)
			slash[1] = '\0';
		else
			*slash = '\0';
		struct stat a;
		if (lstat(up, &a) < 0)
			return err_set(errno, "--jail %s: %s: %s", dir, up, strerror(errno));
		/* A sticky directory (/tmp) is fine: no one may replace another's entry in it. */
		if (a.st_uid != 0 || ((a.st_mode & (S_IWGRP | S_IWOTH)) && !(a.st_mode & S_ISVTX)))
			return err_set(EPERM, "--jail %s: the directory %s above it is %s: each directory above the "
				       "jail must belong to root and be writable by no one else (or sticky, as /tmp)",
				       dir, up, a.st_uid != 0 ? "not root's" : "writable by others");
		if (slash == up)
			break;
	}
	return 0;
}

int jail_rebase(const char *dir, const char *path, char *out, size_t size)
{
	size_t n = strlen(dir);

	if (strncmp(path, dir, n) || (path[n] && path[n] != '/'))
		return -EXDEV;
	const char *rest = path[n] ? path + n : "/";
	if (strlen(rest) >= size)
		return -ENAMETOOLONG;
	strcpy(out, rest);
	return 0;
}

int jail_api_path(const char *dir, const char *sock, char *inside, size_t size)
{
	char copy[PATH_MAX], real[PATH_MAX], full[PATH_MAX];
	const char *base;
	int ret;

	snprintf(copy, sizeof(copy), "%s", sock);
	char *slash = strrchr(copy, '/');
	if (slash) {
		*slash = '\0';
		base = slash + 1;
	} else {
		base = copy;
	}
	const char *d = slash ? (copy[0] ? copy : "/") : ".";
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return err_set(EINVAL, "--api-sock %s: not a file name", sock);
	if (!realpath(d, real))
		return err_set(errno, "--api-sock %s: %s: %s", sock, d, strerror(errno));
	if ((size_t)snprintf(full, sizeof(full), "%s%s%s", real, strcmp(real, "/") ? "/" : "", base) >= sizeof(full))
		return err_set(ENAMETOOLONG, "--api-sock %s: path too long", sock);
	if ((ret = jail_rebase(dir, full, inside, size)) < 0)
		return err_set(-ret, "--api-sock %s: must be inside --jail %s (the VMM serves it from there: "
			       "reachable from outside at its path, from inside at the path below %s)",
			       sock, dir, dir);
	return 0;
}

int jail_join_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_set(errno, "--netns %s: %s", path, strerror(errno));
	if (setns(fd, CLONE_NEWNET) < 0) {
		int e = errno;
		close(fd);
		return err_set(e, "--netns %s: %s%s", path, strerror(e),
			       e == EINVAL ? " (not a network namespace: e.g. /run/netns/NAME or /proc/PID/ns/net)" :
			       e == EPERM ? " (needs CAP_SYS_ADMIN)" : "");
	}
	close(fd);
	return 0;
}

/* The highest open descriptor (from /proc/self/fd, which the jail no longer has afterwards). */
static int highest_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	int max = 2;

	if (!d) {
		struct rlimit rl;
		int lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
		for (int fd = 3; fd < lim; fd++)
			if (fcntl(fd, F_GETFD) >= 0)
				max = fd;
		return max;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > max && atoi(e->d_name) != dirfd(d))
			max = atoi(e->d_name);
	closedir(d);
	return max;
}

static int one_thread(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;

	if (!d)
		return 1;   /* unshare() tells */
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int set_limit(int res, const char *what, rlim_t v)
{
	struct rlimit rl = { v, v };

	if (setrlimit(res, &rl) < 0)
		return err_set(errno, "--jail: cannot set %s to %llu: %s", what, (unsigned long long)v, strerror(errno));
	return 0;
}

int jail_enter(const char *dir, int cpus)
{
	int n, ret;

	if ((n = one_thread()) != 1)
		return err_set(EINVAL, "--jail %s: the VMM has %d threads before entering the jail (must be one)", dir, n);
	int maxfd = highest_fd();
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		return err_set(errno, "--jail %s: cannot make new mount, IPC and UTS namespaces: %s", dir, strerror(errno));
	/* Nothing done below may reach the host's mounts (shared propagation would carry it there). */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_set(errno, "--jail %s: cannot make the mounts private: %s", dir, strerror(errno));
	/* pivot_root needs a mount point: DIR on itself, without the mounts below it. */
	if (mount(dir, dir, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return err_set(errno, "--jail %s: cannot bind-mount it on itself: %s", dir, strerror(errno));
	if (chdir(dir) < 0)
		return err_set(errno, "--jail %s: chdir: %s", dir, strerror(errno));
	struct stat here;
	if (stat(".", &here) < 0 || here.st_dev != jail_dev || here.st_ino != jail_ino)
		return err_set(EPERM, "--jail %s: it is no longer the directory checked at start (replaced meanwhile)", dir);
	/* The old root goes on top of the new one, then is detached: nothing of it stays reachable. */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return err_set(errno, "--jail %s: pivot_root: %s", dir, strerror(errno));
	if (umount2(".", MNT_DETACH) < 0)
		return err_set(errno, "--jail %s: cannot detach the old root: %s", dir, strerror(errno));
	if (chdir("/") < 0)
		return err_set(errno, "--jail %s: chdir /: %s", dir, strerror(errno));
	if ((ret = set_limit(RLIMIT_CORE, "RLIMIT_CORE", 0)) < 0 ||
	    (ret = set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", (rlim_t)maxfd + 1 + JAIL_FD_HEADROOM)) < 0 ||
	    (ret = set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", (rlim_t)cpus + JAIL_THREAD_HEADROOM)) < 0)
		return ret;
	return 0;
}

int jail_after_drop(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return err_set(errno, "PR_SET_PDEATHSIG: %s", strerror(errno));
	return 0;
}

/* ---- the supervisor ---- */

static volatile pid_t child_pid;
static struct termios saved_tty;
static bool tty_saved;

static void forward(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	/* Sent by a process (kill, a service manager): pass it on. From the terminal (SI_KERNEL) the
	 * child got it already, as a member of the foreground process group. */
	if (si->si_code <= 0 && child_pid > 0)
		kill(child_pid, sig);
}

static const int fwd_sigs[] = { SIGINT, SIGTERM, SIGHUP };

int supervise_start(bool new_pid, pid_t *pid)
{
	sigset_t block;

	*pid = 0;
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(fwd_sigs) / sizeof(fwd_sigs[0]); i++)
		sigaddset(&block, fwd_sigs[i]);
	sigprocmask(SIG_BLOCK, &block, NULL);
	tty_saved = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tty) == 0;
	/* Only the children of the caller enter it: the supervisor stays where it is. */
	if (new_pid && unshare(CLONE_NEWPID) < 0)
		return err_set(errno, "--jail: cannot make a new PID namespace: %s", strerror(errno));
	pid_t parent = getpid();
	fflush(NULL);
	pid_t p = fork();
	if (p < 0)
		return err_set(errno, "fork: %s", strerror(errno));
	if (p == 0) {
		/* The supervisor may already be gone: then the child must not run on its own. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || (!new_pid && getppid() != parent))
			_exit(MV_EXIT_ERROR);
		return 0;
	}
	child_pid = p;
	*pid = p;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = forward;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fwd_sigs) / sizeof(fwd_sigs[0]); i++)
		sigaction(fwd_sigs[i], &sa, NULL);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	return 0;
}

int supervise_wait(pid_t pid, const struct cgroup *cg, const char *memory_max)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			log_error("waiting for the VM process %d: %s", (int)pid, strerror(errno));
			return MV_EXIT_ERROR;
		}
	child_pid = 0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	int sig = WTERMSIG(st);
	if (tty_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	long long ooms = cg ? cgroup_oom_kills(cg) : -1;
	if (sig == SIGKILL && cg && ooms > cg->oom_kills && cg->oom_kills >= 0) {
		log_error("the VM used more memory than its cgroup allows (%s/%s memory.max %s bytes): the "
			  "kernel's OOM killer ended it (exit status %d)", CGROUP_ROOT, cg->path,
			  memory_max && *memory_max ? memory_max : "?", MV_EXIT_OOM);
		return MV_EXIT_OOM;
	}
	log_error("the VM process (pid %d) was killed by %s (exit status %d)", (int)pid, strsignal(sig), 128 + sig);
	return 128 + sig;
}
