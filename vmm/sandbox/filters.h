/*
 * filters.h - the seccomp-bpf programs of every thread kind, compiled at build time
 * (docs/seccomp.md).
 *
 * vmm/sandbox/filters_gen.c holds the allow-lists; the build runs it (it links libseccomp)
 * and it writes filters.c into the build directory with one BPF program per (kind,
 * api) as a const array, the names of the system calls for the SIGSYS report, and
 * whether the programs are the sanitizer build's (meson's b_sanitize). microvm itself
 * only picks a program and loads it (sandbox.c): no libseccomp at run time.
 */
#ifndef MICROVM_SANDBOX_FILTERS_H
#define MICROVM_SANDBOX_FILTERS_H

#include "vmm/sandbox/sandbox.h"

#include <linux/filter.h>
#include <stdbool.h>

struct sandbox_filter {
	const struct sock_filter *insns;
	unsigned short len;
};

/*
 * [kind][api]: api 1 is the main thread's list with the control API and snapshots
 * (--api-sock, --record-working-set); the other kinds' two programs are the same list.
 */
extern const struct sandbox_filter sandbox_filters[SANDBOX_KINDS][2];

/* x86-64 system call numbers below this with a name: sandbox_syscall_names[nr] or NULL. */
#define SANDBOX_SYSCALL_NAMES 512
extern const char *const sandbox_syscall_names[SANDBOX_SYSCALL_NAMES];

/* The programs also allow what the ASan+UBSan runtimes need (sanitizer_extra). */
extern const bool sandbox_filters_sanitized;

#endif
