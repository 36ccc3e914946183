/* vcpu.h - vCPU ioctls, the x86 boot state, and the decoded form of a VM exit. */
#ifndef MICROVM_DRIVER_VCPU_H
#define MICROVM_DRIVER_VCPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/kvm.h"

/* What KVM_RUN stopped for, decoded so the rest of microvm never sees struct kvm_run. */
enum vm_exit_kind {
	VMEXIT_UNKNOWN = 0,     /* a reason microvm does not handle (raw_reason says which) */
	VMEXIT_IO,              /* port I/O */
	VMEXIT_MMIO,            /* access to guest-physical memory with no RAM */
	VMEXIT_HLT,             /* hlt without an in-kernel LAPIC to wait in */
	VMEXIT_SHUTDOWN,        /* triple fault */
	VMEXIT_SYSTEM_EVENT,    /* PSCI-style shutdown/reset/crash */
	VMEXIT_EMULATION_FAILURE, /* KVM's emulator could not run an instruction */
	VMEXIT_INTERNAL_ERROR,  /* any other KVM internal error */
	VMEXIT_FAIL_ENTRY,      /* hardware refused VM entry */
	VMEXIT_INTR,            /* KVM_RUN interrupted by a signal / immediate_exit */
	VMEXIT_KIND_COUNT
};

enum { VMEXIT_EVENT_SHUTDOWN = 1, VMEXIT_EVENT_RESET = 2, VMEXIT_EVENT_CRASH = 3 };

struct vm_exit {
	enum vm_exit_kind kind;
	uint32_t raw_reason;            /* KVM_EXIT_* */
	union {
		struct {
			uint16_t port;
			uint8_t size;           /* 1, 2 or 4 */
			bool write;
			uint32_t count;         /* > 1 for rep ins/outs */
			uint8_t *data;          /* count*size bytes inside the run area */
		} io;
		struct {
			uint64_t addr;
			uint8_t len;            /* 1..8 */
			bool write;
			uint8_t *data;          /* 8 bytes inside the run area */
		} mmio;
		struct {
			uint32_t type;          /* VMEXIT_EVENT_* */
		} event;
		struct {
			uint32_t suberror;
			uint8_t insn_len;       /* 0 when KVM gave no instruction bytes */
			uint8_t insn[15];
		} emul;
		struct {
			uint32_t suberror;
			uint32_t ndata;
			uint64_t data[4];
		} internal;
		struct {
			uint64_t reason;
		} fail_entry;
	};
};

/*
 * Decode the run area of a vCPU (a struct kvm_run of run_size bytes) after
 * KVM_RUN returned. Pure: tests feed it fabricated run areas. Offsets inside
 * the run area are bounds-checked; an I/O exit whose data would lie outside
 * it decodes as VMEXIT_INTERNAL_ERROR. Returns 0.
 */
int vmexit_decode(void *run, size_t run_size, struct vm_exit *ex);

/* Short name of an exit kind for logs and statistics. */
const char *vmexit_kind_name(enum vm_exit_kind kind);

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	void *run;           /* mmap'ed struct kvm_run */
	size_t run_size;
};

/* Create vCPU `id` (also its APIC ID) and map its run area. */
int vcpu_create(struct vm *vm, int id, struct vcpu *vcpu);
void vcpu_destroy(struct vcpu *vcpu);

/*
 * Set CPUID (what KVM supports, with this vCPU's APIC ID and the vCPU count),
 * the architectural MSRs a boot expects, the FPU (FCW 0x37f, MXCSR 0x1f80) and
 * the LAPIC's LINT0 (ExtINT) and LINT1 (NMI).
 */
int vcpu_init(struct vcpu *vcpu, int ncpus);

/* The boot GDT: null, code32 (0x08), code64 (0x10), data (0x18), TSS (0x20). */
#define X86_BOOT_GDT_ENTRIES 5
void x86_boot_gdt(uint64_t gdt[X86_BOOT_GDT_ENTRIES]);

/*
 * Boot state for the Linux 64-bit boot protocol: long mode, paging with the
 * identity map at pml4_gpa, CS=0x10 DS=0x18, RIP=entry, RSI=zero_page,
 * RSP=stack, interrupts off. The GDT (x86_boot_gdt) must be at gdt_gpa.
 */
int vcpu_boot_linux64(struct vcpu *vcpu, uint64_t entry, uint64_t zero_page,
		      uint64_t pml4_gpa, uint64_t gdt_gpa, uint64_t stack);

/*
 * Boot state for PVH: 32-bit protected mode, paging off, flat CS=0x08 and
 * DS=0x18, EIP=entry, EBX=start_info, interrupts off.
 */
int vcpu_boot_pvh(struct vcpu *vcpu, uint64_t entry, uint32_t start_info, uint64_t gdt_gpa,
		  uint64_t stack);

/*
 * Run the vCPU until the next exit and decode it into *ex. Returns 0, or
 * -EINTR with ex->kind = VMEXIT_INTR when a signal or immediate_exit stopped it,
 * or another -errno with err_msg().
 */
int vcpu_run(struct vcpu *vcpu, struct vm_exit *ex);

/* Make the next (or current, via a signal) KVM_RUN return at once. */
void vcpu_set_immediate_exit(struct vcpu *vcpu, bool on);

/*
 * Set the vCPU's multiprocessing state: runnable (the boot vCPU) or waiting
 * for INIT/SIPI in its local APIC (application processors).
 */
int vcpu_set_mp_state(struct vcpu *vcpu, bool runnable);

/* Instruction-completion helpers for emulation failures (vmm/quirks.c). */
int vcpu_get_rip(struct vcpu *vcpu, uint64_t *rip);
int vcpu_advance_rip(struct vcpu *vcpu, unsigned int len);
int vcpu_update_rflags(struct vcpu *vcpu, uint64_t set, uint64_t clear);
int vcpu_inject_exception(struct vcpu *vcpu, unsigned int vector);

/* One-line register summary (RIP, RSP, RFLAGS, CR0, CR3, CR4, EFER, CS) for error reports. */
void vcpu_describe(struct vcpu *vcpu, char *buf, size_t len);

#endif
