/*
 * filters_gen.c - build-time generator of the seccomp filters (filters.h, docs/seccomp.md).
 *
 * The allow-list of each thread kind lives here. The build runs this program once
 * (vmm/sandbox/meson.build); it compiles every (kind, api) list with libseccomp and
 * writes a C source with the BPF programs as const arrays, so microvm loads a
 * finished program at start-up and does not link libseccomp at all.
 *
 *     filters-gen plain|sanitized OUTPUT.c
 *
 * "sanitized" (meson's b_sanitize is set) adds what the ASan+UBSan runtimes call.
 */
#include "vmm/sandbox/sandbox.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define NAMES 512   /* SANDBOX_SYSCALL_NAMES (filters.h) */

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

/*
 * The vCPU threads' ioctls: on their vCPU fd (KVM_RUN, the registers an exit
 * handler reads or completes), on the VM fd (KVM_IRQ_LINE: the UART's line),
 * and on a tap (TUNSETOFFLOAD when the guest's driver accepts the NIC's features).
 */
static const unsigned long vcpu_ioctls[] = {
	/* KVM_RUN: its own rule, tested first (build()) */ KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_GET_VCPU_EVENTS,
	KVM_SET_VCPU_EVENTS, KVM_IRQ_LINE, TUNSETOFFLOAD,
};
/* The terminal: restored on the way out from any thread (SIGSYS, a second signal). */
static const unsigned long tty_ioctls[] = { TCGETS, TCSETS, TCSETSW, TCSETSF };

/*
 * The calls each kind makes on every VM exit or I/O request, tested first in this order
 * (seccomp_syscall_priority): the filter runs on each of them, KVM_RUN once per exit on a
 * vCPU thread. A linear list with these first beats libseccomp's binary tree
 * (SCMP_FLTATR_CTL_OPTIMIZE 2), which ignores priorities: 16 instructions for KVM_RUN
 * against 10 (docs/seccomp.md).
 */
static const int hot_vcpu[] = { SCMP_SYS(ioctl) };
static const int hot_io[] = { SCMP_SYS(io_uring_enter), SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(ppoll) };
static const int hot_console[] = { SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(poll), SCMP_SYS(ppoll) };
static const int hot_main[] = { SCMP_SYS(ppoll), SCMP_SYS(read), SCMP_SYS(poll) };

#define N(a) (sizeof(a) / sizeof((a)[0]))

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

/* The hot calls first, in list order (the highest priority is tested first). */
static int prioritize(scmp_filter_ctx f, const int *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_syscall_priority(f, list[i], (uint8_t)(255 - i));
		if (r < 0)
			return r;
	}
	return 0;
}

static int build(enum sandbox_kind kind, bool api, bool sanitized, scmp_filter_ctx f)
{
	int r;

	switch (kind) {
	case SANDBOX_MAIN:
		r = prioritize(f, hot_main, N(hot_main));
		break;
	case SANDBOX_VCPU:
		/*
		 * KVM_RUN, made on every exit, is the first request tested: libseccomp tests the
		 * masked requests from the highest value down, which put KVM_RUN (0xae80) behind
		 * the other eleven; as a whole-word EQ it gets a chain of its own, tested first
		 * (10 instructions in all, tests/unit/vmm/sandbox/test_filters.c). glibc passes
		 * the request zero-extended, so its upper half is 0.
		 */
		r = prioritize(f, hot_vcpu, N(hot_vcpu));
		if (r == 0)
			r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, KVM_RUN, 0));
		if (r == 0)
			r = add_ioctls(f, vcpu_ioctls, N(vcpu_ioctls));
		break;
	case SANDBOX_IO:
		r = prioritize(f, hot_io, N(hot_io));
		break;
	case SANDBOX_CONSOLE:
		r = prioritize(f, hot_console, N(hot_console));
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		return r;
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
	if (sanitized && (r = add_list(f, sanitizer_extra, N(sanitizer_extra))) < 0)
		return r;
	return 0;
}

/* ---- the output ---- */

