/*
 * test_filters.c - the BPF programs the build generated (vmm/sandbox/filters.h), run by a
 * small classic-BPF interpreter of our own on made-up struct seccomp_data: the calls each
 * kind needs pass, the forbidden ones trap, arguments are checked, the programs are well
 * formed, and the hot calls stay cheap (instructions executed, printed for docs/seccomp.md).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "vmm/sandbox/filters.h"

/* ---- the interpreter: what the kernel's seccomp accepts, nothing more ---- */

struct verdict {
	uint32_t ret;     /* the program's return value */
	unsigned steps;   /* instructions executed */
};

static uint32_t load_word(const struct seccomp_data *d, uint32_t off)
{
	uint32_t w;

	cr_assert(off % 4 == 0 && off + 4 <= sizeof(*d), "load at offset %u", off);
	memcpy(&w, (const char *)d + off, 4);
	return w;
}

static struct verdict run(const struct sandbox_filter *f, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };
	struct verdict v = { 0, 0 };

	for (unsigned pc = 0; pc < f->len; pc++) {
		const struct sock_filter *i = &f->insns[pc];
		uint32_t src = BPF_SRC(i->code) == BPF_X ? x : i->k;
		v.steps++;
		switch (BPF_CLASS(i->code)) {
		case BPF_LD:
			cr_assert(BPF_SIZE(i->code) == BPF_W, "pc %u: load size 0x%x", pc, i->code);
			if (BPF_MODE(i->code) == BPF_ABS)
				a = load_word(d, i->k);
			else if (BPF_MODE(i->code) == BPF_IMM)
				a = i->k;
			else if (BPF_MODE(i->code) == BPF_MEM && i->k < BPF_MEMWORDS)
				a = mem[i->k];
			else
				cr_assert_fail("pc %u: load mode 0x%x", pc, i->code);
			break;
		case BPF_LDX:
			if (BPF_MODE(i->code) == BPF_IMM)
				x = i->k;
			else if (BPF_MODE(i->code) == BPF_MEM && i->k < BPF_MEMWORDS)
				x = mem[i->k];
			else
				cr_assert_fail("pc %u: ldx mode 0x%x", pc, i->code);
			break;
		case BPF_ST:
		case BPF_STX:
			cr_assert(i->k < BPF_MEMWORDS, "pc %u: store to %u", pc, i->k);
			mem[i->k] = BPF_CLASS(i->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			switch (BPF_OP(i->code)) {
			case BPF_ADD: a += src; break;
			case BPF_SUB: a -= src; break;
			case BPF_MUL: a *= src; break;
			case BPF_AND: a &= src; break;
			case BPF_OR: a |= src; break;
			case BPF_XOR: a ^= src; break;
			case BPF_LSH: a = src < 32 ? a << src : 0; break;
			case BPF_RSH: a = src < 32 ? a >> src : 0; break;
			case BPF_NEG: a = 0u - a; break;
			default: cr_assert_fail("pc %u: ALU op 0x%x", pc, i->code);
			}
			break;
		case BPF_JMP: {
			unsigned off;
			if (BPF_OP(i->code) == BPF_JA) {
				off = i->k;
			} else {
				bool t;
				switch (BPF_OP(i->code)) {
				case BPF_JEQ: t = a == src; break;
				case BPF_JGT: t = a > src; break;
				case BPF_JGE: t = a >= src; break;
				case BPF_JSET: t = (a & src) != 0; break;
				default: cr_assert_fail("pc %u: jump op 0x%x", pc, i->code); t = false;
				}
				off = t ? i->jt : i->jf;
			}
			cr_assert(pc + 1 + off < f->len, "pc %u: jump past the end", pc);
			pc += off;
			break;
		}
		case BPF_RET:
			v.ret = BPF_RVAL(i->code) == BPF_A ? a : i->k;
			return v;
		case BPF_MISC:
			if (BPF_MISCOP(i->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		default:
			cr_assert_fail("pc %u: class 0x%x", pc, i->code);
		}
	}
	cr_assert_fail("ran off the end of the program");
	return v;
}

/* ---- the cases ---- */

static struct seccomp_data call(int nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct seccomp_data d;

	memset(&d, 0, sizeof(d));
	d.nr = nr;
	d.arch = AUDIT_ARCH_X86_64;
	d.instruction_pointer = 0x401000;
	d.args[0] = a0;
	d.args[1] = a1;
	d.args[2] = a2;
	return d;
}

static struct verdict check(enum sandbox_kind kind, int api, struct seccomp_data d)
{
	return run(&sandbox_filters[kind][api], &d);
}

#define ALLOW SECCOMP_RET_ALLOW
#define TRAP SECCOMP_RET_TRAP

static void expect(enum sandbox_kind kind, int api, struct seccomp_data d, uint32_t want, const char *what)
{
	struct verdict v = check(kind, api, d);
	cr_assert_eq(v.ret, want, "%s thread (api %d), %s: returned 0x%08x, want 0x%08x", sandbox_kind_name(kind),
		     api, what, v.ret, want);
}

Test(filters, every_program_is_well_formed)
{
	for (int k = 0; k < SANDBOX_KINDS; k++)
		for (int api = 0; api < 2; api++) {
			const struct sandbox_filter *f = &sandbox_filters[k][api];
			cr_assert(f->insns && f->len > 0 && f->len <= BPF_MAXINSNS, "%s/%d: %u instructions",
				  sandbox_kind_name(k), api, f->len);
			cr_assert_eq(BPF_CLASS(f->insns[f->len - 1].code), BPF_RET, "%s/%d does not end in a return",
				     sandbox_kind_name(k), api);
		}
	/* Only the main thread's list grows with the control API. */
	cr_assert_gt(sandbox_filters[SANDBOX_MAIN][1].len, sandbox_filters[SANDBOX_MAIN][0].len);
}

Test(filters, vcpu_runs_the_guest_and_nothing_else)
{
	expect(SANDBOX_VCPU, 0, call(__NR_ioctl, 5, KVM_RUN, 0), ALLOW, "ioctl(KVM_RUN)");
	expect(SANDBOX_VCPU, 0, call(__NR_ioctl, 5, KVM_IRQ_LINE, 0x7ff0), ALLOW, "ioctl(KVM_IRQ_LINE)");
	expect(SANDBOX_VCPU, 0, call(__NR_ioctl, 5, KVM_GET_REGS, 0x7ff0), ALLOW, "ioctl(KVM_GET_REGS)");
	expect(SANDBOX_VCPU, 0, call(__NR_ioctl, 4, KVM_SET_USER_MEMORY_REGION, 0), TRAP,
	       "ioctl(KVM_SET_USER_MEMORY_REGION)");
	expect(SANDBOX_VCPU, 0, call(__NR_ioctl, 4, KVM_CREATE_VCPU, 0), TRAP, "ioctl(KVM_CREATE_VCPU)");
	expect(SANDBOX_VCPU, 0, call(__NR_execve, 0x1000, 0x2000, 0x3000), TRAP, "execve");
	expect(SANDBOX_VCPU, 0, call(__NR_socket, 2, 1, 0), TRAP, "socket");
	expect(SANDBOX_VCPU, 0, call(__NR_openat, -100, 0x1000, 0), sandbox_filters_sanitized ? ALLOW : TRAP,
	       "openat");
	expect(SANDBOX_VCPU, 0, call(__NR_io_uring_enter, 3, 1, 0), TRAP, "io_uring_enter");
	expect(SANDBOX_VCPU, 0, call(__NR_write, 2, 0x1000, 10), ALLOW, "write");
}

Test(filters, no_kind_maps_executable_memory)
{
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		expect(k, 0, call(__NR_mmap, 0, 4096, PROT_READ | PROT_WRITE), ALLOW, "mmap(PROT_READ|PROT_WRITE)");
		expect(k, 0, call(__NR_mmap, 0, 4096, PROT_READ | PROT_EXEC), sandbox_filters_sanitized ? ALLOW : TRAP,
		       "mmap(PROT_READ|PROT_EXEC)");
		expect(k, 1, call(__NR_mprotect, 0x1000, 4096, PROT_EXEC), sandbox_filters_sanitized ? ALLOW : TRAP,
		       "mprotect(PROT_EXEC)");
	}
}

Test(filters, io_thread_does_io_but_never_kvm)
{
	expect(SANDBOX_IO, 0, call(__NR_io_uring_enter, 3, 1, 0), ALLOW, "io_uring_enter");
	expect(SANDBOX_IO, 0, call(__NR_pwritev2, 7, 0x1000, 2), ALLOW, "pwritev2");
	expect(SANDBOX_IO, 0, call(__NR_ioctl, 5, KVM_RUN, 0), TRAP, "ioctl(KVM_RUN)");
	expect(SANDBOX_CONSOLE, 0, call(__NR_ioctl, 4, KVM_IRQ_LINE, 0x7ff0), ALLOW, "ioctl(KVM_IRQ_LINE)");
	expect(SANDBOX_CONSOLE, 0, call(__NR_ioctl, 5, KVM_RUN, 0), TRAP, "ioctl(KVM_RUN)");
	expect(SANDBOX_CONSOLE, 0, call(__NR_io_uring_enter, 3, 1, 0), TRAP, "io_uring_enter");
}

Test(filters, main_thread_arguments_and_the_api_list)
{
	if (!sandbox_filters_sanitized)
		expect(SANDBOX_MAIN, 0, call(__NR_clone, SIGCHLD, 0, 0), TRAP, "clone (fork)");
	expect(SANDBOX_MAIN, 0, call(__NR_clone, CLONE_VM | CLONE_THREAD | CLONE_SIGHAND, 0x1000, 0), ALLOW,
	       "clone(CLONE_THREAD)");
	expect(SANDBOX_MAIN, 0, call(__NR_clone3, 0x1000, 88, 0), SECCOMP_RET_ERRNO | ENOSYS, "clone3");
	expect(SANDBOX_MAIN, 0, call(__NR_tgkill, 1, 2, SIGUSR1), ALLOW, "tgkill(SIGUSR1)");
	if (!sandbox_filters_sanitized)
		expect(SANDBOX_MAIN, 0, call(__NR_tgkill, 1, 2, SIGKILL), TRAP, "tgkill(SIGKILL)");
	expect(SANDBOX_MAIN, 0, call(__NR_io_uring_register, 3, IORING_REGISTER_SYNC_CANCEL, 0), ALLOW,
	       "io_uring_register(SYNC_CANCEL)");
	expect(SANDBOX_MAIN, 0, call(__NR_io_uring_register, 3, IORING_REGISTER_BUFFERS, 0), TRAP,
	       "io_uring_register(BUFFERS)");
	expect(SANDBOX_MAIN, 0, call(__NR_accept4, 3, 0, 0), TRAP, "accept4 without the API");
	expect(SANDBOX_MAIN, 1, call(__NR_accept4, 3, 0, 0), ALLOW, "accept4 with the API");
	expect(SANDBOX_MAIN, 1, call(__NR_ioctl, 5, KVM_GET_XSAVE, 0x1000), ALLOW, "ioctl(KVM_GET_XSAVE)");
	expect(SANDBOX_MAIN, 1, call(__NR_ioctl, 5, KVM_SET_XSAVE, 0x1000), TRAP, "ioctl(KVM_SET_XSAVE)");
	expect(SANDBOX_VCPU, 1, call(__NR_accept4, 3, 0, 0), TRAP, "accept4 in a vCPU thread");
}

Test(filters, other_architectures_and_x32_are_refused)
{
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		struct seccomp_data d = call(__NR_write, 2, 0x1000, 1);
		d.arch = AUDIT_ARCH_I386;
		uint32_t r = check(k, 0, d).ret;
		cr_assert(r != ALLOW && (r & SECCOMP_RET_ACTION_FULL) != SECCOMP_RET_ERRNO, "%s: i386 call: 0x%08x",
			  sandbox_kind_name(k), r);
		d = call(0x40000000 | __NR_write, 2, 0x1000, 1);   /* __X32_SYSCALL_BIT */
		r = check(k, 0, d).ret;
		cr_assert(r != ALLOW, "%s: x32 write allowed", sandbox_kind_name(k));
	}
}

