/*
 * tests/linux/spin.c - the "no-syscall" init of rootfs-spin.ext4, for hosts
 * where guest user mode cannot make system calls (KVM without VT-x/AMD-V, see
 * docs/linux-guest.md and docs/host-quirks.md).
 *
 * It makes no system call at all: it spins for N iterations in user mode,
 * then stores to an unmapped address (SPIN_FAULT_ADDR). The kernel kills it
 * with SIGSEGV, logs "spin[1]: segfault at 5350494e000 ...", and, because it
 * is init, panics "Attempted to kill init! exitcode=0x0000000b"; with
 * `panic=-1` on the command line the kernel reboots at once, so microvm exits.
 * Reaching that panic proves the kernel mounted the root disk, loaded an ELF
 * from it and ran it in user mode.
 *
 * N is argv[1] (kernel command line `init=/spin -- N`) or the environment
 * variable spin=N (command line `spin=N`), in decimal; default SPIN_DEFAULT.
 * A tight loop runs at about 1 ns per iteration even on the emulating host.
 *
 * Built by scripts/guest-image:
 *   gcc -Os -static -nostdlib -ffreestanding -fno-pie -no-pie
 *       -fno-stack-protector -mgeneral-regs-only -o spin spin.c
 */

#define SPIN_DEFAULT 1000000000UL
#define SPIN_FAULT_ADDR 0x5350494e000UL /* "SPIN" in ASCII, shifted by 12 */

/* The kernel enters _start with RSP pointing at argc, argv[], NULL, envp[], NULL. */
__asm__(".text\n"
	".globl _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call spin_main\n"
	"	ud2\n");

static int parse_ulong(const char *s, unsigned long *out)
{
	unsigned long v = 0;

	if (!s || *s < '0' || *s > '9')
		return 0;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (unsigned long)(*s - '0');
	if (*s)
		return 0;
	*out = v;
	return 1;
}

__attribute__((noreturn, used)) void spin_main(unsigned long *sp)
{
	unsigned long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	unsigned long n = SPIN_DEFAULT, i;

	if (argc < 2 || !parse_ulong(argv[1], &n)) {
		for (; *envp; envp++) {
			const char *e = *envp;
			if (e[0] == 's' && e[1] == 'p' && e[2] == 'i' && e[3] == 'n' && e[4] == '=' &&
			    parse_ulong(e + 5, &n))
				break;
		}
	}

	for (i = 0; i < n; i++)
		__asm__ volatile("" : "+r"(i)); /* keeps the loop; no memory traffic */

	*(volatile unsigned long *)SPIN_FAULT_ADDR = i;
	for (;;)
		__asm__ volatile("ud2");
}
