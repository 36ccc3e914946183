/* entry.S - test guest entry points (PVH 32-bit, Linux 64-bit), GDT, trap stubs, AP trampoline. */
	.file "entry.S"
#include "guest.h"

#define SEL_CODE64 0x08
#define SEL_DATA   0x10

/*
 * .text.head is the first thing in every image (the linker script puts it at
 * the load address), so the offsets below are offsets from the image start:
 *   +0x000  PVH entry (32-bit protected mode, paging off, EBX = hvm_start_info)
 *   +0x200  64-bit entry (long mode, identity map, RSI = boot_params), as the
 *           Linux boot protocol's startup_64 for XLF_KERNEL_64 kernels.
 */
	.section .text.head, "ax"
	.code32
	.globl _start, pvh_entry
_start:
pvh_entry:
	cli
	cld
	lgdt gdt_desc
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss

	/*
	 * Identity map 0..4 GiB with 2 MiB pages: one PML4 entry, four PDPT
	 * entries, 2048 PD entries. The PDs are written whole, so only the PML4
	 * and PDPT (adjacent pages) need clearing. ~10k instructions.
	 */
	movl $pvh_pml4, %edi
	xorl %eax, %eax
	movl $(2 * 4096 / 4), %ecx
	rep stosl
	movl $(pvh_pdpt + 3), pvh_pml4
	movl $(pvh_pd + 0x0003), pvh_pdpt
	movl $(pvh_pd + 0x1003), pvh_pdpt + 8
	movl $(pvh_pd + 0x2003), pvh_pdpt + 16
	movl $(pvh_pd + 0x3003), pvh_pdpt + 24
	movl $pvh_pd, %edi
	movl $0x83, %eax                /* present | writable | 2 MiB page */
	xorl %edx, %edx
	movl $2048, %ecx
1:	movl %eax, (%edi)
	movl %edx, 4(%edi)
	addl $0x200000, %eax
	addl $8, %edi
	loop 1b

	movl %cr4, %eax
	orl $0x20, %eax                 /* CR4.PAE */
	movl %eax, %cr4
	movl $pvh_pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx          /* EFER */
	rdmsr
	orl $0x100, %eax                /* EFER.LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax           /* CR0.PG | CR0.PE */
	movl %eax, %cr0
	ljmp $SEL_CODE64, $pvh_long

	.code64
pvh_long:
	movl $GUEST_MODE_PVH, %edi
	movl %ebx, %esi                 /* hvm_start_info (zero-extended) */
	jmp common64

	.org 0x200
	.globl linux64_entry
linux64_entry:
	cli
	cld
	movl $GUEST_MODE_LINUX64, %edi  /* RSI = boot_params, kept as argument 2 */

	/* rdi = mode, rsi = boot structure; both survive until guest_main. */
common64:
	lgdt gdt_desc(%rip)
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	leaq stack_top(%rip), %rsp
	pushq $SEL_CODE64               /* reload CS from our GDT */
	leaq 2f(%rip), %rax
	pushq %rax
	lretq
2:	movq %rdi, %r12
	movq %rsi, %r13
	leaq __bss_start(%rip), %rdi    /* .bss is 8-byte aligned and sized */
	leaq __bss_end(%rip), %rcx
	subq %rdi, %rcx
	shrq $3, %rcx
	xorl %eax, %eax
	rep stosq
	movq %r12, %rdi
	movq %r13, %rsi
	call guest_main
	.globl halt_forever
halt_forever:
	cli
	hlt
	jmp halt_forever

/*
 * Exception and interrupt stubs, 16 bytes apart: stub n is at trap_stubs +
 * 16 * n. Vectors without a CPU error code push a zero so that every frame
 * has the layout of struct trap_frame.
 */
	.text
	.balign 16
	.globl trap_stubs
trap_stubs:
	vector = 0
	.rept NR_IDT_VECTORS
	.balign 16
	.if (vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 || vector == 30)
	.else
	pushq $0
	.endif
	pushq $vector
	jmp trap_common
	vector = vector + 1
	.endr

trap_common:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	movq %rsp, %rdi                 /* struct trap_frame *; RSP is 16-byte aligned here */
	cld
	call trap_handler
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	addq $16, %rsp                  /* vector, error code */
	iretq

/* check.int3: the #BP handler must see int3_next as the return RIP. */
	.globl do_int3, int3_next
do_int3:
	int3
int3_next:
	ret

/* action=triple-fault: #DE with an empty IDT -> #GP -> #DF -> shutdown. */
	.globl triple_fault
triple_fault:
	cli
	lidt empty_idt_desc(%rip)
	xorl %ecx, %ecx
	divl %ecx
	jmp halt_forever

/*
 * AP trampoline, copied to AP_TRAMPOLINE_GPA and started there by SIPI in
 * real mode (CS = AP_TRAMPOLINE_GPA >> 4, IP = 0): count ourselves, halt.
 */
	.section .rodata
	.code16
	.globl ap_tramp, ap_tramp_end, ap_tramp_counter
ap_tramp:
	cli
	lock incw %cs:(ap_tramp_counter - ap_tramp)
3:	hlt
	jmp 3b
	.balign 4
ap_tramp_counter:
	.long 0
ap_tramp_end:
	.code64

	.section .data
	.balign 16
gdt:
	.quad 0
	.quad 0x00af9b000000ffff        /* 0x08: 64-bit code, accessed */
	.quad 0x00cf93000000ffff        /* 0x10: flat data, accessed */
gdt_end:
	.balign 8
gdt_desc:                               /* 32-bit lgdt reads the low 4 bytes of the base */
	.word gdt_end - gdt - 1
	.quad gdt
	.balign 8
empty_idt_desc:
	.word 0
	.quad 0

/* Not loaded, not cleared by common64: page tables (PVH only) and the stack. */
	.section .noinit.pgtables, "aw", @nobits
	.balign 4096
pvh_pml4:
	.skip 4096
pvh_pdpt:
	.skip 4096
pvh_pd:
	.skip 4 * 4096

	.section .noinit.stack, "aw", @nobits
	.balign 16
	.skip 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