Test(filters, the_report_names_the_call)
{
	cr_assert_str_eq(sandbox_syscall_names[__NR_socket], "socket");
	cr_assert_str_eq(sandbox_syscall_names[__NR_execve], "execve");
	cr_assert_str_eq(sandbox_syscall_names[__NR_openat], "openat");
	cr_assert_str_eq(sandbox_syscall_names[__NR_io_uring_enter], "io_uring_enter");
	cr_assert_null(sandbox_syscall_names[SANDBOX_SYSCALL_NAMES - 1]);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SANITIZED 1
#endif
#endif

Test(filters, generated_for_this_build)
{
#ifdef SANITIZED
	cr_assert(sandbox_filters_sanitized, "a sanitizer build got the plain lists (meson's b_sanitize)");
#else
	cr_assert_not(sandbox_filters_sanitized, "a plain build got the sanitizer's lists");
#endif
}

/*
 * The cost of the hot calls: instructions the kernel runs for each. KVM_RUN is filtered on
 * every VM exit; the bounds catch a generator that puts it behind the whole list again
 * (44 instructions before the lists were ordered, 2026-12-06).
 */
Test(filters, hot_calls_are_tested_first)
{
	static const struct {
		enum sandbox_kind kind;
		int nr;
		unsigned long a1;
		const char *what;
		unsigned most;
	} hot[] = {
		{ SANDBOX_VCPU, __NR_ioctl, KVM_RUN, "ioctl(KVM_RUN)", 10 },
		{ SANDBOX_IO, __NR_io_uring_enter, 1, "io_uring_enter", 8 },
		{ SANDBOX_IO, __NR_read, 0, "read", 8 },
		{ SANDBOX_IO, __NR_write, 0, "write", 8 },
	};
	for (size_t i = 0; i < sizeof(hot) / sizeof(hot[0]); i++) {
		struct verdict v = check(hot[i].kind, 0, call(hot[i].nr, 5, hot[i].a1, 0));
		cr_assert_eq(v.ret, ALLOW, "%s", hot[i].what);
		fprintf(stderr, "filters: %s thread, %s: %u BPF instructions (program: %u)\n",
			sandbox_kind_name(hot[i].kind), hot[i].what, v.steps, sandbox_filters[hot[i].kind][0].len);
		cr_assert_leq(v.steps, hot[i].most, "%s thread, %s: %u instructions", sandbox_kind_name(hot[i].kind),
			      hot[i].what, v.steps);
	}
}
