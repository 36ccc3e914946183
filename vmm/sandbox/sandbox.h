/*
 * sandbox.h - the seccomp-bpf allow-list of each thread kind (README, "Security and
 * reliability"; docs/seccomp.md).
 *
 * After set-up, every thread that runs while the guest does loads the filter of its
 * kind before it does anything the guest can influence: the vCPU threads before their
 * first KVM_RUN, the I/O thread and its workers before the first request, the console
 * threads before the first byte, the main thread once it has started the others. A
 * system call outside the list stops the process at once with one log line naming the
 * thread kind and the call (exit status MV_EXIT_SECCOMP). --no-seccomp turns it off
 * for debugging.
 */
#ifndef MICROVM_SANDBOX_H
#define MICROVM_SANDBOX_H

#include <stdbool.h>

enum sandbox_kind {
	SANDBOX_MAIN,     /* waits for the stop, stops and joins the others, tears down */
	SANDBOX_VCPU,     /* KVM_RUN and the exits it handles */
	SANDBOX_IO,       /* the I/O thread and the sync engine's workers */
	SANDBOX_CONSOLE,  /* stdin to the UART, the UART to stdout */
	SANDBOX_KINDS
};

const char *sandbox_kind_name(enum sandbox_kind kind);

/*
 * Choose every kind's filter (compiled at build time: filters.h) after checking
 * that the kernel has seccomp filters, and install the SIGSYS handler that reports a
 * forbidden call; before_exit(ctx) then runs (async-signal-safe: the terminal
 * is restored) and the process exits with MV_EXIT_SECCOMP. Call it in the main
 * thread before any thread that enters the sandbox is started. From then on
 * sandbox_enter() applies the filters. With api (--api-sock), the main
 * thread may also accept connections and, at exit, remove the socket file
 * (unlink). Returns 0 or -errno with err_msg().
 */
int sandbox_prepare(bool api, void (*before_exit)(void *ctx), void *ctx);

/*
 * Apply this kind's filter to the calling thread (and the threads it creates
 * later). Nothing happens unless sandbox_prepare() succeeded. A failure is
 * fatal: it is logged and the process exits with MV_EXIT_ERROR, as no guest
 * code has run unconfined. With the build's test hooks
 * (-Dtest_hooks=true), MICROVM_TEST_SECCOMP=KIND makes the first thread of
 * that kind try a forbidden call (socket()) right after, for the tests.
 */
void sandbox_enter(enum sandbox_kind kind);

/* True once sandbox_prepare() succeeded. */
bool sandbox_active(void);

#define SANDBOX_TEST_ENV "MICROVM_TEST_SECCOMP"

#endif
