/* x86.c - the x86 state of a new vCPU: CPUID, MSRs, FPU, LAPIC and the two boot entry states. */
#include "driver/vcpu.h"
#include "driver/x86.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_MAX_ENTRIES 256

/* CR0/CR4/EFER bits used at boot. */
#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_ET (1ULL << 4)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)

#define SEL_CODE32 0x08
#define SEL_CODE64 0x10
#define SEL_DATA 0x18
#define SEL_TSS 0x20

void x86_boot_gdt(uint64_t gdt[X86_BOOT_GDT_ENTRIES])
{
	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffULL; /* code32: base 0, limit 4G, G, D, P, exec/read, accessed */
	gdt[2] = 0x00af9b000000ffffULL; /* code64: as above with L instead of D */
	gdt[3] = 0x00cf93000000ffffULL; /* data: base 0, limit 4G, read/write, accessed */
	gdt[4] = 0x00008b0000000067ULL; /* TSS: base 0, limit 0x67, busy 32/64-bit TSS */
}

/*
 * Features whose register state lives in an XSAVE component, with the XCR0 bits they need
 * (Intel SDM vol. 1, 13.1-13.3 and vol. 2A, CPUID; AMD APM vol. 3, CPUID Fn8000_0001).
 * XCR0_NONE: needs XSAVE itself but no user component (CET's state is supervisor state).
 */
#define XCR0_YMM (1ULL << 2)
#define XCR0_MPX ((1ULL << 3) | (1ULL << 4))
#define XCR0_AVX512 ((1ULL << 5) | (1ULL << 6) | (1ULL << 7) | XCR0_YMM)
#define XCR0_PKRU (1ULL << 9)
#define XCR0_AMX ((1ULL << 17) | (1ULL << 18))
#define XCR0_NONE 0ULL

enum { R_EAX, R_EBX, R_ECX, R_EDX };

