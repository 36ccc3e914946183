/* probe.c - a few-instruction probe VM that tells what kind of KVM host this is (see probe.h, docs/host-quirks.md). */
#include "driver/probe.h"
#include "driver/kvm.h"
#include "driver/x86.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/*
 * The probe guest. Identity-mapped by one 2 MiB user-accessible page, so one
 * blob serves CPL0 and CPL3. In order:
 *   CPL0: three timed `dec/jnz` loops (rdtsc deltas to DATA+0..16), then iretq
 *         to CPL3 with IOPL 0 and interrupts off;
 *   CPL3: the same three loops (DATA+24..40), a marker at DATA+0x40, `syscall`;
 *   LSTAR: `out` to PORT_SYSCALL. At CPL0 that is an I/O exit; at CPL3 with
 *         IOPL 0 it raises #GP;
 *   IDT: every vector 0..31 has a CPL0 handler that writes its vector number
 *         to PORT_EXCEPTION.
 * The VMM reads where it landed: the I/O exit, CS, the exception frame at the
 * top of the CPL0 stack, the data page.
 */
#define PROBE_LOOPS 300
#define PROBE_REPS 3
#define PORT_SYSCALL 0x10
#define PORT_EXCEPTION 0x11

#define STR_(x) #x
#define STR(x) STR_(x)

__asm__(".pushsection .rodata.microvm_probe, \"a\"\n"
	".balign 16\n"
	".globl microvm_probe_code\n.hidden microvm_probe_code\n"
	"microvm_probe_code:\n"
	/* CPL0: timed loops */
	"  mov $" STR(PROBE_REPS) ", %r8d\n"
	"  mov $0xb000, %edi\n"
	"1:rdtsc\n  shl $32, %rdx\n  or %rdx, %rax\n  mov %rax, %rsi\n"
	"  mov $" STR(PROBE_LOOPS) ", %ecx\n"
	"2:dec %ecx\n  jnz 2b\n"
	"  rdtsc\n  shl $32, %rdx\n  or %rdx, %rax\n  sub %rsi, %rax\n"
	"  mov %rax, (%rdi)\n  add $8, %rdi\n  dec %r8d\n  jnz 1b\n"
	/* to CPL3: SS, RSP, RFLAGS (IF=0, IOPL=0), CS, RIP */
	"  push $0x23\n  push $0xa000\n  push $0x2\n  push $0x2b\n"
	"  push $(0xc000 + microvm_probe_user - microvm_probe_code)\n"
	"  iretq\n"
	".globl microvm_probe_user\n.hidden microvm_probe_user\n"
	"microvm_probe_user:\n"
	"  mov $" STR(PROBE_REPS) ", %r8d\n"
	"  mov $0xb018, %edi\n"
	"1:rdtsc\n  shl $32, %rdx\n  or %rdx, %rax\n  mov %rax, %rsi\n"
	"  mov $" STR(PROBE_LOOPS) ", %ecx\n"
	"2:dec %ecx\n  jnz 2b\n"
	"  rdtsc\n  shl $32, %rdx\n  or %rdx, %rax\n  sub %rsi, %rax\n"
	"  mov %rax, (%rdi)\n  add $8, %rdi\n  dec %r8d\n  jnz 1b\n"
	"  movl $1, 0xb040\n"
	".globl microvm_probe_syscall_insn\n.hidden microvm_probe_syscall_insn\n"
	"microvm_probe_syscall_insn:\n"
	"  syscall\n"
	"  ud2\n"
	".globl microvm_probe_lstar\n.hidden microvm_probe_lstar\n"
	"microvm_probe_lstar:\n"
	"  mov $0x5a, %al\n  out %al, $" STR(PORT_SYSCALL) "\n  hlt\n  jmp microvm_probe_lstar\n"
	".globl microvm_probe_lstar_end\n.hidden microvm_probe_lstar_end\n"
	"microvm_probe_lstar_end:\n"
	".balign 8\n"
	".globl microvm_probe_vectors\n.hidden microvm_probe_vectors\n"
	"microvm_probe_vectors:\n"
	"  .set vec, 0\n"
	"  .rept 32\n"
	"  .balign 8\n"
	"  mov $vec, %al\n  out %al, $" STR(PORT_EXCEPTION) "\n  hlt\n  jmp .-1\n"
	"  .set vec, vec + 1\n"
	"  .endr\n"
	".globl microvm_probe_code_end\n.hidden microvm_probe_code_end\n"
	"microvm_probe_code_end:\n"
	".popsection\n");

