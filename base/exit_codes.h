/* exit_codes.h - the documented exit statuses of the microvm process. */
#ifndef MICROVM_EXIT_CODES_H
#define MICROVM_EXIT_CODES_H

/*
 * 0..255 written by the guest to MV_PORT_EXIT: microvm exits with that value.
 * Otherwise:
 */
#define MV_EXIT_POWEROFF     0   /* guest powered off (ACPI S5) or asked for a reset (i8042, ACPI reset) */
#define MV_EXIT_ERROR        1   /* microvm error: bad input file, KVM unavailable, host failure */
#define MV_EXIT_USAGE        2   /* bad command line: unknown flag, bad value */
#define MV_EXIT_TRIPLE_FAULT 120 /* guest triple fault (KVM shutdown exit) */
#define MV_EXIT_GUEST_ERROR  121 /* guest stopped on something KVM or microvm cannot handle
				  * (emulation failure, unhandled exit, failed vCPU) */
#define MV_EXIT_GUEST_PANIC  122 /* the guest kernel reported a panic through pvpanic (port 0x505) */
#define MV_EXIT_RUN_NO_STATUS 123 /* --run: the guest ended (power-off, reset, Ctrl-A x) without
				   * reporting the script's status on the exit-status port */
#define MV_EXIT_TIMEOUT      124 /* --timeout or a POST /vm/shutdown deadline expired (as coreutils timeout); the VM was stopped cleanly */
#define MV_EXIT_OOM          125 /* --cgroup: the VM used more than the group's memory.max and the
				  * kernel's OOM killer ended it (reported by the supervisor, docs/jail.md) */
#define MV_EXIT_SECCOMP      159 /* a thread made a system call its seccomp filter forbids (128 + SIGSYS);
				  * the process stopped at once (vmm/sandbox/sandbox.h) */

#endif