static const struct xsave_dep {
	uint32_t leaf, subleaf;
	int reg;
	uint32_t mask;
	uint64_t xcr0;
} xsave_deps[] = {
	/* FMA (12), AVX (28), F16C (29) */
	{ 1, 0, R_ECX, (1u << 12) | (1u << 28) | (1u << 29), XCR0_YMM },
	/* AVX2 (5) */
	{ 7, 0, R_EBX, 1u << 5, XCR0_YMM },
	/* MPX (14) */
	{ 7, 0, R_EBX, 1u << 14, XCR0_MPX },
	/* AVX512F (16), DQ (17), IFMA (21), PF (26), ER (27), CD (28), BW (30), VL (31) */
	{ 7, 0, R_EBX, (1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
			       (1u << 30) | (1u << 31), XCR0_AVX512 },
	/* VAES (9), VPCLMULQDQ (10) */
	{ 7, 0, R_ECX, (1u << 9) | (1u << 10), XCR0_YMM },
	/* AVX512_VBMI (1), VBMI2 (6), VNNI (11), BITALG (12), VPOPCNTDQ (14) */
	{ 7, 0, R_ECX, (1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14), XCR0_AVX512 },
	/* PKU (3) */
	{ 7, 0, R_ECX, 1u << 3, XCR0_PKRU },
	/* CET_SS (7) */
	{ 7, 0, R_ECX, 1u << 7, XCR0_NONE },
	/* AVX512_4VNNIW (2), 4FMAPS (3), VP2INTERSECT (8), FP16 (23) */
	{ 7, 0, R_EDX, (1u << 2) | (1u << 3) | (1u << 8) | (1u << 23), XCR0_AVX512 },
	/* CET_IBT (20) */
	{ 7, 0, R_EDX, 1u << 20, XCR0_NONE },
	/* AMX_BF16 (22), AMX_TILE (24), AMX_INT8 (25) */
	{ 7, 0, R_EDX, (1u << 22) | (1u << 24) | (1u << 25), XCR0_AMX },
	/* SHA512 (0), SM3 (1), SM4 (2), AVX_VNNI (4), AVX_IFMA (23) */
	{ 7, 1, R_EAX, (1u << 0) | (1u << 1) | (1u << 2) | (1u << 4) | (1u << 23), XCR0_YMM },
	/* AVX512_BF16 (5) */
	{ 7, 1, R_EAX, 1u << 5, XCR0_AVX512 },
	/* AMX_FP16 (21) */
	{ 7, 1, R_EAX, 1u << 21, XCR0_AMX },
	/* AVX_VNNI_INT8 (4), AVX_NE_CONVERT (5), AVX_VNNI_INT16 (10) */
	{ 7, 1, R_EDX, (1u << 4) | (1u << 5) | (1u << 10), XCR0_YMM },
	/* AMX_COMPLEX (8) */
	{ 7, 1, R_EDX, 1u << 8, XCR0_AMX },
	/* AVX10 (19) */
	{ 7, 1, R_EDX, 1u << 19, XCR0_AVX512 },
	/* AMD: XOP (11), FMA4 (16) */
	{ 0x80000001, 0, R_ECX, (1u << 11) | (1u << 16), XCR0_YMM },
};

#define L1_ECX_XSAVE (1u << 26)
#define L1_ECX_OSXSAVE (1u << 27)

static uint32_t *reg_of(struct kvm_cpuid_entry2 *e, int reg)
{
	return reg == R_EAX ? &e->eax : reg == R_EBX ? &e->ebx : reg == R_ECX ? &e->ecx : &e->edx;
}

static int clear_bits(uint32_t *reg, uint32_t mask)
{
	int n = __builtin_popcount(*reg & mask);

	*reg &= ~mask;
	return n;
}

int x86_cpuid_fix_deps(struct kvm_cpuid_entry2 *e, uint32_t n)
{
	bool xsave = false;
	uint64_t xcr0 = 0;
	int cleared = 0;

	for (uint32_t i = 0; i < n; i++)
		if (e[i].function == 1)
			xsave = e[i].ecx & L1_ECX_XSAVE;
	for (uint32_t i = 0; xsave && i < n; i++)
		if (e[i].function == 0xd && e[i].index == 0)
			xcr0 = e[i].eax | (uint64_t)e[i].edx << 32;
	for (uint32_t i = 0; i < n; i++) {
		for (size_t d = 0; d < sizeof(xsave_deps) / sizeof(xsave_deps[0]); d++) {
			const struct xsave_dep *x = &xsave_deps[d];

			if (e[i].function != x->leaf || (x->leaf == 7 && e[i].index != x->subleaf))
				continue;
			if (!xsave || (xcr0 & x->xcr0) != x->xcr0)
				cleared += clear_bits(reg_of(&e[i], x->reg), x->mask);
		}
		if (!xsave && e[i].function == 1)
			cleared += clear_bits(&e[i].ecx, L1_ECX_OSXSAVE);
		if (!xsave && e[i].function == 0xd)
			e[i].eax = e[i].ebx = e[i].ecx = e[i].edx = 0;
	}
	return cleared;
}

static int set_cpuid(struct vcpu *vcpu, int ncpus)
{
	size_t sz = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *cpuid = calloc(1, sz);
	int ret = 0;

	if (!cpuid)
		return err_set(ENOMEM, "CPUID table: out of memory");
	cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vcpu->vm->kvm->fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		ret = err_set(errno, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out;
	}
	x86_cpuid_fix_deps(cpuid->entries, cpuid->nent);
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		switch (e->function) {
		case 1:
			/* Initial APIC ID and logical processor count. */
			e->ebx = (e->ebx & 0x0000ffff) | ((uint32_t)vcpu->id << 24) |
				 ((uint32_t)(ncpus > 255 ? 255 : ncpus) << 16);
			e->ecx |= 1u << 31; /* running under a hypervisor */
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: the count above is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = (uint32_t)vcpu->id; /* x2APIC ID */
			break;
		default:
			break;
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0)
		ret = err_set(errno, "KVM_SET_CPUID2 on vCPU %d: %s", vcpu->id, strerror(errno));
out:
	free(cpuid);
	return ret;
}

static int set_msrs(struct vcpu *vcpu)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} boot_msrs[] = {
		{ 0x174, 0 },                 /* IA32_SYSENTER_CS */
		{ 0x175, 0 },                 /* IA32_SYSENTER_ESP */
		{ 0x176, 0 },                 /* IA32_SYSENTER_EIP */
		{ 0xc0000081, 0 },            /* STAR */
		{ 0xc0000082, 0 },            /* LSTAR */
		{ 0xc0000083, 0 },            /* CSTAR */
		{ 0xc0000084, 0 },            /* SYSCALL_MASK */
		{ 0xc0000102, 0 },            /* KERNEL_GS_BASE */
		{ 0x1a0, 1 },                 /* IA32_MISC_ENABLE: fast strings */
		{ 0x2ff, (1 << 11) | 6 },     /* MTRR default type: enabled, write-back */
	};
	enum { N = sizeof(boot_msrs) / sizeof(boot_msrs[0]) };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[N];
	} set;

	/*
	 * All in one KVM_SET_MSRS (one system call at start-up, not one per
	 * MSR). KVM sets them in order and stops at the first it refuses,
	 * returning how many it set: a missing optional MSR must not hide the
	 * others, so the rest go in again after it. None of them is essential.
	 */
	for (size_t from = 0; from < N;) {
		memset(&set, 0, sizeof(set));
		set.hdr.nmsrs = (uint32_t)(N - from);
		for (size_t i = from; i < N; i++) {
			set.e[i - from].index = boot_msrs[i].index;
			set.e[i - from].data = boot_msrs[i].value;
		}
		int done = ioctl(vcpu->fd, KVM_SET_MSRS, &set);
		if (done < 0 || (size_t)done > N - from)
			done = 0;
		from += (size_t)done;
		if (from < N) {
			log_debug("vCPU %d: KVM refused MSR 0x%x, left at its default", vcpu->id,
				  boot_msrs[from].index);
			from++;
		}
	}
	return 0;
}

