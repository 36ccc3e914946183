/* sandbox.c - per-thread-kind seccomp filters (see sandbox.h and docs/seccomp.md). */
#include "vmm/sandbox/sandbox.h"
#include "base/err.h"
#include "base/exit_codes.h"
#include "base/log.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SANITIZED 1
#endif
#endif

#define NAMES 512   /* system call numbers with a name for the SIGSYS report */

static struct sock_fprog progs[SANDBOX_KINDS];
static const char *names[NAMES];
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

/* ---- the lists ---- */

/* Every kind: memory, locks, time, signals, thread exit, log lines on stderr. */
static const int common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(futex), SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	SCMP_SYS(gettimeofday), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(restart_syscall), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(madvise),
	SCMP_SYS(munmap), SCMP_SYS(brk), SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(sched_yield),
	SCMP_SYS(getrandom), SCMP_SYS(mremap), SCMP_SYS(rseq),
};

/* What each kind adds (ioctl, mmap, clone and tgkill are argument-checked below). */
static const int main_extra[] = {
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(close), SCMP_SYS(fdatasync), SCMP_SYS(fsync),
	SCMP_SYS(set_robust_list), SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(lseek),
	SCMP_SYS(io_uring_enter),
	SCMP_SYS(eventfd2),     /* the signal watcher's, when stopping (vmm/sandbox/sigwatch.h) */
	SCMP_SYS(pwrite64),     /* an overlay's allocation bitmap, at exit (io/overlay.h overlay_sync) */
};
/*
 * The main thread with the control API (vmm/api/http.h): connections, answers, the socket file at
 * exit; and POST /vm/snapshot (vmm/snapshot.h): the directory, its files, the KVM state below.
 */
static const int api_extra[] = {
	SCMP_SYS(accept4), SCMP_SYS(sendto), SCMP_SYS(unlink),
	SCMP_SYS(mkdir), SCMP_SYS(mkdirat), SCMP_SYS(openat), SCMP_SYS(unlinkat), SCMP_SYS(renameat),
	SCMP_SYS(renameat2), SCMP_SYS(rename), SCMP_SYS(pwrite64), SCMP_SYS(ftruncate),
	SCMP_SYS(flock), SCMP_SYS(geteuid), SCMP_SYS(getdents64),  /* the snapshot directory: lock, owner, contents */
	SCMP_SYS(copy_file_range),      /* a disk's overlay into the snapshot (io/overlay.h overlay_save) */
	SCMP_SYS(pread64),      /* the working set: /proc/self/pagemap, the state's header (vmm/workingset.h) */
};
static const unsigned long snapshot_ioctls[] = {
	KVM_GET_MP_STATE, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE, KVM_GET_XCRS, KVM_GET_DEBUGREGS,
	KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_MSR_INDEX_LIST, KVM_GET_MSRS, KVM_GET_IRQCHIP,
	KVM_GET_PIT2, KVM_GET_CLOCK,
};
static const int io_extra[] = {
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(io_uring_enter), SCMP_SYS(preadv), SCMP_SYS(pwritev),
	SCMP_SYS(preadv2), SCMP_SYS(pwritev2), SCMP_SYS(fdatasync), SCMP_SYS(fsync),
	SCMP_SYS(fallocate), SCMP_SYS(close),
	SCMP_SYS(timerfd_settime),      /* a rate limiter's wait (io/ioloop.h io_loop_timer_set) */
};
static const int console_extra[] = { SCMP_SYS(poll), SCMP_SYS(ppoll) };

#ifdef SANITIZED
/*
 * Sanitizer runtimes (the ASan+UBSan test build only): reports, symbols, leak check at exit.
 * LeakSanitizer's check runs in a tracer task that inherits the calling thread's filter with
 * every signal but the synchronous ones blocked, so a forbidden call there is a silent SIGSYS
 * death and microvm then waits for the tracer for ever: it lists the threads with getdents
 * (not getdents64), found in a nested KVM with SCMP_ACT_LOG.
 */
static const int sanitizer_extra[] = {
	SCMP_SYS(sigaltstack), SCMP_SYS(prctl), SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(readlink),
	SCMP_SYS(readlinkat), SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(lseek),
	SCMP_SYS(getdents), SCMP_SYS(getdents64), SCMP_SYS(close), SCMP_SYS(clone), SCMP_SYS(ptrace), SCMP_SYS(wait4),
	SCMP_SYS(waitid), SCMP_SYS(sched_getaffinity), SCMP_SYS(getppid), SCMP_SYS(uname),
	SCMP_SYS(mmap), SCMP_SYS(mprotect), SCMP_SYS(pipe2), SCMP_SYS(dup2), SCMP_SYS(dup3),
	SCMP_SYS(kill), SCMP_SYS(tgkill), SCMP_SYS(rt_sigaction), SCMP_SYS(getrlimit),
	SCMP_SYS(setrlimit), SCMP_SYS(prlimit64), SCMP_SYS(statfs), SCMP_SYS(fstatfs),
	SCMP_SYS(set_robust_list), SCMP_SYS(getrusage), SCMP_SYS(poll), SCMP_SYS(ppoll),
};
#endif