static const char *const kind_ids[SANDBOX_KINDS] = {
	[SANDBOX_MAIN] = "SANDBOX_MAIN", [SANDBOX_VCPU] = "SANDBOX_VCPU", [SANDBOX_IO] = "SANDBOX_IO",
	[SANDBOX_CONSOLE] = "SANDBOX_CONSOLE",
};

/* Compile one list and write it as the array f_KIND_API; its length in *len. */
static int emit(FILE *out, enum sandbox_kind kind, bool api, bool sanitized, unsigned *len)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
	FILE *tmp = NULL;
	int r;

	if (!f)
		return -ENOMEM;
	if ((r = build(kind, api, sanitized, f)) < 0)
		goto out;
	if (!(tmp = tmpfile())) {
		r = -errno;
		goto out;
	}
	if ((r = seccomp_export_bpf(f, fileno(tmp))) < 0)
		goto out;
	rewind(tmp);
	fprintf(out, "static const struct sock_filter f_%d_%d[] = {\n", (int)kind, (int)api);
	struct sock_filter ins;
	unsigned n = 0;
	while (fread(&ins, sizeof(ins), 1, tmp) == 1) {
		fprintf(out, "\t{ 0x%04x, %3u, %3u, 0x%08x },\n", ins.code, ins.jt, ins.jf, ins.k);
		n++;
	}
	fprintf(out, "};\n");
	if (n == 0 || n > BPF_MAXINSNS) {
		r = -E2BIG;
		goto out;
	}
	*len = n;
	r = 0;
out:
	if (tmp)
		fclose(tmp);
	seccomp_release(f);
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "plain") && strcmp(argv[1], "sanitized"))) {
		fprintf(stderr, "usage: filters-gen plain|sanitized OUTPUT.c\n");
		return 2;
	}
	bool sanitized = !strcmp(argv[1], "sanitized");
	/* The SCMP_SYS numbers and ioctl requests above are this machine's: x86-64 only. */
	if (seccomp_arch_native() != SCMP_ARCH_X86_64) {
		fprintf(stderr, "filters-gen: builds x86-64 filters only, on an x86-64 machine\n");
		return 1;
	}
	FILE *out = fopen(argv[2], "w");
	if (!out) {
		fprintf(stderr, "filters-gen: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	fprintf(out, "/* Generated by vmm/sandbox/filters_gen.c (%s build): do not edit. */\n"
		"#include \"vmm/sandbox/filters.h\"\n\n", argv[1]);
	unsigned len[SANDBOX_KINDS][2];
	for (int k = 0; k < SANDBOX_KINDS; k++)
		for (int api = 0; api < 2; api++) {
			int r = emit(out, (enum sandbox_kind)k, api, sanitized, &len[k][api]);
			if (r < 0) {
				fprintf(stderr, "filters-gen: the %s filter (api %d): %s\n", kind_ids[k], api,
					strerror(-r));
				fclose(out);
				unlink(argv[2]);
				return 1;
			}
		}
	fprintf(out, "\nconst struct sandbox_filter sandbox_filters[SANDBOX_KINDS][2] = {\n");
	for (int k = 0; k < SANDBOX_KINDS; k++)
		fprintf(out, "\t[%s] = { { f_%d_0, %u }, { f_%d_1, %u } },\n", kind_ids[k], k, len[k][0], k,
			len[k][1]);
	fprintf(out, "};\n\nconst char *const sandbox_syscall_names[SANDBOX_SYSCALL_NAMES] = {\n");
	for (int nr = 0; nr < NAMES; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
		if (name)
			fprintf(out, "\t[%d] = \"%s\",\n", nr, name);
		free(name);
	}
	fprintf(out, "};\n\nconst bool sandbox_filters_sanitized = %s;\n", sanitized ? "true" : "false");
	if (fclose(out) != 0) {
		fprintf(stderr, "filters-gen: %s: %s\n", argv[2], strerror(errno));
		unlink(argv[2]);
		return 1;
	}
	return 0;
}