static int set_fpu(struct vcpu *vcpu)
{
	struct kvm_fpu fpu;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		return err_set(errno, "KVM_SET_FPU on vCPU %d: %s", vcpu->id, strerror(errno));
	return 0;
}

static int set_lapic(struct vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	uint32_t v;

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return err_set(errno, "KVM_GET_LAPIC on vCPU %d: %s", vcpu->id, strerror(errno));
	/* LVT LINT0: ExtINT (the PIC); LVT LINT1: NMI. Delivery mode is bits 8..10. */
	memcpy(&v, &lapic.regs[0x350], 4);
	v = (v & ~0x700u & ~(1u << 16)) | (7u << 8);
	memcpy(&lapic.regs[0x350], &v, 4);
	memcpy(&v, &lapic.regs[0x360], 4);
	v = (v & ~0x700u & ~(1u << 16)) | (4u << 8);
	memcpy(&lapic.regs[0x360], &v, 4);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		return err_set(errno, "KVM_SET_LAPIC on vCPU %d: %s", vcpu->id, strerror(errno));
	return 0;
}

int vcpu_init(struct vcpu *vcpu, int ncpus)
{
	int ret;

	if ((ret = set_cpuid(vcpu, ncpus)) < 0)
		return ret;
	if ((ret = set_msrs(vcpu)) < 0)
		return ret;
	if ((ret = set_fpu(vcpu)) < 0)
		return ret;
	return set_lapic(vcpu);
}

void x86_flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool l, bool db)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = 0;
	s->db = db;
	s->s = 1;
	s->l = l;
	s->g = 1;
}

static void boot_sregs(struct kvm_sregs *sregs, uint16_t cs_sel, bool long_mode, uint64_t gdt_gpa)
{
	x86_flat_segment(&sregs->cs, cs_sel, 0xb, long_mode, !long_mode);
	x86_flat_segment(&sregs->ds, SEL_DATA, 0x3, false, true);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
	memset(&sregs->tr, 0, sizeof(sregs->tr));
	sregs->tr.selector = SEL_TSS;
	sregs->tr.limit = 0x67;
	sregs->tr.type = 0xb;
	sregs->tr.present = 1;
	memset(&sregs->ldt, 0, sizeof(sregs->ldt));
	sregs->ldt.type = 0x2;
	sregs->ldt.present = 1;
	sregs->ldt.unusable = 1;
	sregs->gdt.base = gdt_gpa;
	sregs->gdt.limit = X86_BOOT_GDT_ENTRIES * 8 - 1;
	sregs->idt.base = 0;
	sregs->idt.limit = 0;
}

static int boot_common(struct vcpu *vcpu, struct kvm_sregs *sregs, struct kvm_regs *regs)
{
	if (ioctl(vcpu->fd, KVM_SET_SREGS, sregs) < 0)
		return err_set(errno, "KVM_SET_SREGS on vCPU %d: %s", vcpu->id, strerror(errno));
	if (ioctl(vcpu->fd, KVM_SET_REGS, regs) < 0)
		return err_set(errno, "KVM_SET_REGS on vCPU %d: %s", vcpu->id, strerror(errno));
	return 0;
}

int vcpu_boot_linux64(struct vcpu *vcpu, uint64_t entry, uint64_t zero_page,
		      uint64_t pml4_gpa, uint64_t gdt_gpa, uint64_t stack)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return err_set(errno, "KVM_GET_SREGS on vCPU %d: %s", vcpu->id, strerror(errno));
	boot_sregs(&sregs, SEL_CODE64, true, gdt_gpa);
	sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
	sregs.cr3 = pml4_gpa;
	sregs.cr4 = X86_CR4_PAE;
	sregs.efer = X86_EFER_LME | X86_EFER_LMA;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = entry;
	regs.rsi = zero_page;
	regs.rsp = stack;
	regs.rbp = stack;
	return boot_common(vcpu, &sregs, &regs);
}

int vcpu_boot_pvh(struct vcpu *vcpu, uint64_t entry, uint32_t start_info, uint64_t gdt_gpa,
		  uint64_t stack)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return err_set(errno, "KVM_GET_SREGS on vCPU %d: %s", vcpu->id, strerror(errno));
	boot_sregs(&sregs, SEL_CODE32, false, gdt_gpa);
	sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
	sregs.cr3 = 0;
	sregs.cr4 = 0;
	sregs.efer = 0;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = entry;
	regs.rbx = start_info;
	regs.rsp = stack;
	return boot_common(vcpu, &sregs, &regs);
}