extern const uint8_t microvm_probe_code[], microvm_probe_user[], microvm_probe_syscall_insn[],
	microvm_probe_lstar[], microvm_probe_lstar_end[], microvm_probe_vectors[],
	microvm_probe_code_end[];

/* Guest-physical layout (one 64 KiB slot at 0). */
#define G_MEM_SIZE 0x10000
#define G_PML4 0x1000
#define G_PDPT 0x2000
#define G_PD 0x3000
#define G_GDT 0x4000
#define G_IDT 0x5000
#define G_TSS 0x6000
#define G_KSTACK_TOP 0x8000
#define G_DATA 0xb000
#define G_CODE 0xc000
#define G_MARKER (G_DATA + 0x40)

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE32 0x18
#define SEL_TSS 0x30

#define EMULATED_RATIO 50     /* CPL0 loop / CPL3 loop above this: CPL0 is emulated */
#define PROBE_DEADLINE_MS 500 /* the whole probe, however the guest behaves */
#define PROBE_MAX_EXITS 16

static inline uint64_t code_off(const uint8_t *sym)
{
	return (uint64_t)(sym - microvm_probe_code);
}

struct probe {
	int kvm_fd, vm_fd, vcpu_fd;
	uint8_t *mem;
	struct kvm_run *run;
	size_t run_size;
};

/* The run area the SIGALRM handler stops: set only while KVM_RUN may be running. */
static struct kvm_run *volatile alarm_run;

