/* sandbox.c - loads the per-thread-kind seccomp filters built with microvm (see sandbox.h, filters.h). */
#include "vmm/sandbox/sandbox.h"
#include "vmm/sandbox/filters.h"
#include "base/err.h"
#include "base/exit_codes.h"
#include "base/log.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int api_list;   /* sandbox_filters[kind][api_list]: the programs of this run (filters.h) */
static void (*exit_hook)(void *ctx);
static void *exit_ctx;
static atomic_bool active;
static __thread int thread_kind = -1;

static const char *const kind_names[SANDBOX_KINDS] = {
	[SANDBOX_MAIN] = "main", [SANDBOX_VCPU] = "vcpu", [SANDBOX_IO] = "io", [SANDBOX_CONSOLE] = "console",
};

const char *sandbox_kind_name(enum sandbox_kind kind)
{
	return (unsigned)kind < SANDBOX_KINDS ? kind_names[kind] : "?";
}

bool sandbox_active(void)
{
	return atomic_load(&active);
}

/* ---- the report ---- */

static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, long v)
{
	char tmp[24];
	int n = 0;
	unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;

	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10) && n < (int)sizeof(tmp));
	if (v < 0 && at + 1 < cap)
		buf[at++] = '-';
	while (n && at + 1 < cap)
		buf[at++] = tmp[--n];
	return at;
}

/* Async-signal-safe: formats by hand, writes once, exits. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	char msg[320];
	size_t n = 0;
	int nr = si->si_syscall;

	(void)sig, (void)uc;
	n = put(msg, n, sizeof(msg), "microvm: error: seccomp: the ");
	n = put(msg, n, sizeof(msg), thread_kind >= 0 ? sandbox_kind_name(thread_kind) : "unconfined?");
	n = put(msg, n, sizeof(msg), " thread made system call ");
	n = put_num(msg, n, sizeof(msg), nr);
	if (nr >= 0 && nr < SANDBOX_SYSCALL_NAMES && sandbox_syscall_names[nr]) {
		n = put(msg, n, sizeof(msg), " (");
		n = put(msg, n, sizeof(msg), sandbox_syscall_names[nr]);
		n = put(msg, n, sizeof(msg), ")");
	}
	n = put(msg, n, sizeof(msg), ", which its filter forbids; stopping now (exit status ");
	n = put_num(msg, n, sizeof(msg), MV_EXIT_SECCOMP);
	n = put(msg, n, sizeof(msg), "; --no-seccomp turns the filter off for debugging)\n");
	if (write(STDERR_FILENO, msg, n) < 0) {
		/* nothing left to tell */
	}
	if (exit_hook)
		exit_hook(exit_ctx);
	syscall(SYS_exit_group, MV_EXIT_SECCOMP);
}

int sandbox_prepare(bool api, void (*before_exit)(void *ctx), void *ctx)
{
	/* ENOSYS: no seccomp() (CONFIG_SECCOMP off, or before 3.17); EINVAL: before 4.14, which still has filters. */
	uint32_t trap = SECCOMP_RET_TRAP;
	if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &trap) < 0 && errno != EINVAL)
		return err_set(ENOSYS, "seccomp: this kernel has no seccomp filters (use --no-seccomp)");
	api_list = api ? 1 : 0;
	exit_hook = before_exit;
	exit_ctx = ctx;

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return err_set(errno, "seccomp: SIGSYS handler: %s", strerror(errno));
	atomic_store(&active, true);
	return 0;
}

void sandbox_enter(enum sandbox_kind kind)
{
	if (!atomic_load(&active) || (unsigned)kind >= SANDBOX_KINDS)
		return;
	/* SIGSYS must reach the handler even if this thread blocked signals. */
	sigset_t sys;
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	thread_kind = (int)kind;
	/* The kernel copies the program: it may stay in read-only memory. */
	const struct sandbox_filter *f = &sandbox_filters[kind][api_list];
	struct sock_fprog prog = { .len = f->len, .filter = (struct sock_filter *)(uintptr_t)f->insns };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
		log_error("seccomp: cannot apply the %s thread's filter: %s (--no-seccomp runs without it)",
			  sandbox_kind_name(kind), strerror(errno));
		if (exit_hook)
			exit_hook(exit_ctx);
		_exit(MV_EXIT_ERROR);
	}
#ifdef MICROVM_TEST_HOOKS
	/* Test hook: one thread of the named kind tries a call no kind may make. */
	static atomic_bool tried[SANDBOX_KINDS];
	const char *t = getenv(SANDBOX_TEST_ENV);
	if (t && !strcmp(t, sandbox_kind_name(kind)) && !atomic_exchange(&tried[kind], true)) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		log_error("seccomp test hook: socket() in the %s thread was not stopped (fd %d)",
			  sandbox_kind_name(kind), s);
	}
#endif
}