/*
 * The vCPU threads' ioctls: on their vCPU fd (KVM_RUN, the registers an exit
 * handler reads or completes), on the VM fd (KVM_IRQ_LINE: the UART's line),
 * and on a tap (TUNSETOFFLOAD when the guest's driver accepts the NIC's features).
 */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_GET_VCPU_EVENTS,
	KVM_SET_VCPU_EVENTS, KVM_IRQ_LINE, TUNSETOFFLOAD,
};
/* The terminal: restored on the way out from any thread (SIGSYS, a second signal). */
static const unsigned long tty_ioctls[] = { TCGETS, TCSETS, TCSETSW, TCSETSF };

static int add_list(scmp_filter_ctx f, const int *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(f, SCMP_ACT_ALLOW, list[i], 0);
		/* A call this architecture lacks (open on a newer one, say) just is not allowed. */
		if (r < 0 && r != -EDOM && r != -EEXIST)
			return r;
	}
	return 0;
}

static int add_ioctls(scmp_filter_ctx f, const unsigned long *req, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, req[i]));
		if (r < 0)
			return r;
	}
	return 0;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int build(enum sandbox_kind kind, bool api, scmp_filter_ctx f)
{
	int r;

	if ((r = add_list(f, common, N(common))) < 0 || (r = add_ioctls(f, tty_ioctls, N(tty_ioctls))) < 0)
		return r;
	/* Memory for malloc and thread stacks, never executable. */
	if ((r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				  SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0 ||
	    (r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				  SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0)
		return r;
	/* abort() signals its own thread. */
	if ((r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				  SCMP_A2(SCMP_CMP_EQ, SIGABRT, 0))) < 0)
		return r;

	switch (kind) {
	case SANDBOX_MAIN:
		if ((r = add_list(f, main_extra, N(main_extra))) < 0 ||
		    (api && (r = add_list(f, api_extra, N(api_extra))) < 0) ||
		    /* POST /vm/shutdown pulses the power button's line. */
		    (api && (r = add_ioctls(f, (const unsigned long[]){ KVM_IRQ_LINE }, 1)) < 0) ||
		    (api && (r = add_ioctls(f, snapshot_ioctls, N(snapshot_ioctls))) < 0))
			return r;
		/* Kicks vCPUs out of KVM_RUN; starts the signal watcher when stopping. */
		if ((r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
					  SCMP_A2(SCMP_CMP_EQ, SIGUSR1, 0))) < 0 ||
		    (r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
					  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD))) < 0 ||
		    /* clone3's flags are in memory a filter cannot read: glibc falls back to clone. */
		    (r = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
			return r;
		/* The I/O thread's last words are said by the main thread: cancel what is left. */
		if ((r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(io_uring_register), 1,
					  SCMP_A1(SCMP_CMP_EQ, IORING_REGISTER_SYNC_CANCEL, 0))) < 0 ||
		    (r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(io_uring_register), 1,
					  SCMP_A1(SCMP_CMP_EQ, IORING_UNREGISTER_FILES, 0))) < 0)
			return r;
		break;
	case SANDBOX_VCPU:
		if ((r = add_ioctls(f, vcpu_ioctls, N(vcpu_ioctls))) < 0)
			return r;
		break;
	case SANDBOX_IO:
		if ((r = add_list(f, io_extra, N(io_extra))) < 0)
			return r;
		break;
	case SANDBOX_CONSOLE:
		if ((r = add_list(f, console_extra, N(console_extra))) < 0 ||
		    (r = add_ioctls(f, (const unsigned long[]){ KVM_IRQ_LINE }, 1)) < 0)
			return r;
		break;
	default:
		return -EINVAL;
	}
#ifdef SANITIZED
	if ((r = add_list(f, sanitizer_extra, N(sanitizer_extra))) < 0)
		return r;
#endif
	return 0;
}

/* Compile one kind's filter into a BPF program the thread can load without allocating. */
static int compile(enum sandbox_kind kind, bool api, struct sock_fprog *prog)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
	int r, fd = -1;

	if (!f)
		return -ENOMEM;
	if ((r = build(kind, api, f)) < 0)
		goto out;
	if ((fd = memfd_create("microvm-seccomp", MFD_CLOEXEC)) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = seccomp_export_bpf(f, fd)) < 0)
		goto out;
	off_t len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) ||
	    len / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		r = -E2BIG;
		goto out;
	}
	struct sock_filter *ins = malloc((size_t)len);
	if (!ins) {
		r = -ENOMEM;
		goto out;
	}
	if (pread(fd, ins, (size_t)len, 0) != len) {
		free(ins);
		r = -EIO;
		goto out;
	}
	prog->filter = ins;
	prog->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(f);
	return r;
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
	if (nr >= 0 && nr < NAMES && names[nr]) {
		n = put(msg, n, sizeof(msg), " (");
		n = put(msg, n, sizeof(msg), names[nr]);
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
	int r;

	if (seccomp_api_get() < 1)
		return err_set(ENOSYS, "seccomp: this kernel has no seccomp filters (use --no-seccomp)");
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		free(progs[k].filter);
		progs[k].filter = NULL;
		if ((r = compile(k, api, &progs[k])) < 0)
			return err_set(-r, "seccomp: building the %s thread's filter: %s",
				       sandbox_kind_name(k), strerror(-r));
	}
	for (int nr = 0; nr < NAMES; nr++)
		if (!names[nr])
			names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
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
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &progs[kind]) < 0) {
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