static void probe_alarm(int sig)
{
	struct kvm_run *r = alarm_run;

	(void)sig;
	if (r)
		__atomic_store_n(&r->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

static int set_cpuid(struct probe *pr)
{
	size_t sz = sizeof(struct kvm_cpuid2) + 256 * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *cpuid = calloc(1, sz);
	int ret = 0;

	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = 256;
	/* KVM refuses EFER.LME unless the guest's CPUID has long mode. */
	if (ioctl(pr->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
	    ioctl(pr->vcpu_fd, KVM_SET_CPUID2, cpuid) < 0)
		ret = -errno;
	free(cpuid);
	return ret;
}

static void write_u64(uint8_t *mem, uint64_t gpa, uint64_t v)
{
	memcpy(mem + gpa, &v, sizeof(v));
}

static uint64_t read_u64(const uint8_t *mem, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, mem + gpa, sizeof(v));
	return v;
}

static void build_guest(uint8_t *mem)
{
	size_t code_len = (size_t)(microvm_probe_code_end - microvm_probe_code);

	write_u64(mem, G_PML4, G_PDPT | 0x7);  /* present, writable, user */
	write_u64(mem, G_PDPT, G_PD | 0x7);
	write_u64(mem, G_PD, 0x0 | 0x87);      /* 2 MiB page at 0, user */

	write_u64(mem, G_GDT + 0x08, 0x00af9b000000ffffULL); /* kernel code64, DPL 0 */
	write_u64(mem, G_GDT + 0x10, 0x00cf93000000ffffULL); /* kernel data */
	write_u64(mem, G_GDT + 0x18, 0x00cffb000000ffffULL); /* user code32 (STAR base) */
	write_u64(mem, G_GDT + 0x20, 0x00cff3000000ffffULL); /* user data, DPL 3 */
	write_u64(mem, G_GDT + 0x28, 0x00affb000000ffffULL); /* user code64, DPL 3 */
	write_u64(mem, G_GDT + 0x30, 0x00008b0000000067ULL | ((uint64_t)G_TSS << 16)); /* TSS */

	/* 64-bit TSS: RSP0 at 4; I/O map base (102) past the limit: no I/O bitmap. */
	write_u64(mem, G_TSS + 4, G_KSTACK_TOP);
	uint16_t iomap = 0x68;
	memcpy(mem + G_TSS + 102, &iomap, sizeof(iomap));

	for (unsigned v = 0; v < 32; v++) {
		uint64_t h = G_CODE + code_off(microvm_probe_vectors) + 8 * v;
		uint64_t lo = (h & 0xffff) | ((uint64_t)SEL_KCODE << 16) | (0x8eULL << 40) |
			      ((h >> 16 & 0xffff) << 48);
		write_u64(mem, G_IDT + 16 * v, lo);
		write_u64(mem, G_IDT + 16 * v + 8, h >> 32);
	}
	memcpy(mem + G_CODE, microvm_probe_code, code_len);
}

static int set_state(struct probe *pr)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[3];
	} msrs;

	if (ioctl(pr->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	x86_flat_segment(&sregs.cs, SEL_KCODE, 0xb, true, false);
	x86_flat_segment(&sregs.ds, SEL_KDATA, 0x3, false, true);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = G_TSS;
	sregs.tr.limit = 0x67;
	sregs.tr.selector = SEL_TSS;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	memset(&sregs.ldt, 0, sizeof(sregs.ldt));
	sregs.ldt.type = 0x2;
	sregs.ldt.present = 1;
	sregs.ldt.unusable = 1;
	sregs.gdt.base = G_GDT;
	sregs.gdt.limit = 7 * 8 - 1;
	sregs.idt.base = G_IDT;
	sregs.idt.limit = 32 * 16 - 1;
	sregs.cr0 = 0x80050033ULL;       /* PG, AM, WP, NE, ET, MP, PE */
	sregs.cr3 = G_PML4;
	sregs.cr4 = 0x20;                /* PAE; no SMEP/SMAP, TSD clear (rdtsc at CPL3) */
	sregs.efer = 0x501;              /* LMA, LME, SCE */
	if (ioctl(pr->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = 3;
	msrs.e[0].index = 0xc0000081; /* STAR: syscall CS 0x08, sysret base 0x18 */
	msrs.e[0].data = ((uint64_t)SEL_UCODE32 << 48) | ((uint64_t)SEL_KCODE << 32);
	msrs.e[1].index = 0xc0000082; /* LSTAR */
	msrs.e[1].data = G_CODE + code_off(microvm_probe_lstar);
	msrs.e[2].index = 0xc0000084; /* SFMASK: TF, DF, IF, IOPL, NT, AC */
	msrs.e[2].data = 0x47700;
	if (ioctl(pr->vcpu_fd, KVM_SET_MSRS, &msrs) != 3)
		return -EINVAL;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = G_CODE;
	regs.rsp = G_KSTACK_TOP;
	if (ioctl(pr->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

static int probe_setup(struct probe *pr)
{
	struct kvm_userspace_memory_region region;
	int sz;

	if ((pr->vm_fd = ioctl(pr->kvm_fd, KVM_CREATE_VM, 0)) < 0)
		return -errno;
	(void)ioctl(pr->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL); /* only VMX without unrestricted guests */
	pr->mem = mmap(NULL, G_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pr->mem == MAP_FAILED) {
		pr->mem = NULL;
		return -errno;
	}
	build_guest(pr->mem);
	region = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = 0, .memory_size = G_MEM_SIZE,
		.userspace_addr = (uintptr_t)pr->mem,
	};
	if (ioctl(pr->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -errno;
	if ((pr->vcpu_fd = ioctl(pr->vm_fd, KVM_CREATE_VCPU, 0)) < 0)
		return -errno;
	sz = ioctl(pr->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run))
		return -EINVAL;
	pr->run_size = (size_t)sz;
	pr->run = mmap(NULL, pr->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, pr->vcpu_fd, 0);
	if (pr->run == MAP_FAILED) {
		pr->run = NULL;
		return -errno;
	}
	int ret = set_cpuid(pr);
	if (ret < 0)
		return ret;
	return set_state(pr);
}

static void probe_teardown(struct probe *pr)
{
	if (pr->run)
		munmap(pr->run, pr->run_size);
	if (pr->vcpu_fd >= 0)
		close(pr->vcpu_fd);
	if (pr->vm_fd >= 0)
		close(pr->vm_fd);
	if (pr->mem)
		munmap(pr->mem, G_MEM_SIZE);
	if (pr->kvm_fd >= 0)
		close(pr->kvm_fd);
}

static uint64_t min3(const uint8_t *mem, uint64_t gpa)
{
	uint64_t m = UINT64_MAX;

	for (int i = 0; i < PROBE_REPS; i++) {
		uint64_t v = read_u64(mem, gpa + 8 * (uint64_t)i);
		if (v && v < m)
			m = v;
	}
	return m == UINT64_MAX ? 0 : m;
}

/* Where the guest landed at its last exit, turned into the profile. */
static void conclude(struct probe *pr, struct host_profile *p, struct kvm_run *r)
{
	bool marker = read_u64(pr->mem, G_MARKER) == 1;
	uint64_t lstar = G_CODE + code_off(microvm_probe_lstar);
	uint64_t lstar_end = G_CODE + code_off(microvm_probe_lstar_end);
	uint64_t sys_insn = G_CODE + code_off(microvm_probe_syscall_insn);
	struct kvm_sregs sregs;

	switch (r->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t val = *((uint8_t *)r + r->io.data_offset);
		if (r->io.port == PORT_SYSCALL) {
			if (ioctl(pr->vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
				log_debug("host probe: KVM_GET_SREGS: %s", strerror(errno));
				return;
			}
			p->user_syscalls = (sregs.cs.selector & 3) == 0 && sregs.cs.dpl == 0;
			p->syscall_result = p->user_syscalls ? "reached CPL0" : "handler ran at CPL3";
			p->probed = marker;
		} else if (r->io.port == PORT_EXCEPTION) {
			/* Coming from CPL3 the frame is at the top of the CPL0 stack. */
			uint64_t rip = read_u64(pr->mem, G_KSTACK_TOP - 40);
			uint64_t cs = read_u64(pr->mem, G_KSTACK_TOP - 32);
			p->fault_vector = val;
			if (marker && (cs & 3) == 3 && rip >= lstar && rip < lstar_end) {
				p->user_syscalls = false;
				p->syscall_result = "handler ran at CPL3 and faulted";
				p->probed = true;
			} else if (marker && (cs & 3) == 3 && rip == sys_insn) {
				p->user_syscalls = false;
				p->syscall_result = "syscall raised an exception";
				p->probed = true;
			} else {
				log_debug("host probe: unexpected exception %u at RIP 0x%llx CS 0x%llx",
					  val, (unsigned long long)rip, (unsigned long long)cs);
			}
		} else {
			log_debug("host probe: unexpected I/O to port 0x%x", r->io.port);
		}
		break;
	}
	case KVM_EXIT_SHUTDOWN:
		if (marker) {
			p->user_syscalls = false;
			p->syscall_result = "triple fault";
			p->probed = true;
		} else {
			log_debug("host probe: triple fault before user mode");
		}
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		if (r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
			if (!marker)
				p->emulated_kernel = true; /* the CPL0 part met the emulator */
			else {
				p->user_syscalls = false;
				p->syscall_result = "emulation failure";
				p->probed = true;
			}
		}
		log_debug("host probe: KVM internal error %u (%s user mode)", r->internal.suberror,
			  marker ? "after" : "before");
		break;
	default:
		log_debug("host probe: unexpected exit reason %u", r->exit_reason);
		break;
	}
	if (marker) {
		p->cpl0_cycles = min3(pr->mem, G_DATA);
		p->cpl3_cycles = min3(pr->mem, G_DATA + 24);
		if (p->cpl0_cycles && p->cpl3_cycles &&
		    p->cpl0_cycles > (uint64_t)EMULATED_RATIO * p->cpl3_cycles)
			p->emulated_kernel = true;
	}
}

static const char *summarize(const struct host_profile *p)
{
	if (!p->probed)
		return p->emulated_kernel ? "guest kernel code runs in KVM's instruction emulator (probe incomplete)"
					  : "unknown (the probe did not complete)";
	if (p->emulated_kernel && !p->user_syscalls)
		return "KVM without hardware virtualization: guest kernel code runs in KVM's "
		       "instruction emulator and guest user mode cannot make system calls";
	if (p->emulated_kernel)
		return "guest kernel code runs in KVM's instruction emulator";
	if (!p->user_syscalls)
		return "guest user mode cannot make system calls";
	return "hardware virtualization: guest kernel and user mode run natively";
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int probe_host(struct host_profile *p)
{
	struct probe pr = { .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1 };
	struct sigaction sa, old_sa;
	sigset_t alrm, old_mask;
	timer_t timer;
	bool timer_made = false;
	int64_t t0 = now_ns();
	int ret;

	memset(p, 0, sizeof(*p));
	p->syscall_result = "not reached";
	pr.kvm_fd = kvm_dev_open(KVM_DEV_PATH);
	if (pr.kvm_fd < 0) {
		ret = pr.kvm_fd;
		pr.kvm_fd = -1;
		p->summary = summarize(p);
		return ret;
	}
	p->api_version = ioctl(pr.kvm_fd, KVM_GET_API_VERSION, 0);
	if ((ret = probe_setup(&pr)) < 0) {
		log_debug("host probe: setting up the probe VM failed: %s", strerror(-ret));
		goto out;
	}
	if (ioctl(pr.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GET_TSC_KHZ) > 0) {
		int khz = ioctl(pr.vcpu_fd, KVM_GET_TSC_KHZ, 0);
		if (khz > 0)
			p->tsc_khz = (uint32_t)khz;
	}

	/* A deadline that cannot be lost: the handler sets immediate_exit, so a signal
	 * that lands between two KVM_RUNs still stops the next one. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old_sa);
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, &old_mask);
	alarm_run = pr.run;
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGALRM };
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0) {
		struct itimerspec its = {
			.it_value = { .tv_sec = 0, .tv_nsec = PROBE_DEADLINE_MS * 1000000L },
			.it_interval = { .tv_sec = 0, .tv_nsec = 20 * 1000000L },
		};
		timer_made = timer_settime(timer, 0, &its, NULL) == 0;
	}
	if (!timer_made) {
		log_debug("host probe: no timer for the deadline: %s", strerror(errno));
		goto restore;
	}

	for (int i = 0; i < PROBE_MAX_EXITS; i++) {
		if (ioctl(pr.vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				log_debug("host probe: no answer within %d ms", PROBE_DEADLINE_MS);
			else
				log_debug("host probe: KVM_RUN: %s", strerror(errno));
			break;
		}
		/* An I/O exit to a port the probe does not use: resume. */
		if (pr.run->exit_reason == KVM_EXIT_IO && pr.run->io.port != PORT_SYSCALL &&
		    pr.run->io.port != PORT_EXCEPTION)
			continue;
		conclude(&pr, p, pr.run);
		break;
	}
restore:
	alarm_run = NULL;
	if (timer_made)
		timer_delete(timer);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGALRM, &old_sa, NULL);
out:
	probe_teardown(&pr);
	p->probe_us = (uint32_t)((now_ns() - t0) / 1000);
	p->summary = summarize(p);
	log_debug("host probe: %s (syscall: %s; CPL0 loop %llu cycles, CPL3 loop %llu; %u us)",
		  p->summary, p->syscall_result, (unsigned long long)p->cpl0_cycles,
		  (unsigned long long)p->cpl3_cycles, p->probe_us);
	return 0;
}

/* The host does not change while microvm runs: probe once, answer later calls from the result. */
int host_probe(struct host_profile *p)
{
	static struct host_profile cached;
	static bool have;
	int ret;

	if (have) {
		*p = cached;
		return 0;
	}
	if ((ret = probe_host(p)) < 0)
		return ret; /* no /dev/kvm: nothing to keep, the next call says so again */
	cached = *p;
	have = true;
	return 0;
}

/* The capabilities microvm uses (kvm.c's required list, plus the optional ones). */
static const struct {
	int cap;
	const char *name;
} report_caps[] = {
	{ KVM_CAP_USER_MEMORY, "USER_MEMORY" },
	{ KVM_CAP_IRQCHIP, "IRQCHIP" },
	{ KVM_CAP_PIT2, "PIT2" },
	{ KVM_CAP_IOEVENTFD, "IOEVENTFD" },
	{ KVM_CAP_IRQFD, "IRQFD" },
	{ KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR" },
	{ KVM_CAP_SET_IDENTITY_MAP_ADDR, "SET_IDENTITY_MAP_ADDR" },
	{ KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT" },
	{ KVM_CAP_EXT_CPUID, "EXT_CPUID" },
	{ KVM_CAP_NR_MEMSLOTS, "NR_MEMSLOTS" },
	{ KVM_CAP_GET_TSC_KHZ, "GET_TSC_KHZ" },
	{ KVM_CAP_TSC_DEADLINE_TIMER, "TSC_DEADLINE_TIMER" },
	{ KVM_CAP_MAX_VCPUS, "MAX_VCPUS" },
};

int host_kvm_caps(char *buf, size_t len)
{
	int fd = kvm_dev_open(KVM_DEV_PATH);
	size_t used = 0;

	if (fd < 0)
		return fd;
	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(report_caps) / sizeof(report_caps[0]) && used < len; i++) {
		int v = ioctl(fd, KVM_CHECK_EXTENSION, report_caps[i].cap);
		int n;
		if (v > 1)
			n = snprintf(buf + used, len - used, "%s%s=%d", used ? " " : "", report_caps[i].name, v);
		else
			n = snprintf(buf + used, len - used, "%s%s=%s", used ? " " : "", report_caps[i].name,
				     v > 0 ? "yes" : "no");
		if (n < 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	return 0;
}
